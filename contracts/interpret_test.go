package contracts

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

func md(source, name string, value []byte) *txnbuild.ManageData {
	return &txnbuild.ManageData{SourceAccount: source, Name: name, Value: value}
}

func TestInterpretMalformed(t *testing.T) {
	a := newActors()
	h := StudyHash(nil, "s")
	code := AssetCode(h)
	grantee := must[string](t)(acctKey(grantPrefix, code, a.doctor))
	ans := must[string](t)(acctKey(ansPrefix, code, a.doctor))
	terms := must[[]byte](t)(termsValue(a.issuer, time.Unix(2e9, 0), ScopeQuery))
	p := must[Pointer](t)(ParseCID(metaCID(t, "{}")))
	bad := func(mod func(v []byte)) []byte {
		v := append([]byte(nil), terms...)
		mod(v)
		return v
	}
	tests := []struct {
		name string
		op   txnbuild.Operation
	}{
		{"mint code", md(a.issuer, mintPrefix+"abc.55", make([]byte, 64))},
		{"mint codec hex", md(a.issuer, mintPrefix+code+".zz", make([]byte, 64))},
		{"mint codec long", md(a.issuer, mintPrefix+code+".055", make([]byte, 64))},
		{"mint codec cbor", md(a.issuer, mintPrefix+code+".71", make([]byte, 64))},
		{"mint value short", md(a.issuer, mintName(code, CodecRaw), make([]byte, 63))},
		{"mint code not from hash", md(a.issuer, mintName(code, CodecRaw), mintValue(p, [32]byte{9}))},
		{"issuer address", md(a.registry, issuerPrefix+"GBAD", []byte("x.org"))},
		{"issuer domain", md(a.registry, issuerPrefix+a.issuer, []byte("a/b"))},
		{"grant no account", md(a.patient, grantPrefix+code, terms)},
		{"grant account b64", md(a.patient, grantPrefix+code+".!!", terms)},
		{"grant account short", md(a.patient, grantPrefix+code+".AAAA", terms)},
		{"grant code", md(a.patient, grantPrefix+"XLM."+strings.Repeat("A", 43), terms)},
		{"grant value short", md(a.patient, grantee, terms[:42])},
		{"grant version", md(a.patient, grantee, bad(func(v []byte) { v[0] = 2 }))},
		{"grant scope", md(a.patient, grantee, bad(func(v []byte) { v[42] = 0 }))},
		{"grant time", md(a.patient, grantee, bad(func(v []byte) { binary.BigEndian.PutUint64(v[33:], 0) }))},
		{"request with account", md(a.doctor, reqPrefix+code+".x", terms)},
		{"request terms", md(a.doctor, reqPrefix+code, terms[:5])},
		{"answer key", md(a.patient, ansPrefix+code, []byte{1, 1})},
		{"answer value", md(a.patient, ans, []byte{1, 2})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b64, _ := envelope(t, a.channel, 5, Draft{Operations: []txnbuild.Operation{tt.op}}, false)
			evs, err := Interpret(Transaction{Hash: "h", EnvelopeXDR: b64})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, %v; want ErrMalformed", evs, err)
			}
		})
	}
}

func TestInterpretUnrelatedAndEdges(t *testing.T) {
	a := newActors()
	h := StudyHash(nil, "s")
	tok := Token{AssetCode(h), a.issuer}
	code := tok.Code
	ans := must[string](t)(acctKey(ansPrefix, code, a.doctor))
	usd := txnbuild.CreditAsset{Code: "USD", Issuer: a.issuer}
	longCode := txnbuild.CreditAsset{Code: "MEDIMINT0001", Issuer: a.issuer}
	claimant := []txnbuild.Claimant{txnbuild.NewClaimant(a.doctor, nil)}

	tests := []struct {
		name string
		ops  []txnbuild.Operation
		want []Event
	}{
		{"native payment", []txnbuild.Operation{&txnbuild.Payment{SourceAccount: a.patient, Destination: a.doctor, Asset: txnbuild.NativeAsset{}, Amount: "1"}}, nil},
		{"alphanum4 payment", []txnbuild.Operation{&txnbuild.Payment{SourceAccount: a.issuer, Destination: a.doctor, Asset: usd, Amount: "1"}}, nil},
		{"other 12-char asset", []txnbuild.Operation{&txnbuild.Payment{SourceAccount: a.issuer, Destination: a.doctor, Asset: longCode, Amount: "1"}}, nil},
		{"other claimable balance", []txnbuild.Operation{&txnbuild.CreateClaimableBalance{SourceAccount: a.issuer, Asset: usd, Amount: "1", Destinations: claimant}}, nil},
		{"foreign data entry", []txnbuild.Operation{md(a.patient, "config", []byte("1"))}, nil},
		{"our prefix, unknown kind", []txnbuild.Operation{md(a.patient, "mm.future.x", []byte("1"))}, nil},
		{"deletion halves", []txnbuild.Operation{md(a.doctor, reqPrefix+code, nil), md(a.patient, ans, nil), md(a.issuer, mintName(code, CodecRaw), nil)}, nil},
		{"other operation", []txnbuild.Operation{&txnbuild.BumpSequence{SourceAccount: a.patient, BumpTo: 9}}, nil},
		{"mint without record", []txnbuild.Operation{&txnbuild.Payment{SourceAccount: a.issuer, Destination: a.doctor, Asset: tok.Asset(), Amount: "0.0000002"}},
			[]Event{RecordMinted{Token: tok, Holder: a.doctor, Amount: 2}}},
		{"transfer into a claimable balance", []txnbuild.Operation{&txnbuild.CreateClaimableBalance{SourceAccount: a.patient, Asset: tok.Asset(), Amount: OneStroop, Destinations: claimant}},
			[]Event{RecordTransferred{Token: tok, From: a.patient, To: a.doctor, Amount: 1, BalanceID: "x"}}},
		// Without an operation source the transaction's source (the
		// channel) is the actor.
		{"transaction source", []txnbuild.Operation{&txnbuild.ManageData{Name: issuerPrefix + a.issuer}},
			[]Event{IssuerRemoved{Registry: a.channel, Issuer: a.issuer}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b64, tx := envelope(t, a.channel, 5, Draft{Operations: tt.ops}, false)
			evs, err := Interpret(Transaction{Hash: "h", EnvelopeXDR: b64})
			if err != nil {
				t.Fatal(err)
			}
			got := strip(evs)
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if tr, ok := tt.want[i].(RecordTransferred); ok && tr.BalanceID != "" {
					tr.BalanceID = must[string](t)(tx.ClaimableBalanceID(i))
					tt.want[i] = tr
				}
				if got[i] != tt.want[i] {
					t.Errorf("event %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestInterpretEnvelopes(t *testing.T) {
	a := newActors()
	d := must[Draft](t)(AddIssuer(a.sponsor, a.registry, a.issuer, "h.example"))
	b64, _ := envelope(t, a.channel, 5, d, false)
	result := func(code xdr.TransactionResultCode) string {
		ops := []xdr.OperationResult{}
		r := xdr.TransactionResult{Result: xdr.TransactionResultResult{Code: code, Results: &ops}}
		s, err := xdr.MarshalBase64(r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name     string
		env, res string
		events   int
		malform  bool
	}{
		{"plain transaction", b64, "", 1, false},
		{"with a success result", b64, result(xdr.TransactionResultCodeTxSuccess), 1, false},
		{"failed transaction", b64, result(xdr.TransactionResultCodeTxFailed), 0, false},
		{"bad result", b64, "AAAA!", 0, true},
		{"bad envelope", "not xdr", "", 0, true},
		{"truncated envelope", b64[:len(b64)/2], "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := Interpret(Transaction{Hash: "h", EnvelopeXDR: tt.env, ResultXDR: tt.res})
			if tt.malform != errors.Is(err, ErrMalformed) || (err != nil && !tt.malform) {
				t.Fatalf("err %v", err)
			}
			if len(evs) != tt.events {
				t.Errorf("%d events, want %d", len(evs), tt.events)
			}
		})
	}
}

// FuzzInterpret checks that no input makes Interpret panic.
func FuzzInterpret(f *testing.F) {
	a := newActors()
	for _, d := range must[[]Draft](f)(MintBatches(a.sponsor, a.issuer, []Mint{{StudyHash: [32]byte{1}, CID: metaCID(f, "x"), Holder: a.patient}})) {
		b64, _ := envelope(f, a.channel, 3, d, true)
		f.Add(b64)
	}
	f.Add("AAAAAgAAAAA=")
	f.Fuzz(func(t *testing.T, env string) {
		_, _ = Interpret(Transaction{EnvelopeXDR: env})
	})
}
