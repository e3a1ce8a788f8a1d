package access_test

import (
	"errors"
	"testing"

	"github.com/stellar/go-stellar-sdk/network"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/wallet"
)

func TestChainAction(t *testing.T) {
	sub := access.Subject{Account: "GALICE", UserID: "u1", Reason: "second opinion"}
	cases := []struct {
		name    string
		net     wallet.Network
		err     error
		url     string
		outcome string
	}{
		{"testnet", wallet.Network{Passphrase: network.TestNetworkPassphrase}, nil,
			"https://stellar.expert/explorer/testnet/tx/ab12", access.OutcomeSuccess},
		{"devnet", wallet.Network{HorizonURL: "http://127.0.0.1:8000/", Passphrase: "devnet"}, nil,
			"http://127.0.0.1:8000/transactions/ab12", access.OutcomeSuccess},
		{"failed", wallet.Network{Passphrase: network.PublicNetworkPassphrase}, errors.New("tx_bad_auth"),
			"https://stellar.expert/explorer/public/tx/ab12", access.OutcomeFailure},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := access.ChainAction(sub, "grant", "CODE:GISSUER", "ab12", c.net, c.err)
			if e.TxURL != c.url || e.Outcome != c.outcome || e.Category != access.CategoryGrant || e.Actor != "u1 (GALICE)" {
				t.Errorf("%+v", e)
			}
		})
	}
}
