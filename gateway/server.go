package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config is the gateway's own configuration.
type Config struct {
	Version string // reported by /version
	Commit  string // reported by /version

	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context is done; zero means 30s.
	ShutdownTimeout time.Duration
}

// Deps are the services the gateway's handlers use.
type Deps struct {
	DB     *pgxpool.Pool // required by /readyz
	Logger *slog.Logger  // nil: slog.Default()
}

// Server is the HTTP gateway.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	app  *fiber.App
}

// New builds the server and its routes; nothing listens until Serve.
func New(cfg Config, deps Deps) *Server {
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, deps: deps, log: log}
	s.app = fiber.New(fiber.Config{
		AppName:               "medimint",
		DisableStartupMessage: true,
		ErrorHandler:          s.handleError,
		// Shutdown waits for keep-alive connections to go idle; without
		// an idle timeout one quiet client could hold it up.
		IdleTimeout: 60 * time.Second,
		// Long QIDO-RS query strings and multipart headers exceed fasthttp's
		// 4 KiB default.
		ReadBufferSize: 16 << 10,
	})
	s.app.Use(recover.New())
	s.app.Use(s.logRequest)
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/version", s.version)
	return s
}

// Serve answers HTTP on ln until ctx is done, then stops accepting, lets
// in-flight requests finish (up to Config.ShutdownTimeout) and returns nil.
// It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(ln) }()
	s.log.Info("gateway listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("gateway shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.app.ShutdownWithContext(sctx)
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

func (s *Server) logRequest(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	var fe *fiber.Error
	if errors.As(err, &fe) {
		status = fe.Code
	} else if err != nil {
		status = http.StatusInternalServerError
	}
	s.log.Debug("http request",
		"method", c.Method(), "path", c.Path(), "status", status,
		"duration", time.Since(start), "remote", c.IP())
	return err
}
