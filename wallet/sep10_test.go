package wallet

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

func sep10Auth(t *testing.T) *Authenticator {
	t.Helper()
	return &Authenticator{
		Network:       Network{HorizonURL: "http://127.0.0.1:1", Passphrase: network.TestNetworkPassphrase},
		Server:        keypair.MustRandom(),
		HomeDomain:    "medimint.example",
		WebAuthDomain: "auth.medimint.example",
	}
}

func signChallenge(t *testing.T, a *Authenticator, challenge string, kps ...*keypair.Full) string {
	t.Helper()
	g, err := txnbuild.TransactionFromXDR(challenge)
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := g.Transaction()
	if tx, err = tx.Sign(a.Network.Passphrase, kps...); err != nil {
		t.Fatal(err)
	}
	s, err := tx.Base64()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSEP10ChallengeShape(t *testing.T) {
	a := sep10Auth(t)
	client := keypair.MustRandom()
	ch, err := a.Challenge(client.Address(), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := txnbuild.TransactionFromXDR(ch)
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := g.Transaction()
	if tx.SourceAccount().AccountID != a.Server.Address() || tx.SequenceNumber() != 0 {
		t.Errorf("source %s seq %d, want server with sequence 0", tx.SourceAccount().AccountID, tx.SequenceNumber())
	}
	tb := tx.Timebounds()
	if d := tb.MaxTime - tb.MinTime; d != 300 {
		t.Errorf("time bounds span %ds, want 300", d)
	}
	ops := tx.Operations()
	if len(ops) != 2 {
		t.Fatalf("%d operations", len(ops))
	}
	first := ops[0].(*txnbuild.ManageData)
	if first.Name != "medimint.example auth" || first.SourceAccount != client.Address() {
		t.Errorf("first op %q from %s", first.Name, first.SourceAccount)
	}
	nonce, err := base64.StdEncoding.DecodeString(string(first.Value))
	if err != nil || len(first.Value) != 64 || len(nonce) != 48 {
		t.Errorf("nonce %q: want 48 random bytes as 64 base64 characters", first.Value)
	}
	second := ops[1].(*txnbuild.ManageData)
	if second.Name != "web_auth_domain" || string(second.Value) != a.WebAuthDomain || second.SourceAccount != a.Server.Address() {
		t.Errorf("second op %q=%q from %s", second.Name, second.Value, second.SourceAccount)
	}
	if ok, _ := SignedBy(tx, a.Network.Passphrase, a.Server.Address()); !ok {
		t.Error("challenge not signed by the server")
	}
}

func TestSEP10VerifyThreshold(t *testing.T) {
	a := sep10Auth(t)
	client, cosigner, stranger := keypair.MustRandom(), keypair.MustRandom(), keypair.MustRandom()
	signers := txnbuild.SignerSummary{client.Address(): 1, cosigner.Address(): 1}

	fresh := func() string {
		ch, err := a.Challenge(client.Address(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	// expired builds a challenge whose time bounds ended a minute ago.
	expired := func() string {
		tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
			SourceAccount: &txnbuild.SimpleAccount{AccountID: a.Server.Address(), Sequence: -1},
			Operations: []txnbuild.Operation{
				&txnbuild.ManageData{SourceAccount: client.Address(), Name: a.HomeDomain + " auth", Value: []byte(strings.Repeat("A", 64))},
				&txnbuild.ManageData{SourceAccount: a.Server.Address(), Name: "web_auth_domain", Value: []byte(a.WebAuthDomain)},
			},
			IncrementSequenceNum: true,
			BaseFee:              txnbuild.MinBaseFee,
			Preconditions:        txnbuild.Preconditions{TimeBounds: txnbuild.NewTimebounds(time.Now().Add(-6*time.Minute).Unix(), time.Now().Add(-time.Minute).Unix())},
		})
		if err != nil {
			t.Fatal(err)
		}
		tx, _ = tx.Sign(a.Network.Passphrase, a.Server)
		s, _ := tx.Base64()
		return s
	}
	// tampered replaces the nonce after the server signed.
	tampered := func() string {
		g, _ := txnbuild.TransactionFromXDR(fresh())
		tx, _ := g.Transaction()
		env := tx.ToXDR()
		env.V1.Tx.Operations[0].Body.ManageDataOp.DataValue = nil
		b, err := envB64(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	tests := []struct {
		name      string
		challenge func() string
		signers   []*keypair.Full
		threshold txnbuild.Threshold
		auth      func(*Authenticator) *Authenticator
		wantErr   string
	}{
		{name: "one signer meets 1", challenge: fresh, signers: []*keypair.Full{client}, threshold: 1},
		{name: "two signers meet 2", challenge: fresh, signers: []*keypair.Full{client, cosigner}, threshold: 2},
		{name: "one signer below 2", challenge: fresh, signers: []*keypair.Full{client}, threshold: 2, wantErr: "threshold"},
		{name: "unsigned by client", challenge: fresh, threshold: 1, wantErr: "not signed"},
		{name: "stranger signature", challenge: fresh, signers: []*keypair.Full{client, stranger}, threshold: 1, wantErr: "unrecognized"},
		{name: "stranger only", challenge: fresh, signers: []*keypair.Full{stranger}, threshold: 1, wantErr: "not signed"},
		{name: "expired", challenge: expired, signers: []*keypair.Full{client}, threshold: 1, wantErr: "timebounds"},
		{name: "tampered nonce", challenge: tampered, signers: []*keypair.Full{client}, threshold: 1, wantErr: "nonce"},
		{name: "other server", challenge: fresh, signers: []*keypair.Full{client}, threshold: 1, wantErr: "server's account",
			auth: func(a *Authenticator) *Authenticator { b := *a; b.Server = keypair.MustRandom(); return &b }},
		{name: "other home domain", challenge: fresh, signers: []*keypair.Full{client}, threshold: 1, wantErr: "homeDomains",
			auth: func(a *Authenticator) *Authenticator { b := *a; b.HomeDomain = "evil.example"; return &b }},
		{name: "other web auth domain", challenge: fresh, signers: []*keypair.Full{client}, threshold: 1, wantErr: "web auth domain",
			auth: func(a *Authenticator) *Authenticator { b := *a; b.WebAuthDomain = "evil.example"; return &b }},
		{name: "other network", challenge: fresh, signers: []*keypair.Full{client}, threshold: 1, wantErr: "not signed",
			auth: func(a *Authenticator) *Authenticator {
				b := *a
				b.Network.Passphrase = network.PublicNetworkPassphrase
				return &b
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := tt.challenge()
			if len(tt.signers) > 0 {
				ch = signChallenge(t, a, ch, tt.signers...)
			}
			verifier := a
			if tt.auth != nil {
				verifier = tt.auth(a)
			}
			found, err := verifier.VerifyThreshold(ch, tt.threshold, signers)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				if len(found) != len(tt.signers) {
					t.Errorf("found signers %v, want %d", found, len(tt.signers))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func envB64(env interface{ MarshalBinary() ([]byte, error) }) (string, error) {
	b, err := env.MarshalBinary()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
