package devnet_test

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/stellar/go-stellar-sdk/amount"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// harness drives a devnet only through Horizon's API, with the SDK's own
// client and transaction builder, as production code will.
type harness struct {
	t   testing.TB
	url string
	n   *devnet.Network
	c   *horizonclient.Client
}

func newHarness(t testing.TB, opts ...devnettest.Option) *harness {
	t.Helper()
	url, n := devnettest.Start(t, opts...)
	// Keep connections for many concurrent submitters (the default pool
	// keeps two per host).
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	t.Cleanup(hc.CloseIdleConnections)
	c := &horizonclient.Client{HorizonURL: url, HTTP: hc}
	// horizonclient sets its timeout lazily on first use, which races when
	// the client is shared by goroutines; set it up front.
	c.SetHorizonTimeout(time.Minute)
	return &harness{t: t, url: url, n: n, c: c}
}

// fund creates k accounts through friendbot, concurrently.
func (h *harness) fund(k int) []*keypair.Full {
	h.t.Helper()
	kps := make([]*keypair.Full, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range kps {
		kps[i] = keypair.MustRandom()
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = h.c.Fund(kps[i].Address())
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		h.t.Fatalf("friendbot: %v", err)
	}
	return kps
}

func (h *harness) account(addr string) hProtocol.Account {
	h.t.Helper()
	a, err := h.c.AccountDetail(horizonclient.AccountRequest{AccountID: addr})
	if err != nil {
		h.t.Fatalf("account %s: %v", addr, err)
	}
	return a
}

// tx builds a transaction from src's current sequence number, signed by
// signers (src itself when none are given).
func (h *harness) tx(src *keypair.Full, ops []txnbuild.Operation, signers ...*keypair.Full) *txnbuild.Transaction {
	h.t.Helper()
	acc := h.account(src.Address())
	return h.txFrom(&acc, ops, signers...)
}

func (h *harness) txFrom(acc txnbuild.Account, ops []txnbuild.Operation, signers ...*keypair.Full) *txnbuild.Transaction {
	h.t.Helper()
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount: acc, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee,
		Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
		Operations:    ops,
	})
	if err != nil {
		h.t.Fatalf("building transaction: %v", err)
	}
	if tx, err = tx.Sign(h.n.Passphrase(), signers...); err != nil {
		h.t.Fatalf("signing: %v", err)
	}
	return tx
}

// submit builds, signs and submits; it fails the test on a transport error
// but returns Horizon errors for inspection.
func (h *harness) submit(src *keypair.Full, ops []txnbuild.Operation, signers ...*keypair.Full) (hProtocol.Transaction, error) {
	h.t.Helper()
	if len(signers) == 0 {
		signers = []*keypair.Full{src}
	}
	return h.c.SubmitTransaction(h.tx(src, ops, signers...))
}

// mustSubmit is submit for transactions that must succeed.
func (h *harness) mustSubmit(src *keypair.Full, ops []txnbuild.Operation, signers ...*keypair.Full) hProtocol.Transaction {
	h.t.Helper()
	resp, err := h.submit(src, ops, signers...)
	if err != nil {
		h.t.Fatalf("submit: %v (codes %v)", err, codes(err))
	}
	return resp
}

// codes returns Horizon's result codes from a submission error, or nil.
func codes(err error) *hProtocol.TransactionResultCodes {
	herr := horizonclient.GetError(err)
	if herr == nil {
		return nil
	}
	rc, rerr := herr.ResultCodes()
	if rerr != nil {
		return nil
	}
	return rc
}

// resultOf decodes the XDR TransactionResult of a submission error.
func resultOf(t testing.TB, err error) xdr.TransactionResult {
	t.Helper()
	herr := horizonclient.GetError(err)
	if herr == nil {
		t.Fatalf("not a horizon error: %v", err)
	}
	s, rerr := herr.ResultString()
	if rerr != nil {
		t.Fatalf("no result_xdr: %v", rerr)
	}
	var r xdr.TransactionResult
	if err := xdr.SafeUnmarshalBase64(s, &r); err != nil {
		t.Fatalf("decoding result_xdr: %v", err)
	}
	return r
}

func nativeBalance(t testing.TB, a hProtocol.Account) int64 {
	t.Helper()
	s, err := a.GetNativeBalance()
	if err != nil {
		t.Fatal(err)
	}
	return stroops(s)
}

// stroops parses Horizon's decimal amounts.
func stroops(s string) int64 {
	v, err := amount.ParseInt64(s)
	if err != nil {
		panic(err)
	}
	return v
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
