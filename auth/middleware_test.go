package auth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

func TestMiddleware(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)
	if _, err := s.CreateUser(ctx, NewUser{Email: "c@example.org", Password: "correct horse battery", Account: "GCLIN",
		Memberships: []Membership{{OrgID: "org1", Role: RoleClinician}}}); err != nil {
		t.Fatal(err)
	}
	sess, err := s.SignInPassword(ctx, "c@example.org", "correct horse battery", "::1")
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := s.CreateAPIKey(ctx, "org1", "modality", []string{ScopeSTOW}, "")
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := s.ViewerToken(sess.Subject, "1.2.3", time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	app := fiber.New()
	app.Use(CORS([]string{"https://viewer.example"}))
	api := app.Group("/api", Middleware(MiddlewareConfig{Service: s, Origins: []string{"https://portal.example"}}))
	who := func(c *fiber.Ctx) error {
		sub, _ := FromCtx(c)
		return c.SendString(sub.Via + " " + sub.Actor() + " " + sub.RolesString() + " " + sub.Study)
	}
	api.Get("/who", who)
	api.Post("/who", who)
	api.Get("/clinic", RequireRole(RoleClinician), who)
	api.Get("/admin", RequireRole(RoleIssuerAdmin), who)
	app.Get("/open", Middleware(MiddlewareConfig{Service: s, Optional: true}), who)

	const csrf = "csrf-token-value"
	cookies := "mm_at=" + sess.AccessToken + "; mm_csrf=" + csrf
	tests := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		body    string
	}{
		{"no credentials", "GET", "/api/who", nil, 401, ""},
		{"bearer", "GET", "/api/who", map[string]string{"Authorization": "Bearer " + sess.AccessToken}, 200, "bearer GCLIN clinician "},
		{"bearer garbage", "GET", "/api/who", map[string]string{"Authorization": "Bearer abc.def.ghi"}, 401, ""},
		{"basic scheme", "GET", "/api/who", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, 401, ""},
		{"viewer token", "GET", "/api/who", map[string]string{"Authorization": "Bearer " + viewer}, 200, "viewer GCLIN clinician 1.2.3"},
		{"viewer token in a cookie", "GET", "/api/who", map[string]string{"Cookie": "mm_at=" + viewer}, 401, ""},
		{"API key header", "GET", "/api/who", map[string]string{HeaderAPIKey: key}, 200, "apikey apikey:"},
		{"API key bearer", "GET", "/api/who", map[string]string{"Authorization": "Bearer " + key}, 200, "apikey apikey:"},
		{"wrong API key", "GET", "/api/who", map[string]string{HeaderAPIKey: key + "x"}, 401, ""},
		{"cookie GET", "GET", "/api/who", map[string]string{"Cookie": cookies}, 200, "cookie GCLIN"},
		{"cookie POST, no origin", "POST", "/api/who", map[string]string{"Cookie": cookies, HeaderCSRF: csrf}, 403, ""},
		{"cookie POST, foreign origin", "POST", "/api/who", map[string]string{"Cookie": cookies, HeaderCSRF: csrf, "Origin": "https://evil.example"}, 403, ""},
		{"cookie POST, no CSRF header", "POST", "/api/who", map[string]string{"Cookie": cookies, "Origin": "https://portal.example"}, 403, ""},
		{"cookie POST, wrong CSRF", "POST", "/api/who", map[string]string{"Cookie": cookies, HeaderCSRF: "nope", "Origin": "https://portal.example"}, 403, ""},
		{"cookie POST, allowed origin", "POST", "/api/who", map[string]string{"Cookie": cookies, HeaderCSRF: csrf, "Origin": "https://portal.example"}, 200, "cookie GCLIN"},
		{"cookie POST, same origin", "POST", "/api/who", map[string]string{"Cookie": cookies, HeaderCSRF: csrf, "Origin": "http://example.com"}, 200, "cookie GCLIN"},
		{"cookie POST, same-origin referer", "POST", "/api/who", map[string]string{"Cookie": cookies, HeaderCSRF: csrf, "Referer": "http://example.com/portal/x"}, 200, "cookie GCLIN"},
		{"bearer POST needs no CSRF", "POST", "/api/who", map[string]string{"Authorization": "Bearer " + sess.AccessToken, "Origin": "https://evil.example"}, 200, "bearer GCLIN"},
		{"role present", "GET", "/api/clinic", map[string]string{"Authorization": "Bearer " + sess.AccessToken}, 200, "bearer"},
		{"role missing", "GET", "/api/admin", map[string]string{"Authorization": "Bearer " + sess.AccessToken}, 403, ""},
		{"optional, anonymous", "GET", "/open", nil, 200, " anonymous"},
		{"optional, bad token", "GET", "/open", map[string]string{"Authorization": "Bearer x"}, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://example.com"+tt.path, nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.HasPrefix(string(b), tt.body) {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, b, tt.status, tt.body)
			}
			if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestCORS(t *testing.T) {
	app := fiber.New()
	app.Use(CORS([]string{"https://viewer.example"}))
	app.Get("/dicom-web/studies", func(c *fiber.Ctx) error { return c.SendString("[]") })
	tests := []struct {
		name, method, origin string
		preflight            bool
		status               int
		allow                string
	}{
		{"allowed origin", "GET", "https://viewer.example", false, 200, "https://viewer.example"},
		{"other origin", "GET", "https://evil.example", false, 200, ""},
		{"no origin", "GET", "", false, 200, ""},
		{"allowed preflight", "OPTIONS", "https://viewer.example", true, 204, "https://viewer.example"},
		{"refused preflight", "OPTIONS", "https://evil.example", true, 403, ""},
		{"origin differing in port", "GET", "https://viewer.example:8443", false, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/dicom-web/studies", nil)
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.preflight {
				req.Header.Set("Access-Control-Request-Method", "GET")
				req.Header.Set("Access-Control-Request-Headers", "authorization")
			}
			resp, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || resp.Header.Get("Access-Control-Allow-Origin") != tt.allow {
				t.Errorf("%d allow %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
			if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("credentials allowed cross-origin")
			}
			if tt.preflight && tt.status == http.StatusNoContent && !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Errorf("allow headers %q", resp.Header.Get("Access-Control-Allow-Headers"))
			}
		})
	}
}
