package gateway

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/dimse"
	"github.com/medimint/medimint/mint"
)

// TestCrossOrganisationWritesRefused: a study belongs to the organisation
// that stored it first. Another organisation's STOW-RS and C-STORE into it
// are refused with "Refused: Not authorized" (0x0124) and audited, and
// leave nothing; the owner may still add to it, and the other
// organisation may store studies of its own.
func TestCrossOrganisationWritesRefused(t *testing.T) {
	requireTool(t, "storescu")
	ctx := context.Background()
	pool := dbtest.New(t)
	g := newGatedEnv(t, pool, Config{})
	key := map[string]string{}
	for _, org := range []string{"org-a", "org-b"} {
		if err := g.auth.CreateOrg(ctx, org, org); err != nil {
			t.Fatal(err)
		}
		k, _, err := g.auth.CreateAPIKey(ctx, org, "modality", []string{"stow"}, "")
		if err != nil {
			t.Fatal(err)
		}
		key[org] = k
	}
	d := NewDIMSE(g.pipe, g.az, "")
	srv, err := dimse.NewServer(dimse.Config{AETitle: "MEDIMINT", Store: d, Logger: quietLogger(),
		AllowedCallers: map[string]string{"CT_A": "org-a", "CT_B": "org-b"}})
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

	stow := func(org string, id ids) response {
		body, ct := multipartBody(t, instance(t, "CT_small.dcm", id))
		return do(t, "POST", g.url+"/studies", map[string]string{"Content-Type": ct, "Accept": mediaDICOMJSON, "X-API-Key": key[org]}, body)
	}
	cstore := func(ae string, id ids) (string, error) {
		file := filepath.Join(t.TempDir(), "ct.dcm")
		if err := os.WriteFile(file, instance(t, "CT_small.dcm", id), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("storescu", "-v", "-aet", ae, "-aec", "MEDIMINT", "127.0.0.1", port, file).CombinedOutput()
		return string(out), err
	}
	instances := func(study string) (n int) {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM instances i JOIN studies s ON s.pk = i.study_pk
WHERE s.study_instance_uid = $1`, study).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	study := newIDs("", "")
	stow("org-a", study).mustStatus(t, 200)

	t.Run("STOW-RS", func(t *testing.T) {
		r := stow("org-b", newIDs(study.study, "")).mustStatus(t, 409)
		ds := r.datasets(t)
		failed := ds[0].Get(tag.FailedSOPSequence)
		if failed == nil || len(failed.Items) != 1 {
			t.Fatalf("no Failed SOP Sequence item: %.400s", r.body)
		}
		if v, _ := failed.Items[0].Uint(tag.FailureReason); v != uint64(mint.StatusNotAuthorized) {
			t.Errorf("Failure Reason %04X, want %04X", v, mint.StatusNotAuthorized)
		}
		if w := r.Header.Get("Warning"); !strings.HasPrefix(w, "299 ") || !strings.Contains(w, "belongs to another organisation") {
			t.Errorf("Warning %q, want a 299 warning saying why", w)
		}
		// The same study's new series from the owner is still welcome.
		stow("org-a", newIDs(study.study, "")).mustStatus(t, 200)
	})
	t.Run("C-STORE", func(t *testing.T) {
		// storescu names statuses it knows; 0x0124 it prints as 0x124.
		if out, _ := cstore("CT_B", newIDs(study.study, "")); !strings.Contains(out, "Status: 0x124") {
			t.Errorf("storescu as org-b was not refused with 0x0124:\n%s", out)
		}
		if out, err := cstore("CT_A", newIDs(study.study, "")); err != nil {
			t.Fatalf("storescu as org-a: %v\n%s", err, out)
		}
	})
	if n := instances(study.study); n != 3 {
		t.Errorf("study holds %d instances, want 3 (org-a's)", n)
	}
	var orgs []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(DISTINCT org_id) FROM instances`).Scan(&orgs); err != nil || len(orgs) != 1 || orgs[0] != "org-a" {
		t.Errorf("instances stored for %v (%v), want org-a only", orgs, err)
	}
	// org-b stores its own studies as before.
	stow("org-b", newIDs("", "")).mustStatus(t, 200)

	g.auditor.Close()
	var refused int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE category = 'decision' AND action = 'store'
AND outcome = 'deny' AND reason LIKE '%another organisation%' AND org_id = 'org-b'`).Scan(&refused); err != nil {
		t.Fatal(err)
	}
	if refused != 2 {
		t.Errorf("%d refused stores audited, want 2 (STOW-RS and C-STORE)", refused)
	}
	if _, err := access.VerifyAudit(ctx, pool); err != nil {
		t.Errorf("audit log: %v", err)
	}
}
