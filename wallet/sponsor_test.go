package wallet

import (
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

var offline = Network{HorizonURL: "http://127.0.0.1:1", Passphrase: network.TestNetworkPassphrase}

func TestNewSponsorConfig(t *testing.T) {
	key := keypair.MustRandom()
	ch := keypair.MustRandom()
	tests := []struct {
		name string
		cfg  SponsorConfig
		ok   bool
	}{
		{"defaults", SponsorConfig{Network: offline, Key: key}, true},
		{"channels", SponsorConfig{Network: offline, Key: key, Channels: []*keypair.Full{ch}}, true},
		{"no key", SponsorConfig{Network: offline}, false},
		{"no network", SponsorConfig{Key: key}, false},
		{"fee below minimum", SponsorConfig{Network: offline, Key: key, MaxBaseFee: 99}, false},
		{"odd percentile", SponsorConfig{Network: offline, Key: key, FeePercentile: 75}, false},
		{"short timeout", SponsorConfig{Network: offline, Key: key, TxTimeout: time.Second}, false},
		{"duplicate channel", SponsorConfig{Network: offline, Key: key, Channels: []*keypair.Full{ch, ch}}, false},
		{"sponsor as channel", SponsorConfig{Network: offline, Key: key, Channels: []*keypair.Full{key}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSponsor(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestBuildFeeBump checks the envelope a Submit would send: a CAP-15 fee
// bump paid by the sponsor around a transaction sourced by the channel,
// operations keeping their own sources, signed by exactly the needed keys.
func TestBuildFeeBump(t *testing.T) {
	sponsorKP, chKP, user := keypair.MustRandom(), keypair.MustRandom(), keypair.MustRandom()
	s, err := NewSponsor(SponsorConfig{Network: offline, Key: sponsorKP, Channels: []*keypair.Full{chKP}})
	if err != nil {
		t.Fatal(err)
	}
	ops := append(CreateAccountOps(s.Address(), user.Address()),
		Sponsored(s.Address(), user.Address(), &txnbuild.ManageData{SourceAccount: user.Address(), Name: "k", Value: []byte("v")})...)
	ch := &channel{kp: chKP, seq: 41, known: true}
	fb, inner, err := s.build(ch, Submission{Operations: ops, Signers: []*keypair.Full{user, user}}, 250)
	if err != nil {
		t.Fatal(err)
	}
	if fb.FeeAccount() != s.Address() {
		t.Errorf("fee account %s, want sponsor", fb.FeeAccount())
	}
	if got, want := fb.MaxFee(), int64(250*(len(ops)+1)); got != want {
		t.Errorf("fee bump max fee %d, want %d", got, want)
	}
	if inner.SourceAccount().AccountID != chKP.Address() || inner.SequenceNumber() != 42 {
		t.Errorf("inner source %s seq %d, want channel seq 42", inner.SourceAccount().AccountID, inner.SequenceNumber())
	}
	if tb := inner.Timebounds(); tb.MaxTime-time.Now().Unix() > 60 || tb.MaxTime == 0 {
		t.Errorf("time bounds %+v, want a 60s window", tb)
	}
	env := inner.ToXDR()
	wantSources := []string{s.Address(), s.Address(), user.Address(), s.Address(), user.Address(), user.Address()}
	for i, op := range env.Operations() {
		if op.SourceAccount == nil {
			t.Fatalf("op %d lost its source", i)
		}
		if got := op.SourceAccount.ToAccountId(); got.Address() != wantSources[i] {
			t.Errorf("op %d source %s, want %s", i, got.Address(), wantSources[i])
		}
	}
	if env.Operations()[1].Body.Type != xdr.OperationTypeCreateAccount || env.Operations()[1].Body.CreateAccountOp.StartingBalance != 0 {
		t.Error("account not created with 0 XLM")
	}
	if n := len(inner.Signatures()); n != 3 {
		t.Errorf("%d inner signatures, want channel+sponsor+user", n)
	}
	for _, who := range []*keypair.Full{chKP, sponsorKP, user} {
		if ok, _ := SignedBy(inner, offline.Passphrase, who.Address()); !ok {
			t.Errorf("inner not signed by %s", who.Address())
		}
	}
	if n := len(fb.Signatures()); n != 1 {
		t.Errorf("%d fee bump signatures, want the sponsor's", n)
	}

	// Too many signers for one transaction.
	var many []*keypair.Full
	for range MaxSignatures {
		many = append(many, keypair.MustRandom())
	}
	if _, _, err := s.build(ch, Submission{Operations: ops, Signers: many}, 100); err == nil {
		t.Error("21 signatures accepted")
	}
}

func TestSubmitRejectsSourcelessOps(t *testing.T) {
	s, _ := NewSponsor(SponsorConfig{Network: offline, Key: keypair.MustRandom()})
	_, err := s.Submit(t.Context(), Submission{Operations: []txnbuild.Operation{&txnbuild.ManageData{Name: "k"}}})
	if err == nil {
		t.Fatal("operation without a source accepted: it would run as the channel account")
	}
	if _, err := s.Submit(t.Context(), Submission{}); err == nil {
		t.Fatal("empty submission accepted")
	}
}
