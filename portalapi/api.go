package portalapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/wallet"
)

// Config configures the API.
type Config struct {
	Auth *auth.Service
	Pool *pgxpool.Pool
	// Network is the Stellar network: explorer links, and Horizon for the
	// sequence numbers of transactions prepared for wallet users.
	Network wallet.Network
	// Sponsor pays for and submits every transaction; nil: chain actions
	// answer 503 until SetSponsor.
	Sponsor *wallet.Sponsor
	// Custodian derives custodial users' keys and the issuer's (which
	// co-signs transfers).
	Custodian *wallet.Custodian
	// DICOMwebBase is the gateway's DICOMweb path prefix (default
	// /dicom-web), for rendered frame URLs.
	DICOMwebBase string
	// ViewerURL, if set, is an OHIF viewer's URL; viewer links add
	// StudyInstanceUIDs and a short-lived token to it.
	ViewerURL string
	// Origins may use cookie sessions besides the portal's own origin.
	Origins []string
	// InsecureCookies drops the Secure flag from session cookies: only
	// for plain-HTTP development on loopback.
	InsecureCookies bool
	// Passkeys runs WebAuthn ceremonies; nil: passkey routes answer 501.
	Passkeys *auth.Passkeys
	Logger   *slog.Logger
}

// API is the portal's HTTP API.
type API struct {
	cfg  Config
	auth *auth.Service
	pool *pgxpool.Pool
	log  *slog.Logger
	hub  *hub
	// spons is Config.Sponsor or what SetSponsor set: the deployment's
	// sponsor exists only once the chain is set up, after the API serves.
	spons atomic.Pointer[wallet.Sponsor]
}

// New returns the API. Call Mount to add its routes and Run for its
// notification listener.
func New(cfg Config) (*API, error) {
	if cfg.Auth == nil || cfg.Pool == nil {
		return nil, errors.New("portalapi: Config needs Auth and Pool")
	}
	if cfg.DICOMwebBase == "" {
		cfg.DICOMwebBase = "/dicom-web"
	}
	cfg.DICOMwebBase = "/" + strings.Trim(cfg.DICOMwebBase, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With(slog.String("component", "portalapi"))
	a := &API{cfg: cfg, auth: cfg.Auth, pool: cfg.Pool, log: log, hub: newHub(cfg.Pool, log)}
	a.spons.Store(cfg.Sponsor)
	return a, nil
}

// SetSponsor enables chain actions once the deployment is set up on the
// network (serve bootstraps it while the API already answers).
func (a *API) SetSponsor(s *wallet.Sponsor) { a.spons.Store(s) }

func (a *API) sponsor() *wallet.Sponsor { return a.spons.Load() }

// Run listens for chain changes and feeds /api/events until ctx ends.
func (a *API) Run(ctx context.Context) error { return a.hub.run(ctx) }

// Mount adds the API's routes to r, the router of the /api prefix.
func (a *API) Mount(r fiber.Router) {
	r.Use(noStore)
	// Sign-in: no session needed.
	r.Post("/auth/password", a.signInPassword)
	r.Get("/auth/sep10", a.sep10Challenge)
	r.Post("/auth/sep10", a.sep10SignIn)
	r.Post("/auth/refresh", a.refresh)
	r.Post("/auth/logout", a.logout)
	r.Post("/auth/invitations/accept", a.acceptInvitation)
	a.mountPasskeySignIn(r)

	p := r.Group("", auth.Middleware(auth.MiddlewareConfig{Service: a.auth, Origins: a.cfg.Origins}), userOnly)
	p.Get("/me", a.me)
	p.Patch("/me", a.updateMe)
	p.Get("/studies", a.myStudies)
	p.Get("/studies/:study", a.studyDetail)
	p.Get("/grants", a.myGrants)
	p.Post("/grants", a.createGrant)
	p.Delete("/grants/:code/:grantee", a.revokeGrant)
	p.Get("/requests", a.requests)
	p.Post("/requests", a.createRequest)
	p.Post("/requests/:tx/approve", a.answerRequest(true))
	p.Post("/requests/:tx/deny", a.answerRequest(false))
	p.Post("/transfers", a.transfer)
	p.Post("/transactions/:id", a.submitPrepared)
	p.Get("/activity", a.activity)
	p.Get("/events", a.events)
	p.Get("/shared", a.shared)
	p.Get("/shared/:study", a.sharedStudy)
	p.Post("/shared/:study/viewer", a.viewerLink)

	a.mountPasskeys(p)

	adm := p.Group("/admin", auth.RequireRole(auth.RoleIssuerAdmin))
	adm.Get("/ingest", a.ingest)
	adm.Get("/modalities", a.modalities)
	adm.Put("/modalities/:ae", a.putModality)
	adm.Delete("/modalities/:ae", a.deleteModality)
	adm.Get("/staff", a.staff)
	adm.Post("/invitations", a.invite)
	adm.Get("/apikeys", a.apiKeys)
	adm.Post("/apikeys", a.createAPIKey)
	adm.Delete("/apikeys/:id", a.revokeAPIKey)
}

// noStore keeps personal answers out of shared caches and the browser's
// back-forward cache.
func noStore(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// userOnly refuses API keys and viewer tokens: the portal is for people.
func userOnly(c *fiber.Ctx) error {
	sub, _ := auth.FromCtx(c)
	if sub.UserID == "" || sub.Via == "viewer" {
		return fiber.NewError(http.StatusForbidden, "the portal API needs a user session")
	}
	return c.Next()
}

func subject(c *fiber.Ctx) auth.Subject {
	sub, _ := auth.FromCtx(c)
	return sub
}

// bodyInto decodes a JSON body, refusing unknown fields.
func bodyInto(c *fiber.Ctx, v any) error {
	if !strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationJSON) {
		return fiber.NewError(http.StatusUnsupportedMediaType, "send application/json")
	}
	if err := c.BodyParser(v); err != nil {
		return fiber.NewError(http.StatusBadRequest, "malformed JSON body: "+err.Error())
	}
	return nil
}

// problem maps errors from the packages below to HTTP answers; anything
// unexpected is logged and becomes a 500 without details.
func (a *API) problem(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	var locked *auth.LockedError
	switch {
	case errors.As(err, &fe):
		return fe
	case errors.As(err, &locked):
		c.Set(fiber.HeaderRetryAfter, fmt.Sprint(int(time.Until(locked.Until).Seconds())+1))
		return fiber.NewError(http.StatusLocked, "too many failed sign-ins: this account is locked for a while")
	case errors.Is(err, auth.ErrThrottled):
		c.Set(fiber.HeaderRetryAfter, "60")
		return fiber.NewError(http.StatusTooManyRequests, "too many attempts; try again in a minute")
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrReplay):
		return fiber.NewError(http.StatusUnauthorized, "sign-in failed")
	case errors.Is(err, auth.ErrDisabled):
		return fiber.NewError(http.StatusForbidden, "this account is disabled")
	case errors.Is(err, auth.ErrSEP10Disabled):
		return fiber.NewError(http.StatusNotImplemented, "wallet sign-in is not configured on this server")
	case errors.Is(err, auth.ErrNotFound):
		return fiber.NewError(http.StatusNotFound, "not found")
	case errors.Is(err, auth.ErrExists):
		return fiber.NewError(http.StatusConflict, "already exists")
	case errors.Is(err, auth.ErrWeakPassword):
		return fiber.NewError(http.StatusBadRequest, err.Error())
	}
	a.log.Error("portal API", "path", c.Path(), "err", err)
	return fiber.NewError(http.StatusInternalServerError, "internal error")
}

// ErrorHandler answers errors as application/problem+json (RFC 9457), for
// apps that mount the API without the gateway's own handler.
func ErrorHandler(c *fiber.Ctx, err error) error {
	code := http.StatusInternalServerError
	msg := "internal error"
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code, msg = fe.Code, fe.Message
	}
	c.Status(code)
	return c.JSON(fiber.Map{"type": "about:blank", "title": http.StatusText(code), "status": code, "detail": msg},
		"application/problem+json")
}
