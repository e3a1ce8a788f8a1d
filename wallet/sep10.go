package wallet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// Authenticator implements SEP-10 web authentication: it issues challenge
// transactions signed by the server's SIGNING_KEY and verifies the ones the
// client signed back.
type Authenticator struct {
	Network Network
	// Server is the SIGNING_KEY published in our stellar.toml.
	Server *keypair.Full
	// HomeDomain names the first ManageData operation ("<home_domain> auth").
	HomeDomain string
	// WebAuthDomain is the host serving the auth endpoint (web_auth_domain).
	WebAuthDomain string
	// Timeout is the challenge's validity (default 5 minutes, as SEP-10
	// recommends).
	Timeout time.Duration
}

// Verified is a successfully verified challenge.
type Verified struct {
	// Account is the authenticated account (G…, or M… for a muxed user of
	// a shared account).
	Account string
	// Memo identifies a user of a shared account, when the challenge had one.
	Memo *txnbuild.MemoID
	// Signers are the client signers whose signatures were verified.
	Signers []string
	// Exists reports whether the account is on the ledger: if so its signers
	// met its medium threshold, otherwise its master key signed.
	Exists bool
}

func (a *Authenticator) timeout() time.Duration {
	if a.Timeout == 0 {
		return 5 * time.Minute
	}
	return a.Timeout
}

// Challenge builds a SEP-10 challenge for client: sequence number 0 on the
// server account, a "<home_domain> auth" ManageData with a 48-byte random
// nonce (base64, 64 bytes) sourced by the client, a web_auth_domain
// ManageData, time bounds of Timeout, signed by the server.
func (a *Authenticator) Challenge(client string, memo *txnbuild.MemoID) (string, error) {
	tx, err := txnbuild.BuildChallengeTx(a.Server.Seed(), client, a.WebAuthDomain, a.HomeDomain,
		a.Network.Passphrase, a.timeout(), memo)
	if err != nil {
		return "", fmt.Errorf("wallet: sep-10 challenge: %w", err)
	}
	b64, err := tx.Base64()
	if err != nil {
		return "", fmt.Errorf("wallet: sep-10 challenge: %w", err)
	}
	return b64, nil
}

// Verify checks a challenge signed by the client. Following SEP-10 v3: the
// challenge must be ours (server signature, home and web auth domains, time
// bounds, nonce format); if the client account exists, its signers' weights
// must meet its medium threshold; if it does not, its master key must have
// signed. Any signature that is not the server's or a client signer's fails
// verification.
func (a *Authenticator) Verify(ctx context.Context, challenge string) (Verified, error) {
	_, client, _, memo, err := txnbuild.ReadChallengeTx(challenge, a.Server.Address(),
		a.Network.Passphrase, a.WebAuthDomain, []string{a.HomeDomain})
	if err != nil {
		return Verified{}, fmt.Errorf("wallet: sep-10 challenge: %w", err)
	}
	v := Verified{Account: client, Memo: memo}
	// A muxed client is a user of the underlying G account: its signers
	// are that account's.
	acctID := client
	if m, err := xdr.AddressToMuxedAccount(client); err == nil {
		aid := m.ToAccountId()
		acctID = aid.Address()
	}
	acc, err := a.Network.Horizon(ctx).AccountDetail(horizonclient.AccountRequest{AccountID: acctID})
	switch {
	case horizonclient.IsNotFoundError(err):
		v.Signers, err = txnbuild.VerifyChallengeTxSigners(challenge, a.Server.Address(),
			a.Network.Passphrase, a.WebAuthDomain, []string{a.HomeDomain}, acctID)
	case err != nil:
		return Verified{}, fmt.Errorf("wallet: sep-10 load account %s: %w", acctID, err)
	default:
		v.Exists = true
		v.Signers, err = a.VerifyThreshold(challenge, txnbuild.Threshold(acc.Thresholds.MedThreshold), acc.SignerSummary())
	}
	if err != nil {
		return Verified{}, fmt.Errorf("wallet: sep-10 verify %s: %w", client, err)
	}
	if len(v.Signers) == 0 {
		return Verified{}, errors.New("wallet: sep-10 verify: no client signature")
	}
	return v, nil
}

// VerifyThreshold verifies a challenge against an explicit signer set and
// threshold (an existing account's signers and medium threshold).
func (a *Authenticator) VerifyThreshold(challenge string, threshold txnbuild.Threshold, signers txnbuild.SignerSummary) ([]string, error) {
	return txnbuild.VerifyChallengeTxThreshold(challenge, a.Server.Address(), a.Network.Passphrase,
		a.WebAuthDomain, []string{a.HomeDomain}, threshold, signers)
}
