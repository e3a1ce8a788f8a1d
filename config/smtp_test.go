package config

import (
	"strings"
	"testing"
)

func TestSMTP(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want SMTP
		err  string
	}{
		{env: nil, want: SMTP{}},
		{env: map[string]string{"MEDIMINT_SMTP_ADDR": "smtp.example.org:587", "MEDIMINT_SMTP_FROM": "noreply@example.org",
			"MEDIMINT_SMTP_USER": "u", "MEDIMINT_SMTP_PASSWORD": "hunter2-secret"},
			want: SMTP{Addr: "smtp.example.org:587", From: "noreply@example.org", User: "u", Password: "hunter2-secret"}},
		{env: map[string]string{"MEDIMINT_SMTP_ADDR": "smtp.example.org"}, err: "MEDIMINT_SMTP_ADDR"},
		{env: map[string]string{"MEDIMINT_SMTP_ADDR": "smtp.example.org:25"}, err: "MEDIMINT_SMTP_FROM"},
	}
	for _, tt := range tests {
		c, err := FromLookup(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: error %v, want one naming %s", tt.env, err, tt.err)
			}
			continue
		}
		if err != nil || c.SMTP != tt.want {
			t.Errorf("%v: %+v, %v", tt.env, c.SMTP, err)
		}
		if tt.want.Password != "" && strings.Contains(c.LogValue().String(), tt.want.Password) {
			t.Errorf("the SMTP password is logged")
		}
	}
}
