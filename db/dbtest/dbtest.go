package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/db"
)

// DefaultAdminURL is used when MEDIMINT_TEST_PG is unset.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL returns the admin URL tests use.
func AdminURL() string {
	if u := os.Getenv("MEDIMINT_TEST_PG"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// New creates a database named mm_test_<pkg>_<random>, applies the
// embedded schema, and returns a pool on it. The pool is closed and the
// database dropped (WITH (FORCE)) in t.Cleanup. The database's URL is
// pool.Config().ConnString().
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := Empty(t, callerPackage())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Migrate(ctx, pool); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return pool
}

// Empty is [New] without the migrations, for tests of the migrator itself
// or of schema files not yet in db/migrations. tag goes into the database
// name to tell whose leftovers are whose should a cleanup not run.
func Empty(t testing.TB, tag string) *pgxpool.Pool {
	t.Helper()
	admin := AdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	name := dbName(tag)
	if err := reachable(ctx, admin); err != nil {
		if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
			t.Fatalf("dbtest: Postgres at %s unreachable and MEDIMINT_REQUIRE_TOOLS is set: %v", db.Redact(admin), err)
		}
		t.Skipf("dbtest: Postgres at %s unreachable (run scripts/ensure-postgres.sh, set MEDIMINT_TEST_PG): %v", db.Redact(admin), err)
	}
	if err := db.EnsureDatabase(ctx, admin, name); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := db.DropDatabase(ctx, admin, name); err != nil {
			t.Errorf("dbtest: %v", err)
		}
	})
	url, err := db.WithDatabase(admin, name)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	// Registered after the drop, so it runs before it.
	t.Cleanup(pool.Close)
	return pool
}

func reachable(ctx context.Context, admin string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, admin)
	if err != nil {
		return err
	}
	pool.Close()
	return nil
}

var notIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// dbName makes mm_test_<tag>_<16 hex>, within PostgreSQL's 63-byte limit.
func dbName(tag string) string {
	tag = notIdent.ReplaceAllString(strings.ToLower(tag), "_")
	if len(tag) > 30 {
		tag = tag[:30]
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "mm_test_" + tag + "_" + hex.EncodeToString(b[:])
}

// callerPackage names the package of New's caller: the last path element
// of its function name, e.g. gateway from
// github.com/medimint/medimint/gateway.TestX.
func callerPackage() string {
	pcs := make([]uintptr, 1)
	// Skip runtime.Callers, callerPackage and New.
	if runtime.Callers(3, pcs) == 0 {
		return "unknown"
	}
	f, _ := runtime.CallersFrames(pcs).Next()
	fn := f.Function
	if i := strings.LastIndex(fn, "/"); i >= 0 {
		fn = fn[i+1:]
	}
	if i := strings.Index(fn, "."); i >= 0 {
		fn = fn[:i]
	}
	if fn == "" {
		return "unknown"
	}
	return strings.TrimSuffix(fn, "_test")
}
