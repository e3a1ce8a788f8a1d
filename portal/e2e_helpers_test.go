package portal_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/internal/proctest"
)

// need skips (or, with MEDIMINT_REQUIRE_TOOLS, fails) when a tool is
// missing.
func need(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s (MEDIMINT_REQUIRE_TOOLS is set)", what)
	}
	t.Skip(what)
}

// startServer builds cmd/medimint (the portal embedded, as this test's
// own build sees it) and starts `medimint serve` with env added. The
// process is killed when the test ends, whatever happens.
func startServer(t *testing.T, env ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, proctest.Build(t, proctest.Medimint), env, "serve")
}

// waitLog waits, until ctx ends, for a line of s's log matching re and
// returns its submatches.
func waitLog(ctx context.Context, t *testing.T, s *proctest.Proc, re *regexp.Regexp) []string {
	t.Helper()
	limit := time.Minute
	if d, ok := ctx.Deadline(); ok {
		limit = time.Until(d)
	}
	return s.WaitLog(t, re, limit)
}

// poll runs fn every 100ms until it reports done or ctx ends.
func poll(ctx context.Context, t *testing.T, what string, fn func() (bool, error)) {
	t.Helper()
	for {
		ok, err := fn()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ignoreNoRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

// freePort finds a loopback port nobody listens on. Passkeys need the
// server's URL (its Relying Party ID) before it starts, so the port is
// chosen here rather than by serve.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// wadoInstance retrieves a study over WADO-RS with bearer and returns
// the status and, on 200, the first instance's bytes (else the body).
func wadoInstance(ctx context.Context, t *testing.T, url, bearer string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := multipart.NewReader(resp.Body, params["boundary"]).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	inst, err := io.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, inst
}

// dataSet is a Part-10 file's or a data set's bytes after the File Meta
// Information: what DIMSE carries and must come back unchanged.
func dataSet(t *testing.T, b []byte) []byte {
	t.Helper()
	f, err := dicom.ParseBytes(b, dicom.ReadOptions{SkipBulk: true})
	if err != nil {
		t.Fatal(err)
	}
	return b[f.DatasetOffset:]
}

// equalDataSets reports whether two Part-10 files or data sets carry the
// same data set bytes.
func equalDataSets(t *testing.T, a, b []byte) bool {
	t.Helper()
	return bytes.Equal(dataSet(t, a), dataSet(t, b))
}
