package wallet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// Submission is one transaction's worth of operations. The transaction's
// source is a channel account, so every operation must name its own source
// account.
type Submission struct {
	Operations []txnbuild.Operation
	Memo       txnbuild.Memo
	// Signers are the keys of the operations' source accounts (custodial
	// users, the issuer, …). The channel and, when an operation is the
	// sponsor's, the sponsor sign on their own.
	Signers []*keypair.Full
}

// Result describes a transaction in the ledger.
type Result struct {
	Hash        string // the fee-bump transaction's hash (what explorers list)
	InnerHash   string
	Ledger      int32
	EnvelopeXDR string
	ResultXDR   string
	FeeCharged  int64
	Attempts    int // builds, counting rebuilds with a fresh sequence number
}

// TxError is a transaction that Stellar refused (Applied false: nothing
// happened, nothing was paid) or applied as failed (Applied true: the
// sequence number and fee were consumed, no operation took effect).
type TxError struct {
	Hash      string
	Applied   bool
	Codes     horizon.TransactionResultCodes
	ResultXDR string // set when Applied
}

func (e *TxError) Error() string {
	where := "rejected"
	if e.Applied {
		where = "failed in ledger"
	}
	codes := e.Codes.TransactionCode
	if e.Codes.InnerTransactionCode != "" {
		codes += "/" + e.Codes.InnerTransactionCode
	}
	if len(e.Codes.OperationCodes) > 0 {
		codes += " [" + strings.Join(e.Codes.OperationCodes, ",") + "]"
	}
	return fmt.Sprintf("wallet: transaction %s %s: %s", e.Hash, where, codes)
}

// UnknownOutcomeError reports that the context ended before the outcome of
// a submitted transaction was known. It may still apply until its time
// bounds pass: look it up by Hash before doing the same thing again.
type UnknownOutcomeError struct {
	Hash string
	Err  error
}

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("wallet: outcome of transaction %s unknown: %v", e.Hash, e.Err)
}

func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// ErrExpired reports a client-signed transaction that was never applied and
// whose time bounds have passed; the client must sign a new one.
var ErrExpired = errors.New("wallet: transaction expired without being applied")

type outcome int

const (
	applied    outcome = iota // in the ledger (successful or failed)
	notApplied                // known never to apply: safe to rebuild
	rejected                  // refused at submission; sequence not consumed
	unknown                   // context ended first
)

// Submit builds, signs, fee-bumps and submits a transaction, and returns
// once it is in the ledger. The transaction's source is a channel account
// taken from the pool, so concurrent calls proceed in parallel.
//
// Resubmission never applies the operations twice: after a timeout the very
// same envelope is resubmitted (its sequence number lets it apply at most
// once), and the operations are rebuilt under a fresh sequence number only
// once the previous envelope is known not to have applied: it is not found
// by hash and either its source's sequence number has moved past it or a
// ledger closed after its time bounds.
func (s *Sponsor) Submit(ctx context.Context, sub Submission) (Result, error) {
	if len(sub.Operations) == 0 || len(sub.Operations) > MaxOperations {
		return Result{}, fmt.Errorf("wallet: submit: %d operations, want 1..%d", len(sub.Operations), MaxOperations)
	}
	for i, op := range sub.Operations {
		if op.GetSourceAccount() == "" {
			return Result{}, fmt.Errorf("wallet: submit: operation %d (%T) names no source account", i, op)
		}
	}
	return s.submitFrom(ctx, s.pool, sub)
}

// CreateAccounts creates each key's account with 0 XLM, its reserve
// sponsored, skipping accounts that already exist. Use it to bootstrap
// channel accounts, issuers, registries and custodial users; it uses the
// sponsor itself as the source, so it works before any channel exists.
func (s *Sponsor) CreateAccounts(ctx context.Context, keys ...*keypair.Full) ([]Result, error) {
	var (
		ops     []txnbuild.Operation
		signers []*keypair.Full
		results []Result
	)
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		res, err := s.submitFrom(ctx, s.self, Submission{Operations: ops, Signers: signers})
		if err != nil {
			return err
		}
		results = append(results, res)
		ops, signers = nil, nil
		return nil
	}
	seen := map[string]bool{}
	for _, kp := range keys {
		if seen[kp.Address()] {
			continue
		}
		seen[kp.Address()] = true
		exists, err := s.AccountExists(ctx, kp.Address())
		if err != nil {
			return results, err
		}
		if exists {
			continue
		}
		// 3 operations and 1 signature per account; the sponsor and the
		// source sign too.
		if len(ops)+3 > MaxOperations || len(signers)+1 > MaxSignatures-2 {
			if err := flush(); err != nil {
				return results, err
			}
		}
		ops = append(ops, CreateAccountOps(s.key.Address(), kp.Address())...)
		signers = append(signers, kp)
	}
	return results, flush()
}

// AccountExists reports whether addr is an account on the ledger.
func (s *Sponsor) AccountExists(ctx context.Context, addr string) (bool, error) {
	_, err := s.net.Horizon(ctx).AccountDetail(horizonclient.AccountRequest{AccountID: addr})
	if horizonclient.IsNotFoundError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("wallet: load account %s: %w", addr, err)
	}
	return true, nil
}

func (s *Sponsor) submitFrom(ctx context.Context, pool chan *channel, sub Submission) (Result, error) {
	var ch *channel
	select {
	case ch = <-pool:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("wallet: waiting for a channel account: %w", ctx.Err())
	}
	defer func() { pool <- ch }()

	fee, err := s.BaseFee(ctx)
	if err != nil {
		return Result{}, err
	}
	for attempt := 1; ; attempt++ {
		if !ch.known {
			seq, err := s.sequence(ctx, ch.kp.Address())
			if err != nil {
				return Result{}, err
			}
			ch.seq, ch.known = seq, true
		}
		fb, inner, err := s.build(ch, sub, fee)
		if err != nil {
			return Result{}, err
		}
		out, res, err := s.settle(ctx, fb, inner)
		res.Attempts = attempt
		switch out {
		case applied:
			ch.seq = inner.SequenceNumber()
			return res, err
		case rejected:
			return res, err
		case unknown:
			ch.known = false
			return res, err
		}
		ch.known = false
		if attempt >= s.maxAttempts {
			return res, fmt.Errorf("wallet: %d attempts, none applied: %w", attempt, err)
		}
		s.log.InfoContext(ctx, "rebuilding transaction with a fresh sequence number",
			slog.String("hash", res.Hash), slog.String("source", ch.kp.Address()), slog.Any("reason", err))
	}
}

func (s *Sponsor) sequence(ctx context.Context, addr string) (int64, error) {
	acc, err := s.net.Horizon(ctx).AccountDetail(horizonclient.AccountRequest{AccountID: addr})
	if err != nil {
		return 0, fmt.Errorf("wallet: load sequence of %s: %w", addr, err)
	}
	return acc.Sequence, nil
}

func (s *Sponsor) build(ch *channel, sub Submission, fee int64) (*txnbuild.FeeBumpTransaction, *txnbuild.Transaction, error) {
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount:        &txnbuild.SimpleAccount{AccountID: ch.kp.Address(), Sequence: ch.seq},
		IncrementSequenceNum: true,
		Operations:           sub.Operations,
		BaseFee:              txnbuild.MinBaseFee,
		Memo:                 sub.Memo,
		Preconditions:        txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(int64(s.timeout / time.Second))},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("wallet: build transaction: %w", err)
	}
	signers := []*keypair.Full{ch.kp}
	seen := map[string]bool{ch.kp.Address(): true}
	add := func(kp *keypair.Full) {
		if !seen[kp.Address()] {
			seen[kp.Address()] = true
			signers = append(signers, kp)
		}
	}
	for _, op := range sub.Operations {
		if op.GetSourceAccount() == s.key.Address() {
			add(s.key)
		}
	}
	for _, kp := range sub.Signers {
		add(kp)
	}
	if len(signers) > MaxSignatures {
		return nil, nil, fmt.Errorf("wallet: %d signers, a transaction holds at most %d", len(signers), MaxSignatures)
	}
	if tx, err = tx.Sign(s.net.Passphrase, signers...); err != nil {
		return nil, nil, fmt.Errorf("wallet: sign transaction: %w", err)
	}
	fb, err := s.feeBump(tx, fee)
	return fb, tx, err
}

func (s *Sponsor) feeBump(inner *txnbuild.Transaction, fee int64) (*txnbuild.FeeBumpTransaction, error) {
	fb, err := txnbuild.NewFeeBumpTransaction(txnbuild.FeeBumpTransactionParams{
		Inner:      inner,
		FeeAccount: s.key.Address(),
		BaseFee:    max(fee, inner.BaseFee()),
	})
	if err != nil {
		return nil, fmt.Errorf("wallet: fee bump: %w", err)
	}
	if fb, err = fb.Sign(s.net.Passphrase, s.key); err != nil {
		return nil, fmt.Errorf("wallet: sign fee bump: %w", err)
	}
	return fb, nil
}

// settle submits fb until its outcome is known.
func (s *Sponsor) settle(ctx context.Context, fb *txnbuild.FeeBumpTransaction, inner *txnbuild.Transaction) (outcome, Result, error) {
	res := Result{}
	var err error
	if res.Hash, err = fb.HashHex(s.net.Passphrase); err != nil {
		return rejected, res, fmt.Errorf("wallet: hash fee bump: %w", err)
	}
	if res.InnerHash, err = inner.HashHex(s.net.Passphrase); err != nil {
		return rejected, res, fmt.Errorf("wallet: hash transaction: %w", err)
	}
	source := inner.SourceAccount().AccountID
	seq := inner.SequenceNumber()
	maxTime := time.Unix(inner.Timebounds().MaxTime, 0)

	warned := false
	for {
		tx, err := s.net.Horizon(ctx).SubmitFeeBumpTransactionWithOptions(fb, horizonclient.SubmitTxOpts{SkipMemoRequiredCheck: true})
		if err == nil {
			return applied, fill(res, tx), nil
		}
		if ctx.Err() != nil {
			return unknown, res, &UnknownOutcomeError{Hash: res.Hash, Err: ctx.Err()}
		}
		var codes *horizon.TransactionResultCodes
		if herr := horizonclient.GetError(err); herr != nil {
			codes, _ = herr.ResultCodes()
		}
		if codes == nil {
			// A timeout (504) or a transport error: the envelope may be
			// queued or applied. Look, and resubmit the same envelope.
			if !warned {
				s.log.WarnContext(ctx, "submission outcome unknown; resubmitting the same envelope",
					slog.String("hash", res.Hash), slog.Any("err", err))
				warned = true
			}
			out, r, done, lerr := s.resolveByTime(ctx, res, maxTime)
			if done && out == notApplied {
				return out, r, err
			}
			if done {
				return out, r, lerr
			}
			if werr := sleep(ctx, s.poll); werr != nil {
				return unknown, res, &UnknownOutcomeError{Hash: res.Hash, Err: werr}
			}
			continue
		}
		txErr := &TxError{Hash: res.Hash, Codes: *codes}
		// Horizon answers with result codes both when core refused the
		// envelope and when it was applied as failed; the ledger tells.
		if out, r, found, lerr := s.lookup(ctx, res); lerr != nil || found {
			return out, r, lerr
		}
		switch {
		case hasCode(codes, "tx_bad_seq"):
			// Read the source's sequence number before looking the hash up
			// again: once the sequence number is past ours, our envelope can
			// never apply, so "not found" afterwards is final.
			cur, serr := s.sequence(ctx, source)
			if serr != nil {
				return unknown, res, &UnknownOutcomeError{Hash: res.Hash, Err: serr}
			}
			if cur >= seq {
				out, r, found, lerr := s.lookup(ctx, res)
				if lerr != nil || found {
					return out, r, lerr
				}
				return notApplied, res, txErr
			}
			// Our sequence number is ahead of the account's: the envelope
			// could still apply later, until its time bounds pass.
			return s.waitExpired(ctx, res, maxTime, txErr)
		case hasCode(codes, "tx_too_late"):
			return s.waitExpired(ctx, res, maxTime, txErr)
		}
		return rejected, res, txErr
	}
}

func hasCode(c *horizon.TransactionResultCodes, code string) bool {
	return c.TransactionCode == code || c.InnerTransactionCode == code
}

// lookup finds a transaction by hash: found reports whether it is in the
// ledger, in which case out is applied and err a TxError if it failed.
func (s *Sponsor) lookup(ctx context.Context, res Result) (out outcome, r Result, found bool, err error) {
	tx, err := s.net.Horizon(ctx).TransactionDetail(res.Hash)
	if horizonclient.IsNotFoundError(err) {
		return unknown, res, false, nil
	}
	if err != nil {
		return unknown, res, false, &UnknownOutcomeError{Hash: res.Hash, Err: err}
	}
	r = fill(res, tx)
	if !tx.Successful {
		return applied, r, true, &TxError{Hash: res.Hash, Applied: true, ResultXDR: tx.ResultXdr,
			Codes: decodeCodes(tx.ResultXdr)}
	}
	return applied, r, true, nil
}

// resolveByTime decides an envelope's fate from the ledger: applied if
// found by hash, not applied if Horizon has ingested a ledger that closed
// after the envelope's time bounds and still has no trace of it.
func (s *Sponsor) resolveByTime(ctx context.Context, res Result, maxTime time.Time) (outcome, Result, bool, error) {
	root, err := s.net.Horizon(ctx).Root()
	if err != nil {
		return unknown, res, false, nil // Horizon unreachable: keep trying
	}
	expired := root.HorizonLatestClosedAt.After(maxTime)
	out, r, found, err := s.lookup(ctx, res)
	if found {
		return out, r, true, err
	}
	if err != nil {
		return unknown, res, false, nil
	}
	if expired {
		return notApplied, res, true, nil
	}
	return unknown, res, false, nil
}

func (s *Sponsor) waitExpired(ctx context.Context, res Result, maxTime time.Time, cause error) (outcome, Result, error) {
	for {
		out, r, done, err := s.resolveByTime(ctx, res, maxTime)
		if done && out == notApplied {
			return out, r, cause
		}
		if done {
			return out, r, err
		}
		if err := sleep(ctx, s.poll); err != nil {
			return unknown, res, &UnknownOutcomeError{Hash: res.Hash, Err: err}
		}
	}
}

func fill(res Result, tx horizon.Transaction) Result {
	res.Ledger = tx.Ledger
	res.EnvelopeXDR = tx.EnvelopeXdr
	res.ResultXDR = tx.ResultXdr
	res.FeeCharged = tx.FeeCharged
	return res
}

// decodeCodes summarises a failed result: the transaction code and, per
// operation, its type and result code (stellar-core's numbering).
func decodeCodes(resultXDR string) horizon.TransactionResultCodes {
	var r xdr.TransactionResult
	if err := xdr.SafeUnmarshalBase64(resultXDR, &r); err != nil {
		return horizon.TransactionResultCodes{TransactionCode: "undecodable result"}
	}
	c := horizon.TransactionResultCodes{TransactionCode: r.Result.Code.String()}
	if inner, ok := r.Result.GetInnerResultPair(); ok {
		c.InnerTransactionCode = inner.Result.Result.Code.String()
	}
	ops, _ := r.OperationResults()
	for _, op := range ops {
		tr, ok := op.GetTr()
		if !ok {
			c.OperationCodes = append(c.OperationCodes, op.Code.String())
			continue
		}
		// Every operation result union starts with its int32 code.
		b, err := tr.MarshalBinary()
		code := int32(0)
		if err == nil && len(b) >= 8 {
			code = int32(binary.BigEndian.Uint32(b[4:8]))
		}
		c.OperationCodes = append(c.OperationCodes, fmt.Sprintf("%s(%d)", tr.Type, code))
	}
	return c
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
