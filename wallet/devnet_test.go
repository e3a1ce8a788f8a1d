package wallet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// startNet runs a devnet and returns it as a Network, the way testnet
// would be configured (Horizon URL, passphrase, friendbot).
func startNet(t testing.TB) Network {
	t.Helper()
	url, dn := devnettest.Start(t)
	return Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"}
}

// newFundedSponsor funds a sponsor from friendbot and creates its channel
// accounts (0 XLM, sponsored).
func newFundedSponsor(t testing.TB, net Network, channels int, tweak func(*SponsorConfig)) *Sponsor {
	t.Helper()
	ctx := context.Background()
	key := keypair.MustRandom()
	if err := net.Fund(ctx, key.Address()); err != nil {
		t.Fatal(err)
	}
	var chans []*keypair.Full
	for range channels {
		chans = append(chans, keypair.MustRandom())
	}
	cfg := SponsorConfig{Network: net, Key: key, Channels: chans, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := NewSponsor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccounts(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	return s
}

func account(t testing.TB, net Network, addr string) horizon.Account {
	t.Helper()
	acc, err := net.Horizon(context.Background()).AccountDetail(horizonclient.AccountRequest{AccountID: addr})
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

func nativeBalance(t testing.TB, acc horizon.Account) string {
	t.Helper()
	b, err := acc.GetNativeBalance()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSponsorGasless: a user created with 0 XLM gets a sponsored data entry
// through a channel account, pays nothing, and the reserve goes back to
// the sponsor when the entry is removed.
func TestSponsorGasless(t *testing.T) {
	ctx := context.Background()
	net := startNet(t)
	s := newFundedSponsor(t, net, 2, nil)
	user := keypair.MustRandom()
	res, err := s.CreateAccounts(ctx, user, user)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("%d transactions for one new account", len(res))
	}
	// Existing accounts are skipped.
	if res, err := s.CreateAccounts(ctx, user); err != nil || len(res) != 0 {
		t.Fatalf("re-create: %v, %d", err, len(res))
	}
	before := account(t, net, s.Address()).NumSponsoring

	r, err := s.Submit(ctx, Submission{
		Operations: Sponsored(s.Address(), user.Address(), &txnbuild.ManageData{SourceAccount: user.Address(), Name: "k", Value: []byte("v")}),
		Signers:    []*keypair.Full{user},
		Memo:       txnbuild.MemoText("hello"),
	})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := net.Horizon(ctx).TransactionDetail(r.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if tx.FeeAccount != s.Address() || tx.InnerTransaction == nil {
		t.Errorf("fee account %s, want the sponsor via a fee bump", tx.FeeAccount)
	}
	acc := account(t, net, user.Address())
	if nativeBalance(t, acc) != "0.0000000" || string(acc.MustGetData("k")) != "v" {
		t.Errorf("user balance %s data %q", nativeBalance(t, acc), acc.MustGetData("k"))
	}
	if got := account(t, net, s.Address()).NumSponsoring; got != before+1 {
		t.Errorf("sponsor sponsors %d entries, want %d", got, before+1)
	}
	if _, err := s.Submit(ctx, Submission{
		Operations: []txnbuild.Operation{&txnbuild.ManageData{SourceAccount: user.Address(), Name: "k"}},
		Signers:    []*keypair.Full{user},
	}); err != nil {
		t.Fatal(err)
	}
	if got := account(t, net, s.Address()).NumSponsoring; got != before {
		t.Errorf("reserve not returned: sponsor sponsors %d, want %d", got, before)
	}
	if nativeBalance(t, account(t, net, user.Address())) != "0.0000000" {
		t.Error("user paid something")
	}
}

// TestSubmitFailures: an operation failing in the ledger consumes the
// sequence number (the channel stays usable); a refused envelope does not.
func TestSubmitFailures(t *testing.T) {
	ctx := context.Background()
	net := startNet(t)
	s := newFundedSponsor(t, net, 1, nil)
	user := keypair.MustRandom()
	// Deleting a missing entry fails in the ledger.
	_, err := s.Submit(ctx, Submission{
		Operations: []txnbuild.Operation{&txnbuild.ManageData{SourceAccount: s.Address(), Name: "missing"}},
	})
	var txErr *TxError
	if !errors.As(err, &txErr) || !txErr.Applied {
		t.Fatalf("got %v, want an applied TxError", err)
	}
	// A user who did not sign: refused, nothing applied.
	_, err = s.Submit(ctx, Submission{
		Operations: []txnbuild.Operation{&txnbuild.ManageData{SourceAccount: user.Address(), Name: "k", Value: []byte("v")}},
	})
	if !errors.As(err, &txErr) || txErr.Applied {
		t.Fatalf("got %v, want a refused TxError", err)
	}
	t.Log(txErr)
	// The channel still works.
	if _, err := s.Submit(ctx, Submission{
		Operations: []txnbuild.Operation{&txnbuild.BumpSequence{SourceAccount: s.Address(), BumpTo: 0}},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestResubmission exercises the never-twice rules against real sequence
// numbers.
func TestResubmission(t *testing.T) {
	ctx := context.Background()
	net := startNet(t)
	s := newFundedSponsor(t, net, 1, func(c *SponsorConfig) { c.TxTimeout = 5 * time.Second })
	op := func(name string) Submission {
		return Submission{Operations: []txnbuild.Operation{&txnbuild.ManageData{SourceAccount: s.Address(), Name: name, Value: []byte("1")}}}
	}
	if _, err := s.Submit(ctx, op("warm")); err != nil {
		t.Fatal(err)
	}

	t.Run("stale cached sequence is rebuilt", func(t *testing.T) {
		ch := <-s.pool
		ch.seq-- // as if another process used the channel
		s.pool <- ch
		r, err := s.Submit(ctx, op("stale"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Attempts != 2 {
			t.Errorf("%d attempts, want 2 (bad seq, then rebuilt)", r.Attempts)
		}
	})

	t.Run("applied envelope whose answer was lost is found by hash", func(t *testing.T) {
		ch := <-s.pool
		defer func() { s.pool <- ch }()
		fb, inner, err := s.build(ch, op("lost"), 100)
		if err != nil {
			t.Fatal(err)
		}
		// The first submission applies but we "lose" its answer.
		if _, err := net.Horizon(ctx).SubmitFeeBumpTransaction(fb); err != nil {
			t.Fatal(err)
		}
		out, res, err := s.settle(ctx, fb, inner)
		if out != applied || err != nil || res.Ledger == 0 {
			t.Fatalf("outcome %v %v %+v, want applied", out, err, res)
		}
		ch.seq = inner.SequenceNumber()
		// Rebuilding it under the next sequence number would apply it
		// twice; the channel's next transaction instead succeeds normally.
	})

	t.Run("envelope sequenced ahead waits for expiry", func(t *testing.T) {
		ch := <-s.pool
		ch.seq += 5 // ahead of the account: could apply later
		s.pool <- ch
		start := time.Now()
		r, err := s.Submit(ctx, op("ahead"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Attempts != 2 {
			t.Errorf("%d attempts, want 2", r.Attempts)
		}
		if time.Since(start) < 4*time.Second {
			t.Errorf("rebuilt after %v, before the first envelope expired", time.Since(start))
		}
	})
}

// TestChannelsInParallel submits concurrently through several channel
// accounts.
func TestChannelsInParallel(t *testing.T) {
	ctx := context.Background()
	net := startNet(t)
	s := newFundedSponsor(t, net, 4, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Submit(ctx, Submission{Operations: []txnbuild.Operation{
				&txnbuild.ManageData{SourceAccount: s.Address(), Name: fmt.Sprintf("k%d", i), Value: []byte("v")}}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := len(account(t, net, s.Address()).Data); got != 16 {
		t.Errorf("%d data entries, want 16", got)
	}
}

// TestSubmitSigned: a bring-your-own-key user signs client-side; we verify
// and fee-bump.
func TestSubmitSigned(t *testing.T) {
	ctx := context.Background()
	net := startNet(t)
	s := newFundedSponsor(t, net, 0, nil)
	user := keypair.MustRandom()
	if _, err := s.CreateAccounts(ctx, user); err != nil {
		t.Fatal(err)
	}
	clientTx := func(signers ...*keypair.Full) string {
		acc := account(t, net, user.Address())
		tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
			SourceAccount:        &acc,
			IncrementSequenceNum: true,
			Operations:           Sponsored(s.Address(), user.Address(), &txnbuild.ManageData{SourceAccount: user.Address(), Name: "byok", Value: []byte("1")}),
			BaseFee:              txnbuild.MinBaseFee,
			Preconditions:        txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(60)},
		})
		if err != nil {
			t.Fatal(err)
		}
		tx, _ = tx.Sign(net.Passphrase, signers...)
		b64, _ := tx.Base64()
		return b64
	}
	approve := func(*txnbuild.Transaction) error { return nil }
	refuse := func(*txnbuild.Transaction) error { return errors.New("not today") }
	if _, err := s.SubmitSigned(ctx, clientTx(), approve); err == nil {
		t.Error("unsigned client transaction accepted")
	}
	if _, err := s.SubmitSigned(ctx, clientTx(keypair.MustRandom()), approve); err == nil {
		t.Error("transaction signed by someone else accepted")
	}
	if _, err := s.SubmitSigned(ctx, clientTx(user), nil); err == nil {
		t.Error("sponsor operations accepted without a policy")
	}
	if _, err := s.SubmitSigned(ctx, clientTx(user), refuse); err == nil {
		t.Error("policy refusal ignored")
	}
	if _, err := s.SubmitSigned(ctx, "garbage", approve); err == nil {
		t.Error("garbage accepted")
	}
	r, err := s.SubmitSigned(ctx, clientTx(user), approve)
	if err != nil {
		t.Fatal(err)
	}
	acc := account(t, net, user.Address())
	if string(acc.MustGetData("byok")) != "1" || nativeBalance(t, acc) != "0.0000000" {
		t.Errorf("client transaction %s not applied for free", r.Hash)
	}
	if u := net.TxURL(r.Hash); u != net.HorizonURL+"/transactions/"+r.Hash {
		t.Errorf("devnet link %s", u)
	}
}

// TestSEP10Verify runs the SEP-10 round trip against accounts on the
// ledger: a missing account must be signed by its master key, an existing
// one by signers meeting its medium threshold.
func TestSEP10Verify(t *testing.T) {
	ctx := context.Background()
	net := startNet(t)
	s := newFundedSponsor(t, net, 0, nil)
	a := &Authenticator{Network: net, Server: keypair.MustRandom(), HomeDomain: "medimint.example", WebAuthDomain: "auth.medimint.example"}

	fresh := keypair.MustRandom()
	multi, cosigner := keypair.MustRandom(), keypair.MustRandom()
	if _, err := s.CreateAccounts(ctx, multi); err != nil {
		t.Fatal(err)
	}
	two := txnbuild.Threshold(2)
	if _, err := s.Submit(ctx, Submission{
		Operations: Sponsored(s.Address(), multi.Address(), &txnbuild.SetOptions{SourceAccount: multi.Address(),
			Signer: &txnbuild.Signer{Address: cosigner.Address(), Weight: 1}, MediumThreshold: &two}),
		Signers: []*keypair.Full{multi},
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		client  *keypair.Full
		signers []*keypair.Full
		exists  bool
		ok      bool
	}{
		{"missing account, master key", fresh, []*keypair.Full{fresh}, false, true},
		{"missing account, other key", fresh, []*keypair.Full{cosigner}, false, false},
		{"existing, below medium threshold", multi, []*keypair.Full{multi}, true, false},
		{"existing, meets medium threshold", multi, []*keypair.Full{multi, cosigner}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := a.Challenge(tt.client.Address(), nil)
			if err != nil {
				t.Fatal(err)
			}
			v, err := a.Verify(ctx, signChallenge(t, a, ch, tt.signers...))
			if !tt.ok {
				if err == nil {
					t.Fatal("verified")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Account != tt.client.Address() || v.Exists != tt.exists || len(v.Signers) != len(tt.signers) {
				t.Errorf("verified %+v", v)
			}
		})
	}
}

// lossy forwards requests to the devnet but answers the first n
// transaction submissions with a 504, either after forwarding them (the
// envelope applied, the answer was lost) or without (it never arrived).
type lossy struct {
	base    http.RoundTripper
	forward bool
	mu      sync.Mutex
	n       int
	until   time.Time // also drop every submission before this
}

func (l *lossy) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	drop := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/transactions") && (l.n > 0 || time.Now().Before(l.until))
	if drop {
		l.n--
	}
	l.mu.Unlock()
	if !drop {
		return l.base.RoundTrip(r)
	}
	if l.forward {
		resp, err := l.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
	}
	body := `{"type":"https://stellar.org/horizon-errors/timeout","title":"Timeout","status":504}`
	return &http.Response{StatusCode: http.StatusGatewayTimeout, Status: "504 Gateway Timeout", Request: r,
		Header: http.Header{"Content-Type": {"application/problem+json"}}, Body: io.NopCloser(strings.NewReader(body))}, nil
}

// TestSubmitTimeouts: a 504 never leads to a second application: the
// envelope is looked up by hash and resubmitted as is.
func TestSubmitTimeouts(t *testing.T) {
	ctx := context.Background()
	net := startNet(t)
	for _, tt := range []struct {
		name    string
		forward bool
	}{{"applied, answer lost", true}, {"never arrived", false}} {
		t.Run(tt.name, func(t *testing.T) {
			l := &lossy{base: http.DefaultTransport, forward: tt.forward, n: 2}
			lnet := net
			lnet.HTTP = &http.Client{Transport: l}
			s := newFundedSponsor(t, net, 1, nil)
			s.net = lnet
			name := "t" + fmt.Sprint(tt.forward)
			r, err := s.Submit(ctx, Submission{Operations: []txnbuild.Operation{
				&txnbuild.ManageData{SourceAccount: s.Address(), Name: name, Value: []byte("1")}}})
			if err != nil {
				t.Fatal(err)
			}
			if r.Attempts != 1 || r.Ledger == 0 {
				t.Errorf("result %+v, want one build", r)
			}
			// Exactly one application: the channel's sequence moved by one.
			ch := <-s.pool
			seq, err := s.sequence(ctx, ch.kp.Address())
			s.pool <- ch
			if err != nil || seq != ch.seq {
				t.Errorf("channel at %d, cached %d (%v)", seq, ch.seq, err)
			}
		})
	}
}

// TestSubmitTimeoutUntilExpiry: an envelope that never gets through is
// rebuilt only after a ledger closed past its time bounds without it.
func TestSubmitTimeoutUntilExpiry(t *testing.T) {
	ctx := context.Background()
	net := startNet(t)
	s := newFundedSponsor(t, net, 1, func(c *SponsorConfig) { c.TxTimeout = 5 * time.Second })
	l := &lossy{base: http.DefaultTransport, until: time.Now().Add(6 * time.Second)}
	s.net.HTTP = &http.Client{Transport: l}
	r, err := s.Submit(ctx, Submission{Operations: []txnbuild.Operation{
		&txnbuild.ManageData{SourceAccount: s.Address(), Name: "late", Value: []byte("1")}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Attempts != 2 {
		t.Errorf("%d attempts, want 2 (expired, rebuilt)", r.Attempts)
	}
}

// TestBaseFee follows /fee_stats: at least the network's base fee, at most
// the configured cap, whichever percentile is chosen.
func TestBaseFee(t *testing.T) {
	ctx := context.Background()
	url, dn := devnettest.Start(t, devnettest.WithConfig(func(c *devnet.Config) { c.BaseFee = 300 }))
	net := Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"}
	tests := []struct {
		name       string
		percentile int
		cap        int64
		want       int64
	}{
		{"network base fee", 70, 0, 300},
		{"capped", 99, 200, 200},
		{"p10", 10, 1000, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSponsor(SponsorConfig{Network: net, Key: keypair.MustRandom(), FeePercentile: tt.percentile, MaxBaseFee: tt.cap})
			if err != nil {
				t.Fatal(err)
			}
			fee, err := s.BaseFee(ctx)
			if err != nil || fee != tt.want {
				t.Errorf("fee %d (%v), want %d", fee, err, tt.want)
			}
		})
	}
	s := newFundedSponsor(t, net, 1, func(c *SponsorConfig) { c.MaxBaseFee = 500 })
	r, err := s.Submit(ctx, Submission{Operations: []txnbuild.Operation{&txnbuild.BumpSequence{SourceAccount: s.Address()}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.FeeCharged != 600 { // 300 per operation, the bump counting as one
		t.Errorf("fee charged %d, want 600", r.FeeCharged)
	}
}

// TestUnknownOutcome: when the context ends while the outcome is unknown,
// Submit says so and names the envelope to look up.
func TestUnknownOutcome(t *testing.T) {
	net := startNet(t)
	s := newFundedSponsor(t, net, 1, nil)
	s.net.HTTP = &http.Client{Transport: &lossy{base: http.DefaultTransport, n: 1 << 30}}
	ctx, cancel := context.WithCancel(context.Background())
	s.log = slog.New(cancelOnLog{slog.NewTextHandler(io.Discard, nil), cancel})
	_, err := s.Submit(ctx, Submission{Operations: []txnbuild.Operation{&txnbuild.BumpSequence{SourceAccount: s.Address()}}})
	var unk *UnknownOutcomeError
	if !errors.As(err, &unk) || unk.Hash == "" || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want UnknownOutcomeError", err)
	}
}

// cancelOnLog cancels a context when the sponsor logs (its first warning
// about an unknown outcome), to end a Submit at that point without timing.
type cancelOnLog struct {
	slog.Handler
	cancel context.CancelFunc
}

func (h cancelOnLog) Handle(ctx context.Context, r slog.Record) error {
	h.cancel()
	return h.Handler.Handle(ctx, r)
}
