package portal

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gofiber/fiber/v2"
)

func TestMount(t *testing.T) {
	assets := fstest.MapFS{
		"index.html":        {Data: []byte("<!doctype html><title>portal</title>")},
		"assets/app-abc.js": {Data: []byte("console.log(1)")},
		"favicon.svg":       {Data: []byte("<svg/>")},
	}
	app := fiber.New()
	app.Get("/api/me", func(c *fiber.Ctx) error { return c.SendString("api") })
	Mount(app, assets, "/api", "/dicom-web")
	tests := []struct {
		path, status, body, ctype string
	}{
		{"/", "200", "<!doctype html><title>portal</title>", "text/html"},
		{"/studies/1.2.3", "200", "<!doctype html><title>portal</title>", "text/html"},
		{"/assets/app-abc.js", "200", "console.log(1)", "text/javascript"},
		{"/assets/missing.js", "404", "", ""},
		{"/api/me", "200", "api", ""},
		{"/api/unknown", "404", "", ""},
		{"/dicom-web/studies", "404", "", ""},
		{"/../../etc/passwd", "200", "<!doctype html><title>portal</title>", "text/html"},
		{"/missing.png", "404", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := app.Test(httptest.NewRequest("GET", tt.path, nil), -1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if got := resp.Status[:3]; got != tt.status || (tt.body != "" && string(b) != tt.body) {
				t.Errorf("%s %q", resp.Status, b)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if tt.ctype == "text/html" && resp.Header.Get("Content-Security-Policy") != CSP {
				t.Error("page without CSP")
			}
		})
	}
	// Without a build, a page says how to build it.
	app2 := fiber.New()
	Mount(app2, nil)
	resp, _ := app2.Test(httptest.NewRequest("GET", "/", nil), -1)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "npm run build") {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}
