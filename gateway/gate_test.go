package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/portalapi"
	"github.com/medimint/medimint/watcher"
	wt "github.com/medimint/medimint/watcher/watchertest"
)

// gatedEnv is a gateway with authentication and access decisions, the
// portal API under /api, a watcher following a devnet world.
type gatedEnv struct {
	*env
	auth    *auth.Service
	az      *access.Authorizer
	auditor *access.Auditor
}

func newGatedEnv(t *testing.T, pool *pgxpool.Pool, cfg Config) *gatedEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	blobs, err := blobstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, 32)
	rand.Read(kek)
	keys, err := envelope.NewLocalKEK(kek)
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := mint.New(mint.Config{Pool: pool, Blobs: blobs, Keys: keys, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	as, err := auth.New(auth.Config{Pool: pool, Keys: auth.NewKeys("medimint", key), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	auditor := access.NewAuditor(pool, quietLogger(), 0)
	az, err := access.NewAuthorizer(ctx, access.Config{Pool: pool, Audit: auditor, Log: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	api, err := portalapi.New(portalapi.Config{Auth: as, Pool: pool, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(cfg, Deps{DB: pool, Pipeline: pipe, Logger: quietLogger(), Auth: as, Access: az,
		Mount: func(r fiber.Router) { api.Mount(r.Group("/api")) }})
	root := start(t, srv)
	// Cleanups run last-registered first: the server stops before these.
	t.Cleanup(func() {
		az.Close()
		auditor.Close()
	})
	return &gatedEnv{env: &env{srv: srv, root: root, url: root + srv.cfg.BasePath, pipe: pipe, pool: pool, blobDir: dir},
		auth: as, az: az, auditor: auditor}
}

// token signs an access token as a session would carry it.
func (g *gatedEnv) token(t testing.TB, c auth.Claims) string {
	t.Helper()
	now := time.Now()
	if c.Audience == "" {
		c.Audience = auth.AudienceAPI
	}
	c.IssuedAt, c.NotBefore, c.Expires = now.Unix(), now.Unix(), now.Add(time.Hour).Unix()
	tok, err := g.auth.Keys().Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// follow runs a watcher for w on pool and returns a function that waits
// until it has applied a transaction.
func follow(t *testing.T, w *wt.World, pool *pgxpool.Pool) func(hash string) {
	t.Helper()
	x, err := watcher.New(watcher.Config{Pool: pool, Network: w.Net, Registry: w.Registry.Address(), MinBackoff: 10 * time.Millisecond, Log: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	return func(hash string) {
		tx, err := w.Net.Horizon(ctx).TransactionDetail(hash)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := strconv.ParseInt(tx.PT, 10, 64)
		for {
			c, err := x.Cursor(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if k, _ := strconv.ParseInt(c.PagingToken, 10, 64); k >= want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// caller is a principal of the matrix with its HTTP credentials and what
// the access rules let it do with the study.
type caller struct {
	name   string
	header map[string]string
	query  string // added to URLs (?token=)
	// allow: the access actions on the study; store: may STOW-RS;
	// own/shared: the portal API's holder and grantee views answer.
	allow       []access.Action
	store       bool
	own, shared bool
	note        string
	breakGlass  bool
}

// TestAuthorizationMatrix runs every caller (holders past and present,
// grantees in every grant state, staff of the issuing and of another
// organisation in every role, API keys by scope, viewer tokens, nobody)
// against every DICOMweb service and the portal API's study views, over
// real HTTP, with grants made on a devnet and followed by the watcher. A
// denied read answers exactly as a study that does not exist. The table
// is docs/authorization-matrix.md (regenerated with
// MEDIMINT_UPDATE_MATRIX=1; otherwise the test fails if it is stale).
func TestAuthorizationMatrix(t *testing.T) {
	ctx := context.Background()
	w := wt.New(t)
	pool := dbtest.New(t)
	applied := follow(t, w, pool)
	if err := access.SetOrgIssuer(ctx, pool, access.Subject{UserID: "test"}, "org-a", w.Issuer.Address()); err != nil {
		t.Fatal(err)
	}
	g := newGatedEnv(t, pool, Config{})
	for _, org := range []string{"org-a", "org-b"} {
		if err := g.auth.CreateOrg(ctx, org, org); err != nil {
			t.Fatal(err)
		}
	}

	// The study: stored by org-a, minted, transferred, shared every way.
	id := newIDs("", "")
	if _, err := g.pipe.StorePart10(ctx, mint.Source{OrgID: "org-a", Transport: "test"}, bytes.NewReader(instance(t, "CT_small.dcm", id))); err != nil {
		t.Fatal(err)
	}
	studyRef := hex.EncodeToString(func() []byte { h := w.StudyHash(id.study); return h[:] }())
	if _, err := pool.Exec(ctx, `INSERT INTO study_bundles (study_instance_uid, outbox_id, study_ref, manifest_cid, metadata_cid, instance_count)
VALUES ($1, 1, $2, $3, $3, 1)`, id.study, studyRef, wt.MetadataCID(id.study)); err != nil {
		t.Fatal(err)
	}
	acct := func() string { return w.Account().Address() }
	prev, holder := acct(), acct()
	gQ, gR, gQR, gExp, gRev, gPrev, marker := acct(), acct(), acct(), acct(), acct(), acct(), acct()
	tok := w.Mint(prev, id.study)
	day := time.Now().Add(24 * time.Hour)
	w.Grant(tok, prev, gPrev, contracts.ScopeQuery|contracts.ScopeRetrieve, day)
	w.Transfer(tok, prev, holder)
	w.Grant(tok, holder, gQ, contracts.ScopeQuery, day)
	w.Grant(tok, holder, gR, contracts.ScopeRetrieve, day)
	w.Grant(tok, holder, gQR, contracts.ScopeQuery|contracts.ScopeRetrieve, day)
	w.Grant(tok, holder, gExp, contracts.ScopeQuery|contracts.ScopeRetrieve, time.Now().Add(-time.Hour))
	w.Grant(tok, holder, gRev, contracts.ScopeQuery|contracts.ScopeRetrieve, day)
	w.Revoke(tok, holder, gRev)
	applied(w.Grant(tok, holder, marker, contracts.ScopeQuery, day).Hash)
	for !g.az.Decide(ctx, access.Subject{Account: marker}, access.Query, access.Resource{Token: tok}).Allow {
		time.Sleep(5 * time.Millisecond)
	}

	bearer := func(c auth.Claims) map[string]string { return hdr("Authorization", "Bearer "+g.token(t, c)) }
	patient := func(a string) map[string]string {
		return bearer(auth.Claims{Subject: "user-" + a[:6], Account: a, Roles: []auth.Role{auth.RolePatient}})
	}
	staff := func(org string, r auth.Role) map[string]string {
		return bearer(auth.Claims{Subject: "user-" + org + "-" + string(r), Account: keypair.MustRandom().Address(), OrgID: org, Roles: []auth.Role{r}})
	}
	apiKey := func(org string, scopes ...string) map[string]string {
		k, _, err := g.auth.CreateAPIKey(ctx, org, "key "+strings.Join(scopes, "+"), scopes, "")
		if err != nil {
			t.Fatal(err)
		}
		return hdr("X-API-Key", k)
	}
	viewer := func(a, study string) string {
		v, err := g.auth.ViewerToken(auth.Subject{UserID: "user-" + a[:6], Account: a}, study, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	const Q, R, M = access.Query, access.Retrieve, access.MetadataOnly
	callers := []caller{
		{name: "holder", header: patient(holder), allow: []access.Action{Q, R, M}, own: true},
		{name: "previous holder", header: patient(prev)},
		{name: "grantee query", header: patient(gQ), allow: []access.Action{Q, M}, shared: true},
		{name: "grantee retrieve", header: patient(gR), allow: []access.Action{R, M}, shared: true},
		{name: "grantee query+retrieve", header: patient(gQR), allow: []access.Action{Q, R, M}, shared: true},
		{name: "grantee expired", header: patient(gExp)},
		{name: "grantee revoked", header: patient(gRev)},
		{name: "grantee of previous holder", header: patient(gPrev)},
		{name: "no grant", header: patient(acct())},
		{name: "org-a issuer_admin", header: staff("org-a", auth.RoleIssuerAdmin), allow: []access.Action{Q, M}, store: true},
		{name: "org-a clinician", header: staff("org-a", auth.RoleClinician), allow: []access.Action{Q, R, M}, store: true},
		{name: "org-a technologist", header: staff("org-a", auth.RoleTechnologist), allow: []access.Action{Q, R, M}, store: true},
		{name: "org-a auditor", header: staff("org-a", auth.RoleAuditor), allow: []access.Action{Q, M}},
		{name: "org-b clinician", header: staff("org-b", auth.RoleClinician), store: true},
		{name: "org-b clinician, break-glass reason", header: merge(staff("org-b", auth.RoleClinician), hdr(BreakGlassHeader, "unconscious in A&E")),
			allow: []access.Action{R, M}, store: true, breakGlass: true, note: "audited, holder notified; QIDO is not break-glass"},
		{name: "org-b technologist", header: staff("org-b", auth.RoleTechnologist), store: true},
		{name: "org-a API key stow", header: apiKey("org-a", auth.ScopeSTOW), store: true},
		{name: "org-a API key qido+wado", header: apiKey("org-a", auth.ScopeQIDO, auth.ScopeWADO), allow: []access.Action{Q, R, M}},
		{name: "org-b API key all scopes", header: apiKey("org-b", auth.APIKeyScopes...), store: true},
		{name: "viewer token (grantee q+r), this study", query: "token=" + viewer(gQR, id.study), allow: []access.Action{Q, R, M}},
		{name: "viewer token as bearer, this study", header: hdr("Authorization", "Bearer "+viewer(gQR, id.study)), allow: []access.Action{Q, R, M}},
		{name: "viewer token (grantee q+r), other study", query: "token=" + viewer(gQR, dicom.NewUID())},
		{name: "viewer token (revoked grantee)", query: "token=" + viewer(gRev, id.study)},
		{name: "access token in ?token=", query: "token=" + g.token(t, auth.Claims{Subject: "u", Account: holder}), note: "only viewer tokens travel in URLs"},
		{name: "nobody"},
	}

	missing := newIDs("", "")
	type endpoint struct {
		name, method string
		act          access.Action
		accept       string
	}
	inst := func(id ids) string {
		return "/studies/" + id.study + "/series/" + id.series + "/instances/" + id.sop
	}
	endpoints := []struct {
		endpoint
		path func(ids) string
	}{
		{endpoint{name: "WADO study", method: "GET", act: R, accept: `multipart/related; type="application/dicom"`}, func(i ids) string { return "/studies/" + i.study }},
		{endpoint{name: "WADO series", method: "GET", act: R, accept: `multipart/related; type="application/dicom"`}, func(i ids) string { return "/studies/" + i.study + "/series/" + i.series }},
		{endpoint{name: "WADO instance", method: "GET", act: R, accept: `multipart/related; type="application/dicom"`}, inst},
		{endpoint{name: "frames", method: "GET", act: R, accept: `multipart/related; type="application/octet-stream"`}, func(i ids) string { return inst(i) + "/frames/1" }},
		{endpoint{name: "rendered", method: "GET", act: R, accept: "image/png"}, func(i ids) string { return inst(i) + "/rendered" }},
		{endpoint{name: "thumbnail", method: "GET", act: R, accept: "image/jpeg"}, func(i ids) string { return "/studies/" + i.study + "/thumbnail" }},
		{endpoint{name: "bulkdata", method: "GET", act: R, accept: "multipart/related; type=\"application/octet-stream\""}, func(i ids) string { return inst(i) + "/bulkdata/7FE00010" }},
		{endpoint{name: "metadata", method: "GET", act: M, accept: "application/dicom+json"}, func(i ids) string { return "/studies/" + i.study + "/metadata" }},
	}

	type row struct {
		caller string
		cells  []string
	}
	var table []row
	status := func(c caller, method, url string, header map[string]string, body []byte) response {
		if c.query != "" {
			if strings.Contains(url, "?") {
				url += "&" + c.query
			} else {
				url += "?" + c.query
			}
		}
		return do(t, method, url, merge(c.header, header), body)
	}
	cellOf := func(ok bool, code int) string {
		if ok {
			return fmt.Sprintf("✅ %d", code)
		}
		return fmt.Sprintf("— %d", code)
	}
	// Requests a study that does not exist must answer exactly alike.
	sameAsMissing := func(c caller, ep endpoint, got response, path func(ids) string) {
		m := status(c, ep.method, g.url+path(missing), hdr("Accept", ep.accept), nil)
		norm := func(r response, i ids) string {
			if r.StatusCode < 400 {
				return fmt.Sprint(r.StatusCode)
			}
			p := r.problem(t)
			d := strings.NewReplacer(i.study, "S", i.series, "E", i.sop, "I").Replace(p.Detail)
			return fmt.Sprintf("%d %s %s", p.Status, p.Title, d)
		}
		if a, b := norm(got, id), norm(m, missing); a != b {
			t.Errorf("%s / %s: denial %q differs from a missing study's %q", c.name, ep.name, a, b)
		}
	}
	header := []string{"caller"}
	for _, ep := range endpoints {
		header = append(header, ep.name)
	}
	header = append(header, "QIDO studies", "QIDO series", "STOW", "portal: own study", "portal: shared study")
	for _, c := range callers {
		var cells []string
		for _, ep := range endpoints {
			want := containsAct(c.allow, ep.act)
			r := status(c, ep.method, g.url+ep.path(id), hdr("Accept", ep.accept), nil)
			ok := r.StatusCode == 200
			if ok != want {
				t.Errorf("%s / %s: status %d, want allowed=%v; %.200s", c.name, ep.name, r.StatusCode, want, r.body)
			}
			if !ok && r.StatusCode != 401 {
				sameAsMissing(c, ep.endpoint, r, ep.path)
			}
			if ok && c.breakGlass && !strings.Contains(r.Header.Get("Warning"), "break-glass") {
				t.Errorf("%s / %s: no break-glass warning", c.name, ep.name)
			}
			cells = append(cells, cellOf(ok, r.StatusCode))
		}
		// QIDO-RS: the study is found or not; the search itself answers 200
		// (or 401/403 for a credential that may not search at all).
		for _, q := range []string{"/studies?StudyInstanceUID=" + id.study, "/studies/" + id.study + "/series"} {
			r := status(c, "GET", g.url+q, hdr("Accept", "application/dicom+json"), nil)
			found := r.StatusCode == 200 && len(r.datasets(t)) > 0
			if want := containsAct(c.allow, Q); found != want {
				t.Errorf("%s / QIDO %s: found %v (status %d), want %v", c.name, q, found, r.StatusCode, want)
			}
			if r.StatusCode == 200 {
				cells = append(cells, map[bool]string{true: "✅ found", false: "— none"}[found])
			} else {
				cells = append(cells, fmt.Sprintf("— %d", r.StatusCode))
			}
		}
		// STOW-RS of a new study.
		body, ct := multipartBody(t, instance(t, "CT_small.dcm", newIDs("", "")))
		r := status(c, "POST", g.url+"/studies", hdr("Content-Type", ct, "Accept", "application/dicom+json"), body)
		if ok := r.StatusCode == 200; ok != c.store {
			t.Errorf("%s / STOW: status %d, want allowed=%v; %.200s", c.name, r.StatusCode, c.store, r.body)
		}
		cells = append(cells, cellOf(r.StatusCode == 200, r.StatusCode))
		// The portal API's views of the study.
		for _, v := range []struct {
			path string
			want bool
		}{{"/api/studies/" + id.study, c.own}, {"/api/shared/" + id.study, c.shared}} {
			r := status(c, "GET", g.root+v.path, nil, nil)
			if ok := r.StatusCode == 200; ok != v.want {
				t.Errorf("%s / %s: status %d, want allowed=%v; %.200s", c.name, v.path, r.StatusCode, v.want, r.body)
			}
			cells = append(cells, cellOf(r.StatusCode == 200, r.StatusCode))
		}
		name := c.name
		if c.note != "" {
			name += " (" + c.note + ")"
		}
		table = append(table, row{name, cells})
	}

	// The org-a study stored over STOW-RS by the org-a key belongs to org-a.
	var orgs []string
	rows, err := pool.Query(ctx, "SELECT DISTINCT org_id FROM studies ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var o string
		rows.Scan(&o)
		orgs = append(orgs, o)
	}
	rows.Close()
	if fmt.Sprint(orgs) != "[org-a org-b]" {
		t.Errorf("stored studies belong to %v, want the storing callers' org-a and org-b", orgs)
	}

	// Every decision is audited, and the audit chain holds.
	g.auditor.Close()
	var decisions, breakGlass, notes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE category = 'decision'), count(*) FILTER (WHERE category = 'break-glass')
FROM audit_log`).Scan(&decisions, &breakGlass); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM access_notifications WHERE account = $1 AND kind = 'break-glass'`, holder).Scan(&notes); err != nil {
		t.Fatal(err)
	}
	if breakGlass == 0 || notes != breakGlass {
		t.Errorf("%d break-glass audit entries, %d notifications for the holder", breakGlass, notes)
	}
	signedIn := 0
	for _, c := range callers {
		if c.header != nil && c.header["Authorization"] != "" || c.header["X-API-Key"] != "" || strings.Contains(c.query, "token=") && c.name != "access token in ?token=" {
			signedIn++
		}
	}
	if want := signedIn * (len(endpoints) + 1); decisions < want {
		t.Errorf("%d decisions audited, want at least %d", decisions, want)
	}
	if _, err := access.VerifyAudit(ctx, pool); err != nil {
		t.Error(err)
	}

	// The table.
	var md strings.Builder
	md.WriteString("# Authorization matrix\n\n")
	md.WriteString("Generated by `TestAuthorizationMatrix` (gateway/gate_test.go) over real HTTP: one study, minted on a devnet\n")
	md.WriteString("and transferred from a previous holder to its holder, with grants in every state made on chain and followed by\n")
	md.WriteString("the watcher. ✅ served, — refused, with the HTTP status. A refused read answers 404 exactly as a study that\n")
	md.WriteString("does not exist; QIDO-RS answers 200 with the study found or not. Regenerate with `MEDIMINT_UPDATE_MATRIX=1`.\n\n")
	md.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	md.WriteString(strings.Repeat("---|", len(header)) + "\n")
	for _, r := range table {
		md.WriteString("| " + r.caller + " | " + strings.Join(r.cells, " | ") + " |\n")
	}
	const path = "../docs/authorization-matrix.md"
	if os.Getenv("MEDIMINT_UPDATE_MATRIX") != "" {
		if err := os.WriteFile(path, []byte(md.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if old, err := os.ReadFile(path); err != nil || string(old) != md.String() {
		t.Errorf("%s is stale (run with MEDIMINT_UPDATE_MATRIX=1); generated:\n%s", path, md.String())
	}
	t.Logf("%d callers × %d endpoints", len(callers), len(header)-1)
}

func containsAct(as []access.Action, a access.Action) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
