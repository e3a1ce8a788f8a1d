package wallet

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/network"
)

// Network names a Stellar network by its Horizon and passphrase. Switching
// from the devnet to testnet or pubnet changes only these values.
type Network struct {
	HorizonURL   string
	Passphrase   string
	FriendbotURL string // test networks only
	// HTTP is the client used for Horizon; nil means http.DefaultClient.
	HTTP *http.Client
}

// Testnet and Pubnet are the public networks' well-known settings.
var (
	Testnet = Network{
		HorizonURL:   "https://horizon-testnet.stellar.org",
		Passphrase:   network.TestNetworkPassphrase,
		FriendbotURL: "https://friendbot.stellar.org",
	}
	Pubnet = Network{
		HorizonURL: "https://horizon.stellar.org",
		Passphrase: network.PublicNetworkPassphrase,
	}
)

// Horizon returns a Horizon client whose every request is bound to ctx:
// horizonclient itself takes no context, so the context rides on the
// HTTP transport.
func (n Network) Horizon(ctx context.Context) *horizonclient.Client {
	var base horizonclient.HTTP = http.DefaultClient
	if n.HTTP != nil {
		base = n.HTTP
	}
	return &horizonclient.Client{
		HorizonURL: n.HorizonURL,
		HTTP:       ctxHTTP{ctx: ctx, base: base},
		AppName:    "medimint",
	}
}

// Fund asks the network's friendbot to create and fund addr (test
// networks only).
func (n Network) Fund(ctx context.Context, addr string) error {
	if n.FriendbotURL == "" {
		return fmt.Errorf("wallet: network %q has no friendbot", n.Passphrase)
	}
	sep := "?"
	if strings.Contains(n.FriendbotURL, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.FriendbotURL+sep+"addr="+addr, nil)
	if err != nil {
		return fmt.Errorf("wallet: friendbot request: %w", err)
	}
	hc := n.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("wallet: friendbot %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("wallet: friendbot %s: %s", addr, resp.Status)
	}
	return nil
}

type ctxHTTP struct {
	ctx  context.Context
	base horizonclient.HTTP
}

func (h ctxHTTP) Do(r *http.Request) (*http.Response, error) {
	return h.base.Do(r.WithContext(h.ctx))
}

func (h ctxHTTP) Get(u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return h.base.Do(req)
}

func (h ctxHTTP) PostForm(u string, data url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, u, strings.NewReader(data.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.base.Do(req)
}
