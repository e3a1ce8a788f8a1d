package portal

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

//go:embed all:dist
var dist embed.FS

// CSP is the Content Security Policy of the portal's pages: everything
// from our own origin only, no inline script or style, no framing.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Assets returns the built app (dist/app), or nil when it was not built.
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist/app")
	if err != nil {
		return nil
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return nil
	}
	return sub
}

const notBuilt = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Medimint portal</title></head>
<body><main><h1>Medimint portal</h1><p>The portal was not built into this binary. Run <code>npm ci &amp;&amp; npm run build</code>
in <code>portal/</code>, then rebuild.</p></main></body></html>`

// Mount serves the portal on r: files of the built app, and index.html for
// every other path (client-side routes), except under the prefixes in
// skip (the API, DICOMweb), which fall through to their own routes.
func Mount(r fiber.Router, assets fs.FS, skip ...string) {
	r.Get("/*", func(c *fiber.Ctx) error {
		p := c.Path()
		for _, s := range skip {
			if p == s || strings.HasPrefix(p, s+"/") {
				return c.Next()
			}
		}
		security(c)
		if assets == nil {
			c.Type("html")
			return c.SendString(notBuilt)
		}
		name := strings.TrimPrefix(path.Clean(p), "/")
		if name != "" && !strings.HasSuffix(p, "/") {
			if b, err := fs.ReadFile(assets, name); err == nil {
				if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
					c.Set(fiber.HeaderContentType, ct)
				}
				if strings.HasPrefix(name, "assets/") {
					// Vite puts a content hash in these names.
					c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
				}
				return c.Send(b)
			}
			if strings.HasPrefix(name, "assets/") || mime.TypeByExtension(path.Ext(name)) != "" && !strings.ContainsFunc(path.Ext(name), isDigit) {
				return fiber.NewError(http.StatusNotFound, "no such file")
			}
		}
		b, err := fs.ReadFile(assets, "index.html")
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Type("html")
		return c.Send(b)
	})
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func security(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", CSP)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}
