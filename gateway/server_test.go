package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/db"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/internal/proctest"
)

// start serves s on a real loopback listener until the test ends and
// returns its base URL.
func start(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, b := proctest.Do(t, req)
	return resp, string(b)
}

func TestEndpoints(t *testing.T) {
	pool := dbtest.New(t)
	base := start(t, New(Config{Version: "1.2.3", Commit: "abc123"}, Deps{DB: pool, Logger: quietLogger()}))

	tests := []struct {
		path   string
		status int
		ctype  string
		body   string // substring
	}{
		{"/healthz", 200, "text/plain", "ok"},
		{"/readyz", 200, "text/plain", "ok"},
		{"/version", 200, "application/json", `"version":"1.2.3"`},
		{"/nope", 404, ProblemContentType, `"status":404`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := get(t, base+tt.path)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tt.ctype)
			}
			if !strings.Contains(body, tt.body) {
				t.Errorf("body %q does not contain %q", body, tt.body)
			}
		})
	}

	_, body := get(t, base+"/version")
	var v VersionInfo
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != "1.2.3" || v.Commit != "abc123" || !strings.HasPrefix(v.Go, "go") {
		t.Errorf("/version = %+v", v)
	}
}

func TestReadyzDatabaseDown(t *testing.T) {
	pool := dbtest.New(t)
	url := pool.Config().ConnString()
	other, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	other.Close() // a pool that can no longer ping
	tests := []struct {
		name string
		deps Deps
	}{
		{"closed pool", Deps{DB: other, Logger: quietLogger()}},
		{"no pool", Deps{Logger: quietLogger()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := start(t, New(Config{}, tt.deps))
			resp, body := get(t, base+"/readyz")
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != ProblemContentType {
				t.Errorf("Content-Type %q", ct)
			}
			var p Problem
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatal(err)
			}
			if p.Status != 503 || p.Title != "Service Unavailable" || p.Type != "about:blank" {
				t.Errorf("problem %+v", p)
			}
		})
	}
}

func TestInternalErrorsAreNotLeaked(t *testing.T) {
	s := New(Config{}, Deps{Logger: quietLogger()})
	s.app.Get("/boom", func(*fiber.Ctx) error { return errors.New("patient DOE^JOHN not found") })
	s.app.Get("/panic", func(*fiber.Ctx) error { panic("DOE^JOHN") })
	base := start(t, s)
	for _, path := range []string{"/boom", "/panic"} {
		resp, body := get(t, base+path)
		if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != ProblemContentType {
			t.Errorf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if strings.Contains(body, "DOE") {
			t.Errorf("%s: body leaks the error: %s", path, body)
		}
	}
}

// A request in flight when shutdown begins still gets its response.
func TestGracefulShutdown(t *testing.T) {
	s := New(Config{}, Deps{Logger: quietLogger()})
	entered := make(chan struct{})
	release := make(chan struct{})
	s.app.Get("/slow", func(c *fiber.Ctx) error {
		close(entered)
		<-release
		return c.SendString("finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	cancel()
	// Wait until the listener is closed: shutdown has begun.
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
	}
	close(release)

	r := <-got
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Errorf("in-flight request: %d %q %v, want 200 finished", r.status, r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// Cancelling before the server ever accepted must still return.
func TestServeCancelledAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(Config{}, Deps{Logger: quietLogger()}).Serve(ctx, ln); err != nil {
		t.Errorf("Serve: %v", err)
	}
}
