package db_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/db"
	"github.com/medimint/medimint/db/dbtest"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestMigrateTwiceIsNoOp(t *testing.T) {
	pool := dbtest.Empty(t, "db")
	c := ctx(t)

	applied, err := db.MigrateFS(c, pool, db.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 || applied[0] != "0001_init.sql" {
		t.Fatalf("first run applied %v, want 0001_init.sql first", applied)
	}
	var owner string
	if err := pool.QueryRow(c, "SELECT value FROM app_meta WHERE key = 'schema_owner'").Scan(&owner); err != nil || owner != "medimint" {
		t.Fatalf("app_meta schema_owner = %q, %v", owner, err)
	}
	before, err := db.AppliedMigrations(c, pool)
	if err != nil {
		t.Fatal(err)
	}

	again, err := db.MigrateFS(c, pool, db.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Errorf("second run applied %v, want nothing", again)
	}
	after, err := db.AppliedMigrations(c, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("schema_migrations grew from %d to %d rows", len(before), len(after))
	}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("row %d changed: %+v -> %+v", i, before[i], after[i])
		}
	}
	assertUnlocked(t, pool)
}

func TestAppliedMigrationsBeforeMigrate(t *testing.T) {
	pool := dbtest.Empty(t, "db")
	as, err := db.AppliedMigrations(ctx(t), pool)
	if err != nil || len(as) != 0 {
		t.Fatalf("got %v, %v; want none", as, err)
	}
}

// Four "processes" (separate pools) start at once on an empty database.
// Each migration creates a table without IF NOT EXISTS, so applying any
// twice would fail.
func TestMigrateConcurrent(t *testing.T) {
	first := dbtest.Empty(t, "db")
	url := first.Config().ConnString()
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte("CREATE TABLE a (id int PRIMARY KEY);")},
		"0002_b.sql": {Data: []byte("CREATE TABLE b (id int PRIMARY KEY); SELECT pg_sleep(0.2);")},
		"0003_c.sql": {Data: []byte("CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c VALUES (1);")},
	}
	c := ctx(t)

	const n = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		total   []string
		errs    []error
		release = make(chan struct{})
	)
	for range n {
		pool, err := db.Open(c, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			applied, err := db.MigrateFS(c, pool, fsys)
			mu.Lock()
			defer mu.Unlock()
			total = append(total, applied...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	close(release)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(total) != len(fsys) {
		t.Errorf("applied %v in total, want each of the %d files exactly once", total, len(fsys))
	}
	var rows int
	if err := first.QueryRow(c, "SELECT count(*) FROM c").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("table c has %d rows (%v), want 1", rows, err)
	}
	assertUnlocked(t, first)
}

func TestFailingMigrationRollsBack(t *testing.T) {
	pool := dbtest.Empty(t, "db")
	c := ctx(t)
	fsys := fstest.MapFS{
		"0001_ok.sql":    {Data: []byte("CREATE TABLE ok (id int);")},
		"0002_bad.sql":   {Data: []byte("CREATE TABLE half (id int); INSERT INTO missing VALUES (1);")},
		"0003_after.sql": {Data: []byte("CREATE TABLE after (id int);")},
	}
	applied, err := db.MigrateFS(c, pool, fsys)
	if err == nil {
		t.Fatal("want an error from 0002_bad.sql")
	}
	if !strings.Contains(err.Error(), "0002_bad.sql") {
		t.Errorf("error %q does not name the migration", err)
	}
	if len(applied) != 1 || applied[0] != "0001_ok.sql" {
		t.Errorf("applied %v, want [0001_ok.sql]", applied)
	}
	for table, want := range map[string]bool{"ok": true, "half": false, "after": false} {
		var exists bool
		if err := pool.QueryRow(c, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists != want {
			t.Errorf("table %s exists=%v, want %v", table, exists, want)
		}
	}
	as, err := db.AppliedMigrations(c, pool)
	if err != nil || len(as) != 1 {
		t.Errorf("schema_migrations = %v (%v), want one row", as, err)
	}
	assertUnlocked(t, pool)

	// Fixed, the run resumes where it stopped.
	fsys["0002_bad.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (id int);")}
	applied, err = db.MigrateFS(c, pool, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(applied, ",") != "0002_bad.sql,0003_after.sql" {
		t.Errorf("resumed run applied %v", applied)
	}
}

func TestChangedMigrationIsRejected(t *testing.T) {
	pool := dbtest.Empty(t, "db")
	c := ctx(t)
	fsys := fstest.MapFS{"0001_x.sql": {Data: []byte("CREATE TABLE x (id int);")}}
	if _, err := db.MigrateFS(c, pool, fsys); err != nil {
		t.Fatal(err)
	}
	fsys["0001_x.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE x (id bigint);")}
	_, err := db.MigrateFS(c, pool, fsys)
	if err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
		t.Fatalf("got %v, want a changed-migration error", err)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		want    []string
		wantErr string
	}{
		{
			name: "ordered by number then name",
			fsys: fstest.MapFS{
				"0010_z.sql":     {Data: []byte("")},
				"0002_mint.sql":  {Data: []byte("")},
				"0002_index.sql": {Data: []byte("")},
				"README.md":      {Data: []byte("ignored")},
			},
			want: []string{"0002_index.sql", "0002_mint.sql", "0010_z.sql"},
		},
		{name: "bad name", fsys: fstest.MapFS{"1_init.sql": {}}, wantErr: "NNNN_lower_snake.sql"},
		{name: "upper case", fsys: fstest.MapFS{"0001_Init.sql": {}}, wantErr: "NNNN_lower_snake.sql"},
		{name: "empty", fsys: fstest.MapFS{}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := db.Load(tt.fsys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	ms, err := db.Load(db.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Name != "0001_init.sql" {
		t.Fatalf("embedded migrations %v, want 0001_init.sql first", ms)
	}
}

func TestEnsureDatabase(t *testing.T) {
	pool := dbtest.Empty(t, "db") // proves the server is there, or skips
	_ = pool
	c := ctx(t)
	admin := dbtest.AdminURL()
	name := "mm_test_db_ensure_" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_")
	name = name[:min(len(name), 63)]
	if err := db.DropDatabase(c, admin, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.DropDatabase(context.Background(), admin, name); err != nil {
			t.Error(err)
		}
	})

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.EnsureDatabase(c, admin, name)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent EnsureDatabase: %v", err)
		}
	}
	if err := db.EnsureDatabase(c, admin, name); err != nil {
		t.Errorf("EnsureDatabase on an existing database: %v", err)
	}
	url, err := db.WithDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.Open(c, url)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

func TestOpenBadURL(t *testing.T) {
	_, err := db.Open(ctx(t), "postgres://u:hunter2@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("want an error connecting to port 1")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks password: %v", err)
	}
}

func TestSplitURL(t *testing.T) {
	tests := []struct {
		in, admin, name, wantErr string
	}{
		{in: "postgres://u:p@h:5432/medimint?sslmode=disable", admin: "postgres://u:p@h:5432/postgres?sslmode=disable", name: "medimint"},
		{in: "postgresql://h/x", admin: "postgresql://h/postgres", name: "x"},
		{in: "postgres://alice@h", admin: "postgres://alice@h/postgres", name: "alice"},
		{in: "postgres://h", wantErr: "names no database"},
		{in: "host=h dbname=x", wantErr: "postgres:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			admin, name, err := db.SplitURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if admin != tt.admin || name != tt.name {
				t.Errorf("got %q %q, want %q %q", admin, name, tt.admin, tt.name)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	dbtest.Empty(t, "db") // skips when no server is there to discover
	got, err := db.Discover(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "postgres://") {
		t.Errorf("Discover = %q", got)
	}
}

// assertUnlocked checks that no session still holds the migration lock.
func assertUnlocked(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d advisory locks still held after migrating", n)
	}
}

// BenchmarkMigrateUpToDate is what every start-up pays once the schema is
// current: lock, read schema_migrations, unlock.
func BenchmarkMigrateUpToDate(b *testing.B) {
	pool := dbtest.New(b)
	ctx := context.Background()
	for b.Loop() {
		if err := db.Migrate(ctx, pool); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnsureDatabaseExisting(b *testing.B) {
	pool := dbtest.New(b)
	_, name, err := db.SplitURL(pool.Config().ConnString())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	admin := dbtest.AdminURL()
	for b.Loop() {
		if err := db.EnsureDatabase(ctx, admin, name); err != nil {
			b.Fatal(err)
		}
	}
}
