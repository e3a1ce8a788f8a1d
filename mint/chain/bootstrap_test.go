package chain

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/wallet"
)

// Bootstrap sets everything up once; a second run finds it all in place
// and submits nothing.
func TestBootstrap(t *testing.T) {
	w := newWorld(t, 2, 20*time.Millisecond)
	ctx := w.ctx
	sponsor := w.d.Sponsor.Address()

	reg := w.account(w.d.Registry)
	if masterWeight(reg) != 0 || reg.Thresholds.MedThreshold != DefaultThreshold || reg.Thresholds.HighThreshold != DefaultThreshold {
		t.Errorf("registry: master weight %d, thresholds %+v", masterWeight(reg), reg.Thresholds)
	}
	if len(reg.Signers) != DefaultGovernors+1 {
		t.Errorf("registry signers %+v", reg.Signers)
	}
	if dom, ok := reg.Data[listingName(w.d.Issuer.Address())]; !ok || dom == "" {
		t.Errorf("issuer not listed: %v", reg.Data)
	}
	iss := w.account(w.d.Issuer.Address())
	if !iss.Flags.AuthRequired || !iss.Flags.AuthRevocable || iss.HomeDomain != "hospital.example" {
		t.Errorf("issuer flags %+v, home domain %q", iss.Flags, iss.HomeDomain)
	}
	for _, a := range append(w.d.Sponsor.ChannelAddresses(), w.d.Registry, w.d.Issuer.Address()) {
		acc := w.account(a)
		if b, _ := acc.GetNativeBalance(); b != "0.0000000" || acc.Sponsor != sponsor {
			t.Errorf("%s: %s XLM, sponsor %q", a, b, acc.Sponsor)
		}
	}
	// The chain itself agrees: replayed, the registry trusts the issuer.
	x := contracts.NewIndex(w.d.Registry)
	hz := w.net.Horizon(ctx)
	page, err := hz.Transactions(horizonclient.TransactionRequest{ForAccount: w.d.Registry, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range page.Embedded.Records {
		evs, err := contracts.Interpret(contracts.Transaction{Hash: tx.Hash, EnvelopeXDR: tx.EnvelopeXdr, ResultXDR: tx.ResultXdr})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Apply(evs...); err != nil {
			t.Fatal(err)
		}
	}
	if dom, ok := x.Trusted(w.d.Issuer.Address()); !ok || dom != "hospital.example" {
		t.Errorf("index: issuer trusted %v (%q)", ok, dom)
	}

	before := w.account(sponsor).Sequence
	txs := func() int {
		p, err := hz.Transactions(horizonclient.TransactionRequest{Limit: 200, Order: horizonclient.OrderDesc})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Embedded.Records)
	}
	n := txs()
	again := w.bootstrap(2)
	if again.Issuer.Address() != w.d.Issuer.Address() || again.Registry != w.d.Registry {
		t.Error("second bootstrap derived other accounts")
	}
	if w.account(sponsor).Sequence != before || txs() != n {
		t.Error("second bootstrap submitted transactions")
	}
	if c := w.count(`SELECT count(*) FROM chain_deployments WHERE network_passphrase = $1 AND issuer = $2 AND cardinality(channels) = 2`,
		w.net.Passphrase, w.d.Issuer.Address()); c != 1 {
		t.Errorf("%d deployment rows", c)
	}

	info, err := Describe(ctx, w.net, mustRoles(t, w.cust, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(info) != 3+DefaultGovernors+2 || info[0].Role != "sponsor" || !info[0].Exists || info[0].XLM == "0.0000000" {
		t.Errorf("describe: %+v", info)
	}
	for _, a := range info {
		if strings.HasPrefix(a.Role, "governor") && a.Exists {
			t.Errorf("governor %s has an account; governors only sign", a.Address)
		}
	}
}

func mustRoles(t *testing.T, c *wallet.Custodian, channels int) Roles {
	t.Helper()
	r, err := DeriveRoles(context.Background(), c, channels, DefaultGovernors)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Without friendbot (pubnet) a missing sponsor is the operator's to fund;
// the error says which address and how much. Once funded, bootstrap
// proceeds.
func TestBootstrapUnfundedSponsor(t *testing.T) {
	ctx := context.Background()
	url, dn := devnettest.Start(t, devnettest.WithConfig(func(c *devnet.Config) { c.Logger = quiet }))
	net := wallet.Network{HorizonURL: url, Passphrase: dn.Passphrase()}
	m, _, err := OpenMaster(ctx, filepath.Join(t.TempDir(), MasterFile), newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	cust, err := m.Custodian(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := BootstrapConfig{Network: net, Custodian: cust, HomeDomain: "hospital.example", Channels: 1,
		TxTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond, Logger: quiet}
	_, err = Bootstrap(ctx, cfg)
	sp, _ := cust.Account(ctx, wallet.SponsorIndex)
	if !errors.Is(err, ErrSponsorUnfunded) || !strings.Contains(err.Error(), sp.Address()) || !strings.Contains(err.Error(), "XLM") {
		t.Fatalf("err = %v", err)
	}
	// The operator funds it (here: from another funded account).
	funder := keypair.MustRandom()
	if err := (wallet.Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"}).Fund(ctx, funder.Address()); err != nil {
		t.Fatal(err)
	}
	fs, err := wallet.NewSponsor(wallet.SponsorConfig{Network: net, Key: funder, PollInterval: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Submit(ctx, wallet.Submission{Operations: []txnbuild.Operation{&txnbuild.CreateAccount{SourceAccount: funder.Address(), Destination: sp.Address(), Amount: "20"}}}); err != nil {
		t.Fatal(err)
	}
	d, err := Bootstrap(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d.Sponsor.Address() != sp.Address() {
		t.Error("other sponsor")
	}
}
