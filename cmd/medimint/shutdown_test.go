package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/db/dbtest"
)

// TestServeStopsPromptly: SIGTERM ends serve while a browser session
// holds the portal's event stream (/api/events), an idle keep-alive
// connection and a connection that never sent a request. Graceful
// shutdown must not wait on them for its 30 s limit. The bound is a hang
// detector, not a performance figure.
func TestServeStopsPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx := context.Background()
	pool := dbtest.New(t)
	dataDir := t.TempDir()
	s := startServer(t, "DATABASE_URL="+pool.Config().ConnString(), "MEDIMINT_HTTP_ADDR=127.0.0.1:0",
		"MEDIMINT_DIMSE_ADDR=127.0.0.1:0", "MEDIMINT_DEVNET_ADDR=127.0.0.1:0", "MEDIMINT_DATA_DIR="+dataDir,
		"MEDIMINT_KEK_FILE="+filepath.Join(dataDir, "kek"), "MEDIMINT_CHANNELS=1", "MEDIMINT_LOG_LEVEL=info", "HORIZON_URL=",
		"MEDIMINT_ORG_ID=org1", "MEDIMINT_PUBLIC_URL=", "MEDIMINT_DEVNET_INTERVAL=100ms")
	addr := s.WaitLog(t, regexp.MustCompile(`gateway listening"? addr=(\S+)`), serveLogWait)[1]
	base := "http://" + addr
	// org1 exists once the security setup has printed the bootstrap key.
	s.WaitLog(t, regexp.MustCompile(`API key\s+mmk_`), serveLogWait)

	const pw = "correct horse battery staple"
	if _, err := authService(t, pool).CreateUser(ctx, auth.NewUser{Email: "viewer@example.org", DisplayName: "Viewer", Password: pw,
		Account: keypair.MustRandom().Address(), Memberships: []auth.Membership{{OrgID: "org1", Role: auth.RoleClinician}}}); err != nil {
		t.Fatal(err)
	}
	code, _, b := httpDo(t, "POST", base+"/api/auth/password", "", map[string]any{"email": "viewer@example.org", "password": pw}, "")
	var sess auth.Session
	if code != 200 || json.Unmarshal(b, &sess) != nil || sess.AccessToken == "" {
		t.Fatalf("sign-in: %d %s", code, b)
	}

	// The browser's event stream, open and connected.
	req, err := http.NewRequest("GET", base+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+sess.AccessToken)
	req.Header.Set("Accept", "text/event-stream")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("/api/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := bufio.NewReader(resp.Body)
	for {
		line, err := events.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		if strings.HasPrefix(line, ": connected") {
			break
		}
	}
	// A keep-alive connection left idle after a request, and one that
	// never sent a request (as browsers open speculatively).
	if r, err := client.Get(base + "/healthz"); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		// SIGQUIT: the Go runtime prints every goroutine, to show who holds it up.
		_ = s.Cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("serve still running 10 s after SIGTERM with an event stream open:\n%s", s.Log())
	}
	if err := s.Err(); err != nil {
		t.Errorf("serve after SIGTERM: %v\n%s", err, s.Log())
	}
	t.Logf("serve exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	// The stream was ended by the server (its last chunk sent), not cut.
	if rest, err := io.ReadAll(events); err != nil {
		t.Errorf("event stream after shutdown: %v (after %q)", err, rest)
	}
}
