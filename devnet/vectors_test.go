package devnet_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// submission is what a test vector sends, and whose account and fee source
// it concerns.
type submission struct {
	tx  *txnbuild.Transaction
	fb  *txnbuild.FeeBumpTransaction
	raw string // a base64 envelope txnbuild would refuse to build

	source    string // account whose sequence number the transaction uses
	feeSource string // defaults to source
}

func (s submission) send(h *harness) (hProtocol.Transaction, error) {
	switch {
	case s.fb != nil:
		return h.c.SubmitFeeBumpTransaction(s.fb)
	case s.tx != nil:
		return h.c.SubmitTransaction(s.tx)
	}
	return h.c.SubmitTransactionXDR(s.raw)
}

func native(amount string, dest string) *txnbuild.Payment {
	return &txnbuild.Payment{Destination: dest, Amount: amount, Asset: txnbuild.NativeAsset{}}
}

// build makes an unsigned transaction; edit adjusts the parameters.
func (h *harness) build(acc txnbuild.Account, ops []txnbuild.Operation, edit func(*txnbuild.TransactionParams)) *txnbuild.Transaction {
	h.t.Helper()
	p := txnbuild.TransactionParams{
		SourceAccount: acc, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee,
		Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
		Operations:    ops,
	}
	if edit != nil {
		edit(&p)
	}
	tx, err := txnbuild.NewTransaction(p)
	if err != nil {
		h.t.Fatalf("building transaction: %v", err)
	}
	return tx
}

func sign(t testing.TB, h *harness, tx *txnbuild.Transaction, kps ...*keypair.Full) *txnbuild.Transaction {
	t.Helper()
	tx, err := tx.Sign(h.n.Passphrase(), kps...)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// rawEnvelope signs an envelope edited beyond what txnbuild allows.
func rawEnvelope(t testing.TB, h *harness, env xdr.TransactionEnvelope, kps ...*keypair.Full) string {
	t.Helper()
	var sigs []xdr.DecoratedSignature
	for _, kp := range kps {
		sigs = append(sigs, signHash(t, h, env, kp))
	}
	if env.IsFeeBump() {
		env.FeeBump.Signatures = sigs
	} else {
		env.V1.Signatures = sigs
	}
	return mustB64(t, env)
}

func mustB64(t testing.TB, v any) string {
	t.Helper()
	s, err := xdr.MarshalBase64(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// issue makes issuer's asset code and gives holder a trust line (limit)
// holding bal of it.
func (h *harness) issue(issuer, holder *keypair.Full, code, limit, bal string) txnbuild.CreditAsset {
	h.t.Helper()
	a := txnbuild.CreditAsset{Code: code, Issuer: issuer.Address()}
	ct, err := a.ToChangeTrustAsset()
	if err != nil {
		h.t.Fatal(err)
	}
	h.mustSubmit(holder, []txnbuild.Operation{&txnbuild.ChangeTrust{Line: ct, Limit: limit}})
	if bal != "" {
		h.mustSubmit(issuer, []txnbuild.Operation{&txnbuild.Payment{Destination: holder.Address(), Amount: bal, Asset: a}})
	}
	return a
}

func changeTrust(t testing.TB, a txnbuild.CreditAsset, limit string) *txnbuild.ChangeTrust {
	ct, err := a.ToChangeTrustAsset()
	if err != nil {
		t.Fatal(err)
	}
	return &txnbuild.ChangeTrust{Line: ct, Limit: limit}
}

// TestFailureVectors submits one transaction per Stellar failure code and
// checks Horizon's result_codes, the XDR result, and whether the
// transaction was applied (fee charged, sequence consumed) or rejected
// without touching the ledger, as stellar-core decides.
func TestFailureVectors(t *testing.T) {
	h := newHarness(t)
	type vector struct {
		name    string
		build   func(t *testing.T, h *harness) submission
		txCode  xdr.TransactionResultCode
		tx      string
		inner   string
		ops     []string
		applied bool
	}
	one := func(kp *keypair.Full, ops ...txnbuild.Operation) submission {
		return submission{tx: sign(t, h, h.build(ptr(h.account(kp.Address())), ops, nil), kp), source: kp.Address()}
	}
	vectors := []vector{
		{name: "bad seq", txCode: xdr.TransactionResultCodeTxBadSeq, tx: "tx_bad_seq",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				acc := h.account(a.Address())
				acc.Sequence += 5
				return submission{tx: sign(t, h, h.build(&acc, []txnbuild.Operation{native("1", a.Address())}, nil), a), source: a.Address()}
			}},
		{name: "bad auth: wrong key", txCode: xdr.TransactionResultCodeTxBadAuth, tx: "tx_bad_auth",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				tx := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", a.Address())}, nil)
				return submission{tx: sign(t, h, tx, keypair.MustRandom()), source: a.Address()}
			}},
		{name: "bad auth: other network", txCode: xdr.TransactionResultCodeTxBadAuth, tx: "tx_bad_auth",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				tx := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", a.Address())}, nil)
				tx, err := tx.Sign("Test SDF Network ; September 2015", a)
				if err != nil {
					t.Fatal(err)
				}
				return submission{tx: tx, source: a.Address()}
			}},
		{name: "bad auth extra", txCode: xdr.TransactionResultCodeTxBadAuthExtra, tx: "tx_bad_auth_extra",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				tx := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", a.Address())}, nil)
				return submission{tx: sign(t, h, tx, a, keypair.MustRandom()), source: a.Address()}
			}},
		{name: "insufficient fee", txCode: xdr.TransactionResultCodeTxInsufficientFee, tx: "tx_insufficient_fee",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				env := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", a.Address()), native("1", a.Address())}, nil).ToXDR()
				env.V1.Tx.Fee = 150 // two operations need 200
				return submission{raw: rawEnvelope(t, h, env, a), source: a.Address()}
			}},
		{name: "missing operation", txCode: xdr.TransactionResultCodeTxMissingOperation, tx: "tx_missing_operation",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				env := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", a.Address())}, nil).ToXDR()
				env.V1.Tx.Operations = nil
				return submission{raw: rawEnvelope(t, h, env, a), source: a.Address()}
			}},
		{name: "too early", txCode: xdr.TransactionResultCodeTxTooEarly, tx: "tx_too_early",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				tx := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", a.Address())}, func(p *txnbuild.TransactionParams) {
					p.Preconditions.TimeBounds = txnbuild.NewTimebounds(time.Now().Unix()+3600, 0)
				})
				return submission{tx: sign(t, h, tx, a), source: a.Address()}
			}},
		{name: "too late", txCode: xdr.TransactionResultCodeTxTooLate, tx: "tx_too_late",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				tx := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", a.Address())}, func(p *txnbuild.TransactionParams) {
					p.Preconditions.TimeBounds = txnbuild.NewTimebounds(0, time.Now().Unix()-60)
				})
				return submission{tx: sign(t, h, tx, a), source: a.Address()}
			}},
		{name: "too late: ledger bounds", txCode: xdr.TransactionResultCodeTxTooLate, tx: "tx_too_late",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				tx := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", a.Address())}, func(p *txnbuild.TransactionParams) {
					p.Preconditions.LedgerBounds = &txnbuild.LedgerBounds{MinLedger: 0, MaxLedger: 2}
				})
				return submission{tx: sign(t, h, tx, a), source: a.Address()}
			}},
		{name: "no source account", txCode: xdr.TransactionResultCodeTxNoAccount, tx: "tx_no_source_account",
			build: func(t *testing.T, h *harness) submission {
				ghost := keypair.MustRandom()
				tx := h.build(&txnbuild.SimpleAccount{AccountID: ghost.Address(), Sequence: 1 << 32}, []txnbuild.Operation{native("1", ghost.Address())}, nil)
				return submission{tx: sign(t, h, tx, ghost), source: ghost.Address()}
			}},
		{name: "insufficient balance", txCode: xdr.TransactionResultCodeTxInsufficientBalance, tx: "tx_insufficient_balance",
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				poor := keypair.MustRandom()
				h.mustSubmit(a, []txnbuild.Operation{&txnbuild.CreateAccount{Destination: poor.Address(), Amount: "1"}})
				return one(poor, native("0.0000001", a.Address()))
			}},
		{name: "payment underfunded", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_underfunded"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				return one(kps[0], native("9999.5", kps[1].Address()))
			}},
		{name: "payment no destination", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_no_destination"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, native("1", keypair.MustRandom().Address()))
			}},
		{name: "payment no trust", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_no_trust"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				return one(kps[0], &txnbuild.Payment{Destination: kps[1].Address(), Amount: "1", Asset: txnbuild.CreditAsset{Code: "USD", Issuer: kps[0].Address()}})
			}},
		{name: "payment src no trust", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_src_no_trust"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(3)
				usd := h.issue(kps[2], kps[1], "USD", "100", "")
				return one(kps[0], &txnbuild.Payment{Destination: kps[1].Address(), Amount: "1", Asset: usd})
			}},
		{name: "payment line full", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_line_full"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				usd := h.issue(kps[0], kps[1], "USD", "10", "")
				return one(kps[0], &txnbuild.Payment{Destination: kps[1].Address(), Amount: "10.0000001", Asset: usd})
			}},
		{name: "payment not authorized", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_not_authorized"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				issuer, holder := kps[0], kps[1]
				h.mustSubmit(issuer, []txnbuild.Operation{&txnbuild.SetOptions{SetFlags: []txnbuild.AccountFlag{txnbuild.AuthRequired, txnbuild.AuthRevocable}}})
				usd := h.issue(issuer, holder, "USD", "100", "")
				return one(issuer, &txnbuild.Payment{Destination: holder.Address(), Amount: "1", Asset: usd})
			}},
		{name: "payment src not authorized", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_src_not_authorized"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(3)
				issuer, holder := kps[0], kps[1]
				h.mustSubmit(issuer, []txnbuild.Operation{&txnbuild.SetOptions{SetFlags: []txnbuild.AccountFlag{txnbuild.AuthRevocable}}})
				usd := h.issue(issuer, holder, "USD", "100", "50")
				h.issue(issuer, kps[2], "USD", "100", "")
				h.mustSubmit(issuer, []txnbuild.Operation{&txnbuild.SetTrustLineFlags{Trustor: holder.Address(), Asset: usd, ClearFlags: []txnbuild.TrustLineFlag{txnbuild.TrustLineAuthorized}}})
				return one(holder, &txnbuild.Payment{Destination: kps[2].Address(), Amount: "1", Asset: usd})
			}},
		{name: "create account low reserve", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_low_reserve"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.CreateAccount{Destination: keypair.MustRandom().Address(), Amount: "0.9999999"})
			}},
		{name: "create account already exists", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_already_exists"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				return one(kps[0], &txnbuild.CreateAccount{Destination: kps[1].Address(), Amount: "5"})
			}},
		{name: "change trust low reserve", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_low_reserve"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				poor := keypair.MustRandom()
				h.mustSubmit(a, []txnbuild.Operation{&txnbuild.CreateAccount{Destination: poor.Address(), Amount: "1.4"}})
				return one(poor, changeTrust(t, txnbuild.CreditAsset{Code: "USD", Issuer: a.Address()}, "100"))
			}},
		{name: "change trust malformed: self", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_malformed"},
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, changeTrust(t, txnbuild.CreditAsset{Code: "USD", Issuer: a.Address()}, "100"))
			}},
		{name: "change trust no issuer", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_no_issuer"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, changeTrust(t, txnbuild.CreditAsset{Code: "USD", Issuer: keypair.MustRandom().Address()}, "100"))
			}},
		{name: "change trust invalid limit", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_invalid_limit"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				usd := h.issue(kps[0], kps[1], "USD", "100", "50")
				return one(kps[1], changeTrust(t, usd, "49"))
			}},
		{name: "op bad auth", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_bad_auth"},
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				return one(kps[0], &txnbuild.Payment{SourceAccount: kps[1].Address(), Destination: kps[0].Address(), Amount: "1", Asset: txnbuild.NativeAsset{}})
			}},
		{name: "op no source account", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_no_source_account"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				ghost := keypair.MustRandom()
				tx := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{
					&txnbuild.Payment{SourceAccount: ghost.Address(), Destination: a.Address(), Amount: "1", Asset: txnbuild.NativeAsset{}},
				}, nil)
				return submission{tx: sign(t, h, tx, a, ghost), source: a.Address()}
			}},
		{name: "not supported: offers", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_not_supported"},
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				return one(kps[0], &txnbuild.ManageSellOffer{Selling: txnbuild.NativeAsset{}, Buying: txnbuild.CreditAsset{Code: "USD", Issuer: kps[1].Address()}, Amount: "1", Price: xdr.Price{N: 1, D: 1}})
			}},
		{name: "manage data name not found", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_data_name_not_found"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.ManageData{Name: "nothing"})
			}},
		{name: "manage data invalid name", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_data_invalid_name"},
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.ManageData{Name: "bad\nname", Value: []byte("v")})
			}},
		{name: "set options bad flags", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_bad_flags"},
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.SetOptions{SetFlags: []txnbuild.AccountFlag{txnbuild.AuthRequired}, ClearFlags: []txnbuild.AccountFlag{txnbuild.AuthRequired}})
			}},
		{name: "set options auth revocable required", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_auth_revocable_required"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.SetOptions{SetFlags: []txnbuild.AccountFlag{txnbuild.AuthClawbackEnabled}})
			}},
		{name: "set options cant change", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_cant_change"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				h.mustSubmit(a, []txnbuild.Operation{&txnbuild.SetOptions{SetFlags: []txnbuild.AccountFlag{txnbuild.AuthImmutable}}})
				return one(a, &txnbuild.SetOptions{SetFlags: []txnbuild.AccountFlag{txnbuild.AuthRequired}})
			}},
		{name: "set options bad signer", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_bad_signer"},
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.SetOptions{Signer: &txnbuild.Signer{Address: a.Address(), Weight: 1}})
			}},
		{name: "merge has sub entries", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_has_sub_entries"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				h.mustSubmit(kps[0], []txnbuild.Operation{&txnbuild.ManageData{Name: "k", Value: []byte("v")}})
				return one(kps[0], &txnbuild.AccountMerge{Destination: kps[1].Address()})
			}},
		{name: "merge no account", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_no_account"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.AccountMerge{Destination: keypair.MustRandom().Address()})
			}},
		{name: "clawback not enabled", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_not_clawback_enabled"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				usd := h.issue(kps[0], kps[1], "USD", "100", "10")
				return one(kps[0], &txnbuild.Clawback{From: kps[1].Address(), Amount: "1", Asset: usd})
			}},
		{name: "trust line flags cant revoke", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_cant_revoke"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				usd := h.issue(kps[0], kps[1], "USD", "100", "")
				return one(kps[0], &txnbuild.SetTrustLineFlags{Trustor: kps[1].Address(), Asset: usd, ClearFlags: []txnbuild.TrustLineFlag{txnbuild.TrustLineAuthorized}})
			}},
		{name: "allow trust no trust line", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_no_trustline"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				//lint:ignore SA1019 AllowTrust is still a valid operation the devnet must model.
				return one(kps[0], &txnbuild.AllowTrust{Trustor: kps[1].Address(), Type: txnbuild.CreditAsset{Code: "USD", Issuer: kps[0].Address()}, Authorize: true})
			}},
		{name: "claim does not exist", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_does_not_exist"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.ClaimClaimableBalance{BalanceID: "00000000" + "1111111111111111111111111111111111111111111111111111111111111111"})
			}},
		{name: "sponsorship not ended", txCode: xdr.TransactionResultCodeTxBadSponsorship, tx: "tx_bad_sponsorship", applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				return one(kps[0], &txnbuild.BeginSponsoringFutureReserves{SponsoredID: kps[1].Address()})
			}},
		{name: "end sponsoring: not sponsored", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_not_sponsored"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				a := h.fund(1)[0]
				return one(a, &txnbuild.EndSponsoringFutureReserves{})
			}},
		{name: "begin sponsoring: already sponsored", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_success", "op_already_sponsored", "op_success"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(3)
				tx := h.build(ptr(h.account(kps[0].Address())), []txnbuild.Operation{
					&txnbuild.BeginSponsoringFutureReserves{SponsoredID: kps[1].Address()},
					&txnbuild.BeginSponsoringFutureReserves{SourceAccount: kps[2].Address(), SponsoredID: kps[1].Address()},
					&txnbuild.EndSponsoringFutureReserves{SourceAccount: kps[1].Address()},
				}, nil)
				return submission{tx: sign(t, h, tx, kps...), source: kps[0].Address()}
			}},
		{name: "begin sponsoring: recursive", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_success", "op_recursive", "op_success"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(3)
				tx := h.build(ptr(h.account(kps[0].Address())), []txnbuild.Operation{
					&txnbuild.BeginSponsoringFutureReserves{SponsoredID: kps[1].Address()},
					&txnbuild.BeginSponsoringFutureReserves{SourceAccount: kps[1].Address(), SponsoredID: kps[2].Address()},
					&txnbuild.EndSponsoringFutureReserves{SourceAccount: kps[1].Address()},
				}, nil)
				return submission{tx: sign(t, h, tx, kps[0], kps[1]), source: kps[0].Address()}
			}},
		{name: "revoke claimable balance: only transferable", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_only_transferable"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				create := sign(t, h, h.build(ptr(h.account(kps[0].Address())), []txnbuild.Operation{
					&txnbuild.CreateClaimableBalance{Amount: "1", Asset: txnbuild.NativeAsset{}, Destinations: []txnbuild.Claimant{txnbuild.NewClaimant(kps[1].Address(), nil)}},
				}, nil), kps[0])
				if _, err := h.c.SubmitTransaction(create); err != nil {
					t.Fatal(err, codes(err))
				}
				id, _ := create.ClaimableBalanceID(0)
				return one(kps[0], &txnbuild.RevokeSponsorship{SponsorshipType: txnbuild.RevokeSponsorshipTypeClaimableBalance, ClaimableBalance: &id})
			}},
		{name: "revoke: not sponsor", txCode: xdr.TransactionResultCodeTxFailed, tx: "tx_failed", ops: []string{"op_not_sponsor"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				return one(kps[0], &txnbuild.RevokeSponsorship{SponsorshipType: txnbuild.RevokeSponsorshipTypeAccount, Account: ptr(kps[1].Address())})
			}},
		{name: "fee bump: inner bad seq", txCode: xdr.TransactionResultCodeTxFeeBumpInnerFailed, tx: "tx_fee_bump_inner_failed", inner: "tx_bad_seq",
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				acc := h.account(kps[0].Address())
				acc.Sequence += 3
				inner := sign(t, h, h.build(&acc, []txnbuild.Operation{native("1", kps[1].Address())}, nil), kps[0])
				fb := feeBump(t, h, inner, kps[1], 200)
				return submission{fb: fb, source: kps[0].Address(), feeSource: kps[1].Address()}
			}},
		{name: "fee bump: inner op fails", txCode: xdr.TransactionResultCodeTxFeeBumpInnerFailed, tx: "tx_fee_bump_inner_failed", inner: "tx_failed", ops: []string{"op_underfunded"}, applied: true,
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				inner := sign(t, h, h.build(ptr(h.account(kps[0].Address())), []txnbuild.Operation{native("20000", kps[1].Address())}, nil), kps[0])
				fb := feeBump(t, h, inner, kps[1], 200)
				return submission{fb: fb, source: kps[0].Address(), feeSource: kps[1].Address()}
			}},
		{name: "fee bump: insufficient fee", txCode: xdr.TransactionResultCodeTxInsufficientFee, tx: "tx_insufficient_fee",
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				inner := h.build(ptr(h.account(kps[0].Address())), []txnbuild.Operation{native("1", kps[1].Address()), native("1", kps[1].Address())}, func(p *txnbuild.TransactionParams) { p.BaseFee = 200 })
				inner = sign(t, h, inner, kps[0])
				env := feeBump(t, h, inner, kps[1], 200).ToXDR()
				env.FeeBump.Tx.Fee = 500 // at least 3 x 100, but a lower rate than the inner 400 / 2
				return submission{raw: rawEnvelope(t, h, env, kps[1]), source: kps[0].Address(), feeSource: kps[1].Address()}
			}},
		{name: "fee bump: bad auth", txCode: xdr.TransactionResultCodeTxBadAuth, tx: "tx_bad_auth",
			build: func(t *testing.T, h *harness) submission {
				kps := h.fund(2)
				inner := sign(t, h, h.build(ptr(h.account(kps[0].Address())), []txnbuild.Operation{native("1", kps[1].Address())}, nil), kps[0])
				fb, err := txnbuild.NewFeeBumpTransaction(txnbuild.FeeBumpTransactionParams{Inner: inner, FeeAccount: kps[1].Address(), BaseFee: 200})
				if err != nil {
					t.Fatal(err)
				}
				fb, err = fb.Sign(h.n.Passphrase(), kps[0]) // not the fee source
				if err != nil {
					t.Fatal(err)
				}
				return submission{fb: fb, source: kps[0].Address(), feeSource: kps[1].Address()}
			}},
	}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			s := v.build(t, h)
			if s.feeSource == "" {
				s.feeSource = s.source
			}
			seqBefore, balBefore := h.seqAndBalance(s.source), h.seqAndBalance(s.feeSource)
			_, err := s.send(h)
			if err == nil {
				t.Fatal("submission succeeded")
			}
			rc := codes(err)
			if rc == nil {
				t.Fatalf("no result codes in %v", err)
			}
			if rc.TransactionCode != v.tx || rc.InnerTransactionCode != v.inner || !slices.Equal(rc.OperationCodes, v.ops) {
				t.Errorf("codes = %s/%s/%v, want %s/%s/%v", rc.TransactionCode, rc.InnerTransactionCode, rc.OperationCodes, v.tx, v.inner, v.ops)
			}
			if herr := horizonclient.GetError(err); herr.Problem.Type != "https://stellar.org/horizon-errors/transaction_failed" || herr.Problem.Status != 400 {
				t.Errorf("problem = %+v", herr.Problem)
			}
			res := resultOf(t, err)
			if res.Result.Code != v.txCode {
				t.Errorf("result_xdr code = %v, want %v", res.Result.Code, v.txCode)
			}
			if opRes, ok := res.OperationResults(); ok && len(opRes) != len(v.ops) {
				t.Errorf("result_xdr has %d operation results, want %d", len(opRes), len(v.ops))
			}
			seqAfter, balAfter := h.seqAndBalance(s.source), h.seqAndBalance(s.feeSource)
			if v.applied {
				if seqAfter[0] != seqBefore[0]+1 {
					t.Errorf("applied: sequence %d -> %d, want consumed", seqBefore[0], seqAfter[0])
				}
				if fee := balBefore[1] - balAfter[1]; fee != int64(res.FeeCharged) || fee <= 0 {
					t.Errorf("applied: fee source paid %d, result says %d", fee, res.FeeCharged)
				}
			} else if seqAfter != seqBefore || balAfter != balBefore {
				t.Errorf("rejected transaction changed the ledger: seq/bal %v -> %v, fee source %v -> %v", seqBefore, seqAfter, balBefore, balAfter)
			}
		})
	}
}

// seqAndBalance is an account's sequence number and native balance
// (zeros when it does not exist).
func (h *harness) seqAndBalance(addr string) [2]int64 {
	a, err := h.c.AccountDetail(horizonclient.AccountRequest{AccountID: addr})
	if err != nil {
		return [2]int64{}
	}
	return [2]int64{a.Sequence, nativeBalance(h.t, a)}
}

func feeBump(t testing.TB, h *harness, inner *txnbuild.Transaction, feeSource *keypair.Full, baseFee int64) *txnbuild.FeeBumpTransaction {
	t.Helper()
	fb, err := txnbuild.NewFeeBumpTransaction(txnbuild.FeeBumpTransactionParams{Inner: inner, FeeAccount: feeSource.Address(), BaseFee: baseFee})
	if err != nil {
		t.Fatal(err)
	}
	if fb, err = fb.Sign(h.n.Passphrase(), feeSource); err != nil {
		t.Fatal(err)
	}
	return fb
}

func signHash(t testing.TB, h *harness, env xdr.TransactionEnvelope, kp *keypair.Full) xdr.DecoratedSignature {
	t.Helper()
	hash, err := network.HashTransactionInEnvelope(env, h.n.Passphrase())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := kp.SignDecorated(hash[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func ptr[T any](v T) *T { return &v }
