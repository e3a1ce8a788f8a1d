package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/internal/proctest"
	"github.com/medimint/medimint/mint/chain"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/wallet"
	wt "github.com/medimint/medimint/watcher/watchertest"
)

// killWorld is the chain side of TestWatcherSIGKILL: a sponsor on the
// devnet and the keys of every account it set up, with the registry
// derived from the deployment's master so that `medimint watcher` trusts
// it.
type killWorld struct {
	ctx     context.Context // the test's
	net     wallet.Network
	sponsor *wallet.Sponsor
	issuer  *keypair.Full
	keys    map[string][]*keypair.Full
}

// submit takes a builder's results: a draft, signed here by every key of
// its signers, or the builder's error.
func (w *killWorld) submit(d contracts.Draft, err error) (wallet.Result, error) {
	if err != nil {
		return wallet.Result{}, err
	}
	var signers []*keypair.Full
	for _, a := range d.Signers {
		signers = append(signers, w.keys[a]...)
	}
	return w.sponsor.Submit(w.ctx, wallet.Submission{Operations: d.Operations, Memo: d.Memo, Signers: signers})
}

func (w *killWorld) account(ctx context.Context) (string, error) {
	kp := keypair.MustRandom()
	if _, err := w.sponsor.CreateAccounts(ctx, kp); err != nil {
		return "", err
	}
	w.keys[kp.Address()] = []*keypair.Full{kp}
	return kp.Address(), nil
}

func (w *killWorld) mint(ctx context.Context, holder, uid string) (contracts.Token, error) {
	m := contracts.Mint{StudyHash: contracts.StudyHash([]byte("kill test salt"), uid), CID: wt.MetadataCID(uid), Holder: holder}
	ds, err := contracts.MintBatches(w.sponsor.Address(), w.issuer.Address(), []contracts.Mint{m})
	if err != nil {
		return contracts.Token{}, err
	}
	for _, d := range ds {
		if _, err := w.submit(d, nil); err != nil {
			return contracts.Token{}, err
		}
	}
	return m.Token(w.issuer.Address()), nil
}

// newKillWorld funds a sponsor with one channel and sets up registry (2 of
// 3 random governors) and a random issuer it lists.
func newKillWorld(ctx context.Context, net wallet.Network, registry *keypair.Full) (*killWorld, error) {
	sk, ch := keypair.MustRandom(), keypair.MustRandom()
	if err := net.Fund(ctx, sk.Address()); err != nil {
		return nil, err
	}
	s, err := wallet.NewSponsor(wallet.SponsorConfig{Network: net, Key: sk, Channels: []*keypair.Full{ch}, PollInterval: 20 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	w := &killWorld{ctx: ctx, net: net, sponsor: s, issuer: keypair.MustRandom(), keys: map[string][]*keypair.Full{}}
	w.keys[registry.Address()] = []*keypair.Full{registry}
	w.keys[w.issuer.Address()] = []*keypair.Full{w.issuer}
	if _, err := s.CreateAccounts(ctx, ch, registry, w.issuer); err != nil {
		return nil, err
	}
	govs := []*keypair.Full{keypair.MustRandom(), keypair.MustRandom(), keypair.MustRandom()}
	if _, err := w.submit(contracts.SetupRegistry(s.Address(), registry.Address(),
		[]string{govs[0].Address(), govs[1].Address(), govs[2].Address()}, 2)); err != nil {
		return nil, fmt.Errorf("setup registry: %w", err)
	}
	w.keys[registry.Address()] = govs[:2]
	if _, err := w.submit(contracts.SetupIssuer(w.issuer.Address(), "hospital.example")); err != nil {
		return nil, fmt.Errorf("setup issuer: %w", err)
	}
	if _, err := w.submit(contracts.AddIssuer(s.Address(), registry.Address(), w.issuer.Address(), "hospital.example")); err != nil {
		return nil, fmt.Errorf("add issuer: %w", err)
	}
	return w, nil
}

// workload mints, grants, revokes, requests and answers, and transfers
// until stop is closed (at most 1000 steps), and returns how many steps
// it took.
func (w *killWorld) workload(ctx context.Context, stop <-chan struct{}, r *rand.Rand) (int, error) {
	var holders, grantees []string
	for range 3 {
		h, err := w.account(ctx)
		if err != nil {
			return 0, err
		}
		holders = append(holders, h)
	}
	for range 2 {
		g, err := w.account(ctx)
		if err != nil {
			return 0, err
		}
		grantees = append(grantees, g)
	}
	var toks []contracts.Token
	holderOf := map[contracts.Token]string{}
	granted := map[[3]string]bool{} // holder, code, grantee of grant entries on chain
	for i := 0; ; i++ {
		select {
		case <-stop:
			if len(toks) >= 3 {
				return i, nil
			}
		default:
		}
		if i == 1000 {
			return i, errors.New("workload: not stopped after 1000 steps")
		}
		var err error
		if len(toks) < 3 || i%8 == 0 {
			h := holders[r.IntN(len(holders))]
			var tok contracts.Token
			if tok, err = w.mint(ctx, h, fmt.Sprintf("1.2.840.99.%d", i)); err != nil {
				return i, fmt.Errorf("op %d: mint: %w", i, err)
			}
			toks = append(toks, tok)
			holderOf[tok] = h
			continue
		}
		tok := toks[r.IntN(len(toks))]
		from := holderOf[tok]
		var existing []string
		for _, g := range grantees {
			if granted[[3]string{from, tok.Code, g}] {
				existing = append(existing, g)
			}
		}
		exp := time.Now().Add(time.Duration(1+r.IntN(48)) * time.Hour).Truncate(time.Second)
		switch {
		case i%7 == 0:
			to := holders[(slicesIndex(holders, from)+1+r.IntN(len(holders)-1))%len(holders)]
			for _, g := range existing {
				delete(granted, [3]string{from, tok.Code, g})
			}
			_, err = w.submit(contracts.TransferRecord(w.sponsor.Address(), contracts.Transfer{Token: tok, From: from, To: to, Grantees: existing}))
			holderOf[tok] = to
		case i%5 == 0:
			requester := grantees[r.IntN(len(grantees))]
			var req wallet.Result
			if req, err = w.submit(contracts.RequestAccess(w.sponsor.Address(), contracts.Request{Token: tok, Requester: requester,
				Scope: contracts.ScopeRetrieve, Until: exp})); err != nil {
				break
			}
			var reqTx [32]byte
			copy(reqTx[:], wt.Must(hex.DecodeString(req.Hash)))
			_, err = w.submit(contracts.AnswerAccess(w.sponsor.Address(), contracts.Answer{Token: tok, Holder: from,
				Requester: requester, RequestTx: reqTx, Grant: &contracts.Grant{Expires: exp, Scope: contracts.ScopeRetrieve}}))
			granted[[3]string{from, tok.Code, requester}] = true
		case i%3 == 0 && len(existing) > 0:
			g := existing[r.IntN(len(existing))]
			_, err = w.submit(contracts.RevokeAccess(from, tok.Code, g))
			delete(granted, [3]string{from, tok.Code, g})
		default:
			g := grantees[r.IntN(len(grantees))]
			_, err = w.submit(contracts.GrantAccess(w.sponsor.Address(), contracts.Grant{Token: tok, Holder: from, Grantee: g,
				Expires: exp, Scope: contracts.Scope(1 + r.IntN(3))}))
			granted[[3]string{from, tok.Code, g}] = true
		}
		if err != nil {
			return i, fmt.Errorf("op %d: %w", i, err)
		}
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// cursorToken is the watcher's stored paging token (0 before any).
func cursorToken(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var pt string
	err := pool.QueryRow(ctx, "SELECT paging_token FROM watcher_cursor WHERE stream = 'transactions'").Scan(&pt)
	if err != nil {
		return 0, ignoreNoRows(err)
	}
	if pt == "" {
		return 0, nil
	}
	return strconv.ParseInt(pt, 10, 64)
}

// TestWatcherSIGKILL runs `medimint watcher run` as a process against a
// `medimint devnet` process while the chain is busy, SIGKILLs it at random
// points (during start-up, catch-up, streaming, mid-transaction) and
// restarts it each time; at the end it catches up, and its tables equal
// what `medimint watcher rebuild` derives into a fresh database, and no
// chain event is audited twice.
func TestWatcherSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, runs a devnet and kills the watcher repeatedly")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := proctest.Build(t, proctest.Medimint)

	dn := proctest.Start(t, bin, nil, "devnet", "-addr", "127.0.0.1:0", "-interval", "200ms")
	horizon := dn.WaitLog(t, regexp.MustCompile(`devnet listening.* horizon=(\S+)`), 30*time.Second)[1]
	passphrase := dn.WaitLog(t, regexp.MustCompile(`devnet listening.* passphrase="([^"]+)"`), time.Second)[1]
	net := wallet.Network{HorizonURL: horizon, Passphrase: passphrase, FriendbotURL: horizon + "/friendbot"}

	// The deployment's master, as serve would have created it: the
	// watcher trusts the registry it derives.
	dataDir := t.TempDir()
	kekFile := filepath.Join(dataDir, "kek")
	kek, err := envelope.OpenLocalKEK(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := chain.OpenMaster(ctx, filepath.Join(dataDir, chain.MasterFile), kek)
	if err != nil {
		t.Fatal(err)
	}
	cust, err := m.Custodian(ctx)
	if err != nil {
		t.Fatal(err)
	}
	registry, err := cust.Account(ctx, chain.RegistryIndex)
	if err != nil {
		t.Fatal(err)
	}
	w, err := newKillWorld(ctx, net, registry)
	if err != nil {
		t.Fatal(err)
	}

	pool, rebuilt := dbtest.New(t), dbtest.New(t)
	env := func(pool *pgxpool.Pool) []string {
		return []string{"DATABASE_URL=" + pool.Config().ConnString(), "MEDIMINT_DATA_DIR=" + dataDir, "MEDIMINT_KEK_FILE=" + kekFile,
			"HORIZON_URL=" + horizon, "NETWORK_PASSPHRASE=" + passphrase, "MEDIMINT_KMS_KEY_ID=", "MEDIMINT_LOG_LEVEL=info"}
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	type outcome struct {
		steps int
		err   error
	}
	work := make(chan outcome, 1)
	stopWork := make(chan struct{})
	go func() {
		steps, err := w.workload(ctx, stopWork, rand.New(rand.NewPCG(seed, 1)))
		work <- outcome{steps, err}
	}()
	t.Cleanup(func() {
		cancel()
		<-work
	})

	// Kill at random points, 12 times, while the workload runs.
	r := rand.New(rand.NewPCG(seed, 2))
	var kills, advanced int
	prev, err := cursorToken(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for kills < 12 {
		select {
		case o := <-work:
			t.Fatalf("workload ended early: %v", o.err)
		default:
		}
		x := proctest.Start(t, bin, env(pool), "watcher", "run")
		time.Sleep(time.Duration(50+r.IntN(1200)) * time.Millisecond)
		if x.Exited() {
			t.Fatalf("watcher run exited by itself (%v):\n%s", x.Err(), x.Log())
		}
		x.Kill(t)
		kills++
		cur, err := cursorToken(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if cur < prev {
			t.Fatalf("cursor went back from %d to %d after kill %d", prev, cur, kills)
		}
		if cur > prev {
			advanced++
		}
		prev = cur
	}
	close(stopWork)
	final := <-work
	work <- final // for the cleanup
	if final.err != nil {
		t.Fatalf("workload: %v", final.err)
	}
	if advanced == 0 {
		t.Fatalf("the cursor never advanced across %d kills", kills)
	}
	t.Logf("%d SIGKILLs during %d workload steps; the cursor advanced between %d of them", kills, final.steps, advanced)

	// Catch up to the chain's last transaction (the workload has stopped)
	// and stop cleanly.
	latest, err := net.Horizon(ctx).Transactions(horizonclient.TransactionRequest{Order: horizonclient.OrderDesc, Limit: 1})
	if err != nil || len(latest.Embedded.Records) != 1 {
		t.Fatalf("latest transaction: %v", err)
	}
	want, err := strconv.ParseInt(latest.Embedded.Records[0].PT, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	x := proctest.Start(t, bin, env(pool), "watcher", "run")
	// Past start-up, so that SIGTERM finds the signal handler installed.
	x.WaitLog(t, regexp.MustCompile(`watcher following the ledger`), 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := cursorToken(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if cur >= want {
			break
		}
		if x.Exited() || time.Now().After(deadline) {
			t.Fatalf("watcher did not catch up to %d (at %d):\n%s", want, cur, x.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	x.Terminate(t, 10*time.Second)

	// Every chain event audited once; the log's hash chain holds.
	var events, dups int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE category = 'chain'").Scan(&events); err != nil || events == 0 {
		t.Errorf("%d chain events audited (%v)", events, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT tx_hash, action, resource, detail FROM audit_log WHERE category = 'chain'
GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d`).Scan(&dups); err != nil || dups != 0 {
		t.Errorf("%d chain events audited twice (%v)", dups, err)
	}
	if _, err := access.VerifyAudit(ctx, pool); err != nil {
		t.Error(err)
	}

	// The same tables from chain history alone, by the CLI.
	rb := proctest.Start(t, bin, env(rebuilt), "watcher", "rebuild")
	select {
	case <-rb.Done():
		if rb.Err() != nil {
			t.Fatalf("watcher rebuild: %v\n%s", rb.Err(), rb.Log())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("watcher rebuild still running after 60s:\n%s", rb.Log())
	}
	incremental, err := wt.Dump(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	fromHistory, err := wt.Dump(ctx, rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if incremental != fromHistory {
		t.Errorf("tables after %d SIGKILLs differ from a rebuild:\n--- killed and restarted\n%s--- rebuild\n%s", kills, incremental, fromHistory)
	}
	if !strings.Contains(incremental, w.issuer.Address()) {
		t.Errorf("the tables do not know the issuer:\n%s", incremental)
	}
	t.Logf("tables: %d bytes, %d chain events audited", len(incremental), events)
}
