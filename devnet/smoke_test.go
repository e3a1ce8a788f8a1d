package devnet_test

import (
	"testing"

	"github.com/stellar/go-stellar-sdk/txnbuild"
)

func TestSmokePayment(t *testing.T) {
	h := newHarness(t)
	kps := h.fund(2)
	a, b := kps[0], kps[1]
	resp := h.mustSubmit(a, []txnbuild.Operation{&txnbuild.Payment{Destination: b.Address(), Amount: "10", Asset: txnbuild.NativeAsset{}}})
	if !resp.Successful || resp.FeeCharged != 100 {
		t.Fatalf("resp = %+v", resp)
	}
	if got := nativeBalance(t, h.account(b.Address())); got != 10010*1e7 {
		t.Fatalf("b balance = %d", got)
	}
	if got := nativeBalance(t, h.account(a.Address())); got != 9990*1e7-100 {
		t.Fatalf("a balance = %d", got)
	}
}
