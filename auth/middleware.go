package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Subject is who a request acts for: a signed-in user (with the
// organisation and roles of their session) or an organisation's API key.
type Subject struct {
	UserID    string   `json:"user_id,omitempty"`
	Account   string   `json:"account,omitempty"` // Stellar account
	Custodial bool     `json:"custodial,omitempty"`
	OrgID     string   `json:"org_id,omitempty"`
	Roles     []Role   `json:"roles,omitempty"`
	Session   string   `json:"-"` // refresh token family
	APIKeyID  string   `json:"api_key_id,omitempty"`
	Scopes    []string `json:"scopes,omitempty"` // API key scopes
	// Study, for a viewer token, is the one study it may read.
	Study string `json:"study,omitempty"`
	// Via says how the request authenticated: "bearer", "cookie",
	// "apikey" or "viewer".
	Via string `json:"via,omitempty"`
}

// Has reports whether the subject has role r.
func (s Subject) Has(r Role) bool { return slices.Contains(s.Roles, r) }

// HasScope reports whether an API key subject has scope sc.
func (s Subject) HasScope(sc string) bool { return slices.Contains(s.Scopes, sc) }

// RolesString joins the roles with commas (as the audit log keeps them).
func (s Subject) RolesString() string {
	parts := make([]string, len(s.Roles))
	for i, r := range s.Roles {
		parts[i] = string(r)
	}
	return strings.Join(parts, ",")
}

// Actor names the subject in logs and the audit log: its Stellar account,
// else the user or API key ID.
func (s Subject) Actor() string {
	switch {
	case s.Account != "":
		return s.Account
	case s.UserID != "":
		return "user:" + s.UserID
	case s.APIKeyID != "":
		return "apikey:" + s.APIKeyID
	}
	return "anonymous"
}

type subjectKey struct{}

// WithSubject returns ctx carrying sub.
func WithSubject(ctx context.Context, sub Subject) context.Context {
	return context.WithValue(ctx, subjectKey{}, sub)
}

// SubjectFrom returns the subject Middleware put in ctx.
func SubjectFrom(ctx context.Context) (Subject, bool) {
	s, ok := ctx.Value(subjectKey{}).(Subject)
	return s, ok
}

// FromCtx returns the request's subject.
func FromCtx(c *fiber.Ctx) (Subject, bool) { return SubjectFrom(c.UserContext()) }

// Cookie and header names of browser sessions.
const (
	CookieAccess  = "mm_at"   // access token: HttpOnly, SameSite=Strict, Path=/
	CookieRefresh = "mm_rt"   // refresh token: HttpOnly, SameSite=Strict, Path=RefreshPath
	CookieCSRF    = "mm_csrf" // double-submit token: readable by the page
	HeaderCSRF    = "X-CSRF-Token"
	HeaderAPIKey  = "X-API-Key"
	// RefreshPath is where the refresh cookie is sent: the sign-in API
	// only, never to DICOMweb or elsewhere.
	RefreshPath = "/api/auth"
)

// MiddlewareConfig configures Middleware.
type MiddlewareConfig struct {
	Service *Service
	// Origins that may use cookie sessions besides the request's own
	// (e.g. the portal's dev server); exact scheme://host[:port].
	Origins []string
	// Optional lets requests without credentials through with no
	// subject; invalid credentials are refused either way.
	Optional bool
}

// Middleware authenticates each request from, in order: an
// Authorization: Bearer access token (or API key), an X-API-Key header,
// or the session cookie. Cookie-authenticated requests that change
// anything must come from an allowed origin and carry the CSRF token
// (double submit). The Subject goes into the request's context (FromCtx).
func Middleware(cfg MiddlewareConfig) fiber.Handler {
	s := cfg.Service
	return func(c *fiber.Ctx) error {
		sub, err := authenticate(c, s, cfg.Origins)
		if err != nil {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="medimint", error="invalid_token"`)
			var fe *fiber.Error
			if errors.As(err, &fe) {
				return fe
			}
			return fiber.NewError(http.StatusUnauthorized, "invalid credentials")
		}
		if sub == nil {
			if cfg.Optional {
				return c.Next()
			}
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="medimint"`)
			return fiber.NewError(http.StatusUnauthorized, "sign-in required")
		}
		c.SetUserContext(WithSubject(c.UserContext(), *sub))
		return c.Next()
	}
}

func authenticate(c *fiber.Ctx, s *Service, origins []string) (*Subject, error) {
	ctx := c.UserContext()
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, fiber.NewError(http.StatusUnauthorized, "unsupported authorization scheme")
		}
		tok = strings.TrimSpace(tok)
		if strings.HasPrefix(tok, APIKeyPrefix) {
			sub, err := s.AuthenticateAPIKey(ctx, tok)
			sub.Via = "apikey"
			return &sub, err
		}
		return s.token(tok, "bearer")
	}
	if k := c.Get(HeaderAPIKey); k != "" {
		sub, err := s.AuthenticateAPIKey(ctx, k)
		sub.Via = "apikey"
		return &sub, err
	}
	if tok := c.Cookies(CookieAccess); tok != "" {
		sub, err := s.token(tok, "cookie")
		if err != nil {
			return nil, err
		}
		if err := checkCSRF(c, origins); err != nil {
			return nil, err
		}
		return sub, nil
	}
	return nil, nil
}

// token verifies an access token (API audience) or a viewer token.
func (s *Service) token(tok, via string) (*Subject, error) {
	now := time.Now()
	c, err := s.keys.Verify(tok, AudienceAPI, now)
	if err != nil && via == "bearer" {
		if vc, verr := s.keys.Verify(tok, AudienceViewer, now); verr == nil && vc.Study != "" {
			c, err, via = vc, nil, "viewer"
		}
	}
	if err != nil {
		return nil, err
	}
	return &Subject{UserID: c.Subject, Account: c.Account, Custodial: c.Custodial, OrgID: c.OrgID, Roles: c.Roles,
		Session: c.Session, Study: c.Study, Via: via}, nil
}

// AuthenticateToken verifies a bearer access or viewer token.
func (s *Service) AuthenticateToken(tok string) (Subject, error) {
	sub, err := s.token(tok, "bearer")
	if err != nil {
		return Subject{}, err
	}
	return *sub, nil
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// checkCSRF guards cookie sessions: SameSite=Strict keeps the cookies off
// cross-site requests in current browsers; for older ones, and against
// same-site attackers, an unsafe request must also name an allowed Origin
// (or Referer) and echo the CSRF cookie in a header.
func checkCSRF(c *fiber.Ctx, origins []string) error {
	if safeMethod(c.Method()) {
		return nil
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		if u, err := url.Parse(c.Get(fiber.HeaderReferer)); err == nil && u.Scheme != "" && u.Host != "" {
			origin = u.Scheme + "://" + u.Host
		}
	}
	if origin == "" || (origin != c.BaseURL() && !slices.Contains(origins, origin)) {
		return fiber.NewError(http.StatusForbidden, "cross-origin request refused")
	}
	want := c.Cookies(CookieCSRF)
	got := c.Get(HeaderCSRF)
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		return fiber.NewError(http.StatusForbidden, "missing or wrong CSRF token")
	}
	return nil
}

// SetSessionCookies puts a session in cookies: the access token for every
// path, the refresh token for RefreshPath only (both HttpOnly), and a
// fresh CSRF token the page reads and echoes in HeaderCSRF. secure marks
// them Secure (HTTPS); only loopback development should pass false.
func SetSessionCookies(c *fiber.Ctx, sess Session, secure bool) {
	c.Cookie(&fiber.Cookie{Name: CookieAccess, Value: sess.AccessToken, Path: "/", HTTPOnly: true, Secure: secure,
		SameSite: fiber.CookieSameSiteStrictMode, MaxAge: sess.ExpiresIn})
	if sess.RefreshToken != "" {
		c.Cookie(&fiber.Cookie{Name: CookieRefresh, Value: sess.RefreshToken, Path: RefreshPath, HTTPOnly: true, Secure: secure,
			SameSite: fiber.CookieSameSiteStrictMode, Expires: sess.RefreshExpires})
	}
	csrf, _ := randomToken(24)
	c.Cookie(&fiber.Cookie{Name: CookieCSRF, Value: csrf, Path: "/", Secure: secure,
		SameSite: fiber.CookieSameSiteStrictMode, Expires: sess.RefreshExpires})
}

// ClearSessionCookies removes the session cookies.
func ClearSessionCookies(c *fiber.Ctx, secure bool) {
	past := time.Unix(0, 0)
	for _, ck := range []*fiber.Cookie{
		{Name: CookieAccess, Path: "/", HTTPOnly: true},
		{Name: CookieRefresh, Path: RefreshPath, HTTPOnly: true},
		{Name: CookieCSRF, Path: "/"},
	} {
		ck.Expires, ck.MaxAge, ck.Secure, ck.SameSite = past, -1, secure, fiber.CookieSameSiteStrictMode
		c.Cookie(ck)
	}
}

// RequireRole refuses (403) subjects without one of roles.
func RequireRole(roles ...Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		sub, ok := FromCtx(c)
		if !ok {
			return fiber.NewError(http.StatusUnauthorized, "sign-in required")
		}
		if slices.ContainsFunc(roles, sub.Has) {
			return c.Next()
		}
		return fiber.NewError(http.StatusForbidden, "this needs one of the roles "+joinRoles(roles))
	}
}

func joinRoles(rs []Role) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = string(r)
	}
	return strings.Join(parts, ", ")
}

// CORS answers cross-origin requests from origins only (exact
// scheme://host[:port]): viewers such as OHIF on another origin, which
// send bearer tokens (credentials mode is not enabled, so cookies never
// cross origins). Other origins get no CORS headers, and their preflights
// a 403.
func CORS(origins []string) fiber.Handler {
	allowed := slices.Clone(origins)
	return func(c *fiber.Ctx) error {
		origin := c.Get(fiber.HeaderOrigin)
		if origin == "" {
			return c.Next()
		}
		c.Vary(fiber.HeaderOrigin)
		ok := slices.Contains(allowed, origin)
		preflight := c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != ""
		if !ok {
			if preflight {
				return c.SendStatus(http.StatusForbidden)
			}
			return c.Next()
		}
		c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
		c.Set(fiber.HeaderAccessControlExposeHeaders, "Content-Type, Content-Length, Content-Location, Location, X-Request-ID, Warning")
		if preflight {
			c.Set(fiber.HeaderAccessControlAllowMethods, "GET, HEAD, POST, PUT, DELETE, OPTIONS")
			c.Set(fiber.HeaderAccessControlAllowHeaders, "Authorization, Accept, Content-Type, X-Request-ID, "+HeaderAPIKey)
			c.Set(fiber.HeaderAccessControlMaxAge, strconv.Itoa(600))
			return c.SendStatus(http.StatusNoContent)
		}
		return c.Next()
	}
}
