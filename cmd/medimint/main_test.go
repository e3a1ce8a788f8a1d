package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/medimint/medimint/db"
	"github.com/medimint/medimint/db/dbtest"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{args: nil, code: 2, stderr: "usage: medimint"},
		{args: []string{"help"}, code: 0, stdout: "commands:"},
		{args: []string{"-h"}, code: 0, stdout: "serve"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"version"}, code: 0, stdout: "medimint "},
		{args: []string{"version", "-x"}, code: 2, stderr: "flag provided but not defined"},
		{args: []string{"devnet", "extra"}, code: 2, stderr: "usage: medimint devnet"},
		{args: []string{"devnet", "-addr", "10.1.2.3:8000"}, code: 1, stderr: "not a loopback address"},
		{args: []string{"wallet"}, code: 2, stderr: "usage: medimint wallet"},
		{args: []string{"wallet", "frob"}, code: 2, stderr: `unknown command "frob"`},
		{args: []string{"wallet", "new", "-words", "13"}, code: 2, stderr: "want 12, 15"},
		{args: []string{"serve", "-h"}, code: 2, stderr: "usage: medimint serve"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestBadConfigIsUsageError(t *testing.T) {
	t.Setenv("MEDIMINT_BLOBSTORE", "tape")
	for _, cmd := range []string{"serve", "migrate"} {
		var stderr bytes.Buffer
		if code := run(context.Background(), []string{cmd}, io.Discard, &stderr); code != 2 {
			t.Errorf("%s: exit %d, want 2", cmd, code)
		}
		if !strings.Contains(stderr.String(), "MEDIMINT_BLOBSTORE") {
			t.Errorf("%s: stderr %q does not name the variable", cmd, stderr.String())
		}
	}
}

func TestBuildVersionFromLdflags(t *testing.T) {
	old, oldc := version, commit
	t.Cleanup(func() { version, commit = old, oldc })
	version, commit = "v9.9.9", "deadbeef"
	if v, c := buildVersion(); v != "v9.9.9" || c != "deadbeef" {
		t.Errorf("buildVersion() = %q, %q", v, c)
	}
	version, commit = "", ""
	if v, c := buildVersion(); v == "" || c == "" {
		t.Errorf("fallback buildVersion() = %q, %q: want non-empty", v, c)
	}
}

// migrate creates a database that does not exist yet, then finds nothing
// more to do.
func TestMigrateCreatesDatabase(t *testing.T) {
	dbtest.Empty(t, "cmd") // skips or fails as dbtest does when Postgres is absent
	ctx := context.Background()
	admin := dbtest.AdminURL()
	name := "mm_test_cmd_migrate_" + randHex(t)
	url, err := db.WithDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.DropDatabase(context.Background(), admin, name); err != nil {
			t.Error(err)
		}
	})
	t.Setenv("DATABASE_URL", url)

	var out, errb bytes.Buffer
	if code := run(ctx, []string{"migrate"}, &out, &errb); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "applied 0001_init.sql") {
		t.Errorf("first migrate printed %q", out.String())
	}
	out.Reset()
	if code := run(ctx, []string{"migrate"}, &out, &errb); code != 0 {
		t.Fatalf("second migrate: exit %d: %s", code, errb.String())
	}
	if strings.TrimSpace(out.String()) != "schema up to date" {
		t.Errorf("second migrate printed %q", out.String())
	}
}

// The real binary: serve comes up, answers /healthz and /readyz, and exits
// 0 on SIGTERM.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	pool := dbtest.New(t)
	bin := filepath.Join(t.TempDir(), "medimint")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}

	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+pool.Config().ConnString(),
		"MEDIMINT_HTTP_ADDR=127.0.0.1:0",
		"MEDIMINT_DIMSE_ADDR=127.0.0.1:0",
		"MEDIMINT_DATA_DIR="+t.TempDir(),
		"MEDIMINT_KEK_FILE="+filepath.Join(t.TempDir(), "kek"),
		"MEDIMINT_DEVNET_ADDR=127.0.0.1:0",
		"MEDIMINT_LOG_LEVEL=info",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The log says where the gateway listens, since the port was :0.
	addrRE := regexp.MustCompile(`gateway listening"? addr=(\S+)`)
	lines := bufio.NewScanner(stderr)
	var addr string
	var log strings.Builder
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if addr == "" {
		t.Fatalf("serve never logged its address:\n%s", log.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Errorf("%s: %d %q", path, resp.StatusCode, b)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v, want exit 0", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still listening after exit")
	}
}

func randHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
