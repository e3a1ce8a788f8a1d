package contracts_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"

	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/wallet"
)

// world is a devnet with Medimint's accounts on it.
type world struct {
	t         testing.TB
	net       wallet.Network
	sponsor   *wallet.Sponsor
	registry  *keypair.Full
	governors []*keypair.Full
	issuer    *keypair.Full
	keys      map[string][]*keypair.Full // account → keys that sign for it
}

func newWorld(t testing.TB, channels int) *world {
	t.Helper()
	ctx := context.Background()
	url, dn := devnettest.Start(t)
	net := wallet.Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"}
	sk := keypair.MustRandom()
	if err := net.Fund(ctx, sk.Address()); err != nil {
		t.Fatal(err)
	}
	var chans []*keypair.Full
	for range channels {
		chans = append(chans, keypair.MustRandom())
	}
	s, err := wallet.NewSponsor(wallet.SponsorConfig{Network: net, Key: sk, Channels: chans, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, net: net, sponsor: s, registry: keypair.MustRandom(), issuer: keypair.MustRandom(),
		governors: []*keypair.Full{keypair.MustRandom(), keypair.MustRandom(), keypair.MustRandom()},
		keys:      map[string][]*keypair.Full{}}
	w.keys[w.registry.Address()] = []*keypair.Full{w.registry}
	w.keys[w.issuer.Address()] = []*keypair.Full{w.issuer}
	if _, err := s.CreateAccounts(ctx, append(chans, w.registry, w.issuer)...); err != nil {
		t.Fatal(err)
	}
	govs := []string{w.governors[0].Address(), w.governors[1].Address(), w.governors[2].Address()}
	w.submit(must(contracts.SetupRegistry(s.Address(), w.registry.Address(), govs, 2)))
	// From now on two of the three governors sign for the registry.
	w.keys[w.registry.Address()] = w.governors[:2]
	w.submit(must(contracts.SetupIssuer(w.issuer.Address(), "hospital.example")))
	w.submit(must(contracts.AddIssuer(s.Address(), w.registry.Address(), w.issuer.Address(), "hospital.example")))
	return w
}

func (w *world) patient() *keypair.Full {
	w.t.Helper()
	kp := keypair.MustRandom()
	if _, err := w.sponsor.CreateAccounts(context.Background(), kp); err != nil {
		w.t.Fatal(err)
	}
	w.keys[kp.Address()] = []*keypair.Full{kp}
	return kp
}

func (w *world) try(d contracts.Draft) (wallet.Result, error) {
	var signers []*keypair.Full
	for _, a := range d.Signers {
		signers = append(signers, w.keys[a]...)
	}
	return w.sponsor.Submit(context.Background(), wallet.Submission{Operations: d.Operations, Memo: d.Memo, Signers: signers})
}

func (w *world) submit(d contracts.Draft) wallet.Result {
	w.t.Helper()
	r, err := w.try(d)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) account(addr string) horizon.Account {
	w.t.Helper()
	acc, err := w.net.Horizon(context.Background()).AccountDetail(horizonclient.AccountRequest{AccountID: addr})
	if err != nil {
		w.t.Fatal(err)
	}
	return acc
}

func (w *world) xlm(addr string) string {
	w.t.Helper()
	b, err := w.account(addr).GetNativeBalance()
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// replay reads the whole history from Horizon and folds it through
// Interpret into a fresh Index: the state from chain data alone.
func (w *world) replay() *contracts.Index {
	w.t.Helper()
	hz := w.net.Horizon(context.Background())
	x := contracts.NewIndex(w.registry.Address())
	page, err := hz.Transactions(horizonclient.TransactionRequest{Order: horizonclient.OrderAsc, Limit: 200})
	for err == nil && len(page.Embedded.Records) > 0 {
		for _, tx := range page.Embedded.Records {
			if !tx.Successful {
				continue
			}
			evs, err := contracts.Interpret(contracts.Transaction{Hash: tx.Hash, Ledger: tx.Ledger, CreatedAt: tx.LedgerCloseTime,
				EnvelopeXDR: tx.EnvelopeXdr, ResultXDR: tx.ResultXdr})
			if err != nil {
				w.t.Fatal(err)
			}
			if err := x.Apply(evs...); err != nil {
				w.t.Logf("replay: %v", err)
			}
		}
		page, err = hz.NextTransactionsPage(page)
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return x
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func metadataCID(i int) string {
	mh := must(multihash.Sum([]byte(fmt.Sprintf(`{"study":%d,"modality":"CT"}`, i)), multihash.SHA2_256, -1))
	return cid.NewCidV1(cid.Raw, mh).String()
}

// TestEndToEnd runs the protocol on a devnet: sponsor, multisig registry,
// organisation issuer, patients with 0 XLM; a batch mint; grant and
// revoke (reserve back to the sponsor); request and answer; escrow and
// claim; transfer. Everything is fee-bumped by the sponsor; the patients
// never hold XLM. Then the index is rebuilt from chain data alone.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2)
	s := w.sponsor
	alice, bob, doctor := w.patient(), w.patient(), w.patient()
	salt := []byte("hospital secret salt")

	var mints []contracts.Mint
	for i := range 5 {
		mints = append(mints, contracts.Mint{StudyHash: contracts.StudyHash(salt, fmt.Sprintf("1.2.840.99.%d", i)),
			CID: metadataCID(i), Holder: alice.Address()})
	}
	// Bob signs with his own keys: his study waits in escrow.
	mints = append(mints, contracts.Mint{StudyHash: contracts.StudyHash(salt, "1.2.840.99.bob"), CID: metadataCID(99),
		Holder: bob.Address(), Escrow: true})
	drafts := must(contracts.MintBatches(s.Address(), w.issuer.Address(), mints))
	if len(drafts) != 1 {
		t.Fatalf("%d transactions for 6 studies", len(drafts))
	}
	w.submit(drafts[0])
	tok := mints[0].Token(w.issuer.Address())
	bobTok := mints[5].Token(w.issuer.Address())

	// Before retrying, a minter finds the earlier mint on chain.
	for _, m := range mints {
		done, err := w.net.IssuedTo(ctx, m.Holder, m.Token(w.issuer.Address()).Code, w.issuer.Address())
		if err != nil || !done {
			t.Fatalf("mint of %s not found on chain: %v", m.Token(w.issuer.Address()), err)
		}
	}
	// Minting again to the same holder fails on chain: the trustline's
	// limit is one stroop.
	again := must(contracts.MintBatches(s.Address(), w.issuer.Address(), []contracts.Mint{{StudyHash: mints[0].StudyHash,
		CID: mints[0].CID, Holder: alice.Address(), HasTrustline: true}}))
	var txErr *wallet.TxError
	if _, err := w.try(again[0]); !errors.As(err, &txErr) || !txErr.Applied {
		t.Fatalf("second mint: %v, want failed in ledger", err)
	}

	bal, line, err := w.net.Holding(ctx, alice.Address(), tok.Code, tok.Issuer)
	if err != nil || !line || bal != 1 {
		t.Fatalf("alice holds %d (trustline %v, %v)", bal, line, err)
	}

	// Grant and revoke: the grant's reserve goes back to the sponsor.
	sponsoring := w.account(s.Address()).NumSponsoring
	exp := time.Now().Add(24 * time.Hour)
	w.submit(must(contracts.GrantAccess(s.Address(), contracts.Grant{Token: tok, Holder: alice.Address(), Grantee: doctor.Address(),
		Expires: exp, Scope: contracts.ScopeQuery | contracts.ScopeRetrieve})))
	if got := w.account(s.Address()).NumSponsoring; got != sponsoring+1 {
		t.Fatalf("grant: sponsor sponsors %d, want %d", got, sponsoring+1)
	}
	if x := w.replay(); !x.Allowed(tok, doctor.Address(), contracts.ScopeRetrieve, time.Now()) {
		t.Fatal("grant not visible on chain")
	}
	w.submit(must(contracts.RevokeAccess(alice.Address(), tok.Code, doctor.Address())))
	if got := w.account(s.Address()).NumSponsoring; got != sponsoring {
		t.Fatalf("revoke: sponsor sponsors %d, want %d (reserve returned)", got, sponsoring)
	}

	// The doctor asks; Alice approves.
	req := w.submit(must(contracts.RequestAccess(s.Address(), contracts.Request{Token: tok, Requester: doctor.Address(),
		Scope: contracts.ScopeRetrieve, Until: exp})))
	var reqTx [32]byte
	copy(reqTx[:], must(hex.DecodeString(req.Hash)))
	w.submit(must(contracts.AnswerAccess(s.Address(), contracts.Answer{Token: tok, Holder: alice.Address(), Requester: doctor.Address(),
		RequestTx: reqTx, Grant: &contracts.Grant{Expires: exp, Scope: contracts.ScopeRetrieve}})))

	// Bob claims his escrowed study.
	ids, err := w.net.Escrowed(ctx, bob.Address(), bobTok.Code, bobTok.Issuer)
	if err != nil || len(ids) != 1 {
		t.Fatalf("escrow: %v %v", ids, err)
	}
	w.submit(contracts.ClaimRecord(s.Address(), bobTok, bob.Address(), ids[0]))

	// Alice transfers her first study to Bob; her grant is cleaned up.
	w.submit(must(contracts.TransferRecord(s.Address(), contracts.Transfer{Token: tok, From: alice.Address(), To: bob.Address(),
		Grantees: []string{doctor.Address()}})))
	if _, line, _ := w.net.Holding(ctx, alice.Address(), tok.Code, tok.Issuer); line {
		t.Error("alice kept her trustline")
	}
	if bal, _, _ := w.net.Holding(ctx, bob.Address(), tok.Code, tok.Issuer); bal != 1 {
		t.Errorf("bob holds %d stroops", bal)
	}

	for _, p := range []*keypair.Full{alice, bob, doctor} {
		if b := w.xlm(p.Address()); b != "0.0000000" {
			t.Errorf("%s holds %s XLM", p.Address(), b)
		}
	}

	// Everything above, from chain data alone.
	x := w.replay()
	for i, m := range mints {
		r, ok := x.ByStudy(m.StudyHash)
		if !ok || r.CID != m.CID || r.Token != m.Token(w.issuer.Address()) {
			t.Errorf("study %d: %+v", i, r)
		}
	}
	if r, _ := x.Record(tok); r.Holder != bob.Address() {
		t.Errorf("holder %s, want bob", r.Holder)
	}
	if x.Allowed(tok, doctor.Address(), contracts.ScopeRetrieve, time.Now()) {
		t.Error("alice's grant survives the transfer")
	}
	if len(x.Pending(tok)) != 0 {
		t.Error("answered request still pending")
	}
	// Each mint transaction in the batch was Interpret-able and the study
	// hash is all that identifies the study on chain.
	if _, ok := x.Trusted(w.issuer.Address()); !ok {
		t.Error("issuer not trusted after replay")
	}
}

// BenchmarkMint measures minting throughput (studies per minute) through
// 1 and 4 channel accounts, batches of 10 studies per patient.
func BenchmarkMint(b *testing.B) {
	for _, channels := range []int{1, 4} {
		b.Run(fmt.Sprintf("channels=%d", channels), func(b *testing.B) {
			w := newWorld(b, channels)
			var patients []*keypair.Full
			for range 2 * channels {
				patients = append(patients, w.patient())
			}
			const perBatch = 10
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for g := range channels {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1) - 1
						if n >= int64(b.N) {
							return
						}
						var ms []contracts.Mint
						for i := range perBatch {
							ms = append(ms, contracts.Mint{StudyHash: contracts.StudyHash(nil, fmt.Sprintf("%d.%d", n, i)),
								CID: metadataCID(int(n)*perBatch + i), Holder: patients[(int(n)+g)%len(patients)].Address()})
						}
						ds, err := contracts.MintBatches(w.sponsor.Address(), w.issuer.Address(), ms)
						if err != nil {
							b.Error(err)
							return
						}
						for _, d := range ds {
							if _, err := w.try(d); err != nil {
								b.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*perBatch)/time.Since(start).Minutes(), "studies/min")
		})
	}
}
