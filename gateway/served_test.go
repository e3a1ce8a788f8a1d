package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dimse"
	"github.com/medimint/medimint/mint"
)

// TestRetrievalAudited: every WADO-RS response served after an allowed
// decision appends exactly one retrieval row saying what left (service,
// level, instances, bytes), as does every C-GET sub-operation; a 304, a
// denial and a missing study append none; the hash chain still verifies.
func TestRetrievalAudited(t *testing.T) {
	requireTool(t, "getscu")
	ctx := context.Background()
	pool := dbtest.New(t)
	g := newGatedEnv(t, pool, Config{})
	id := newIDs("", "")
	second := newIDs(id.study, id.series)
	for _, in := range []ids{id, second} {
		if _, err := g.pipe.StorePart10(ctx, mint.Source{OrgID: "org-a", Transport: "test"}, bytes.NewReader(instance(t, "CT_small.dcm", in))); err != nil {
			t.Fatal(err)
		}
	}
	clinician := hdr("Authorization", "Bearer "+g.token(t, auth.Claims{Subject: "user-clin", OrgID: "org-a", Roles: []auth.Role{auth.RoleClinician}}))
	outsider := hdr("Authorization", "Bearer "+g.token(t, auth.Claims{Subject: "user-b", OrgID: "org-b", Roles: []auth.Role{auth.RoleClinician}}))

	type row struct {
		Action, Resource string
		Detail           map[string]any
	}
	rows := func() []row {
		// The auditor writes in order: a committed marker means every
		// row queued before it is in the table.
		if _, err := g.auditor.Append(ctx, access.Entry{Category: access.CategoryAdmin, Action: "test.flush", Outcome: access.OutcomeSuccess, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		rs, err := pool.Query(ctx, "SELECT action, resource, detail FROM audit_log WHERE category = 'retrieval' ORDER BY seq")
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []row
		for rs.Next() {
			var r row
			var d string
			if err := rs.Scan(&r.Action, &r.Resource, &d); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(d), &r.Detail); err != nil {
				t.Fatalf("detail %q: %v", d, err)
			}
			out = append(out, r)
		}
		return out
	}
	// waitRows waits for n rows: a streamed body is audited when its
	// producer finishes, which may be just after the client has it all.
	waitRows := func(n int) []row {
		for {
			if rs := rows(); len(rs) >= n {
				return rs
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	inst := "/studies/" + id.study + "/series/" + id.series + "/instances/" + id.sop
	for i, c := range []struct {
		path, accept, action, level string
		instances                   float64
	}{
		{"/studies/" + id.study, "multipart/related; type=\"application/dicom\"; transfer-syntax=*", "wado-rs:instances", "study", 2},
		{"/studies/" + id.study + "/series/" + id.series, "multipart/related; type=\"application/dicom\"; transfer-syntax=*", "wado-rs:instances", "series", 2},
		{inst, "multipart/related; type=\"application/dicom\"; transfer-syntax=*", "wado-rs:instances", "instance", 1},
		{inst, "application/dicom; transfer-syntax=*", "wado-rs:instances", "instance", 1},
		{inst + "/frames/1", "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*", "wado-rs:frames", "instance", 1},
		{inst + "/rendered", "image/png", "wado-rs:rendered", "instance", 1},
		{"/studies/" + id.study + "/metadata", "application/dicom+json", "wado-rs:metadata", "study", 2},
		{"/studies/" + id.study + "/metadata", "application/dicom+json", "wado-rs:metadata", "study", 2}, // from the cache
		{inst + "/metadata", "application/dicom+json", "wado-rs:metadata", "instance", 1},
	} {
		r := do(t, "GET", g.url+c.path, merge(clinician, hdr("Accept", c.accept)), nil)
		if r.StatusCode != 200 {
			t.Fatalf("GET %s: status %d: %.300s", c.path, r.StatusCode, r.body)
		}
		got := waitRows(i + 1)
		if len(got) != i+1 {
			t.Fatalf("after GET %s: %d retrieval rows, want %d", c.path, len(got), i+1)
		}
		last := got[i]
		if last.Action != c.action || last.Resource != id.study || last.Detail["level"] != c.level ||
			last.Detail["instances"] != c.instances || last.Detail["bytes"] != float64(len(r.body)) || last.Detail["complete"] != true {
			t.Errorf("GET %s audited as %+v; want %s of %s level, %v instances, %d bytes", c.path, last, c.action, c.level, c.instances, len(r.body))
		}
		if r.Header.Get("ETag") != "" && c.accept != "image/png" {
			// A revalidation serves nothing and is not a retrieval.
			nm := do(t, "GET", g.url+c.path, merge(clinician, hdr("Accept", c.accept, "If-None-Match", r.Header.Get("ETag"))), nil)
			if nm.StatusCode != 304 {
				t.Fatalf("GET %s If-None-Match: status %d", c.path, nm.StatusCode)
			}
		}
	}
	before := len(rows())
	do(t, "GET", g.url+"/studies/"+id.study, merge(outsider, hdr("Accept", "multipart/related; type=\"application/dicom\"")), nil).mustStatus(t, 404)
	do(t, "GET", g.url+"/studies/1.2.3.4.404", merge(clinician, hdr("Accept", "multipart/related; type=\"application/dicom\"")), nil).mustStatus(t, 404)
	if n := len(rows()); n != before {
		t.Errorf("a denial and a missing study appended %d retrieval rows", n-before)
	}

	t.Run("C-GET", func(t *testing.T) {
		d := NewDIMSE(g.pipe, g.az, "")
		srv, err := dimse.NewServer(dimse.Config{AETitle: "MEDIMINT", Store: d, Find: d, Retrieve: d, Logger: quietLogger(),
			AllowedCallers: map[string]string{"PACS_A": "org-a"}})
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
		defer func() { cancel(); <-done }()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		dir := t.TempDir()
		if out, err := exec.Command("getscu", "-S", "-aet", "PACS_A", "-aec", "MEDIMINT", "-od", dir, "-k", "QueryRetrieveLevel=STUDY",
			"-k", "StudyInstanceUID="+id.study, "127.0.0.1", port).CombinedOutput(); err != nil {
			t.Fatalf("getscu: %v\n%s", err, out)
		}
		files, _ := os.ReadDir(dir)
		got := waitRows(before + len(files))
		if len(files) != 2 || len(got) != before+2 {
			t.Fatalf("C-GET received %d files and appended %d rows, want 2 and 2", len(files), len(got)-before)
		}
		for _, r := range got[before:] {
			if r.Action != "c-get:instances" || r.Resource != id.study || r.Detail["instances"] != float64(1) ||
				r.Detail["complete"] != true || r.Detail["bytes"].(float64) <= 0 {
				t.Errorf("C-GET sub-operation audited as %+v", r)
			}
		}
	})

	g.auditor.Close()
	if _, err := access.VerifyAudit(ctx, pool); err != nil {
		t.Errorf("audit log: %v", err)
	}
}
