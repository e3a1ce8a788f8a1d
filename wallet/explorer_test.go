package wallet

import "testing"

func TestTxURL(t *testing.T) {
	const h = "3389e9f0f1a65f19736cacf544c2e825313e8447f569233bb8db39aa607c8889"
	dev := Network{HorizonURL: "http://127.0.0.1:8042/horizon/", Passphrase: "Medimint devnet"}
	tests := []struct {
		name     string
		n        Network
		tx, acct string
	}{
		{"testnet", Testnet, "https://stellar.expert/explorer/testnet/tx/" + h, "https://stellar.expert/explorer/testnet/account/GA"},
		{"pubnet", Pubnet, "https://stellar.expert/explorer/public/tx/" + h, "https://stellar.expert/explorer/public/account/GA"},
		{"devnet", dev, "http://127.0.0.1:8042/horizon/transactions/" + h, "http://127.0.0.1:8042/horizon/accounts/GA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.n.TxURL(h); got != tt.tx {
				t.Errorf("TxURL = %s, want %s", got, tt.tx)
			}
			if got := tt.n.AccountURL("GA"); got != tt.acct {
				t.Errorf("AccountURL = %s, want %s", got, tt.acct)
			}
		})
	}
}
