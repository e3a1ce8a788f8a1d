package wallet

import (
	"strings"

	"github.com/stellar/go-stellar-sdk/network"
)

// TxURL links to a transaction in a block explorer: stellar.expert for
// testnet and pubnet; for any other network (the devnet), the transaction
// resource on the network's own Horizon.
func (n Network) TxURL(hash string) string {
	switch n.Passphrase {
	case network.PublicNetworkPassphrase:
		return "https://stellar.expert/explorer/public/tx/" + hash
	case network.TestNetworkPassphrase:
		return "https://stellar.expert/explorer/testnet/tx/" + hash
	}
	return strings.TrimRight(n.HorizonURL, "/") + "/transactions/" + hash
}

// AccountURL links to an account the same way TxURL links to a
// transaction.
func (n Network) AccountURL(addr string) string {
	switch n.Passphrase {
	case network.PublicNetworkPassphrase:
		return "https://stellar.expert/explorer/public/account/" + addr
	case network.TestNetworkPassphrase:
		return "https://stellar.expert/explorer/testnet/account/" + addr
	}
	return strings.TrimRight(n.HorizonURL, "/") + "/accounts/" + addr
}
