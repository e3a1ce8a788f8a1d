package contracts

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

type actors struct {
	sponsor, registry, issuer, patient, doctor, other, channel string
}

func newActors() actors {
	a := func() string { return keypair.MustRandom().Address() }
	return actors{a(), a(), a(), a(), a(), a(), a()}
}

// metaCID returns a CIDv1 raw sha2-256 of some metadata JSON.
func metaCID(t testing.TB, json string) string {
	t.Helper()
	mh, err := multihash.Sum([]byte(json), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, mh).String()
}

// envelope builds the transaction a channel account would submit for d,
// optionally inside a fee bump, as base64 XDR.
func envelope(t testing.TB, channel string, seq int64, d Draft, feeBump bool) (string, *txnbuild.Transaction) {
	t.Helper()
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount:        &txnbuild.SimpleAccount{AccountID: channel, Sequence: seq - 1},
		IncrementSequenceNum: true,
		Operations:           d.Operations,
		Memo:                 d.Memo,
		BaseFee:              txnbuild.MinBaseFee,
		Preconditions:        txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b64 string
	if feeBump {
		fb, err := txnbuild.NewFeeBumpTransaction(txnbuild.FeeBumpTransactionParams{
			Inner: tx, FeeAccount: keypair.MustRandom().Address(), BaseFee: 200,
		})
		if err != nil {
			t.Fatal(err)
		}
		b64, err = fb.Base64()
		if err != nil {
			t.Fatal(err)
		}
	} else if b64, err = tx.Base64(); err != nil {
		t.Fatal(err)
	}
	return b64, tx
}

func interpret(t testing.TB, a actors, d Draft) []Event {
	t.Helper()
	b64, _ := envelope(t, a.channel, 100, d, true)
	evs, err := Interpret(Transaction{Hash: "tx", Ledger: 7, CreatedAt: time.Unix(1e9, 0), EnvelopeXDR: b64})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// strip drops event locations so tests compare contents.
func strip(evs []Event) []Event {
	out := make([]Event, len(evs))
	for i, ev := range evs {
		switch e := ev.(type) {
		case IssuerAdded:
			e.Meta = Meta{}
			out[i] = e
		case IssuerRemoved:
			e.Meta = Meta{}
			out[i] = e
		case RecordMinted:
			e.Meta = Meta{}
			out[i] = e
		case RecordTransferred:
			e.Meta = Meta{}
			out[i] = e
		case GrantCreated:
			e.Meta = Meta{}
			out[i] = e
		case GrantRevoked:
			e.Meta = Meta{}
			out[i] = e
		case AccessRequested:
			e.Meta = Meta{}
			out[i] = e
		case AccessAnswered:
			e.Meta = Meta{}
			out[i] = e
		}
	}
	return out
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestIdentity(t *testing.T) {
	salt := []byte("org salt")
	uid := "1.2.826.0.1.3680043.8.498.1"
	h := StudyHash(salt, uid)
	if h != StudyHash(salt, uid) {
		t.Fatal("study hash not deterministic")
	}
	if h == StudyHash([]byte("other salt"), uid) {
		t.Fatal("study hash ignores the salt")
	}
	code := AssetCode(h)
	if !IsRecordCode(code) || len(code) != CodeLength {
		t.Fatalf("code %q", code)
	}
	tok := Token{Code: code, Issuer: "GISSUER"}
	if tok.String() != code+":GISSUER" || tok.Asset().Code != code {
		t.Error("token rendering")
	}
	for _, tt := range []struct {
		code string
		ok   bool
	}{{"ABCDEFGHIJ23", true}, {"ABCDEFGHIJ2", false}, {"ABCDEFGHIJ231", false}, {"abcdefghij23", false}, {"ABCDEFGHIJ18", false}} {
		if IsRecordCode(tt.code) != tt.ok {
			t.Errorf("IsRecordCode(%q) = %v", tt.code, !tt.ok)
		}
	}
}

func TestParseCID(t *testing.T) {
	json := `{"modality":"CT"}`
	sum := sha256.Sum256([]byte(json))
	mh := must[multihash.Multihash](t)(multihash.Sum([]byte(json), multihash.SHA2_256, -1))
	v0 := cid.NewCidV0(mh).String()
	sha512 := must[multihash.Multihash](t)(multihash.Sum([]byte(json), multihash.SHA2_512, -1))
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"raw v1", cid.NewCidV1(cid.Raw, mh).String(), cid.NewCidV1(cid.Raw, mh).String(), false},
		{"dag-pb v0", v0, cid.NewCidV1(cid.DagProtobuf, mh).String(), false},
		{"dag-pb v1", cid.NewCidV1(cid.DagProtobuf, mh).String(), cid.NewCidV1(cid.DagProtobuf, mh).String(), false},
		{"not a CID", "hello", "", true},
		{"sha2-512", cid.NewCidV1(cid.Raw, sha512).String(), "", true},
		{"dag-cbor", cid.NewCidV1(cid.DagCBOR, mh).String(), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseCID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Digest != sum {
				t.Error("digest is not the sha2-256 of the content")
			}
			if p.CID() != tt.want {
				t.Errorf("CID %s, want %s", p.CID(), tt.want)
			}
		})
	}
}

func TestBuilderErrors(t *testing.T) {
	a := newActors()
	okTok := Token{Code: AssetCode(StudyHash(nil, "x")), Issuer: a.issuer}
	future := time.Now().Add(time.Hour)
	cidOK := metaCID(t, "{}")
	tests := []struct {
		name string
		err  error
	}{
		{"registry threshold 0", second(SetupRegistry(a.sponsor, a.registry, []string{a.doctor}, 0))},
		{"registry threshold above governors", second(SetupRegistry(a.sponsor, a.registry, []string{a.doctor}, 2))},
		{"registry bad governor", second(SetupRegistry(a.sponsor, a.registry, []string{"GBAD"}, 1))},
		{"add bad issuer", second(AddIssuer(a.sponsor, a.registry, "GBAD", "x.org"))},
		{"add bad domain", second(AddIssuer(a.sponsor, a.registry, a.issuer, ""))},
		{"add long domain", second(AddIssuer(a.sponsor, a.registry, a.issuer, strings.Repeat("x", 33)))},
		{"remove bad issuer", second(RemoveIssuer(a.registry, "GBAD"))},
		{"issuer bad domain", second(SetupIssuer(a.issuer, "a b"))},
		{"mint twice", second(MintBatches(a.sponsor, a.issuer, []Mint{
			{StudyHash: [32]byte{1}, CID: cidOK, Holder: a.patient}, {StudyHash: [32]byte{1}, CID: cidOK, Holder: a.patient}}))},
		{"mint bad CID", second(MintBatches(a.sponsor, a.issuer, []Mint{{CID: "x", Holder: a.patient}}))},
		{"mint bad holder", second(MintBatches(a.sponsor, a.issuer, []Mint{{CID: cidOK, Holder: "GBAD"}}))},
		{"grant bad grantee", second(GrantAccess(a.sponsor, Grant{Token: okTok, Holder: a.patient, Grantee: "GBAD", Expires: future, Scope: ScopeQuery}))},
		{"grant bad issuer", second(GrantAccess(a.sponsor, Grant{Token: Token{Code: okTok.Code, Issuer: "GBAD"}, Holder: a.patient, Grantee: a.doctor, Expires: future, Scope: ScopeQuery}))},
		{"grant no scope", second(GrantAccess(a.sponsor, Grant{Token: okTok, Holder: a.patient, Grantee: a.doctor, Expires: future}))},
		{"grant unknown scope", second(GrantAccess(a.sponsor, Grant{Token: okTok, Holder: a.patient, Grantee: a.doctor, Expires: future, Scope: 8}))},
		{"grant no expiry", second(GrantAccess(a.sponsor, Grant{Token: okTok, Holder: a.patient, Grantee: a.doctor, Scope: ScopeQuery}))},
		{"revoke bad grantee", second(RevokeAccess(a.patient, okTok.Code, "GBAD"))},
		{"revoke nobody", second(RevokeAccess(a.patient, okTok.Code))},
		{"request bad code", second(RequestAccess(a.sponsor, Request{Token: Token{Code: "XLM", Issuer: a.issuer}, Requester: a.doctor, Scope: ScopeQuery, Until: future}))},
		{"request bad terms", second(RequestAccess(a.sponsor, Request{Token: okTok, Requester: a.doctor, Until: future}))},
		{"answer bad requester", second(AnswerAccess(a.sponsor, Answer{Token: okTok, Holder: a.patient, Requester: "GBAD"}))},
		{"answer bad grant", second(AnswerAccess(a.sponsor, Answer{Token: okTok, Holder: a.patient, Requester: a.doctor, Grant: &Grant{Expires: future}}))},
		{"transfer to self", second(TransferRecord(a.sponsor, Transfer{Token: okTok, From: a.patient, To: a.patient}))},
		{"transfer bad grantee", second(TransferRecord(a.sponsor, Transfer{Token: okTok, From: a.patient, To: a.other, Grantees: []string{"GBAD"}}))},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestSetupDrafts(t *testing.T) {
	a := newActors()
	d := must[Draft](t)(SetupRegistry(a.sponsor, a.registry, []string{a.doctor, a.other, a.patient}, 2))
	if n := len(d.Operations); n != 2+3+1 {
		t.Errorf("%d ops", n)
	}
	last := d.Operations[len(d.Operations)-2].(*txnbuild.SetOptions)
	if *last.MasterWeight != 0 || *last.MediumThreshold != 2 {
		t.Error("registry not locked to its governors")
	}
	d = must[Draft](t)(SetupIssuer(a.issuer, "hospital.example"))
	so := d.Operations[0].(*txnbuild.SetOptions)
	if len(so.SetFlags) != 2 || *so.HomeDomain != "hospital.example" || d.Signers[0] != a.issuer {
		t.Errorf("issuer setup %+v", so)
	}
	// Both envelopes are valid Stellar transactions.
	envelope(t, a.channel, 1, d, false)
}
