package contracts

import (
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestIndexReplay replays a chain history built by the builders through
// Interpret into an Index, checking the state after each step.
func TestIndexReplay(t *testing.T) {
	a := newActors()
	x := NewIndex(a.registry)
	now := time.Unix(1_900_000_000, 0)
	h1, h2 := StudyHash([]byte("salt"), "1.2.3.1"), StudyHash([]byte("salt"), "1.2.3.2")
	c1, c2 := metaCID(t, `{"n":1}`), metaCID(t, `{"n":2}`)
	tok1, tok2 := Token{AssetCode(h1), a.issuer}, Token{AssetCode(h2), a.issuer}
	seq := int64(1)
	step := func(d Draft) error {
		t.Helper()
		seq++
		b64, _ := envelope(t, a.channel, seq, d, true)
		evs, err := Interpret(Transaction{Hash: fmt.Sprintf("%064x", seq), Ledger: int32(seq), CreatedAt: now, EnvelopeXDR: b64})
		if err != nil {
			t.Fatal(err)
		}
		return x.Apply(evs...)
	}
	ok := func(d Draft) {
		t.Helper()
		if err := step(d); err != nil {
			t.Fatal(err)
		}
	}
	mint := func(ms ...Mint) Draft { return must[[]Draft](t)(MintBatches(a.sponsor, a.issuer, ms))[0] }

	// Minting before the registry lists the issuer does not count.
	if err := step(mint(Mint{StudyHash: h1, CID: c1, Holder: a.patient})); !errors.Is(err, ErrUntrustedIssuer) {
		t.Fatalf("untrusted mint: %v", err)
	}
	ok(must[Draft](t)(AddIssuer(a.sponsor, a.registry, a.issuer, "hospital.example")))
	if d, trusted := x.Trusted(a.issuer); !trusted || d != "hospital.example" {
		t.Fatal("issuer not trusted")
	}
	ok(mint(Mint{StudyHash: h1, CID: c1, Holder: a.patient}, Mint{StudyHash: h2, CID: c2, Holder: a.doctor, Escrow: true}))
	r, found := x.ByStudy(h1)
	if !found || r.Token != tok1 || r.CID != c1 || r.Holder != a.patient || r.MintTx == "" || !r.Minted.Equal(now) {
		t.Fatalf("study 1: %+v", r)
	}
	if r, _ := x.Record(tok2); r.Holder != a.doctor || r.BalanceID == "" {
		t.Fatalf("escrowed study 2: %+v", r)
	}
	// A retried mint is a second mint of the same token: rejected.
	if err := step(mint(Mint{StudyHash: h1, CID: c1, Holder: a.patient, HasTrustline: true})); !errors.Is(err, ErrDuplicateMint) {
		t.Fatalf("second mint: %v", err)
	}

	exp := now.Add(24 * time.Hour)
	ok(must[Draft](t)(GrantAccess(a.sponsor, Grant{Token: tok1, Holder: a.patient, Grantee: a.doctor, Expires: exp, Scope: ScopeQuery | ScopeRetrieve})))
	allowed := []struct {
		name    string
		account string
		need    Scope
		at      time.Time
		want    bool
	}{
		{"holder", a.patient, ScopeRetrieve, now, true},
		{"grantee", a.doctor, ScopeRetrieve, now, true},
		{"grantee after expiry", a.doctor, ScopeRetrieve, exp, false},
		{"stranger", a.other, ScopeQuery, now, false},
	}
	for _, tt := range allowed {
		if got := x.Allowed(tok1, tt.account, tt.need, tt.at); got != tt.want {
			t.Errorf("%s: Allowed = %v", tt.name, got)
		}
	}
	if gs := x.Grants(tok1); len(gs) != 1 || gs[0].Grantee != a.doctor {
		t.Errorf("grants %+v", gs)
	}
	ok(must[Draft](t)(RevokeAccess(a.patient, tok1.Code, a.doctor)))
	if x.Allowed(tok1, a.doctor, ScopeQuery, now) {
		t.Error("revoked grant still counts")
	}

	ok(must[Draft](t)(RequestAccess(a.sponsor, Request{Token: tok1, Requester: a.other, Scope: ScopeQuery, Until: exp})))
	pending := x.Pending(tok1)
	if len(pending) != 1 || pending[0].Requester != a.other {
		t.Fatalf("pending %+v", pending)
	}
	var reqTx [32]byte
	copy(reqTx[:], must[[]byte](t)(hex.DecodeString(pending[0].TxHash)))
	ok(must[Draft](t)(AnswerAccess(a.sponsor, Answer{Token: tok1, Holder: a.patient, Requester: a.other, RequestTx: reqTx,
		Grant: &Grant{Expires: exp, Scope: ScopeQuery}})))
	if len(x.Pending(tok1)) != 0 {
		t.Error("answered request still pending")
	}
	if !x.Allowed(tok1, a.other, ScopeQuery, now) || x.Allowed(tok1, a.other, ScopeRetrieve, now) {
		t.Error("approved grant scope not applied")
	}

	// Transfer: the old holder's grants stop counting.
	ok(must[Draft](t)(TransferRecord(a.sponsor, Transfer{Token: tok1, From: a.patient, To: a.doctor})))
	if r, _ := x.Record(tok1); r.Holder != a.doctor {
		t.Fatalf("holder %s after transfer", r.Holder)
	}
	if x.Allowed(tok1, a.other, ScopeQuery, now) || len(x.Grants(tok1)) != 0 {
		t.Error("previous holder's grant still counts")
	}
	if !x.Allowed(tok1, a.doctor, ScopeRetrieve, now) || x.Allowed(tok1, a.patient, ScopeQuery, now) {
		t.Error("holder rights did not move")
	}
	// The previous holder can no longer grant.
	if err := step(must[Draft](t)(GrantAccess(a.sponsor, Grant{Token: tok1, Holder: a.patient, Grantee: a.other, Expires: exp, Scope: ScopeQuery}))); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("grant by previous holder: %v", err)
	}

	ok(must[Draft](t)(RemoveIssuer(a.registry, a.issuer)))
	if _, trusted := x.Trusted(a.issuer); trusted {
		t.Error("issuer still trusted")
	}
}

func TestIndexRules(t *testing.T) {
	a := newActors()
	h := StudyHash(nil, "s")
	tok := Token{AssetCode(h), a.issuer}
	unknown := Token{"AAAAAAAAAAAA", a.issuer}
	c := metaCID(t, "{}")
	minted := RecordMinted{Token: tok, Holder: a.patient, Amount: 1, CID: c, StudyHash: h}
	tests := []struct {
		name   string
		events []Event
		want   error
	}{
		{"other registry ignored", []Event{IssuerAdded{Registry: a.other, Issuer: a.issuer, HomeDomain: "x"}, minted}, ErrUntrustedIssuer},
		{"other registry cannot remove", []Event{IssuerRemoved{Registry: a.other, Issuer: a.issuer}, minted}, nil},
		{"two stroops", []Event{RecordMinted{Token: tok, Holder: a.patient, Amount: 2, CID: c, StudyHash: h}}, ErrSupply},
		{"unrecorded mint of unknown token ignored", []Event{RecordMinted{Token: unknown, Holder: a.patient, Amount: 1}}, nil},
		{"unrecorded second mint", []Event{minted, RecordMinted{Token: tok, Holder: a.other, Amount: 1}}, ErrDuplicateMint},
		{"same study under another code", []Event{minted, RecordMinted{Token: unknown, Holder: a.patient, Amount: 1, CID: c, StudyHash: h}}, ErrDuplicateMint},
		{"transfer of unknown token ignored", []Event{RecordTransferred{Token: unknown, From: a.patient, To: a.other, Amount: 1}}, nil},
		{"transfer of two stroops", []Event{minted, RecordTransferred{Token: tok, From: a.patient, To: a.other, Amount: 2}}, ErrSupply},
		{"transfer by non-holder", []Event{minted, RecordTransferred{Token: tok, From: a.other, To: a.doctor, Amount: 1}}, ErrNotHolder},
		{"grant on unknown token ignored", []Event{GrantCreated{Token: unknown, Holder: a.patient, Grantee: a.doctor}}, nil},
		{"request on unknown token ignored", []Event{AccessRequested{Token: unknown, Requester: a.doctor}}, nil},
		{"answer without request", []Event{AccessAnswered{Code: tok.Code, Holder: a.patient, Requester: a.doctor}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := NewIndex(a.registry)
			if err := x.Apply(IssuerAdded{Registry: a.registry, Issuer: a.issuer, HomeDomain: "h"}); err != nil {
				t.Fatal(err)
			}
			if tt.name == "other registry ignored" {
				x = NewIndex(a.registry)
			}
			err := x.Apply(tt.events...)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}

	x := NewIndex(a.registry)
	if _, ok := x.Record(unknown); ok {
		t.Error("unknown record found")
	}
	if _, ok := x.ByStudy(h); ok {
		t.Error("unknown study found")
	}
	if x.Allowed(unknown, a.patient, ScopeQuery, time.Now()) {
		t.Error("access to an unknown token")
	}
	if len(x.Pending(unknown)) != 0 || len(x.Grants(unknown)) != 0 {
		t.Error("state for an unknown token")
	}
}
