package watcher_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/wallet"
	"github.com/medimint/medimint/watcher"
	wt "github.com/medimint/medimint/watcher/watchertest"
)

func newWatcher(t testing.TB, w *wt.World, pool *pgxpool.Pool, net wallet.Network) *watcher.Watcher {
	t.Helper()
	x, err := watcher.New(watcher.Config{Pool: pool, Network: net, Registry: w.Registry.Address(),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// run starts x.Run and returns a function that stops it and reports its
// error.
func run(t testing.TB, x *watcher.Watcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// pagingToken is the paging token Horizon lists a transaction under.
func pagingToken(t testing.TB, net wallet.Network, hash string) int64 {
	t.Helper()
	tx, err := net.Horizon(context.Background()).TransactionDetail(hash)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := strconv.ParseInt(tx.PT, 10, 64)
	return k
}

// waitApplied waits until the watcher's cursor has reached transaction
// hash. The test's own deadline bounds the wait.
func waitApplied(t testing.TB, x *watcher.Watcher, net wallet.Network, hash string) {
	t.Helper()
	want := pagingToken(t, net, hash)
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

func dump(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	s, err := wt.Dump(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replay folds the whole chain through contracts.Index: the reference the
// tables must agree with.
func replay(t testing.TB, w *wt.World) *contracts.Index {
	t.Helper()
	hz := w.Net.Horizon(context.Background())
	x := contracts.NewIndex(w.Registry.Address())
	page, err := hz.Transactions(horizonclient.TransactionRequest{Order: horizonclient.OrderAsc, Limit: 200})
	for err == nil && len(page.Embedded.Records) > 0 {
		for _, tx := range page.Embedded.Records {
			evs, err := contracts.Interpret(contracts.Transaction{Hash: tx.Hash, Ledger: tx.Ledger, CreatedAt: tx.LedgerCloseTime,
				EnvelopeXDR: tx.EnvelopeXdr, ResultXDR: tx.ResultXdr})
			if err != nil {
				continue // recorded as a violation by the watcher
			}
			_ = x.Apply(evs...) // rule violations are not applied
		}
		page, err = hz.NextTransactionsPage(page)
	}
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// checkAgainstIndex compares the tables with the reference index: every
// token's holder, CID and study hash, and the grants that count.
func checkAgainstIndex(t testing.TB, pool *pgxpool.Pool, ix *contracts.Index, toks []contracts.Token) {
	t.Helper()
	ctx := context.Background()
	for _, tok := range toks {
		rec, ok := ix.Record(tok)
		var holder, cid, sh string
		err := pool.QueryRow(ctx, "SELECT holder, cid, study_hash FROM record_tokens WHERE code = $1 AND issuer = $2", tok.Code, tok.Issuer).
			Scan(&holder, &cid, &sh)
		if !ok {
			if err != pgx.ErrNoRows {
				t.Errorf("%s: in the table (%v), not in the index", tok, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tok, err)
			continue
		}
		if holder != rec.Holder || cid != rec.CID || sh != hex.EncodeToString(rec.StudyHash[:]) {
			t.Errorf("%s: table (%s %s %s), index (%s %s %x)", tok, holder, cid, sh, rec.Holder, rec.CID, rec.StudyHash)
		}
		want := map[string]string{}
		for _, g := range ix.Grants(tok) {
			want[g.Grantee] = fmt.Sprintf("%s %d %d", g.Holder, g.Scope, g.Expires.Unix())
		}
		rows, err := pool.Query(ctx, `SELECT grantee, holder, scope, extract(epoch FROM expires_at)::bigint FROM grants
WHERE code = $1 AND issuer = $2 AND state = 'active'`, tok.Code, tok.Issuer)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for rows.Next() {
			var grantee, h string
			var scope int16
			var exp int64
			if err := rows.Scan(&grantee, &h, &scope, &exp); err != nil {
				t.Fatal(err)
			}
			got[grantee] = fmt.Sprintf("%s %d %d", h, scope, exp)
		}
		rows.Close()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s grants: table %v, index %v", tok, got, want)
		}
	}
}

// listen collects notifications on access.Channel.
func listen(t testing.TB, pool *pgxpool.Pool) func() []access.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+access.Channel); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []access.Change
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			var c access.Change
			if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
				t.Errorf("notification %q: %v", n.Payload, err)
			}
			mu.Lock()
			got = append(got, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close(context.Background())
	})
	return func() []access.Change {
		mu.Lock()
		defer mu.Unlock()
		return append([]access.Change(nil), got...)
	}
}

func grantState(t testing.TB, pool *pgxpool.Pool, tok contracts.Token, grantee string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT state FROM grants WHERE code = $1 AND issuer = $2 AND grantee = $3
ORDER BY ledger, tx_hash, op`, tok.Code, tok.Issuer, grantee)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFollow runs the protocol on a devnet while the watcher follows it:
// mint, grant, revoke, expired cleanup, request and answer, transfer,
// a second mint of the same study, garbage protocol data. The tables, the
// notifications and the audit log reflect each; the tables agree with
// contracts.Index replaying the chain, and Rebuild reproduces them.
func TestFollow(t *testing.T) {
	ctx := context.Background()
	w := wt.New(t)
	pool := dbtest.New(t)
	notes := listen(t, pool)
	x := newWatcher(t, w, pool, w.Net)
	stop := run(t, x)

	alice, bob, doctor, nurse := w.Account(), w.Account(), w.Account(), w.Account()
	tok := w.Mint(alice.Address(), "1.2.3.1")
	tok2 := w.Mint(alice.Address(), "1.2.3.2")
	exp := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	w.Grant(tok, alice.Address(), doctor.Address(), contracts.ScopeQuery|contracts.ScopeRetrieve, exp)
	last := w.Grant(tok, alice.Address(), nurse.Address(), contracts.ScopeQuery, exp)
	waitApplied(t, x, w.Net, last.Hash)

	var holder, studyHash, mintTx string
	if err := pool.QueryRow(ctx, "SELECT holder, study_hash, minted_tx FROM record_tokens WHERE code = $1", tok.Code).
		Scan(&holder, &studyHash, &mintTx); err != nil {
		t.Fatal(err)
	}
	sh := w.StudyHash("1.2.3.1")
	if holder != alice.Address() || studyHash != hex.EncodeToString(sh[:]) || mintTx == "" {
		t.Errorf("record: holder %s study %s tx %q", holder, studyHash, mintTx)
	}
	if s := grantState(t, pool, tok, doctor.Address()); fmt.Sprint(s) != "[active]" {
		t.Errorf("doctor's grant: %v", s)
	}

	// Revoke; a grant that expired and is cleaned up; a request answered.
	w.Revoke(tok, alice.Address(), doctor.Address())
	w.Grant(tok2, alice.Address(), doctor.Address(), contracts.ScopeQuery, time.Now().Add(-time.Hour))
	w.Revoke(tok2, alice.Address(), doctor.Address())
	req := w.Submit(wt.Must(contracts.RequestAccess(w.Sponsor.Address(), contracts.Request{Token: tok2, Requester: bob.Address(),
		Scope: contracts.ScopeRetrieve, Until: exp})))
	var reqTx [32]byte
	copy(reqTx[:], wt.Must(hex.DecodeString(req.Hash)))
	w.Submit(wt.Must(contracts.AnswerAccess(w.Sponsor.Address(), contracts.Answer{Token: tok2, Holder: alice.Address(),
		Requester: bob.Address(), RequestTx: reqTx, Grant: &contracts.Grant{Expires: exp, Scope: contracts.ScopeRetrieve}})))
	// Transfer: the nurse's grant is superseded (not deleted on chain here).
	w.Transfer(tok, alice.Address(), bob.Address())
	// The issuer pays the same token again (recorded): a supply violation.
	again := wt.Must(contracts.MintBatches(w.Sponsor.Address(), w.Issuer.Address(), []contracts.Mint{{StudyHash: w.StudyHash("1.2.3.1"),
		CID: wt.MetadataCID("1.2.3.1"), Holder: doctor.Address()}}))
	w.Submit(again[0])
	// Anyone may write mm.* entries on their own account: garbage.
	junk := w.Account()
	garbage, err := w.Sponsor.Submit(ctx, wallet.Submission{Operations: wallet.Sponsored(w.Sponsor.Address(), junk.Address(),
		&txnbuild.ManageData{SourceAccount: junk.Address(), Name: "mm.g.NOTACODE.x", Value: []byte("junk")}), Signers: []*keypair.Full{junk}})
	if err != nil {
		t.Fatal(err)
	}
	last = w.Grant(tok, bob.Address(), doctor.Address(), contracts.ScopeRetrieve, exp)
	waitApplied(t, x, w.Net, last.Hash)
	stop()

	for _, c := range []struct {
		tok     contracts.Token
		grantee string
		want    string
	}{
		{tok, doctor.Address(), "[revoked active]"},
		{tok, nurse.Address(), "[superseded]"},
		{tok2, doctor.Address(), "[expired]"},
		{tok2, bob.Address(), "[active]"},
	} {
		if s := grantState(t, pool, c.tok, c.grantee); fmt.Sprint(s) != c.want {
			t.Errorf("grants of %s to %s: %v, want %s", c.tok.Code, c.grantee[:6], s, c.want)
		}
	}
	var reqState, answeredBy string
	if err := pool.QueryRow(ctx, "SELECT state, answered_by FROM access_requests WHERE request_tx = $1", req.Hash).Scan(&reqState, &answeredBy); err != nil {
		t.Fatal(err)
	}
	if reqState != "approved" || answeredBy != alice.Address() {
		t.Errorf("request: %s by %s", reqState, answeredBy)
	}
	if err := pool.QueryRow(ctx, "SELECT holder FROM record_tokens WHERE code = $1", tok.Code).Scan(&holder); err != nil || holder != bob.Address() {
		t.Errorf("holder after transfer %s (%v)", holder, err)
	}
	rules := map[string]bool{}
	rows, _ := pool.Query(ctx, "SELECT tx_hash, rule FROM watcher_violations")
	for rows.Next() {
		var h, r string
		_ = rows.Scan(&h, &r)
		rules[r] = true
		if r == "malformed" && h != garbage.Hash {
			t.Errorf("malformed: %s, want %s", h, garbage.Hash)
		}
	}
	rows.Close()
	if !rules["duplicate-mint"] || !rules["malformed"] {
		t.Errorf("violations: %v", rules)
	}

	// Notifications name what changed, for whom.
	var sawGrant, sawRecord bool
	for _, c := range notes() {
		sawGrant = sawGrant || (c.Kind == access.ChangeGrant && c.Token == tok.String() && c.Account == doctor.Address())
		sawRecord = sawRecord || (c.Kind == access.ChangeRecord && c.Token == tok.String() && c.Account == bob.Address())
	}
	if !sawGrant || !sawRecord {
		t.Errorf("notifications: grant %v, transfer %v: %+v", sawGrant, sawRecord, notes())
	}

	// Chain events are audited once each, linked to their transaction.
	var n int
	var url string
	if err := pool.QueryRow(ctx, "SELECT count(*), min(tx_url) FROM audit_log WHERE category = 'chain' AND action = 'grant.revoked' AND resource = $1",
		tok.String()).Scan(&n, &url); err != nil || n != 1 || url == "" {
		t.Errorf("audit of the revoke: %d rows, url %q, %v", n, url, err)
	}
	if _, err := access.VerifyAudit(ctx, pool); err != nil {
		t.Error(err)
	}

	checkAgainstIndex(t, pool, replay(t, w), []contracts.Token{tok, tok2})

	// The same rows from chain history alone: into another database, and
	// in place.
	incremental := dump(t, pool)
	other := dbtest.New(t)
	if err := newWatcher(t, w, other, w.Net).Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, other); got != incremental {
		t.Errorf("rebuild differs from the incremental run:\n--- incremental\n%s--- rebuild\n%s", incremental, got)
	}
	if err := x.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, pool); got != incremental {
		t.Errorf("rebuild in place differs:\n--- incremental\n%s--- rebuild\n%s", incremental, got)
	}
}

// cutter is a reverse proxy to Horizon whose connections the test can cut
// at any moment, dropping streams mid-flight.
type cutter struct {
	srv *httptest.Server
}

func newCutter(t testing.TB, target string) *cutter {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.FlushInterval = -1 // stream events through at once
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { p.ServeHTTP(rw, r) }))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return &cutter{srv: srv}
}

// TestCrashRestart follows a busy chain while the watcher is cancelled at
// random points and its stream's connection is cut, restarting it each
// time; at the end no event is lost or applied twice: the tables equal a
// rebuild from history and the reference index, and every chain event is
// audited exactly once.
func TestCrashRestart(t *testing.T) {
	ctx := context.Background()
	w := wt.New(t)
	pool := dbtest.New(t)
	proxy := newCutter(t, w.Net.HorizonURL)
	via := w.Net
	via.HorizonURL = proxy.srv.URL
	x := newWatcher(t, w, pool, via)

	holders := []string{w.Account().Address(), w.Account().Address(), w.Account().Address()}
	grantees := []string{w.Account().Address(), w.Account().Address()}
	var toks []contracts.Token
	holderOf := map[contracts.Token]string{}

	// The workload: mints, grants, revokes, transfers, one per ledger or so.
	type entry struct {
		holder, code, grantee string
	}
	onChain := map[entry]bool{} // grant data entries that exist
	work := make(chan string, 1)
	go func() {
		defer close(work)
		r := rand.New(rand.NewPCG(1, 2))
		var lastHash string
		for i := range 60 {
			var res wallet.Result
			if len(toks) < 3 || i%6 == 0 {
				h := holders[r.IntN(len(holders))]
				tok := w.Mint(h, fmt.Sprintf("1.2.9.%d", i))
				toks = append(toks, tok)
				holderOf[tok] = h
				continue
			}
			tok := toks[r.IntN(len(toks))]
			from := holderOf[tok]
			var existing []string
			for _, g := range grantees {
				if onChain[entry{from, tok.Code, g}] {
					existing = append(existing, g)
				}
			}
			switch {
			case i%7 == 0:
				to := holders[(r.IntN(len(holders)-1)+1+indexOf(holders, from))%len(holders)]
				var clean []string
				if r.IntN(2) == 0 { // else the grants stay on chain, superseded
					clean = existing
					for _, g := range clean {
						delete(onChain, entry{from, tok.Code, g})
					}
				}
				res = w.Transfer(tok, from, to, clean...)
				holderOf[tok] = to
			case i%3 == 0 && len(existing) > 0:
				g := existing[r.IntN(len(existing))]
				res = w.Revoke(tok, from, g)
				delete(onChain, entry{from, tok.Code, g})
			default:
				g := grantees[r.IntN(len(grantees))]
				res = w.Grant(tok, from, g, contracts.Scope(1+r.IntN(3)), time.Now().Add(time.Duration(r.IntN(48)-4)*time.Hour))
				onChain[entry{from, tok.Code, g}] = true
			}
			lastHash = res.Hash
		}
		work <- lastHash
	}()

	r := rand.New(rand.NewPCG(3, 4))
	restarts, cuts := 0, 0
	var last string
	for done := false; !done; {
		stop := run(t, x)
		time.Sleep(time.Duration(r.IntN(150)) * time.Millisecond)
		if r.IntN(2) == 0 {
			proxy.srv.CloseClientConnections()
			cuts++
			time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
		}
		stop()
		restarts++
		select {
		case h, ok := <-work:
			if ok {
				last = h
			}
			done = true
		default:
		}
	}
	stop := run(t, x)
	waitApplied(t, x, w.Net, last)
	stop()
	t.Logf("%d restarts, %d dropped streams", restarts, cuts)

	checkAgainstIndex(t, pool, replay(t, w), toks)
	var dups int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT tx_hash, action, resource, detail FROM audit_log WHERE category = 'chain'
GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d`).Scan(&dups); err != nil || dups != 0 {
		t.Errorf("%d chain events audited twice (%v)", dups, err)
	}
	incremental := dump(t, pool)
	other := dbtest.New(t)
	if err := newWatcher(t, w, other, w.Net).Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, other); got != incremental {
		t.Errorf("rebuild differs from the interrupted incremental run:\n--- incremental\n%s--- rebuild\n%s", incremental, got)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// countingHandler counts log records whose message contains a word.
type countingHandler struct {
	slog.Handler
	mu   *sync.Mutex
	seen map[string]int
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h countingHandler) WithGroup(string) slog.Handler            { return h }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.seen[r.Message]++
	h.mu.Unlock()
	return nil
}

// TestSmallPagesAndLag follows a burst with tiny pages and a one-slot
// stream queue, so that catching up takes many pages and the stream
// overflows into paging again; the result still equals a rebuild.
func TestSmallPagesAndLag(t *testing.T) {
	ctx := context.Background()
	w := wt.New(t)
	pool := dbtest.New(t)
	var mu sync.Mutex
	seen := map[string]int{}
	x, err := watcher.New(watcher.Config{Pool: pool, Network: w.Net, Registry: w.Registry.Address(), PageLimit: 3, QueueSize: 1,
		MinBackoff: 10 * time.Millisecond, Log: slog.New(countingHandler{Handler: slog.DiscardHandler, mu: &mu, seen: seen})})
	if err != nil {
		t.Fatal(err)
	}
	holder := w.Account().Address()
	var toks []contracts.Token
	for i := range 4 {
		toks = append(toks, w.Mint(holder, fmt.Sprintf("1.2.5.%d", i)))
	}
	stop := run(t, x) // starts behind: catches up three transactions a page
	waitApplied(t, x, w.Net, w.Grant(toks[0], holder, holder2(w), contracts.ScopeQuery, time.Now().Add(time.Hour)).Hash)

	// Hold the cursor row: the writer blocks, the stream overflows its
	// queue while transactions keep coming.
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, "SELECT 1 FROM watcher_cursor FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	grantee := w.Account().Address()
	var final wallet.Result
	for _, tok := range toks {
		final = w.Grant(tok, holder, grantee, contracts.ScopeQuery, time.Now().Add(time.Hour))
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, x, w.Net, final.Hash)
	stop()
	mu.Lock()
	lagged := seen["watcher: stream lagged; catching up by paging"]
	mu.Unlock()
	if lagged == 0 {
		t.Errorf("the stream never lagged: %v", seen)
	}

	checkAgainstIndex(t, pool, replay(t, w), toks)
	incremental := dump(t, pool)
	other := dbtest.New(t)
	if err := newWatcher(t, w, other, w.Net).Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, other); got != incremental {
		t.Errorf("rebuild differs:\n--- incremental\n%s--- rebuild\n%s", incremental, got)
	}
}

func holder2(w *wt.World) string { return w.Account().Address() }
