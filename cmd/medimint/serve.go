package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/db"
	"github.com/medimint/medimint/gateway"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/chain"
	"github.com/medimint/medimint/portal"
	"github.com/medimint/medimint/portalapi"
)

func cmdServe(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: medimint serve\n\nRuns the gateway until SIGINT/SIGTERM. Configured by environment variables (README.md).")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "medimint serve: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	log.Info("starting", "config", cfg)

	pool, err := openDatabase(ctx, cfg, log)
	if err != nil {
		log.Error("database", "err", err)
		return 1
	}
	defer pool.Close()

	keys, err := openKeys(ctx, cfg)
	if err != nil {
		log.Error("keys", "err", err)
		return 1
	}
	cust, issuer, err := openMaster(ctx, cfg, keys, log)
	if err != nil {
		log.Error("master key", "err", err)
		return 1
	}
	pipeline, err := buildPipeline(ctx, cfg, pool, keys, issuer, log)
	if err != nil {
		log.Error("pipeline", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		log.Error("listen", "addr", cfg.HTTPAddr, "err", err)
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	netw, stopDevnet, err := chainNetwork(ctx, cfg, log)
	if err != nil {
		log.Error("chain network", "err", err)
		return 1
	}
	sec, err := openSecurity(ctx, cfg, pool, cust, issuer, netw, stderr, log)
	if err != nil {
		log.Error("authentication and access", "err", err)
		cancel()
		_ = stopDevnet()
		return 1
	}
	api, err := portalapi.New(portalapi.Config{Auth: sec.auth, Pool: pool, Network: netw, Custodian: cust,
		DICOMwebBase: cfg.DICOMwebBase, Origins: cfg.CORSOrigins, InsecureCookies: !strings.HasPrefix(cfg.PublicURL, "https://"), Logger: log,
		Passkeys: portalPasskeys(cfg, sec.auth, log)})
	if err != nil {
		log.Error("portal API", "err", err)
		sec.close()
		cancel()
		_ = stopDevnet()
		return 1
	}
	var bg sync.WaitGroup
	bg.Go(func() {
		if err := api.Run(ctx); err != nil {
			log.Error("portal notifications", "err", err)
		}
	})
	bg.Go(func() { runNotifier(ctx, cfg, pool, log) })
	bg.Go(func() {
		runChain(ctx, cfg, pool, cust, netw, log, func(d *chain.Deployment) {
			api.SetSponsor(d.Sponsor)
			// The watcher follows the ledger from its persisted cursor into
			// the tables access decides from.
			bg.Go(func() { runWatcher(ctx, pool, netw, d.Registry, log) })
		})
	})
	dimseDone := make(chan error, 1)
	go func() {
		err := runPipeline(ctx, cfg, pipeline, sec.access, log)
		cancel() // one server down takes the process down
		dimseDone <- err
	}()
	err = serve(ctx, log, cfg, pool, pipeline, ln, sec, api)
	cancel()
	if derr := <-dimseDone; err == nil && derr != nil && !errors.Is(derr, context.Canceled) {
		err = derr
	}
	bg.Wait()
	sec.close()
	if derr := stopDevnet(); err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// serve runs the HTTP server on ln until ctx is done: DICOMweb gated by
// sec, the portal API under /api and the portal's pages at /.
func serve(ctx context.Context, log *slog.Logger, cfg config.Config, pool *pgxpool.Pool, pipeline *mint.Pipeline, ln net.Listener,
	sec *security, api *portalapi.API) error {
	v, c := buildVersion()
	public := ""
	if cfg.PublicURL != "" {
		public = cfg.PublicURL + strings.TrimRight(cfg.DICOMwebBase, "/")
	}
	if cfg.PublicURL == "" && !loopback(cfg.HTTPAddr) {
		log.Warn("serving beyond loopback without MEDIMINT_PUBLIC_URL=https://…: session cookies are not marked Secure")
	}
	if portal.Assets() == nil {
		log.Warn("the portal was not built into this binary (make portal, or npm ci && npm run build in portal/)")
	}
	gw := gateway.New(gateway.Config{Version: v, Commit: c, BasePath: cfg.DICOMwebBase, PublicURL: public, AdminKey: cfg.AdminKey,
		OrgID: cfg.OrgID, CORSOrigins: cfg.CORSOrigins},
		gateway.Deps{DB: pool, Pipeline: pipeline, Logger: log, Auth: sec.auth, Access: sec.access, Mount: func(r fiber.Router) {
			api.Mount(r.Group("/api"))
			portal.Mount(r, portal.Assets(), "/api", cfg.DICOMwebBase)
		}})
	return gw.Serve(ctx, ln)
}

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: medimint migrate\n\nCreates the database if missing and applies pending migrations.")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "medimint migrate: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	url, err := databaseURL(ctx, cfg)
	if err != nil {
		log.Error("database", "err", err)
		return 1
	}
	pool, err := ensureOpen(ctx, url)
	if err != nil {
		log.Error("database", "err", err)
		return 1
	}
	defer pool.Close()
	applied, err := db.MigrateFS(ctx, pool, db.Migrations())
	for _, name := range applied {
		fmt.Fprintf(stdout, "applied %s\n", name)
	}
	if err != nil {
		log.Error("migrate", "err", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema up to date")
	}
	return 0
}

// openDatabase finds, creates, opens and migrates the database.
func openDatabase(ctx context.Context, cfg config.Config, log *slog.Logger) (*pgxpool.Pool, error) {
	url, err := databaseURL(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pool, err := ensureOpen(ctx, url)
	if err != nil {
		return nil, err
	}
	applied, err := db.MigrateFS(ctx, pool, db.Migrations())
	if err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("database ready", "url", db.Redact(url), "applied", applied)
	return pool, nil
}

// databaseURL is DATABASE_URL, or database medimint on a discovered server.
func databaseURL(ctx context.Context, cfg config.Config) (string, error) {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL, nil
	}
	admin, err := db.Discover(ctx)
	if err != nil {
		return "", err
	}
	return db.WithDatabase(admin, db.DefaultName)
}

// ensureOpen opens url, first creating its database through the server's
// maintenance database if it does not exist. A database that exists needs
// no rights beyond its own.
func ensureOpen(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := db.Open(ctx, url)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != invalidCatalogName {
		return pool, err
	}
	admin, name, err := db.SplitURL(url)
	if err != nil {
		return nil, err
	}
	if err := db.EnsureDatabase(ctx, admin, name); err != nil {
		return nil, err
	}
	return db.Open(ctx, url)
}

// invalidCatalogName is SQLSTATE 3D000: "database does not exist".
const invalidCatalogName = "3D000"
