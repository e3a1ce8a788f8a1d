package wallet

import (
	"context"
	"errors"
	"fmt"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// SignedBy reports whether tx carries a valid signature by addr over its
// hash on the given network.
func SignedBy(tx *txnbuild.Transaction, passphrase, addr string) (bool, error) {
	kp, err := keypair.ParseAddress(addr)
	if err != nil {
		return false, fmt.Errorf("wallet: signer %q: %w", addr, err)
	}
	hash, err := tx.Hash(passphrase)
	if err != nil {
		return false, fmt.Errorf("wallet: hash transaction: %w", err)
	}
	hint := kp.Hint()
	for _, sig := range tx.Signatures() {
		if sig.Hint == hint && kp.Verify(hash[:], sig.Signature) == nil {
			return true, nil
		}
	}
	return false, nil
}

// SubmitSigned fee-bumps and submits a transaction that a bring-your-own-key
// user built and signed client-side (e.g. with Freighter): the user's
// account is its source and pays nothing.
//
// The sponsor's key never signs anything the user chose unless check
// approves it: if an operation is the sponsor's (typically the
// BeginSponsoringFutureReserves of a CAP-33 sandwich), check must be
// non-nil and return nil, and the sponsor then co-signs the inner
// transaction. The envelope is never rebuilt (only the user can sign a new
// one): if it is known not to have applied, SubmitSigned returns ErrExpired.
func (s *Sponsor) SubmitSigned(ctx context.Context, innerXDR string, check func(*txnbuild.Transaction) error) (Result, error) {
	gtx, err := txnbuild.TransactionFromXDR(innerXDR)
	if err != nil {
		return Result{}, fmt.Errorf("wallet: parse client transaction: %w", err)
	}
	tx, ok := gtx.Transaction()
	if !ok {
		return Result{}, errors.New("wallet: client sent a fee bump; send the inner transaction")
	}
	src := tx.SourceAccount().AccountID
	if src == s.key.Address() {
		return Result{}, errors.New("wallet: client transaction uses the sponsor as its source")
	}
	if tx.Timebounds().MaxTime == 0 {
		// Without an upper time bound an envelope lost in flight could
		// apply at any time later; we need to know when it cannot.
		return Result{}, errors.New("wallet: client transaction has no upper time bound")
	}
	signed, err := SignedBy(tx, s.net.Passphrase, src)
	if err != nil {
		return Result{}, err
	}
	if !signed {
		return Result{}, fmt.Errorf("wallet: client transaction not signed by its source %s", src)
	}
	sponsorOps := false
	for _, op := range tx.Operations() {
		if op.GetSourceAccount() == s.key.Address() {
			sponsorOps = true
		}
	}
	if sponsorOps {
		if check == nil {
			return Result{}, errors.New("wallet: client transaction has sponsor operations and no policy approves them")
		}
		if err := check(tx); err != nil {
			return Result{}, fmt.Errorf("wallet: client transaction refused: %w", err)
		}
		if tx, err = tx.Sign(s.net.Passphrase, s.key); err != nil {
			return Result{}, fmt.Errorf("wallet: co-sign client transaction: %w", err)
		}
	}
	fee, err := s.BaseFee(ctx)
	if err != nil {
		return Result{}, err
	}
	fb, err := s.feeBump(tx, fee)
	if err != nil {
		return Result{}, err
	}
	out, res, err := s.settle(ctx, fb, tx)
	res.Attempts = 1
	if out == notApplied {
		return res, fmt.Errorf("%w: %v", ErrExpired, err)
	}
	return res, err
}
