package portalapi

import "github.com/stellar/go-stellar-sdk/clients/horizonclient"

func horizonAccount(addr string) horizonclient.AccountRequest {
	return horizonclient.AccountRequest{AccountID: addr}
}
