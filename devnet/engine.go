package devnet

import (
	"math/big"

	"github.com/stellar/go-stellar-sdk/xdr"
)

// ledgerCtx is the ledger a transaction is validated for or applied in.
type ledgerCtx struct {
	seq       uint32 // the ledger being closed (for submissions: the next one)
	closeTime int64  // unix seconds
}

func startingSeq(ledger uint32) int64 { return int64(ledger) << 32 }

// verdict is the outcome of validating or applying a transaction.
type verdict struct {
	code      xdr.TransactionResultCode // for fee bumps: the outer code
	innerCode xdr.TransactionResultCode // fee bumps only
	ops       []opOutcome               // set when the (inner) code carries results
}

func (v verdict) ok() bool {
	if v.code == xdr.TransactionResultCodeTxFeeBumpInnerSuccess {
		return true
	}
	return v.code == xdr.TransactionResultCodeTxSuccess
}

type mode int

const (
	modeSubmit mode = iota // stellar-core's checkValid: fees, balances, op well-formedness
	modeApply              // commonValid while applying: fees already charged
)

// validate runs stellar-core's checks in its order. prevSeq gives the
// sequence number the source account will have when this transaction
// applies (accounting for earlier transactions of the same account queued
// in the same ledger).
func (n *Network) validate(o *overlay, f *txFrame, lc ledgerCtx, m mode, prevSeq func(*account) int64) (verdict, *sigChecker) {
	if !f.feeBump {
		code, ops, chk := n.validateInner(o, f, lc, m, true, prevSeq)
		return verdict{code: code, ops: ops}, chk
	}
	fail := func(code xdr.TransactionResultCode) (verdict, *sigChecker) { return verdict{code: code}, nil }
	if m == modeSubmit {
		nOps := int64(len(f.ops)) + 1
		if f.fee < n.cfg.BaseFee*nOps {
			return fail(xdr.TransactionResultCodeTxInsufficientFee)
		}
		// CAP-15: the fee bump's fee rate must be at least the inner one's.
		outer := new(big.Int).Mul(big.NewInt(f.fee), big.NewInt(max(int64(len(f.ops)), 1)))
		innerRate := new(big.Int).Mul(big.NewInt(f.innerFee), big.NewInt(nOps))
		if outer.Cmp(innerRate) < 0 {
			return fail(xdr.TransactionResultCodeTxInsufficientFee)
		}
		feeAcc := o.peekAccount(f.feeSource)
		if feeAcc == nil {
			return fail(xdr.TransactionResultCodeTxNoAccount)
		}
		chk := f.newSigChecker(f.hash, f.feeSigs)
		if !chk.check(signersOf(feeAcc), feeAcc.Low) {
			return fail(xdr.TransactionResultCodeTxBadAuth)
		}
		if feeAcc.Balance-minBalance(feeAcc, n.cfg.BaseReserve) < f.fee {
			return fail(xdr.TransactionResultCodeTxInsufficientBalance)
		}
		if !chk.allUsed() {
			return fail(xdr.TransactionResultCodeTxBadAuthExtra)
		}
	}
	code, ops, chk := n.validateInner(o, f, lc, m, false, prevSeq)
	if code != xdr.TransactionResultCodeTxSuccess {
		return verdict{code: xdr.TransactionResultCodeTxFeeBumpInnerFailed, innerCode: code, ops: ops}, chk
	}
	return verdict{code: xdr.TransactionResultCodeTxFeeBumpInnerSuccess, innerCode: code, ops: ops}, chk
}

func (n *Network) validateInner(o *overlay, f *txFrame, lc ledgerCtx, m mode, chargeFee bool, prevSeq func(*account) int64) (xdr.TransactionResultCode, []opOutcome, *sigChecker) {
	fail := func(code xdr.TransactionResultCode) (xdr.TransactionResultCode, []opOutcome, *sigChecker) {
		return code, nil, nil
	}
	if len(f.ops) == 0 {
		return fail(xdr.TransactionResultCodeTxMissingOperation)
	}
	if len(f.ops) > maxOpsPerTx || f.soroban {
		return fail(xdr.TransactionResultCodeTxMalformed)
	}
	if tb := f.env.TimeBounds(); tb != nil {
		if tb.MinTime != 0 && uint64(lc.closeTime) < uint64(tb.MinTime) {
			return fail(xdr.TransactionResultCodeTxTooEarly)
		}
		if tb.MaxTime != 0 && uint64(tb.MaxTime) < uint64(lc.closeTime) {
			return fail(xdr.TransactionResultCodeTxTooLate)
		}
	}
	if lb := f.env.LedgerBounds(); lb != nil {
		if uint32(lb.MinLedger) > lc.seq {
			return fail(xdr.TransactionResultCodeTxTooEarly)
		}
		if lb.MaxLedger != 0 && uint32(lb.MaxLedger) <= lc.seq {
			return fail(xdr.TransactionResultCodeTxTooLate)
		}
	}
	if chargeFee && m == modeSubmit && f.innerFee < n.cfg.BaseFee*int64(len(f.ops)) {
		return fail(xdr.TransactionResultCodeTxInsufficientFee)
	}
	src := o.peekAccount(f.source)
	if src == nil {
		return fail(xdr.TransactionResultCodeTxNoAccount)
	}
	cur := src.Seq
	if prevSeq != nil {
		cur = prevSeq(src)
	}
	if badSeq(f, cur, lc) {
		return fail(xdr.TransactionResultCodeTxBadSeq)
	}
	if age := f.env.MinSeqAge(); age != nil && *age != 0 && lc.closeTime-src.SeqTime < int64(*age) {
		return fail(xdr.TransactionResultCodeTxBadMinSeqAgeOrGap)
	}
	if gap := f.env.MinSeqLedgerGap(); gap != nil && *gap != 0 && lc.seq < src.SeqLedger+uint32(*gap) {
		return fail(xdr.TransactionResultCodeTxBadMinSeqAgeOrGap)
	}
	chk := f.newSigChecker(f.innerHash, f.sigs)
	if !chk.check(signersOf(src), src.Low) {
		return fail(xdr.TransactionResultCodeTxBadAuth)
	}
	if extra := f.env.ExtraSigners(); len(extra) > 0 {
		ws := make([]weighted, 0, len(extra))
		for _, k := range extra {
			addr, err := k.GetAddress()
			if err != nil {
				return fail(xdr.TransactionResultCodeTxMalformed)
			}
			ws = append(ws, weighted{addr, 1})
		}
		if !chk.check(ws, uint32(len(ws))) {
			return fail(xdr.TransactionResultCodeTxBadAuth)
		}
	}
	if chargeFee && m == modeSubmit && src.Balance-minBalance(src, n.cfg.BaseReserve) < f.innerFee {
		return fail(xdr.TransactionResultCodeTxInsufficientBalance)
	}
	ops := make([]opOutcome, len(f.ops))
	failed := false
	for i, op := range f.ops {
		ops[i] = n.checkOp(o, f, op, chk)
		failed = failed || !ops[i].ok()
	}
	if failed {
		return xdr.TransactionResultCodeTxFailed, ops, chk
	}
	if !chk.allUsed() {
		return fail(xdr.TransactionResultCodeTxBadAuthExtra)
	}
	return xdr.TransactionResultCodeTxSuccess, ops, chk
}

// badSeq is stellar-core's isBadSeq (CAP-21 minSeqNum included).
func badSeq(f *txFrame, cur int64, lc ledgerCtx) bool {
	if f.seq == startingSeq(lc.seq) {
		return true
	}
	if ms := f.env.MinSeqNum(); ms != nil {
		return cur < *ms || cur >= f.seq
	}
	return cur == maxInt64 || cur+1 != f.seq
}

// checkOp is OperationFrame::checkValid for a submission: the source's
// signatures at the operation's threshold, then doCheckValid.
func (n *Network) checkOp(o *overlay, f *txFrame, op xdr.Operation, chk *sigChecker) opOutcome {
	if !supportedOp(op.Body.Type) {
		return opOutcome{outer: xdr.OperationResultCodeOpNotSupported}
	}
	srcID := f.opSource(op)
	if acc := o.peekAccount(srcID); acc != nil {
		if !chk.check(signersOf(acc), neededThreshold(op, acc)) {
			return opOutcome{outer: xdr.OperationResultCodeOpBadAuth}
		}
	} else {
		// The account may be created by an earlier operation; until then its
		// master key is the only possible signer.
		if op.SourceAccount == nil {
			return opOutcome{outer: xdr.OperationResultCodeOpNoAccount}
		}
		if !chk.check([]weighted{{srcID, 1}}, 0) {
			return opOutcome{outer: xdr.OperationResultCodeOpBadAuth}
		}
	}
	return inner(doCheckValid(srcID, op))
}

// neededThreshold is each operation's threshold category.
func neededThreshold(op xdr.Operation, a *account) uint32 {
	switch op.Body.Type {
	case xdr.OperationTypeAllowTrust, xdr.OperationTypeSetTrustLineFlags, xdr.OperationTypeBumpSequence,
		xdr.OperationTypeClaimClaimableBalance, xdr.OperationTypeInflation:
		return a.Low
	case xdr.OperationTypeAccountMerge:
		return a.High
	case xdr.OperationTypeSetOptions:
		so := op.Body.MustSetOptionsOp()
		if so.MasterWeight != nil || so.LowThreshold != nil || so.MedThreshold != nil ||
			so.HighThreshold != nil || so.Signer != nil {
			return a.High
		}
	}
	return a.Med
}

// feeCharged is what the ledger takes: the base fee per operation (a fee
// bump counts as one more), never more than offered. There is no surge
// pricing on devnet.
func (n *Network) feeCharged(f *txFrame) int64 {
	nOps := int64(len(f.ops))
	if f.feeBump {
		nOps++
	}
	return min(f.fee, n.cfg.BaseFee*nOps)
}

// txResult encodes a verdict as the XDR TransactionResult.
func txResult(f *txFrame, fee int64, v verdict) xdr.TransactionResult {
	results := func(ops []opOutcome) *[]xdr.OperationResult {
		out := make([]xdr.OperationResult, len(ops))
		for i, o := range ops {
			out[i] = opResult(f.ops[i].Body.Type, o)
		}
		return &out
	}
	r := xdr.TransactionResult{FeeCharged: xdr.Int64(fee)}
	r.Result.Code = v.code
	switch v.code {
	case xdr.TransactionResultCodeTxSuccess, xdr.TransactionResultCodeTxFailed:
		r.Result.Results = results(v.ops)
	case xdr.TransactionResultCodeTxFeeBumpInnerSuccess, xdr.TransactionResultCodeTxFeeBumpInnerFailed:
		in := xdr.InnerTransactionResult{}
		in.Result.Code = v.innerCode
		if v.innerCode == xdr.TransactionResultCodeTxSuccess || v.innerCode == xdr.TransactionResultCodeTxFailed {
			in.Result.Results = results(v.ops)
		}
		r.Result.InnerResultPair = &xdr.InnerTransactionResultPair{TransactionHash: f.innerHash, Result: in}
	}
	return r
}

// resultCodes is Horizon's extras.result_codes summary of a result.
type resultCodes struct {
	Transaction      string   `json:"transaction"`
	InnerTransaction string   `json:"inner_transaction,omitempty"`
	Operations       []string `json:"operations,omitempty"`
}

func codesOf(f *txFrame, v verdict) resultCodes {
	rc := resultCodes{Transaction: txCodeNames[v.code]}
	if f.feeBump && (v.code == xdr.TransactionResultCodeTxFeeBumpInnerFailed || v.code == xdr.TransactionResultCodeTxFeeBumpInnerSuccess) {
		rc.InnerTransaction = txCodeNames[v.innerCode]
	}
	if len(v.ops) > 0 {
		for i, o := range v.ops {
			rc.Operations = append(rc.Operations, opCodeString(f.ops[i].Body.Type, o))
		}
	}
	return rc
}
