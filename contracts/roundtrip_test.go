package contracts

import (
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// TestRoundTrip builds every kind of protocol transaction, encodes it as
// the envelope Horizon would list, and interprets it back.
func TestRoundTrip(t *testing.T) {
	a := newActors()
	h1, h2 := StudyHash([]byte("salt"), "1.2.3.1"), StudyHash([]byte("salt"), "1.2.3.2")
	c1, c2 := metaCID(t, `{"study":1}`), metaCID(t, `{"study":2}`)
	tok1, tok2 := Token{AssetCode(h1), a.issuer}, Token{AssetCode(h2), a.issuer}
	exp := time.Unix(2_000_000_000, 0).UTC()
	var reqTx [32]byte
	reqTx[0] = 0xAB

	mintDirect := must[[]Draft](t)(MintBatches(a.sponsor, a.issuer, []Mint{{StudyHash: h1, CID: c1, Holder: a.patient}}))
	mintTwo := must[[]Draft](t)(MintBatches(a.sponsor, a.issuer, []Mint{
		{StudyHash: h1, CID: c1, Holder: a.patient, HasTrustline: true},
		{StudyHash: h2, CID: c2, Holder: a.doctor, Escrow: true}}))

	tests := []struct {
		name  string
		draft Draft
		want  []Event
	}{
		{"add issuer", must[Draft](t)(AddIssuer(a.sponsor, a.registry, a.issuer, "hospital.example")),
			[]Event{IssuerAdded{Registry: a.registry, Issuer: a.issuer, HomeDomain: "hospital.example"}}},
		{"remove issuer", must[Draft](t)(RemoveIssuer(a.registry, a.issuer)),
			[]Event{IssuerRemoved{Registry: a.registry, Issuer: a.issuer}}},
		{"mint one", mintDirect[0],
			[]Event{RecordMinted{Token: tok1, Holder: a.patient, Amount: 1, CID: c1, StudyHash: h1}}},
		{"mint direct and escrow", mintTwo[0], []Event{
			RecordMinted{Token: tok1, Holder: a.patient, Amount: 1, CID: c1, StudyHash: h1},
			RecordMinted{Token: tok2, Holder: a.doctor, Amount: 1, CID: c2, StudyHash: h2, BalanceID: "set below"}}},
		{"claim escrow", ClaimRecord(a.sponsor, tok2, a.doctor, "00000000"+hex.EncodeToString(reqTx[:])), nil},
		{"grant", must[Draft](t)(GrantAccess(a.sponsor, Grant{Token: tok1, Holder: a.patient, Grantee: a.doctor, Expires: exp, Scope: ScopeQuery | ScopeRetrieve})),
			[]Event{GrantCreated{Token: tok1, Holder: a.patient, Grantee: a.doctor, Expires: exp, Scope: ScopeQuery | ScopeRetrieve}}},
		{"revoke", must[Draft](t)(RevokeAccess(a.patient, tok1.Code, a.doctor, a.other)), []Event{
			GrantRevoked{Code: tok1.Code, Holder: a.patient, Grantee: a.doctor},
			GrantRevoked{Code: tok1.Code, Holder: a.patient, Grantee: a.other}}},
		{"request", must[Draft](t)(RequestAccess(a.sponsor, Request{Token: tok1, Requester: a.doctor, Scope: ScopeRetrieve, Until: exp})),
			[]Event{AccessRequested{Token: tok1, Requester: a.doctor, Scope: ScopeRetrieve, Until: exp}}},
		{"deny", must[Draft](t)(AnswerAccess(a.sponsor, Answer{Token: tok1, Holder: a.patient, Requester: a.doctor, RequestTx: reqTx})),
			[]Event{AccessAnswered{Code: tok1.Code, Holder: a.patient, Requester: a.doctor, RequestTx: hex.EncodeToString(reqTx[:])}}},
		{"approve", must[Draft](t)(AnswerAccess(a.sponsor, Answer{Token: tok1, Holder: a.patient, Requester: a.doctor, RequestTx: reqTx,
			Grant: &Grant{Expires: exp, Scope: ScopeRetrieve}})), []Event{
			AccessAnswered{Code: tok1.Code, Holder: a.patient, Requester: a.doctor, RequestTx: hex.EncodeToString(reqTx[:]), Approved: true},
			GrantCreated{Token: tok1, Holder: a.patient, Grantee: a.doctor, Expires: exp, Scope: ScopeRetrieve}}},
		{"transfer", must[Draft](t)(TransferRecord(a.sponsor, Transfer{Token: tok1, From: a.patient, To: a.other, Grantees: []string{a.doctor}})), []Event{
			RecordTransferred{Token: tok1, From: a.patient, To: a.other, Amount: 1},
			GrantRevoked{Code: tok1.Code, Holder: a.patient, Grantee: a.doctor}}},
		{"transfer to a trustline", must[Draft](t)(TransferRecord(a.sponsor, Transfer{Token: tok1, From: a.other, To: a.patient, ToHasTrustline: true})),
			[]Event{RecordTransferred{Token: tok1, From: a.other, To: a.patient, Amount: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b64, tx := envelope(t, a.channel, 100, tt.draft, true)
			evs, err := Interpret(Transaction{Hash: "tx", Ledger: 7, CreatedAt: time.Unix(1e9, 0), EnvelopeXDR: b64})
			if err != nil {
				t.Fatal(err)
			}
			for i, ev := range tt.want {
				if m, ok := ev.(RecordMinted); ok && m.BalanceID != "" {
					// The balance ID stellar-core assigns, computed by txnbuild.
					op := evs[i].EventMeta().Op
					m.BalanceID = must[string](t)(tx.ClaimableBalanceID(op))
					tt.want[i] = m
				}
			}
			if got := strip(evs); !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("events\n got %+v\nwant %+v", got, tt.want)
			}
			for _, ev := range evs {
				if m := ev.EventMeta(); m.TxHash != "tx" || m.Ledger != 7 || !m.CloseTime.Equal(time.Unix(1e9, 0)) {
					t.Errorf("meta %+v", m)
				}
			}
		})
	}

	// A single-study mint carries the CID digest as its memo hash.
	p := must[Pointer](t)(ParseCID(c1))
	if memo, ok := mintDirect[0].Memo.(txnbuild.MemoHash); !ok || [32]byte(memo) != p.Digest {
		t.Errorf("memo %v, want hash of CID digest", mintDirect[0].Memo)
	}
	if mintTwo[0].Memo != nil {
		t.Error("batch carries a memo")
	}
}

func TestMintBatching(t *testing.T) {
	a := newActors()
	var holders []string
	for range 40 {
		holders = append(holders, newActors().patient)
	}
	mk := func(n int, holder func(i int) string, escrow bool) []Mint {
		var ms []Mint
		for i := range n {
			h := StudyHash([]byte("s"), string(rune('a'+i%26))+string(rune('a'+i/26)))
			ms = append(ms, Mint{StudyHash: h, CID: metaCID(t, string(h[:])), Holder: holder(i), Escrow: escrow})
		}
		return ms
	}
	tests := []struct {
		name    string
		mints   []Mint
		batches int
	}{
		{"none", nil, 0},
		{"19 studies of one patient fit", mk(19, func(int) string { return a.patient }, false), 1},
		{"20 studies of one patient", mk(20, func(int) string { return a.patient }, false), 2},
		{"100 studies of one patient", mk(100, func(int) string { return a.patient }, false), 6},
		{"14 patients fit", mk(14, func(i int) string { return holders[i] }, false), 1},
		{"15 patients", mk(15, func(i int) string { return holders[i] }, false), 2},
		{"40 patients", mk(40, func(i int) string { return holders[i] }, false), 3},
		{"escrow", mk(40, func(i int) string { return holders[i] }, true), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := must[[]Draft](t)(MintBatches(a.sponsor, a.issuer, tt.mints))
			if len(ds) != tt.batches {
				t.Fatalf("%d batches, want %d", len(ds), tt.batches)
			}
			minted := 0
			for _, d := range ds {
				if len(d.Operations) > MaxOperations || len(d.Signers) > MaxSignatures-2 {
					t.Errorf("batch of %d ops, %d signers", len(d.Operations), len(d.Signers))
				}
				for _, ev := range interpret(t, a, d) {
					if m, ok := ev.(RecordMinted); ok && m.Recorded() {
						minted++
					}
				}
			}
			if minted != len(tt.mints) {
				t.Errorf("%d mints interpreted, want %d", minted, len(tt.mints))
			}
		})
	}
}
