package devnet_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/toid"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

func TestRootAndProblems(t *testing.T) {
	h := newHarness(t)
	root, err := h.c.Root()
	if err != nil {
		t.Fatal(err)
	}
	if root.NetworkPassphrase != h.n.Passphrase() || root.HorizonSequence < 1 || root.Links.Friendbot == nil {
		t.Fatalf("root = %+v", root)
	}

	notFound := []struct {
		name string
		call func() error
	}{
		{"account", func() error {
			_, err := h.c.AccountDetail(horizonclient.AccountRequest{AccountID: keypair.MustRandom().Address()})
			return err
		}},
		{"account data", func() error {
			_, err := h.c.AccountData(horizonclient.AccountRequest{AccountID: h.n.RootAddress(), DataKey: "config.memo_required"})
			return err
		}},
		{"transaction", func() error {
			_, err := h.c.TransactionDetail(hex.EncodeToString(make([]byte, 32)))
			return err
		}},
		{"ledger", func() error { _, err := h.c.LedgerDetail(1 << 30); return err }},
		{"operation", func() error { _, err := h.c.OperationDetail("12345"); return err }},
	}
	for _, tc := range notFound {
		t.Run("404 "+tc.name, func(t *testing.T) {
			err := tc.call()
			herr := horizonclient.GetError(err)
			if !horizonclient.IsNotFoundError(err) || herr.Problem.Status != 404 || herr.Problem.Title != "Resource Missing" {
				t.Fatalf("err = %v", err)
			}
		})
	}

	badRequests := []string{"/transactions?limit=201", "/transactions?order=sideways", "/operations?cursor=abc", "/ledgers?limit=0"}
	for _, path := range badRequests {
		t.Run("400 "+path, func(t *testing.T) {
			var p struct {
				Type   string         `json:"type"`
				Status int            `json:"status"`
				Extras map[string]any `json:"extras"`
			}
			status := getJSON(t, h.url+path, &p)
			if status != 400 || p.Type != "https://stellar.org/horizon-errors/bad_request" || p.Extras["invalid_field"] == nil {
				t.Fatalf("%d %+v", status, p)
			}
		})
	}
	t.Run("CORS preflight", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, h.url+"/transactions", nil)
		req.Header.Set("Origin", "http://127.0.0.1:3000")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "x-client-name, content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
			resp.Header.Get("Access-Control-Allow-Headers") != "x-client-name, content-type" {
			t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("malformed envelope", func(t *testing.T) {
		_, err := h.c.SubmitTransactionXDR("AAAA")
		if herr := horizonclient.GetError(err); herr == nil || herr.Problem.Type != "https://stellar.org/horizon-errors/transaction_malformed" {
			t.Fatalf("err = %v", err)
		}
	})
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v: %s", url, err, body)
	}
	return resp.StatusCode
}

func TestHistoryPagingAndEffects(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(2)
	a, b := kps[0], kps[1]
	var hashes []string
	for i := range 5 {
		resp := h.mustSubmit(a, []txnbuild.Operation{native(itoa(int64(i+1)), b.Address())})
		hashes = append(hashes, resp.Hash)
	}
	_, err := h.submit(a, []txnbuild.Operation{native("100000", b.Address())})
	if codes(err) == nil {
		t.Fatal("overdraft succeeded")
	}

	// Walk a's transactions two at a time with the next links.
	var walked []string
	page, err := h.c.Transactions(horizonclient.TransactionRequest{ForAccount: a.Address(), Limit: 2})
	for err == nil && len(page.Embedded.Records) > 0 {
		for _, tx := range page.Embedded.Records {
			walked = append(walked, tx.Hash)
		}
		page, err = h.c.NextTransactionsPage(page)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(walked) != 6 || !slices.Equal(walked[1:], hashes) {
		t.Fatalf("walked %d: %v, want funding + %v (failed one excluded by default)", len(walked), walked, hashes)
	}
	desc, err := h.c.Transactions(horizonclient.TransactionRequest{ForAccount: a.Address(), Order: horizonclient.OrderDesc, Limit: 200, IncludeFailed: true})
	if err != nil || len(desc.Embedded.Records) != 7 || desc.Embedded.Records[0].Successful || desc.Embedded.Records[1].Hash != hashes[4] {
		t.Fatalf("desc with failed: %d records, %v", len(desc.Embedded.Records), err)
	}
	prev, err := h.c.PrevTransactionsPage(desc)
	if err != nil || len(prev.Embedded.Records) != 0 {
		t.Fatalf("prev of the newest page: %d records, %v", len(prev.Embedded.Records), err)
	}

	// Operations carry TOIDs: ledger, transaction order, operation order 1.
	ops, err := h.c.Operations(horizonclient.OperationRequest{ForTransaction: hashes[2]})
	if err != nil || len(ops.Embedded.Records) != 1 {
		t.Fatalf("ops: %v", err)
	}
	op := ops.Embedded.Records[0].(operations.Payment)
	tx, _ := h.c.TransactionDetail(hashes[2])
	id := toid.Parse(mustInt(t, op.ID))
	if id.LedgerSequence != tx.Ledger || id.OperationOrder != 1 || op.PT != op.ID || mustInt(t, tx.PT)+1 != mustInt(t, op.ID) {
		t.Fatalf("op id %s (%+v) for tx %s in ledger %d", op.ID, id, tx.PT, tx.Ledger)
	}
	if op.Amount != "3.0000000" || op.From != a.Address() || op.To != b.Address() || op.Asset.Type != "native" || !op.TransactionSuccessful {
		t.Fatalf("payment = %+v", op)
	}
	detail, err := h.c.OperationDetail(op.ID)
	if err != nil || detail.GetID() != op.ID {
		t.Fatalf("operation detail: %v", err)
	}

	// The payment's effects: b credited, a debited.
	effs, err := h.c.Effects(horizonclient.EffectRequest{ForOperation: op.ID})
	if err != nil || len(effs.Embedded.Records) != 2 {
		t.Fatalf("effects: %v %v", effs, err)
	}
	cr, ok1 := effs.Embedded.Records[0].(effects.AccountCredited)
	db, ok2 := effs.Embedded.Records[1].(effects.AccountDebited)
	if !ok1 || !ok2 || cr.Account != b.Address() || cr.Amount != "3.0000000" || db.Account != a.Address() || cr.PT != fmt.Sprintf("%019d-%010d", mustInt(t, op.ID), 1) {
		t.Fatalf("effects = %+v %+v", effs.Embedded.Records[0], effs.Embedded.Records[1])
	}

	// Ledgers chain by hash; the header XDR hashes to the ledger hash.
	l, err := h.c.LedgerDetail(uint32(tx.Ledger))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := b64decode(l.HeaderXDR)
	var header xdr.LedgerHeader
	if err := header.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != l.Hash || int32(header.LedgerSeq) != l.Sequence {
		t.Fatalf("ledger %d hash %s, header says seq %d", l.Sequence, l.Hash, header.LedgerSeq)
	}
	prevL, _ := h.c.LedgerDetail(uint32(tx.Ledger) - 1)
	if l.PrevHash != prevL.Hash || l.SuccessfulTransactionCount < 1 {
		t.Fatalf("ledger chain: prev_hash %s, previous ledger %s", l.PrevHash, prevL.Hash)
	}

	fs, err := h.c.FeeStats()
	if err != nil || fs.LastLedgerBaseFee != 100 || fs.FeeCharged.Min != 100 || fs.MaxFee.Mode < 100 {
		t.Fatalf("fee stats = %+v %v", fs, err)
	}
}

func b64decode(s string) ([]byte, error) {
	var v []byte
	err := json.Unmarshal([]byte(`"`+s+`"`), &v)
	return v, err
}

// TestMemoRequired exercises SEP-29 as horizonclient implements it: the
// data entry lookup must 404 cleanly when absent and be found when set.
func TestMemoRequired(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(2)
	a, exchange := kps[0], kps[1]
	h.mustSubmit(exchange, []txnbuild.Operation{&txnbuild.ManageData{Name: "config.memo_required", Value: []byte("1")}})
	_, err := h.submit(a, []txnbuild.Operation{native("1", exchange.Address())})
	if !errors.Is(err, horizonclient.ErrAccountRequiresMemo) {
		t.Fatalf("payment without memo: %v", err)
	}
	tx := h.build(ptr(h.account(a.Address())), []txnbuild.Operation{native("1", exchange.Address())}, func(p *txnbuild.TransactionParams) {
		p.Memo = txnbuild.MemoID(42)
	})
	resp, err := h.c.SubmitTransaction(sign(t, h, tx, a))
	if err != nil || resp.MemoType != "id" || resp.Memo != "42" {
		t.Fatalf("with memo: %+v %v", resp, err)
	}
}

// TestPersistence stops a devnet and starts another on the same state
// file: accounts, entries, sequence numbers and history survive.
func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devnet.json")
	var a, b *keypair.Full
	var paid hProtocol.Transaction
	var lastLedger uint32
	var cbID string
	t.Run("first run", func(t *testing.T) {
		h := newHarness(t, devnettest.WithStatePath(path))
		kps := h.fund(2)
		a, b = kps[0], kps[1]
		usd := h.issue(a, b, "USD", "1000", "25")
		h.mustSubmit(b, []txnbuild.Operation{&txnbuild.ManageData{Name: "study", Value: []byte("ipfs-cid")}})
		tx := sign(t, h, h.build(ptr(h.account(a.Address())), []txnbuild.Operation{
			&txnbuild.CreateClaimableBalance{Amount: "3", Asset: usd, Destinations: []txnbuild.Claimant{txnbuild.NewClaimant(b.Address(), nil)}},
		}, nil), a)
		if _, err := h.c.SubmitTransaction(tx); err != nil {
			t.Fatal(err, codes(err))
		}
		cbID, _ = tx.ClaimableBalanceID(0)
		paid = h.mustSubmit(a, []txnbuild.Operation{native("12.5", b.Address())})
		lastLedger = h.n.LatestLedger()
	})
	t.Run("second run", func(t *testing.T) {
		h := newHarness(t, devnettest.WithStatePath(path))
		if got := h.n.LatestLedger(); got < lastLedger {
			t.Fatalf("ledger went back from %d to %d", lastLedger, got)
		}
		accB := h.account(b.Address())
		if accB.GetCreditBalance("USD", a.Address()) != "25.0000000" || accB.Data["study"] == "" || nativeBalance(t, accB) != 10012_5000000-200 {
			t.Fatalf("b after restart = %+v", accB)
		}
		got, err := h.c.TransactionDetail(paid.Hash)
		if err != nil || got.PT != paid.PT || got.ResultXdr != paid.ResultXdr {
			t.Fatalf("history after restart: %+v %v", got, err)
		}
		if _, err := h.c.ClaimableBalance(cbID); err != nil {
			t.Fatalf("claimable balance after restart: %v", err)
		}
		// Sequence numbers carry on.
		resp := h.mustSubmit(a, []txnbuild.Operation{native("1", b.Address())})
		if uint32(resp.Ledger) <= lastLedger {
			t.Fatalf("new transaction in ledger %d, before restart's %d", resp.Ledger, lastLedger)
		}
		h.mustSubmit(b, []txnbuild.Operation{&txnbuild.ClaimClaimableBalance{BalanceID: cbID}})
	})
}
