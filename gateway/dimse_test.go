package gateway

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dimse"
)

func requireTool(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is required (MEDIMINT_REQUIRE_TOOLS is set): %v", tool, err)
			}
			t.Skipf("%s not installed (apt-get install -y dcmtk): %v", tool, err)
		}
	}
}

// TestDIMSEGated: calling AEs act for their organisation. CT_A (org-a)
// stores a study; org-a's AEs find and C-GET it; org-b's AE finds
// nothing and gets nothing; an AE not on the allowlist is rejected; an AE
// mapped to no organisation falls to the default one. Every C-GET
// decision is in the audit log.
func TestDIMSEGated(t *testing.T) {
	requireTool(t, "storescu", "findscu", "getscu")
	ctx := context.Background()
	pool := dbtest.New(t)
	g := newGatedEnv(t, pool, Config{})
	d := NewDIMSE(g.pipe, g.az, "org-a")
	srv, err := dimse.NewServer(dimse.Config{AETitle: "MEDIMINT", Store: d, Find: d, Retrieve: d, Logger: quietLogger(),
		AllowedCallers: map[string]string{"CT_A": "org-a", "PACS_A": "org-a", "PACS_B": "org-b", "DEFAULT": ""}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	id := newIDs("", "")
	file := filepath.Join(t.TempDir(), "ct.dcm")
	if err := os.WriteFile(file, instance(t, "CT_small.dcm", id), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("storescu", "-aet", "CT_A", "-aec", "MEDIMINT", "127.0.0.1", port, file).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	var org string
	if err := pool.QueryRow(ctx, "SELECT org_id FROM studies WHERE study_instance_uid = $1", id.study).Scan(&org); err != nil || org != "org-a" {
		t.Fatalf("study stored for %q (%v), want org-a", org, err)
	}
	if out, err := exec.Command("storescu", "-aet", "STRANGER", "-aec", "MEDIMINT", "127.0.0.1", port, file).CombinedOutput(); err == nil {
		t.Errorf("an AE off the allowlist stored:\n%s", out)
	}

	find := func(ae string) int {
		out, err := exec.Command("findscu", "-S", "-aet", ae, "-aec", "MEDIMINT", "-k", "QueryRetrieveLevel=STUDY",
			"-k", "StudyInstanceUID", "127.0.0.1", port).CombinedOutput()
		if err != nil {
			t.Fatalf("findscu as %s: %v\n%s", ae, err, out)
		}
		return strings.Count(string(out), id.study)
	}
	get := func(ae string) int {
		dir := t.TempDir()
		out, err := exec.Command("getscu", "-S", "-aet", ae, "-aec", "MEDIMINT", "-od", dir, "-k", "QueryRetrieveLevel=STUDY",
			"-k", "StudyInstanceUID="+id.study, "127.0.0.1", port).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Status") {
			t.Fatalf("getscu as %s: %v\n%s", ae, err, out)
		}
		entries, _ := os.ReadDir(dir)
		return len(entries)
	}
	for _, c := range []struct {
		ae          string
		found, sent int
	}{{"CT_A", 1, 1}, {"PACS_A", 1, 1}, {"DEFAULT", 1, 1}, {"PACS_B", 0, 0}} {
		if n := find(c.ae); n != c.found {
			t.Errorf("C-FIND as %s found the study %d times, want %d", c.ae, n, c.found)
		}
		if n := get(c.ae); n != c.sent {
			t.Errorf("C-GET as %s received %d instances, want %d", c.ae, n, c.sent)
		}
	}

	g.auditor.Close()
	var allowed, denied int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE outcome = 'allow'), count(*) FILTER (WHERE outcome = 'deny')
FROM audit_log WHERE category = 'decision' AND action = 'retrieve' AND actor LIKE 'ae:%'`).Scan(&allowed, &denied); err != nil {
		t.Fatal(err)
	}
	if allowed != 3 || denied != 1 {
		t.Errorf("C-GET decisions audited: %d allowed, %d denied; want 3 and 1", allowed, denied)
	}
}
