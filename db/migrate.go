package db

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var embedded embed.FS

// Migrations returns the schema shipped in the binary.
func Migrations() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// migrationLock is the pg_advisory_lock key that serialises migrators
// across processes; its bytes spell "Mm_migra" so that it is recognisable
// in pg_locks.
const migrationLock int64 = 0x4d6d5f6d69677261

var fileName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// Migration is one schema file.
type Migration struct {
	Version  int    // the NNNN prefix
	Name     string // the file name, which is the key in schema_migrations
	SQL      string
	Checksum string // hex sha256 of SQL
}

// Applied is a row of schema_migrations.
type Applied struct {
	Name      string
	Checksum  string
	AppliedAt time.Time
}

// Load reads and orders the migrations in fsys (files NNNN_name.sql at its
// root). Two files may share a number, as happens when two branches each
// add the next one; they apply in name order.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("db: read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("db: migration %q: name must be NNNN_lower_snake.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("db: read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(ms, func(a, b Migration) int {
		if a.Version != b.Version {
			return a.Version - b.Version
		}
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return ms, nil
}

// Migrate applies the embedded schema to pool's database.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := MigrateFS(ctx, pool, Migrations())
	return err
}

// MigrateFS applies the migrations in fsys that are not yet recorded in
// schema_migrations, in order, each in its own transaction, and returns the
// names it applied. It holds a session advisory lock throughout, so any
// number of processes may start at once: the first migrates and the rest
// find nothing to do. A recorded migration whose file has changed is an
// error, as is a failing one (which is rolled back and stops the run).
func MigrateFS(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) (applied []string, err error) {
	ms, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("db: migrate: acquire connection: %w", err)
	}
	defer conn.Release()

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return nil, fmt.Errorf("db: migrate: take advisory lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; a connection that cannot unlock
		// must not go back to the pool still holding the lock.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLock); uerr != nil {
			conn.Conn().Close(uctx)
			err = errors.Join(err, fmt.Errorf("db: migrate: release advisory lock: %w", uerr))
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name       text PRIMARY KEY,
		checksum   text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("db: migrate: create schema_migrations: %w", err)
	}

	done, err := readApplied(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	sums := make(map[string]string, len(done))
	for _, a := range done {
		sums[a.Name] = a.Checksum
	}

	for _, m := range ms {
		if sum, ok := sums[m.Name]; ok {
			if sum != m.Checksum {
				return applied, fmt.Errorf("db: migration %s changed after it was applied (add a new migration instead)", m.Name)
			}
			continue
		}
		if err := apply(ctx, conn.Conn(), m); err != nil {
			return applied, err
		}
		applied = append(applied, m.Name)
	}
	return applied, nil
}

func apply(ctx context.Context, conn *pgx.Conn, m Migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// No arguments: pgx uses the simple protocol, so a file may hold
		// several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("db: migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", m.Name, m.Checksum); err != nil {
			return fmt.Errorf("db: record migration %s: %w", m.Name, err)
		}
		return nil
	})
}

// AppliedMigrations lists schema_migrations in the order applied; empty if
// the table does not exist yet.
func AppliedMigrations(ctx context.Context, pool *pgxpool.Pool) ([]Applied, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("db: acquire connection: %w", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("db: look up schema_migrations: %w", err)
	}
	if !exists {
		return nil, nil
	}
	return readApplied(ctx, conn.Conn())
}

func readApplied(ctx context.Context, conn *pgx.Conn) ([]Applied, error) {
	rows, err := conn.Query(ctx, "SELECT name, checksum, applied_at FROM schema_migrations ORDER BY applied_at, name")
	if err != nil {
		return nil, fmt.Errorf("db: read schema_migrations: %w", err)
	}
	as, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Applied])
	if err != nil {
		return nil, fmt.Errorf("db: read schema_migrations: %w", err)
	}
	return as, nil
}
