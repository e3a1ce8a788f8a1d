package portalapi

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"gopkg.in/yaml.v3"
)

// TestOpenAPIMatchesRoutes checks that openapi.yaml documents exactly the
// routes Mount registers, method by method.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" || m == "summary" {
				continue
			}
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}

	app := fiber.New()
	a := &API{cfg: Config{}}
	a.Mount(app.Group("/api"))
	param := regexp.MustCompile(`:([a-z]+)`)
	registered := map[string]bool{}
	for _, r := range app.GetRoutes(true) {
		if r.Method == fiber.MethodHead || !strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		p := param.ReplaceAllString(strings.TrimPrefix(r.Path, "/api"), "{$1}")
		registered[r.Method+" "+p] = true
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is not in openapi.yaml", k)
		}
	}
	for k := range documented {
		if !registered[k] {
			t.Errorf("openapi.yaml documents %s, which is not registered", k)
		}
	}
	if len(registered) < 30 {
		t.Errorf("only %d routes registered", len(registered))
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range registered {
			if !yield(k) {
				return
			}
		}
	})
	t.Logf("%d routes: %v", len(keys), keys)
}
