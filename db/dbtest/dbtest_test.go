package dbtest

import (
	"context"
	"strings"
	"testing"

	"github.com/medimint/medimint/db"
)

func TestNew(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		pool := New(t)
		if err := pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "mm_test_dbtest_") {
			t.Errorf("database %q, want mm_test_dbtest_ prefix", name)
		}
		var rows int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM app_meta").Scan(&rows); err != nil || rows == 0 {
			t.Errorf("app_meta has %d rows (%v): not migrated", rows, err)
		}
	})
	if name == "" {
		t.Skip("inner test skipped")
	}
	// The inner test's cleanup has run: the database must be gone.
	pool, err := db.Open(context.Background(), AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var exists bool
	if err := pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after cleanup", name)
	}
}

func TestDBName(t *testing.T) {
	tests := []struct{ tag, prefix string }{
		{"gateway", "mm_test_gateway_"},
		{"Mint/Envelope", "mm_test_mint_envelope_"},
		{strings.Repeat("x", 80), "mm_test_" + strings.Repeat("x", 30) + "_"},
	}
	for _, tt := range tests {
		got := dbName(tt.tag)
		if !strings.HasPrefix(got, tt.prefix) || len(got) > 63 {
			t.Errorf("dbName(%q) = %q, want prefix %q and at most 63 bytes", tt.tag, got, tt.prefix)
		}
	}
	if a, b := dbName("a"), dbName("a"); a == b {
		t.Error("two names collide")
	}
}
