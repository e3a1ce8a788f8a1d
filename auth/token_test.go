package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTokenVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	key, old, other := newKey(t), newKey(t), newKey(t)
	keys := NewKeys("medimint", key, old.Public().(ed25519.PublicKey))
	base := Claims{Subject: "u1", Audience: AudienceAPI, IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(10 * time.Minute).Unix(),
		Account: "GABC", Roles: []Role{RolePatient}}
	sign := func(k *Keys, c Claims) string {
		s, err := k.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(keys, base)
	parts := strings.Split(good, ".")
	tests := []struct {
		name  string
		token string
		aud   string
		at    time.Time
		ok    bool
	}{
		{"valid", good, AudienceAPI, now, true},
		{"signed by a previous key", sign(NewKeys("medimint", old), base), AudienceAPI, now, true},
		{"signed by an unknown key", sign(NewKeys("medimint", other), base), AudienceAPI, now, false},
		{"other issuer", sign(NewKeys("evil", key), base), AudienceAPI, now, false},
		{"wrong audience", good, AudienceViewer, now, false},
		{"expired", good, AudienceAPI, now.Add(11 * time.Minute), false},
		{"within leeway", good, AudienceAPI, now.Add(10*time.Minute + 10*time.Second), true},
		{"not yet valid", good, AudienceAPI, now.Add(-time.Hour), false},
		{"alg none", b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"`+KeyID(key.Public().(ed25519.PublicKey))+`"}`)) + "." + parts[1] + ".", AudienceAPI, now, false},
		{"payload swapped", parts[0] + "." + b64.EncodeToString([]byte(`{"iss":"medimint","sub":"admin","aud":"medimint-api","exp":9999999999}`)) + "." + parts[2], AudienceAPI, now, false},
		{"signature cut", parts[0] + "." + parts[1] + "." + parts[2][:10], AudienceAPI, now, false},
		{"two parts", parts[0] + "." + parts[1], AudienceAPI, now, false},
		{"garbage", "x.y.z", AudienceAPI, now, false},
		{"no subject", sign(keys, Claims{Audience: AudienceAPI, Expires: now.Add(time.Minute).Unix()}), AudienceAPI, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := keys.Verify(tt.token, tt.aud, tt.at)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if c.Subject != "u1" || c.Account != "GABC" || len(c.Roles) != 1 {
					t.Errorf("claims %+v", c)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "token.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Error("second load returned another key")
	}
}

func TestPassword(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q", h)
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	tests := []struct {
		name, hash, pw string
		ok             bool
		bad            bool
	}{
		{"right", h, "correct horse battery", true, false},
		{"wrong", h, "correct horse battery!", false, false},
		{"empty", h, "", false, false},
		{"not argon2id", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "x", false, true},
		{"no params", "$argon2id$v=19$$AAAA$AAAA", "x", false, true},
		{"huge memory", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", "x", false, true},
		{"truncated", "$argon2id$v=19", "x", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.hash, tt.pw)
			if (err != nil) != tt.bad || ok != tt.ok {
				t.Errorf("VerifyPassword = %v, %v", ok, err)
			}
		})
	}
	for _, pw := range []string{"short", strings.Repeat("x", MaxPasswordLen+1)} {
		if _, err := HashPassword(pw); !errors.Is(err, ErrWeakPassword) {
			t.Errorf("HashPassword(%d chars) = %v", len(pw), err)
		}
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyToken(b *testing.B) {
	keys := NewKeys("medimint", newKey(b))
	now := time.Now()
	tok, _ := keys.Sign(Claims{Subject: "u", Audience: AudienceAPI, Expires: now.Add(time.Hour).Unix(), Roles: []Role{RolePatient}})
	for b.Loop() {
		if _, err := keys.Verify(tok, AudienceAPI, now); err != nil {
			b.Fatal(err)
		}
	}
}
