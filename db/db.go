package db

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultName is the database Medimint uses when DATABASE_URL is unset.
const DefaultName = "medimint"

// SQLSTATEs we act on (PostgreSQL Appendix A).
const (
	duplicateDatabase = "42P04"
	uniqueViolation   = "23505"
)

// Open opens a pool on url and checks that the server answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx errors quote the whole string, password included.
		return nil, errors.New("db: parse database URL: invalid connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db: open %s: %w", Redact(url), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: ping %s: %w", Redact(url), err)
	}
	return pool, nil
}

// EnsureDatabase creates database name through the server at adminURL
// unless it exists. Concurrent callers are safe: losing the race to create
// counts as success.
func EnsureDatabase(ctx context.Context, adminURL, name string) error {
	if name == "" {
		return errors.New("db: ensure database: empty name")
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("db: connect %s: %w", Redact(adminURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("db: look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	// CREATE DATABASE takes no parameters; the identifier is quoted instead.
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == duplicateDatabase || pgErr.Code == uniqueViolation) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("db: create database %q: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name, disconnecting its sessions first
// (PostgreSQL 13+). Missing databases are not an error.
func DropDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("db: connect %s: %w", Redact(adminURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("db: drop database %q: %w", name, err)
	}
	return nil
}

// SplitURL returns the maintenance-database URL of the server that url
// points at, and the database name url selects, so that the database can
// be created before it is opened. Only postgres:// URLs are supported.
func SplitURL(dbURL string) (adminURL, name string, err error) {
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", "", errors.New("db: want a postgres:// URL")
	}
	name = strings.TrimPrefix(u.Path, "/")
	if name == "" {
		// libpq defaults the database to the user name.
		name = u.User.Username()
	}
	if name == "" {
		return "", "", fmt.Errorf("db: %s names no database", Redact(dbURL))
	}
	u.Path = "/postgres"
	u.RawPath = ""
	return u.String(), name, nil
}

// WithDatabase returns url with its database replaced by name.
func WithDatabase(dbURL, name string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("db: want a postgres:// URL")
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// Redact hides the password in a URL for logs and errors.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(connection string)"
	}
	return u.Redacted()
}

// Candidates are the admin URLs [Discover] tries, in order: the machine's
// Postgres, then the project-local cluster scripts/ensure-postgres.sh
// starts.
var Candidates = []string{
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	"postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable",
}

// Discover returns the admin URL of the first server in [Candidates] that
// accepts a connection. It starts nothing: run scripts/ensure-postgres.sh
// (make run does) when none answers.
func Discover(ctx context.Context) (string, error) {
	var errs []error
	for _, c := range Candidates {
		if err := probe(ctx, c); err != nil {
			errs = append(errs, err)
			continue
		}
		return c, nil
	}
	return "", fmt.Errorf("db: no Postgres found (set DATABASE_URL or run scripts/ensure-postgres.sh): %w", errors.Join(errs...))
}

func probe(ctx context.Context, adminURL string) error {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return fmt.Errorf("parse %s: %w", adminURL, err)
	}
	// A closed port answers at once; a filtered one must not hang start-up.
	cfg.ConnectTimeout = 3 * time.Second
	cfg.DialFunc = (&net.Dialer{Timeout: 3 * time.Second}).DialContext
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", adminURL, err)
	}
	return conn.Close(ctx)
}
