package wallet

import (
	"context"
	"fmt"

	"github.com/stellar/go-stellar-sdk/amount"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
)

// Holding reports account's trustline for an asset: whether it exists and
// its balance in stroops. A missing account holds nothing.
func (n Network) Holding(ctx context.Context, account, code, issuer string) (balance int64, trustline bool, err error) {
	acc, err := n.Horizon(ctx).AccountDetail(horizonclient.AccountRequest{AccountID: account})
	if horizonclient.IsNotFoundError(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("wallet: load account %s: %w", account, err)
	}
	for _, b := range acc.Balances {
		if b.Code == code && b.Issuer == issuer {
			v, err := amount.ParseInt64(b.Balance)
			if err != nil {
				return 0, true, fmt.Errorf("wallet: balance %q: %w", b.Balance, err)
			}
			return v, true, nil
		}
	}
	return 0, false, nil
}

// Escrowed lists the IDs of claimable balances of an asset that account
// can claim.
func (n Network) Escrowed(ctx context.Context, account, code, issuer string) ([]string, error) {
	page, err := n.Horizon(ctx).ClaimableBalances(horizonclient.ClaimableBalanceRequest{
		Asset: code + ":" + issuer, Claimant: account,
	})
	if err != nil {
		return nil, fmt.Errorf("wallet: claimable balances of %s:%s for %s: %w", code, issuer, account, err)
	}
	var ids []string
	for _, cb := range page.Embedded.Records {
		ids = append(ids, cb.BalanceID)
	}
	return ids, nil
}

// IssuedTo reports whether holder already holds the asset or can claim it.
// A minter asks before minting a per-study token, so that a retried mint
// finds the earlier one instead of minting again.
func (n Network) IssuedTo(ctx context.Context, holder, code, issuer string) (bool, error) {
	bal, _, err := n.Holding(ctx, holder, code, issuer)
	if err != nil || bal > 0 {
		return bal > 0, err
	}
	ids, err := n.Escrowed(ctx, holder, code, issuer)
	return len(ids) > 0, err
}
