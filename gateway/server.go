package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint"
)

// Defaults for Config.
const (
	DefaultBasePath = "/dicom-web"
	DefaultMaxParts = 5000
	// DefaultMaxHeader bounds the bytes of a STOW-RS part read before its
	// UIDs are known.
	DefaultMaxHeader = mint.DefaultMaxHeader
	// DefaultMaxJSONBytes bounds the DICOM JSON part of a STOW-RS request
	// of type application/dicom+json.
	DefaultMaxJSONBytes = 64 << 20
	// DefaultMetadataCacheBytes is the default of
	// Config.MetadataCacheBytes.
	DefaultMetadataCacheBytes = 64 << 20
	// AdminKeyHeader carries Config.AdminKey on DELETE requests.
	AdminKeyHeader = "X-Admin-Key"
)

// Config is the gateway's own configuration.
type Config struct {
	Version string // reported by /version
	Commit  string // reported by /version

	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context is done; zero means 30s.
	ShutdownTimeout time.Duration

	// BasePath is where the DICOMweb services are mounted (default
	// DefaultBasePath): STOW-RS at BasePath/studies, and so on.
	BasePath string
	// PublicURL, if set, is the absolute URL of BasePath as clients see
	// it (e.g. behind a proxy), used in RetrieveURL and BulkDataURI
	// values; otherwise they are built from the request's Host.
	PublicURL string
	// AdminKey enables DELETE of studies, series and instances for
	// requests that carry it in the AdminKeyHeader header. Empty: DELETE
	// is refused.
	AdminKey string
	// OrgID is recorded as the issuing organisation of instances stored
	// over STOW-RS when requests are not gated (Deps.Auth); gated, the
	// caller's organisation is.
	OrgID string

	// MaxParts bounds the parts of one STOW-RS request (default
	// DefaultMaxParts).
	MaxParts int
	// MaxHeader bounds what is read of a STOW-RS part before its UIDs are
	// known (default DefaultMaxHeader).
	MaxHeader int64
	// MaxJSONBytes bounds the DICOM JSON part of a STOW-RS request with
	// separate bulk data (default DefaultMaxJSONBytes).
	MaxJSONBytes int64
	// MetadataCacheBytes bounds the memory kept for recently served
	// /metadata bodies (default DefaultMetadataCacheBytes; negative: no
	// cache). Entries are keyed by ETag, so they are never stale.
	MetadataCacheBytes int64
	// CORSOrigins lists the origins (e.g. "https://viewer.example") whose
	// browser pages may call the DICOMweb services, as a viewer such as
	// OHIF served from elsewhere does. Empty: no CORS headers.
	CORSOrigins []string
	// ReadTimeout, if set, bounds the reading of a whole request,
	// including a streamed body.
	ReadTimeout time.Duration
}

// Deps are the services the gateway's handlers use.
type Deps struct {
	DB *pgxpool.Pool // required by /readyz
	// Pipeline stores and retrieves instances; without it the DICOMweb
	// services answer 503.
	Pipeline *mint.Pipeline
	// Index answers queries; nil means Pipeline.Index().
	Index  *index.Index
	Logger *slog.Logger // nil: slog.Default()
	// Mount, if set, adds routes beside DICOMweb after the gateway's own
	// (the portal API under /api and the portal's pages).
	Mount func(r fiber.Router)
	// Auth authenticates DICOMweb requests and Access authorises them
	// (STOW-RS by API key scope or staff role, WADO-RS per study through
	// access.Decide, QIDO-RS filtered by access.QueryFilter). Without both
	// DICOMweb is open to anyone who can reach it: serve always sets them.
	Auth   *auth.Service
	Access *access.Authorizer
}

// Server is the HTTP gateway.
type Server struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	app       *fiber.App
	pipe      *mint.Pipeline
	ix        *index.Index
	metrics   *metrics
	metaCache *bodyCache // nil: none
	authMW    fiber.Handler
}

// New builds the server and its routes; nothing listens until Serve.
func New(cfg Config, deps Deps) *Server {
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.BasePath == "" {
		cfg.BasePath = DefaultBasePath
	}
	cfg.BasePath = "/" + strings.Trim(cfg.BasePath, "/")
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.MaxParts <= 0 {
		cfg.MaxParts = DefaultMaxParts
	}
	if cfg.MaxHeader <= 0 {
		cfg.MaxHeader = DefaultMaxHeader
	}
	if cfg.MaxJSONBytes <= 0 {
		cfg.MaxJSONBytes = DefaultMaxJSONBytes
	}
	if cfg.MetadataCacheBytes == 0 {
		cfg.MetadataCacheBytes = DefaultMetadataCacheBytes
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, deps: deps, log: log, pipe: deps.Pipeline, ix: deps.Index, metrics: newMetrics(),
		metaCache: newBodyCache(cfg.MetadataCacheBytes)}
	if s.ix == nil && s.pipe != nil {
		s.ix = s.pipe.Index()
	}
	if deps.Auth != nil {
		s.authMW = auth.Middleware(auth.MiddlewareConfig{Service: deps.Auth})
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "medimint",
		DisableStartupMessage: true,
		ErrorHandler:          s.handleError,
		// Shutdown waits for keep-alive connections to go idle; without
		// an idle timeout one quiet client could hold it up.
		IdleTimeout: 60 * time.Second,
		ReadTimeout: cfg.ReadTimeout,
		// Long QIDO-RS query strings and multipart headers exceed fasthttp's
		// 4 KiB default.
		ReadBufferSize: 16 << 10,
		// Streamed bodies reach fasthttp 4 KiB at a time; a larger write
		// buffer turns them into fewer, larger writes to the socket.
		WriteBufferSize: 64 << 10,
		// STOW-RS bodies are read as a stream, part by part, never held
		// whole; beyond the first 8 KiB fasthttp hands the handler the
		// connection itself, whatever the body's size.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		// Paths hold UIDs, which are case-sensitive only in the sense of
		// digits; keep the router strict so /studies/ and /studies differ
		// only where the standard says.
		StrictRouting: false,
		CaseSensitive: true,
		// Values from the Ctx (params, headers, method) are copies, not
		// views of fasthttp's reused buffers: streamed responses use them
		// after the handler returns, and metrics keep them as map keys.
		Immutable: true,
	})
	s.app.Use(recover.New())
	s.app.Use(s.observe)
	if len(cfg.CORSOrigins) > 0 {
		s.app.Use(cors.New(cors.Config{
			AllowOrigins:  strings.Join(cfg.CORSOrigins, ","),
			AllowMethods:  "GET,HEAD,POST,DELETE,OPTIONS",
			AllowHeaders:  "Accept,Content-Type,Authorization,Range,If-None-Match,If-Range," + RequestIDHeader + "," + AdminKeyHeader,
			ExposeHeaders: "ETag,Warning,Content-Range,Content-Location,Accept-Ranges," + RequestIDHeader,
			MaxAge:        3600,
		}))
	}
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/version", s.version)
	s.app.Get("/metrics", s.serveMetrics)
	s.routes()
	if deps.Mount != nil {
		deps.Mount(s.app)
	}
	return s
}

// Serve answers HTTP on ln until ctx is done, then stops accepting, lets
// in-flight requests finish (up to Config.ShutdownTimeout) and returns nil.
// It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	conns := newSilentConns(ln)
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(conns) }()
	s.log.Info("gateway listening", "addr", ln.Addr().String(), "base_path", s.cfg.BasePath)

	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("gateway shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	// fasthttp closes keep-alive connections idle between requests itself
	// (and streams such as /api/events end on RequestCtx.Done); connections
	// that never sent a request it would wait for, so close those once
	// they have been silent for a moment.
	shut := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			conns.closeSilent(time.Second)
			select {
			case <-shut:
				return
			case <-tick.C:
			}
		}
	}()
	err := s.app.ShutdownWithContext(sctx)
	close(shut)
	// Should ctx end before Listener registered ln, closing it here is what
	// makes Listener return.
	_ = ln.Close()
	lerr := <-errc
	if err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	if lerr != nil && !errors.Is(lerr, net.ErrClosed) {
		return fmt.Errorf("gateway: serve: %w", lerr)
	}
	return nil
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.SendString("ok")
}

// readyz reports whether the server can do its work: Postgres answers.
func (s *Server) readyz(c *fiber.Ctx) error {
	if s.deps.DB == nil {
		return fiber.NewError(http.StatusServiceUnavailable, "no database configured")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.deps.DB.Ping(ctx); err != nil {
		s.log.Warn("readyz: database ping failed", "err", err)
		return fiber.NewError(http.StatusServiceUnavailable, "database unreachable")
	}
	return c.SendString("ok")
}

// VersionInfo is the body of GET /version.
type VersionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

func (s *Server) version(c *fiber.Ctx) error {
	return c.JSON(VersionInfo{Version: s.cfg.Version, Commit: s.cfg.Commit, Go: runtime.Version()})
}

func (s *Server) serveMetrics(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/plain; version=0.0.4; charset=utf-8")
	return s.metrics.write(c.Response().BodyWriter())
}
