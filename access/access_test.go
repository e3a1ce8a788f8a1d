package access_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/watcher"
	wt "github.com/medimint/medimint/watcher/watchertest"
)

// follow runs a watcher on pool for the world until the test ends and
// returns a function that waits until it has applied a transaction.
func follow(t testing.TB, w *wt.World, pool *pgxpool.Pool) (waitApplied func(hash string)) {
	t.Helper()
	x, err := watcher.New(watcher.Config{Pool: pool, Network: w.Net, Registry: w.Registry.Address(), MinBackoff: 10 * time.Millisecond})
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
		tx, err := w.Net.Horizon(context.Background()).TransactionDetail(hash)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := strconv.ParseInt(tx.PT, 10, 64)
		for {
			c, err := x.Cursor(context.Background())
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

// addStudy puts a study into the instance index (package index's tables)
// as the ingest pipeline would, with its study_bundles row when studyRef
// is set.
func addStudy(t testing.TB, pool *pgxpool.Pool, uid, org, studyRef string) {
	t.Helper()
	ctx := context.Background()
	var pk int64
	if err := pool.QueryRow(ctx, `INSERT INTO patients (org_id, patient_id) VALUES ($1, $2)
ON CONFLICT (org_id, patient_id, issuer_of_patient_id) DO UPDATE SET patient_name = '' RETURNING pk`, org, "P-"+uid).Scan(&pk); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO studies (study_instance_uid, patient_pk, org_id) VALUES ($1, $2, $3)", uid, pk, org); err != nil {
		t.Fatal(err)
	}
	if studyRef == "" {
		return
	}
	if _, err := pool.Exec(ctx, `INSERT INTO study_bundles (study_instance_uid, outbox_id, study_ref, manifest_cid, metadata_cid, instance_count)
VALUES ($1, (SELECT coalesce(max(outbox_id), 0) + 1 FROM study_bundles), $2, 'bafy-manifest', 'bafy-metadata', 1)`, uid, studyRef); err != nil {
		t.Fatal(err)
	}
}

func hashHex(h [32]byte) string { return hex.EncodeToString(h[:]) }

// principal is a caller in the matrix and what it may do.
type principal struct {
	name  string
	sub   access.Subject
	allow []access.Action
}

// TestMatrix builds on the devnet a record token that changed hands,
// with grants in every state (active query / retrieve / both, expired,
// revoked, written by the previous holder) and checks every caller ×
// action × way of naming the study against the expected table, through
// a cache fed only by the watcher's notifications. Denials look the same
// as for a study that does not exist; QueryFilter agrees with Decide.
func TestMatrix(t *testing.T) {
	ctx := context.Background()
	w := wt.New(t)
	pool := dbtest.New(t)
	applied := follow(t, w, pool)
	if err := access.SetOrgIssuer(ctx, pool, access.Subject{UserID: "admin"}, "org-a", w.Issuer.Address()); err != nil {
		t.Fatal(err)
	}
	auditor := access.NewAuditor(pool, nil, 0)
	az, err := access.NewAuthorizer(ctx, access.Config{Pool: pool, Audit: auditor})
	if err != nil {
		t.Fatal(err)
	}
	defer az.Close()

	acct := func() string { return w.Account().Address() }
	prev, holder, other := acct(), acct(), acct()
	gQ, gR, gQR, gExp, gRev, gPrev, marker := acct(), acct(), acct(), acct(), acct(), acct(), acct()
	const uid, otherUID = "1.2.840.1.1", "1.2.840.1.2"
	tok := w.Mint(prev, uid)
	otherTok := w.Mint(other, otherUID)
	day := time.Now().Add(24 * time.Hour)
	w.Grant(tok, prev, gPrev, contracts.ScopeQuery|contracts.ScopeRetrieve, day)
	w.Transfer(tok, prev, holder) // gPrev's entry stays on chain, superseded
	w.Grant(tok, holder, gQ, contracts.ScopeQuery, day)
	w.Grant(tok, holder, gR, contracts.ScopeRetrieve, day)
	w.Grant(tok, holder, gQR, contracts.ScopeQuery|contracts.ScopeRetrieve, day)
	w.Grant(tok, holder, gExp, contracts.ScopeQuery|contracts.ScopeRetrieve, time.Now().Add(-time.Hour))
	w.Grant(tok, holder, gRev, contracts.ScopeQuery|contracts.ScopeRetrieve, day)
	w.Revoke(tok, holder, gRev)
	applied(w.Grant(tok, holder, marker, contracts.ScopeQuery, day).Hash)
	addStudy(t, pool, uid, "org-a", hashHex(w.StudyHash(uid)))
	addStudy(t, pool, otherUID, "org-a", hashHex(w.StudyHash(otherUID)))
	addStudy(t, pool, "1.2.840.1.3", "org-a", "") // ingested, not minted yet
	addStudy(t, pool, "1.2.840.2.1", "org-b", "")
	// Notifications are handled in commit order: once the marker grant is
	// in the cache, so is everything before it.
	for !az.Decide(ctx, access.Subject{Account: marker}, access.Query, access.Resource{Token: tok}).Allow {
		time.Sleep(5 * time.Millisecond)
	}

	staff := func(org string, r access.Role) access.Subject {
		return access.Subject{Account: keypair.MustRandom().Address(), UserID: "u-" + org + "-" + string(r), OrgID: org,
			Roles: []access.Role{r}, Reason: "emergency: unconscious patient"}
	}
	pat := func(a string) access.Subject {
		return access.Subject{Account: a, Roles: []access.Role{access.RolePatient}, Reason: "curious"}
	}
	const (
		Q, R, M, G, V, D, B = access.Query, access.Retrieve, access.MetadataOnly, access.Grant, access.Revoke, access.Delete, access.BreakGlass
	)
	principals := []principal{
		{"holder", pat(holder), []access.Action{Q, R, M, G, V}},
		{"previous holder", pat(prev), nil},
		{"grantee query", pat(gQ), []access.Action{Q, M}},
		{"grantee retrieve", pat(gR), []access.Action{R, M}},
		{"grantee query+retrieve", pat(gQR), []access.Action{Q, R, M}},
		{"grantee expired", pat(gExp), nil},
		{"grantee revoked", pat(gRev), nil},
		{"grantee of previous holder", pat(gPrev), nil},
		{"no grant", pat(keypair.MustRandom().Address()), nil},
		{"other patient", pat(other), nil},
		{"org-a issuer_admin", staff("org-a", access.RoleIssuerAdmin), []access.Action{Q, M, D}},
		{"org-a clinician", staff("org-a", access.RoleClinician), []access.Action{Q, R, M, B}},
		{"org-a technologist", staff("org-a", access.RoleTechnologist), []access.Action{Q, R, M}},
		{"org-a auditor", staff("org-a", access.RoleAuditor), []access.Action{Q, M}},
		{"org-a patient role", staff("org-a", access.RolePatient), nil},
		{"org-b issuer_admin", staff("org-b", access.RoleIssuerAdmin), nil},
		{"org-b clinician", staff("org-b", access.RoleClinician), []access.Action{B}},
		{"org-b technologist", staff("org-b", access.RoleTechnologist), nil},
		{"org-b auditor", staff("org-b", access.RoleAuditor), nil},
	}
	resources := map[string]access.Resource{
		"token": {Token: tok},
		"hash":  {StudyHash: hashHex(w.StudyHash(uid))},
		"uid":   {StudyInstanceUID: uid},
	}
	missing := map[string]access.Resource{
		"token": {Token: contracts.Token{Code: contracts.AssetCode(w.StudyHash("nope")), Issuer: w.Issuer.Address()}},
		"hash":  {StudyHash: hashHex(w.StudyHash("nope"))},
		"uid":   {StudyInstanceUID: "1.2.840.9.9.9"},
	}
	decisions := 1 // the marker poll made at least one; counted below
	rows := 0
	for _, p := range principals {
		for _, act := range access.Actions {
			for form, res := range resources {
				want := slices.Contains(p.allow, act)
				d := az.Decide(ctx, p.sub, act, res)
				decisions++
				rows++
				if d.Allow != want {
					t.Errorf("%s %s by %s: allow %v (%s), want %v", p.name, act, form, d.Allow, d.Reason, want)
				}
				if d.BreakGlass != (act == B && want) {
					t.Errorf("%s %s by %s: break-glass %v", p.name, act, form, d.BreakGlass)
				}
				if !want {
					// Not allowed looks exactly like not there.
					nd := az.Decide(ctx, p.sub, act, missing[form])
					decisions++
					if d != nd || d != (access.Decision{Reason: access.ReasonDenied}) {
						t.Errorf("%s %s by %s: denial %+v differs from a missing study's %+v", p.name, act, form, d, nd)
					}
				}
			}
		}
	}
	t.Logf("%d matrix rows", rows)

	// Break-glass needs a reason, and is recorded with a notification for
	// the holder.
	noReason := staff("org-b", access.RoleClinician)
	noReason.Reason = " "
	if d := az.Decide(ctx, noReason, B, resources["uid"]); d.Allow {
		t.Error("break-glass without a reason allowed")
	}
	var notes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM access_notifications n JOIN audit_log a ON a.seq = n.audit_seq
WHERE n.account = $1 AND n.kind = 'break-glass' AND a.category = 'break-glass'`, holder).Scan(&notes); err != nil || notes != 6 {
		t.Errorf("%d break-glass notifications for the holder (want 6: 2 clinicians × 3 forms): %v", notes, err)
	}

	// QueryFilter lets through what Decide(Query) allows, in SQL.
	uids := []string{uid, otherUID, "1.2.840.1.3", "1.2.840.2.1"}
	for _, p := range principals {
		f, err := az.QueryFilter(p.sub)
		if err != nil {
			t.Fatal(err)
		}
		cond, args := f.SQL("s", 1)
		r, err := pool.Query(ctx, "SELECT study_instance_uid FROM studies s WHERE "+cond+" ORDER BY 1", args...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, u := range uids {
			decisions++
			if az.Decide(ctx, p.sub, Q, access.Resource{StudyInstanceUID: u}).Allow {
				want = append(want, u)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: QueryFilter finds %v, Decide allows %v", p.name, got, want)
		}
	}
	_ = otherTok

	// Every decision is in the audit log, and the chain holds.
	auditor.Close()
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE category IN ('decision', 'break-glass')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < decisions+1 {
		t.Errorf("%d decisions audited, made at least %d", n, decisions+1)
	}
	if _, err := access.VerifyAudit(ctx, pool); err != nil {
		t.Error(err)
	}
}

// TestRevocationLatency measures, on a devnet closing a ledger a second,
// how long after the ledger that includes a revoke closes the first
// decision through the cache denies. It reports the figure; it asserts
// only that the denial comes.
func TestRevocationLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("1-second ledgers")
	}
	ctx := context.Background()
	w := wt.New(t, devnettest.WithInterval(time.Second))
	pool := dbtest.New(t)
	applied := follow(t, w, pool)
	az, err := access.NewAuthorizer(ctx, access.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer az.Close()
	holder, doctor := w.Account().Address(), w.Account().Address()
	tok := w.Mint(holder, "1.2.840.7.1")
	applied(w.Grant(tok, holder, doctor, contracts.ScopeRetrieve, time.Now().Add(time.Hour)).Hash)
	doc := access.Subject{Account: doctor}
	for !az.Decide(ctx, doc, access.Retrieve, access.Resource{Token: tok}).Allow {
		time.Sleep(time.Millisecond)
	}

	res := w.Revoke(tok, holder, doctor)
	submitted := time.Now()
	for az.Decide(ctx, doc, access.Retrieve, access.Resource{Token: tok}).Allow {
		time.Sleep(100 * time.Microsecond)
	}
	denied := time.Now()
	tx, err := w.Net.Horizon(ctx).TransactionDetail(res.Hash)
	if err != nil {
		t.Fatal(err)
	}
	led, err := w.Net.Horizon(ctx).LedgerDetail(uint32(tx.Ledger))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("revocation latency: %v from the close time of ledger %d (%s, whole seconds on chain); %v after Submit returned",
		denied.Sub(led.ClosedAt), tx.Ledger, led.ClosedAt.Format(time.RFC3339), denied.Sub(submitted))
}

// TestListenerLoss cuts the cache's notification connection and keeps it
// from reconnecting: decisions fail closed ("unavailable") meanwhile, and
// a revoke made while it was down is in force once it is back, though
// its notification was never received.
func TestListenerLoss(t *testing.T) {
	ctx := context.Background()
	w := wt.New(t)
	pool := dbtest.New(t)
	applied := follow(t, w, pool)
	az, err := access.NewAuthorizer(ctx, access.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer az.Close()
	holder, doctor := w.Account().Address(), w.Account().Address()
	tok := w.Mint(holder, "1.2.840.8.1")
	applied(w.Grant(tok, holder, doctor, contracts.ScopeRetrieve, time.Now().Add(time.Hour)).Hash)
	doc, res := access.Subject{Account: doctor}, access.Resource{Token: tok}
	for !az.Decide(ctx, doc, access.Retrieve, res).Allow {
		time.Sleep(time.Millisecond)
	}

	admin, err := pgx.Connect(ctx, dbtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := pool.Config().ConnConfig.Database
	allow := func(on bool) {
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %v", pgx.Identifier{name}.Sanitize(), on)); err != nil {
			t.Fatal(err)
		}
	}
	allow(false)
	defer allow(true)
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND query = 'LISTEN '||$2`, name, access.Channel).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listeners: %v", killed, err)
	}
	for az.Ready() {
		time.Sleep(time.Millisecond)
	}
	if d := az.Decide(ctx, doc, access.Retrieve, res); d.Allow || d.Reason != access.ReasonUnavailable {
		t.Errorf("while out of sync: %+v", d)
	}
	applied(w.Revoke(tok, holder, doctor).Hash) // the watcher's pooled connections still work
	allow(true)
	for !az.Ready() {
		time.Sleep(time.Millisecond)
	}
	if d := az.Decide(ctx, doc, access.Retrieve, res); d.Allow || d.Reason != access.ReasonDenied {
		t.Errorf("after reconnecting: %+v, want the revoke in force", d)
	}
	if d := az.Decide(ctx, access.Subject{Account: holder}, access.Retrieve, res); !d.Allow {
		t.Errorf("holder after reconnecting: %+v", d)
	}
}
