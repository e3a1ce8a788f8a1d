package devnet_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/strkey"
	"github.com/stellar/go-stellar-sdk/toid"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

func TestMultisigThresholds(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(2)
	a, dest := kps[0], kps[1]
	s1, s2 := keypair.MustRandom(), keypair.MustRandom()
	h.mustSubmit(a, []txnbuild.Operation{
		&txnbuild.SetOptions{Signer: &txnbuild.Signer{Address: s1.Address(), Weight: 1}},
		&txnbuild.SetOptions{Signer: &txnbuild.Signer{Address: s2.Address(), Weight: 2}},
		&txnbuild.SetOptions{
			MasterWeight: txnbuild.NewThreshold(1), LowThreshold: txnbuild.NewThreshold(1),
			MediumThreshold: txnbuild.NewThreshold(2), HighThreshold: txnbuild.NewThreshold(3),
		},
	})
	acc := h.account(a.Address())
	if acc.Thresholds != (hProtocol.AccountThresholds{LowThreshold: 1, MedThreshold: 2, HighThreshold: 3}) {
		t.Fatalf("thresholds = %+v", acc.Thresholds)
	}
	if got := acc.SignerSummary(); got[s1.Address()] != 1 || got[s2.Address()] != 2 || got[a.Address()] != 1 || len(got) != 3 {
		t.Fatalf("signers = %v", got)
	}
	if acc.SubentryCount != 2 {
		t.Fatalf("subentry_count = %d, want 2 (signers are subentries)", acc.SubentryCount)
	}

	pay := []txnbuild.Operation{native("1", dest.Address())}
	raiseHigh := []txnbuild.Operation{&txnbuild.SetOptions{HighThreshold: txnbuild.NewThreshold(3)}}
	tests := []struct {
		name    string
		ops     []txnbuild.Operation
		signers []*keypair.Full
		tx      string
		ops_    []string
	}{
		{"medium op, master only (1 < 2)", pay, []*keypair.Full{a}, "tx_failed", []string{"op_bad_auth"}},
		{"medium op, master + s1 (2)", pay, []*keypair.Full{a, s1}, "", nil},
		{"medium op, s2 alone (2)", pay, []*keypair.Full{s2}, "", nil},
		{"medium op, s1 alone: low threshold met, medium not", pay, []*keypair.Full{s1}, "tx_failed", []string{"op_bad_auth"}},
		// stellar-core stops counting once the threshold is met, so the
		// master's signature after s2 is never used.
		{"medium op, s2 then master: extra signature", pay, []*keypair.Full{s2, a}, "tx_bad_auth_extra", nil},
		{"high op, master + s1 (2 < 3)", raiseHigh, []*keypair.Full{a, s1}, "tx_failed", []string{"op_bad_auth"}},
		{"high op, all (4)", raiseHigh, []*keypair.Full{a, s1, s2}, "", nil},
		{"nobody", pay, nil, "tx_bad_auth", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := h.build(ptr(h.account(a.Address())), tc.ops, nil)
			if len(tc.signers) > 0 {
				tx = sign(t, h, tx, tc.signers...)
			}
			_, err := h.c.SubmitTransaction(tx)
			if tc.tx == "" {
				if err != nil {
					t.Fatalf("submit: %v %v", err, codes(err))
				}
				return
			}
			rc := codes(err)
			if rc == nil || rc.TransactionCode != tc.tx || !slices.Equal(rc.OperationCodes, tc.ops_) {
				t.Fatalf("codes = %+v, want %s %v", rc, tc.tx, tc.ops_)
			}
		})
	}

	t.Run("pre-authorized transaction", func(t *testing.T) {
		acc := h.account(a.Address())
		acc.Sequence++ // the transaction after the one adding the signer
		future := h.build(&acc, pay, nil)
		hash, err := future.Hash(h.n.Passphrase())
		if err != nil {
			t.Fatal(err)
		}
		preauth, _ := strkey.Encode(strkey.VersionByteHashTx, hash[:])
		h.mustSubmit(a, []txnbuild.Operation{&txnbuild.SetOptions{Signer: &txnbuild.Signer{Address: preauth, Weight: 2}}}, a, s1, s2)
		if _, err := h.c.SubmitTransaction(future); err != nil { // no signatures at all
			t.Fatalf("pre-authorized transaction: %v %v", err, codes(err))
		}
		if _, ok := ptr(h.account(a.Address())).SignerSummary()[preauth]; ok {
			t.Fatal("pre-auth signer not removed after use")
		}
	})
	t.Run("hash(x) signer", func(t *testing.T) {
		preimage := []byte("medimint devnet hash-x preimage")
		x := sha256.Sum256(preimage)
		hx, _ := strkey.Encode(strkey.VersionByteHashX, x[:])
		h.mustSubmit(a, []txnbuild.Operation{&txnbuild.SetOptions{Signer: &txnbuild.Signer{Address: hx, Weight: 2}}}, a, s1, s2)
		tx, err := h.build(ptr(h.account(a.Address())), pay, nil).SignHashX(preimage)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.c.SubmitTransaction(tx); err != nil {
			t.Fatalf("hash(x)-signed transaction: %v %v", err, codes(err))
		}
	})
}

func TestSponsorshipAccounting(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(3)
	sponsor, issuer, sponsor2 := kps[0], kps[1], kps[2]
	newbie, extraSigner := keypair.MustRandom(), keypair.MustRandom()
	usd := txnbuild.CreditAsset{Code: "USD", Issuer: issuer.Address()}
	sponsorBefore := nativeBalance(t, h.account(sponsor.Address()))

	// CAP-33 sandwich: the sponsor pays every reserve of a new account
	// that starts with nothing.
	resp := h.mustSubmit(sponsor, []txnbuild.Operation{
		&txnbuild.BeginSponsoringFutureReserves{SponsoredID: newbie.Address()},
		&txnbuild.CreateAccount{Destination: newbie.Address(), Amount: "0"},
		changeTrustFrom(t, newbie, usd, "1000"),
		&txnbuild.ManageData{SourceAccount: newbie.Address(), Name: "patient", Value: []byte("nft-1")},
		&txnbuild.SetOptions{SourceAccount: newbie.Address(), Signer: &txnbuild.Signer{Address: extraSigner.Address(), Weight: 1}},
		&txnbuild.EndSponsoringFutureReserves{SourceAccount: newbie.Address()},
	}, sponsor, newbie)

	sp, nb := h.account(sponsor.Address()), h.account(newbie.Address())
	if sp.NumSponsoring != 5 || nb.NumSponsored != 5 || nb.SubentryCount != 3 || nb.Sponsor != sponsor.Address() {
		t.Fatalf("sponsoring=%d sponsored=%d subentries=%d sponsor=%q, want 5 5 3 sponsor", sp.NumSponsoring, nb.NumSponsored, nb.SubentryCount, nb.Sponsor)
	}
	if got := nativeBalance(t, sp); got != sponsorBefore-resp.FeeCharged {
		t.Fatalf("sponsor paid %d, want only the fee %d (reserves are locked, not spent)", sponsorBefore-got, resp.FeeCharged)
	}
	if nb.Balances[0].Sponsor != sponsor.Address() {
		t.Fatalf("trust line sponsor = %q", nb.Balances[0].Sponsor)
	}
	data, err := h.c.AccountData(horizonclient.AccountRequest{AccountID: newbie.Address(), DataKey: "patient"})
	if err != nil || data.Sponsor != sponsor.Address() {
		t.Fatalf("data = %+v, %v", data, err)
	}
	for _, s := range nb.Signers {
		if s.Key == extraSigner.Address() && s.Sponsor != sponsor.Address() {
			t.Fatalf("signer sponsor = %q", s.Sponsor)
		}
	}
	// The sponsor's own reserve now counts the 5 it sponsors: 7 x 0.5 XLM.
	// Spending below that fails.
	spendable := nativeBalance(t, sp) - 7*5_000_000
	_, err = h.submit(sponsor, []txnbuild.Operation{&txnbuild.Payment{Destination: issuer.Address(), Amount: amountString(spendable + 1), Asset: txnbuild.NativeAsset{}}})
	if rc := codes(err); rc == nil || !slices.Equal(rc.OperationCodes, []string{"op_underfunded"}) {
		t.Fatalf("spending sponsored reserves: %v", rc)
	}

	// Revoking needs the owner to afford the reserve it takes back.
	revokeData := &txnbuild.RevokeSponsorship{SponsorshipType: txnbuild.RevokeSponsorshipTypeData,
		Data: &txnbuild.DataID{Account: newbie.Address(), DataName: "patient"}}
	_, err = h.submit(sponsor, []txnbuild.Operation{revokeData})
	if rc := codes(err); rc == nil || !slices.Equal(rc.OperationCodes, []string{"op_low_reserve"}) {
		t.Fatalf("revoke without owner reserve: %v", rc)
	}
	h.mustSubmit(sponsor, []txnbuild.Operation{native("10", newbie.Address())})
	h.mustSubmit(sponsor, []txnbuild.Operation{revokeData})
	sp, nb = h.account(sponsor.Address()), h.account(newbie.Address())
	if sp.NumSponsoring != 4 || nb.NumSponsored != 4 {
		t.Fatalf("after revoke: sponsoring=%d sponsored=%d, want 4 4", sp.NumSponsoring, nb.NumSponsored)
	}
	if data, _ := h.c.AccountData(horizonclient.AccountRequest{AccountID: newbie.Address(), DataKey: "patient"}); data.Sponsor != "" {
		t.Fatalf("data still sponsored by %q", data.Sponsor)
	}

	// Revoking inside the new sponsor's sandwich transfers the sponsorship.
	h.mustSubmit(sponsor2, []txnbuild.Operation{
		&txnbuild.BeginSponsoringFutureReserves{SponsoredID: sponsor.Address()},
		&txnbuild.RevokeSponsorship{SourceAccount: sponsor.Address(), SponsorshipType: txnbuild.RevokeSponsorshipTypeTrustLine,
			TrustLine: &txnbuild.TrustLineID{Account: newbie.Address(), Asset: usd.MustToTrustLineAsset()}},
		&txnbuild.EndSponsoringFutureReserves{SourceAccount: sponsor.Address()},
	}, sponsor2, sponsor)
	sp, nb, sp2 := h.account(sponsor.Address()), h.account(newbie.Address()), h.account(sponsor2.Address())
	if sp.NumSponsoring != 3 || sp2.NumSponsoring != 1 || nb.NumSponsored != 4 || nb.Balances[0].Sponsor != sponsor2.Address() {
		t.Fatalf("after transfer: %d %d %d %q", sp.NumSponsoring, sp2.NumSponsoring, nb.NumSponsored, nb.Balances[0].Sponsor)
	}

	// A sponsor cannot leave while it sponsors.
	_, err = h.submit(sponsor, []txnbuild.Operation{&txnbuild.AccountMerge{Destination: issuer.Address()}})
	if rc := codes(err); rc == nil || !slices.Equal(rc.OperationCodes, []string{"op_is_sponsor"}) {
		t.Fatalf("merging a sponsor: %v", rc)
	}

	// Effects record the sponsorship changes.
	page, err := h.c.Effects(horizonclient.EffectRequest{ForAccount: newbie.Address(), Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range page.Embedded.Records {
		types = append(types, e.GetType())
	}
	for _, want := range []string{"account_created", "account_sponsorship_created", "trustline_sponsorship_created",
		"data_sponsorship_created", "signer_sponsorship_created", "data_sponsorship_removed", "trustline_sponsorship_updated"} {
		if !slices.Contains(types, want) {
			t.Errorf("effects %v lack %s", types, want)
		}
	}
}

func changeTrustFrom(t testing.TB, src *keypair.Full, a txnbuild.CreditAsset, limit string) *txnbuild.ChangeTrust {
	ct := changeTrust(t, a, limit)
	ct.SourceAccount = src.Address()
	return ct
}

func amountString(v int64) string {
	return strconv.FormatInt(v/1e7, 10) + "." + strconv.FormatInt(1e7+v%1e7, 10)[1:]
}

func TestFeeBump(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(3)
	user, payer, dest := kps[0], kps[1], kps[2]
	userBefore, payerBefore := nativeBalance(t, h.account(user.Address())), nativeBalance(t, h.account(payer.Address()))
	inner := sign(t, h, h.build(ptr(h.account(user.Address())), []txnbuild.Operation{native("5", dest.Address())}, nil), user)
	fb := feeBump(t, h, inner, payer, 1000)
	resp, err := h.c.SubmitFeeBumpTransaction(fb)
	if err != nil {
		t.Fatalf("fee bump: %v %v", err, codes(err))
	}
	innerHash, _ := inner.HashHex(h.n.Passphrase())
	outerHash, _ := fb.HashHex(h.n.Passphrase())
	if resp.Hash != outerHash || resp.FeeAccount != payer.Address() || resp.Account != user.Address() ||
		resp.InnerTransaction == nil || resp.InnerTransaction.Hash != innerHash || resp.FeeBumpTransaction.Hash != outerHash {
		t.Fatalf("response = %+v", resp)
	}
	// Two "operations" (the payment and the bump) at the 100 stroop base fee.
	if resp.FeeCharged != 200 || resp.MaxFee != 2000 {
		t.Fatalf("fee_charged=%d max_fee=%d", resp.FeeCharged, resp.MaxFee)
	}
	if got := nativeBalance(t, h.account(user.Address())); got != userBefore-5e7 {
		t.Fatalf("user paid %d, want only the payment", userBefore-got)
	}
	if got := nativeBalance(t, h.account(payer.Address())); got != payerBefore-200 {
		t.Fatalf("payer paid %d", payerBefore-got)
	}
	var res xdr.TransactionResult
	if err := xdr.SafeUnmarshalBase64(resp.ResultXdr, &res); err != nil {
		t.Fatal(err)
	}
	pair, ok := res.Result.GetInnerResultPair()
	if res.Result.Code != xdr.TransactionResultCodeTxFeeBumpInnerSuccess || !ok || pair.Result.Result.Code != xdr.TransactionResultCodeTxSuccess {
		t.Fatalf("result = %+v", res)
	}
	if got := xdr.Hash(pair.TransactionHash).HexString(); got != innerHash {
		t.Fatalf("inner result hash = %s", got)
	}
	if byInner, err := h.c.TransactionDetail(innerHash); err != nil || byInner.Hash != outerHash {
		t.Fatalf("lookup by inner hash: %+v %v", byInner.Hash, err)
	}
}

func TestClaimableBalances(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(3)
	creator, alice, bob := kps[0], kps[1], kps[2]
	tx := sign(t, h, h.build(ptr(h.account(creator.Address())), []txnbuild.Operation{
		&txnbuild.CreateClaimableBalance{Amount: "100", Asset: txnbuild.NativeAsset{}, Destinations: []txnbuild.Claimant{
			txnbuild.NewClaimant(alice.Address(), nil), // unconditional
			txnbuild.NewClaimant(bob.Address(), ptr(txnbuild.NotPredicate(txnbuild.BeforeRelativeTimePredicate(3600)))),
		}},
	}, nil), creator)
	resp, err := h.c.SubmitTransaction(tx)
	if err != nil {
		t.Fatalf("create: %v %v", err, codes(err))
	}
	id, err := tx.ClaimableBalanceID(0)
	if err != nil {
		t.Fatal(err)
	}
	var res xdr.TransactionResult
	if err := xdr.SafeUnmarshalBase64(resp.ResultXdr, &res); err != nil {
		t.Fatal(err)
	}
	ops, _ := res.OperationResults()
	gotID, _ := xdr.MarshalHex(*ops[0].Tr.CreateClaimableBalanceResult.BalanceId)
	if gotID != id {
		t.Fatalf("result balance id %s, txnbuild computes %s", gotID, id)
	}
	if a := h.account(creator.Address()); a.NumSponsoring != 2 {
		t.Fatalf("creator sponsors %d claimant reserves, want 2", a.NumSponsoring)
	}
	list, err := h.c.ClaimableBalances(horizonclient.ClaimableBalanceRequest{Claimant: bob.Address()})
	if err != nil || len(list.Embedded.Records) != 1 || list.Embedded.Records[0].BalanceID != id || list.Embedded.Records[0].Amount != "100.0000000" {
		t.Fatalf("listing = %+v, %v", list.Embedded.Records, err)
	}
	// The stored predicate is absolute: "not before now+1h".
	if p := list.Embedded.Records[0].Claimants[1].Predicate; p.Type != xdr.ClaimPredicateTypeClaimPredicateNot ||
		(*p.NotPredicate).Type != xdr.ClaimPredicateTypeClaimPredicateBeforeAbsoluteTime {
		t.Fatalf("stored predicate = %+v", p)
	}

	claim := []txnbuild.Operation{&txnbuild.ClaimClaimableBalance{BalanceID: id}}
	_, err = h.submit(bob, claim)
	if rc := codes(err); rc == nil || !slices.Equal(rc.OperationCodes, []string{"op_cannot_claim"}) {
		t.Fatalf("early claim: %v", rc)
	}
	aliceBefore := nativeBalance(t, h.account(alice.Address()))
	r := h.mustSubmit(alice, claim)
	if got := nativeBalance(t, h.account(alice.Address())); got != aliceBefore+100e7-r.FeeCharged {
		t.Fatalf("alice got %d", got-aliceBefore)
	}
	if a := h.account(creator.Address()); a.NumSponsoring != 0 {
		t.Fatalf("creator still sponsors %d", a.NumSponsoring)
	}
	if _, err := h.c.ClaimableBalance(id); !horizonclient.IsNotFoundError(err) {
		t.Fatalf("claimed balance still listed: %v", err)
	}

	// Credit assets need a trust line to claim.
	usd := txnbuild.CreditAsset{Code: "USD", Issuer: creator.Address()}
	tx = sign(t, h, h.build(ptr(h.account(creator.Address())), []txnbuild.Operation{
		&txnbuild.CreateClaimableBalance{Amount: "7", Asset: usd, Destinations: []txnbuild.Claimant{txnbuild.NewClaimant(bob.Address(), nil)}},
	}, nil), creator)
	if _, err := h.c.SubmitTransaction(tx); err != nil {
		t.Fatalf("create USD: %v %v", err, codes(err))
	}
	id, _ = tx.ClaimableBalanceID(0)
	claim = []txnbuild.Operation{&txnbuild.ClaimClaimableBalance{BalanceID: id}}
	_, err = h.submit(bob, claim)
	if rc := codes(err); rc == nil || !slices.Equal(rc.OperationCodes, []string{"op_no_trust"}) {
		t.Fatalf("claim without trust line: %v", rc)
	}
	h.mustSubmit(bob, []txnbuild.Operation{changeTrust(t, usd, "10"), claim[0]})
	if got := h.account(bob.Address()).GetCreditBalance("USD", creator.Address()); got != "7.0000000" {
		t.Fatalf("bob USD = %s", got)
	}
}

func TestStreaming(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(2)
	a, b := kps[0], kps[1]

	// Stream from the paging token of a's last transaction (its funding):
	// everything submitted afterwards arrives, in order.
	latest, err := h.c.Transactions(horizonclient.TransactionRequest{ForAccount: a.Address(), Order: horizonclient.OrderDesc, Limit: 1})
	if err != nil || len(latest.Embedded.Records) != 1 {
		t.Fatalf("latest transaction: %v", err)
	}
	txs := make(chan hProtocol.Transaction, 16)
	ctx, cancel := contextWithCancel(t)
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- h.c.StreamTransactions(ctx, horizonclient.TransactionRequest{ForAccount: a.Address(), Cursor: latest.Embedded.Records[0].PT},
			func(tx hProtocol.Transaction) { txs <- tx })
	}()
	var sent []string
	for i := range 3 {
		resp := h.mustSubmit(a, []txnbuild.Operation{native(strconv.Itoa(i+1), b.Address())})
		sent = append(sent, resp.Hash)
	}
	var received []hProtocol.Transaction
	for len(received) < 3 {
		select {
		case tx := <-txs:
			received = append(received, tx)
		case <-time.After(10 * time.Second):
			t.Fatalf("stream delivered %d of 3 transactions", len(received))
		}
	}
	cancel()
	if err := <-streamDone; err != nil {
		t.Fatalf("stream: %v", err)
	}
	for i, tx := range received {
		if tx.Hash != sent[i] {
			t.Fatalf("streamed %d = %s, want %s", i, tx.Hash, sent[i])
		}
		// Paging tokens are TOIDs: ledger<<32 | application order<<12.
		id := toid.Parse(mustInt(t, tx.PT))
		if id.LedgerSequence != tx.Ledger || id.OperationOrder != 0 || id.TransactionOrder < 1 {
			t.Fatalf("paging token %s = %+v for ledger %d", tx.PT, id, tx.Ledger)
		}
	}

	// Resume an operations stream from the first payment's paging token:
	// only the two later ones come.
	first, err := h.c.Operations(horizonclient.OperationRequest{ForTransaction: sent[0]})
	if err != nil || len(first.Embedded.Records) != 1 {
		t.Fatalf("operations of %s: %v %v", sent[0], first, err)
	}
	ops := make(chan operations.Operation, 16)
	ctx, cancel = contextWithCancel(t)
	go func() {
		streamDone <- h.c.StreamOperations(ctx, horizonclient.OperationRequest{ForAccount: a.Address(), Cursor: first.Embedded.Records[0].PagingToken()},
			func(op operations.Operation) { ops <- op })
	}()
	var resumed []operations.Operation
	for len(resumed) < 2 {
		select {
		case op := <-ops:
			resumed = append(resumed, op)
		case <-time.After(10 * time.Second):
			t.Fatalf("resumed stream delivered %d of 2 operations", len(resumed))
		}
	}
	if p, ok := resumed[0].(operations.Payment); !ok || p.Amount != "2.0000000" || resumed[1].GetTransactionHash() != sent[2] {
		t.Fatalf("resumed = %+v", resumed)
	}
	// And a new operation reaches the still-open stream.
	last := h.mustSubmit(a, []txnbuild.Operation{native("4", b.Address())})
	select {
	case op := <-ops:
		if op.GetTransactionHash() != last.Hash {
			t.Fatalf("live op from %s, want %s", op.GetTransactionHash(), last.Hash)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("live operation not streamed")
	}
	cancel()
	if err := <-streamDone; err != nil {
		t.Fatalf("stream: %v", err)
	}

	// Effects and ledgers stream too.
	effs := make(chan effects.Effect, 64)
	ctx, cancel = contextWithCancel(t)
	go func() {
		streamDone <- h.c.StreamEffects(ctx, horizonclient.EffectRequest{ForAccount: b.Address(), Cursor: "0"}, func(e effects.Effect) { effs <- e })
	}()
	select {
	case e := <-effs:
		if e.GetType() != "account_created" {
			t.Fatalf("first effect of b = %s", e.GetType())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no effects streamed")
	}
	cancel()
	<-streamDone
	ledgers := make(chan hProtocol.Ledger, 64)
	ctx, cancel = contextWithCancel(t)
	go func() {
		streamDone <- h.c.StreamLedgers(ctx, horizonclient.LedgerRequest{Cursor: "now"}, func(l hProtocol.Ledger) { ledgers <- l })
	}()
	before := h.n.LatestLedger()
	select {
	case l := <-ledgers:
		if uint32(l.Sequence) <= before-1 {
			t.Fatalf("ledger stream from now delivered old ledger %d (latest was %d)", l.Sequence, before)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ledgers streamed")
	}
	cancel()
	<-streamDone
}

func mustInt(t testing.TB, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}

// sseEvent reads one Server-Sent Event.
func sseEvent(t testing.TB, r *bufio.Reader) map[string]string {
	t.Helper()
	ev := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			return ev
		}
		k, v, _ := strings.Cut(line, ": ")
		ev[k] = v
	}
}

func openStream(t testing.TB, url string, lastEventID string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream response %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return bufio.NewReader(resp.Body), func() { cancel(); resp.Body.Close() }
}

// TestStreamCursorNow checks the raw protocol: the hello event with the
// retry interval, cursor=now skipping history, and Last-Event-ID resuming.
func TestStreamCursorNow(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(2)
	r, stop := openStream(t, h.url+"/transactions?cursor=now", "")
	defer stop()
	if hello := sseEvent(t, r); hello["retry"] != "1000" || hello["event"] != "open" || hello["data"] != `"hello"` {
		t.Fatalf("hello = %v", hello)
	}
	resp := h.mustSubmit(kps[0], []txnbuild.Operation{native("1", kps[1].Address())})
	ev := sseEvent(t, r)
	var tx hProtocol.Transaction
	if err := json.Unmarshal([]byte(ev["data"]), &tx); err != nil {
		t.Fatal(err)
	}
	if tx.Hash != resp.Hash || ev["id"] != resp.PT {
		t.Fatalf("event id=%s hash=%s, want %s %s (history before now must be skipped)", ev["id"], tx.Hash, resp.PT, resp.Hash)
	}
	stop()

	// Last-Event-ID wins over cursor, as for a browser EventSource reconnect.
	r, stop2 := openStream(t, h.url+"/transactions?cursor=now", strconv.FormatInt(mustInt(t, resp.PT)-1, 10))
	defer stop2()
	sseEvent(t, r)
	if ev := sseEvent(t, r); ev["id"] != resp.PT {
		t.Fatalf("resumed at %s, want %s", ev["id"], resp.PT)
	}
}

// TestSEP39MintFlow is the shape of Medimint's minting: in one fee-bumped
// transaction the platform sponsors a fresh issuer and the patient's trust
// line, the issuer records the study's metadata pointer, sends the single
// 0.0000001 unit and locks itself.
func TestSEP39MintFlow(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(2)
	platform, patient := kps[0], kps[1]
	issuer := keypair.MustRandom()
	nft := txnbuild.CreditAsset{Code: "MMSTUDY1", Issuer: issuer.Address()}
	patientBefore := nativeBalance(t, h.account(patient.Address()))

	inner := sign(t, h, h.build(ptr(h.account(platform.Address())), []txnbuild.Operation{
		&txnbuild.BeginSponsoringFutureReserves{SponsoredID: issuer.Address()},
		&txnbuild.CreateAccount{Destination: issuer.Address(), Amount: "0"},
		&txnbuild.ManageData{SourceAccount: issuer.Address(), Name: "ipfs", Value: []byte("bafkreidevnetcid")},
		&txnbuild.SetOptions{SourceAccount: issuer.Address(), SetFlags: []txnbuild.AccountFlag{txnbuild.AuthRequired, txnbuild.AuthRevocable}},
		&txnbuild.EndSponsoringFutureReserves{SourceAccount: issuer.Address()},
		&txnbuild.BeginSponsoringFutureReserves{SponsoredID: patient.Address()},
		changeTrustFrom(t, patient, nft, "0.0000001"),
		&txnbuild.EndSponsoringFutureReserves{SourceAccount: patient.Address()},
		&txnbuild.SetTrustLineFlags{SourceAccount: issuer.Address(), Trustor: patient.Address(), Asset: nft, SetFlags: []txnbuild.TrustLineFlag{txnbuild.TrustLineAuthorized}},
		&txnbuild.Payment{SourceAccount: issuer.Address(), Destination: patient.Address(), Amount: "0.0000001", Asset: nft},
		&txnbuild.SetOptions{SourceAccount: issuer.Address(), MasterWeight: txnbuild.NewThreshold(0)},
	}, nil), platform, issuer, patient)
	resp, err := h.c.SubmitFeeBumpTransaction(feeBump(t, h, inner, platform, 200))
	if err != nil {
		t.Fatalf("mint: %v %v", err, codes(err))
	}
	if resp.OperationCount != 11 || resp.FeeCharged != 1200 {
		t.Fatalf("operation_count %d fee_charged %d", resp.OperationCount, resp.FeeCharged)
	}
	p := h.account(patient.Address())
	if p.GetCreditBalance(nft.Code, issuer.Address()) != "0.0000001" || nativeBalance(t, p) != patientBefore || p.NumSponsored != 1 {
		t.Fatalf("patient = %+v", p)
	}
	iss := h.account(issuer.Address())
	if iss.Sponsor != platform.Address() || string(iss.MustGetData("ipfs")) != "bafkreidevnetcid" || ptr(iss).SignerSummary()[issuer.Address()] != 0 {
		t.Fatalf("issuer = %+v", iss)
	}
	// Every operation and effect of the mint decodes with the SDK's types.
	ops, err := h.c.Operations(horizonclient.OperationRequest{ForTransaction: resp.Hash, Limit: 200})
	if err != nil || len(ops.Embedded.Records) != 11 {
		t.Fatalf("operations: %d %v", len(ops.Embedded.Records), err)
	}
	if op, ok := ops.Embedded.Records[1].(operations.CreateAccount); !ok || op.Sponsor != platform.Address() || op.Account != issuer.Address() {
		t.Fatalf("create_account = %+v", ops.Embedded.Records[1])
	}
	if op, ok := ops.Embedded.Records[8].(operations.SetTrustLineFlags); !ok || op.Trustor != patient.Address() || op.SetFlagsS[0] != "authorized" {
		t.Fatalf("set_trust_line_flags = %+v", ops.Embedded.Records[8])
	}
	effs, err := h.c.Effects(horizonclient.EffectRequest{ForTransaction: resp.Hash, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range effs.Embedded.Records {
		types = append(types, e.GetType())
	}
	for _, want := range []string{"account_created", "account_sponsorship_created", "data_created", "data_sponsorship_created",
		"account_flags_updated", "trustline_created", "trustline_sponsorship_created", "trustline_flags_updated",
		"account_credited", "account_debited", "signer_removed"} {
		if !slices.Contains(types, want) {
			t.Errorf("effects %v lack %s", types, want)
		}
	}

	// The locked issuer can never sign again.
	_, err = h.submit(issuer, []txnbuild.Operation{&txnbuild.Payment{Destination: patient.Address(), Amount: "0.0000001", Asset: nft}})
	if rc := codes(err); rc == nil || rc.TransactionCode != "tx_bad_auth" {
		t.Fatalf("locked issuer: %v", rc)
	}
}
