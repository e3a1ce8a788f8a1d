package devnet_test

import (
	"testing"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// TestOperationSuccessPaths applies each modelled operation successfully
// and checks the ledger state Horizon then reports.
func TestOperationSuccessPaths(t *testing.T) {
	h := newHarness(t)
	type env struct {
		issuer, holder, other *keypair.Full
		usd                   txnbuild.CreditAsset
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, e env)
		src   func(e env) *keypair.Full
		ops   func(e env) []txnbuild.Operation
		check func(t *testing.T, e env)
	}{
		{
			name: "manage data: create, update, delete",
			src:  func(e env) *keypair.Full { return e.holder },
			ops: func(e env) []txnbuild.Operation {
				return []txnbuild.Operation{
					&txnbuild.ManageData{Name: "a", Value: []byte("1")},
					&txnbuild.ManageData{Name: "a", Value: []byte("22")},
					&txnbuild.ManageData{Name: "b", Value: []byte("3")},
					&txnbuild.ManageData{Name: "b"},
				}
			},
			check: func(t *testing.T, e env) {
				a := h.account(e.holder.Address())
				if len(a.Data) != 1 || string(a.MustGetData("a")) != "22" || a.SubentryCount != 2 { // data "a" + USD line
					t.Fatalf("data = %v, subentries %d", a.Data, a.SubentryCount)
				}
			},
		},
		{
			name: "change trust: remove returns the reserve",
			setup: func(t *testing.T, e env) {
				h.mustSubmit(e.holder, []txnbuild.Operation{&txnbuild.Payment{Destination: e.issuer.Address(), Amount: "100", Asset: e.usd}})
			},
			src: func(e env) *keypair.Full { return e.holder },
			ops: func(e env) []txnbuild.Operation {
				return []txnbuild.Operation{changeTrust(t, e.usd, "0")}
			},
			check: func(t *testing.T, e env) {
				a := h.account(e.holder.Address())
				if len(a.Balances) != 1 || a.SubentryCount != 0 {
					t.Fatalf("balances = %+v", a.Balances)
				}
			},
		},
		{
			name: "auth required issuer: allow trust then set trust line flags",
			setup: func(t *testing.T, e env) {
				h.mustSubmit(e.issuer, []txnbuild.Operation{&txnbuild.SetOptions{SetFlags: []txnbuild.AccountFlag{txnbuild.AuthRequired, txnbuild.AuthRevocable}}})
				h.mustSubmit(e.other, []txnbuild.Operation{changeTrust(t, e.usd, "50")})
				if a := h.account(e.other.Address()); *a.Balances[0].IsAuthorized {
					t.Fatal("trust line authorized under AUTH_REQUIRED")
				}
			},
			src: func(e env) *keypair.Full { return e.issuer },
			ops: func(e env) []txnbuild.Operation {
				return []txnbuild.Operation{
					//lint:ignore SA1019 AllowTrust is still a valid operation the devnet must model.
					&txnbuild.AllowTrust{Trustor: e.other.Address(), Type: e.usd, Authorize: true},
					&txnbuild.Payment{Destination: e.other.Address(), Amount: "5", Asset: e.usd},
					&txnbuild.SetTrustLineFlags{Trustor: e.other.Address(), Asset: e.usd,
						ClearFlags: []txnbuild.TrustLineFlag{txnbuild.TrustLineAuthorized},
						SetFlags:   []txnbuild.TrustLineFlag{txnbuild.TrustLineAuthorizedToMaintainLiabilities}},
				}
			},
			check: func(t *testing.T, e env) {
				b := h.account(e.other.Address()).Balances[0]
				if *b.IsAuthorized || !*b.IsAuthorizedToMaintainLiabilities || b.Balance != "5.0000000" {
					t.Fatalf("trust line = %+v", b)
				}
			},
		},
		{
			name: "clawback",
			setup: func(t *testing.T, e env) {
				h.mustSubmit(e.issuer, []txnbuild.Operation{&txnbuild.SetOptions{SetFlags: []txnbuild.AccountFlag{txnbuild.AuthRevocable, txnbuild.AuthClawbackEnabled}}})
				h.mustSubmit(e.other, []txnbuild.Operation{changeTrust(t, e.usd, "50")})
				h.mustSubmit(e.issuer, []txnbuild.Operation{&txnbuild.Payment{Destination: e.other.Address(), Amount: "30", Asset: e.usd}})
			},
			src: func(e env) *keypair.Full { return e.issuer },
			ops: func(e env) []txnbuild.Operation {
				return []txnbuild.Operation{&txnbuild.Clawback{From: e.other.Address(), Amount: "12", Asset: e.usd}}
			},
			check: func(t *testing.T, e env) {
				if b := h.account(e.other.Address()).Balances[0]; b.Balance != "18.0000000" || b.IsClawbackEnabled == nil || !*b.IsClawbackEnabled {
					t.Fatalf("trust line = %+v", b)
				}
			},
		},
		{
			name: "account merge",
			src:  func(e env) *keypair.Full { return e.other },
			ops: func(e env) []txnbuild.Operation {
				return []txnbuild.Operation{&txnbuild.AccountMerge{Destination: e.issuer.Address()}}
			},
			check: func(t *testing.T, e env) {
				if _, err := h.c.AccountDetail(horizonclient.AccountRequest{AccountID: e.other.Address()}); !horizonclient.IsNotFoundError(err) {
					t.Fatalf("merged account still there: %v", err)
				}
				if got := nativeBalance(t, h.account(e.issuer.Address())); got < 19_999*1e7 {
					t.Fatalf("destination balance %d", got)
				}
			},
		},
		{
			name: "bump sequence and home domain",
			src:  func(e env) *keypair.Full { return e.other },
			ops: func(e env) []txnbuild.Operation {
				return []txnbuild.Operation{
					&txnbuild.BumpSequence{BumpTo: 1 << 40},
					&txnbuild.SetOptions{HomeDomain: ptr("medimint.example")},
				}
			},
			check: func(t *testing.T, e env) {
				a := h.account(e.other.Address())
				if a.Sequence != 1<<40 || a.HomeDomain != "medimint.example" {
					t.Fatalf("seq %d home %q", a.Sequence, a.HomeDomain)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kps := h.fund(3)
			e := env{issuer: kps[0], holder: kps[1], other: kps[2]}
			e.usd = h.issue(e.issuer, e.holder, "USD", "1000", "100")
			if tc.setup != nil {
				tc.setup(t, e)
			}
			src := tc.src(e)
			resp, err := h.submit(src, tc.ops(e))
			if err != nil {
				t.Fatalf("submit: %v %v", err, codes(err))
			}
			if resp.OperationCount != int32(len(tc.ops(e))) {
				t.Fatalf("operation_count %d", resp.OperationCount)
			}
			tc.check(t, e)
		})
	}
}
