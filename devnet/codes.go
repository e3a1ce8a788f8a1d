package devnet

import (
	"github.com/stellar/go-stellar-sdk/xdr"
)

// Horizon's result code strings (services/horizon/internal/codes), which
// clients match on through horizonclient.Error.ResultCodes.
var txCodeNames = map[xdr.TransactionResultCode]string{
	xdr.TransactionResultCodeTxFeeBumpInnerSuccess: "tx_fee_bump_inner_success",
	xdr.TransactionResultCodeTxFeeBumpInnerFailed:  "tx_fee_bump_inner_failed",
	xdr.TransactionResultCodeTxNotSupported:        "tx_not_supported",
	xdr.TransactionResultCodeTxSuccess:             "tx_success",
	xdr.TransactionResultCodeTxFailed:              "tx_failed",
	xdr.TransactionResultCodeTxTooEarly:            "tx_too_early",
	xdr.TransactionResultCodeTxTooLate:             "tx_too_late",
	xdr.TransactionResultCodeTxMissingOperation:    "tx_missing_operation",
	xdr.TransactionResultCodeTxBadSeq:              "tx_bad_seq",
	xdr.TransactionResultCodeTxBadAuth:             "tx_bad_auth",
	xdr.TransactionResultCodeTxInsufficientBalance: "tx_insufficient_balance",
	xdr.TransactionResultCodeTxNoAccount:           "tx_no_source_account",
	xdr.TransactionResultCodeTxInsufficientFee:     "tx_insufficient_fee",
	xdr.TransactionResultCodeTxBadAuthExtra:        "tx_bad_auth_extra",
	xdr.TransactionResultCodeTxInternalError:       "tx_internal_error",
	xdr.TransactionResultCodeTxBadSponsorship:      "tx_bad_sponsorship",
	xdr.TransactionResultCodeTxBadMinSeqAgeOrGap:   "tx_bad_minseq_age_or_gap",
	xdr.TransactionResultCodeTxMalformed:           "tx_malformed",
	xdr.TransactionResultCodeTxSorobanInvalid:      "tx_soroban_invalid",
}

var outerOpCodeNames = map[xdr.OperationResultCode]string{
	xdr.OperationResultCodeOpBadAuth:           "op_bad_auth",
	xdr.OperationResultCodeOpNoAccount:         "op_no_source_account",
	xdr.OperationResultCodeOpNotSupported:      "op_not_supported",
	xdr.OperationResultCodeOpTooManySubentries: "op_too_many_subentries",
	xdr.OperationResultCodeOpExceededWorkLimit: "op_exceeded_work_limit",
	xdr.OperationResultCodeOpTooManySponsoring: "op_too_many_sponsoring",
	xdr.OperationResultCodeOpInner:             "op_inner",
}

// innerOpCodeNames maps an operation type's own result codes; 0 is always
// op_success.
var innerOpCodeNames = map[xdr.OperationType]map[int32]string{
	xdr.OperationTypeCreateAccount: {
		-1: "op_malformed", -2: "op_underfunded", -3: "op_low_reserve", -4: "op_already_exists",
	},
	xdr.OperationTypePayment: {
		-1: "op_malformed", -2: "op_underfunded", -3: "op_src_no_trust", -4: "op_src_not_authorized",
		-5: "op_no_destination", -6: "op_no_trust", -7: "op_not_authorized", -8: "op_line_full", -9: "op_no_issuer",
	},
	xdr.OperationTypeSetOptions: {
		-1: "op_low_reserve", -2: "op_too_many_signers", -3: "op_bad_flags", -4: "op_invalid_inflation",
		-5: "op_cant_change", -6: "op_unknown_flag", -7: "op_threshold_out_of_range", -8: "op_bad_signer",
		-9: "op_invalid_home_domain", -10: "op_auth_revocable_required",
	},
	xdr.OperationTypeChangeTrust: {
		-1: "op_malformed", -2: "op_no_issuer", -3: "op_invalid_limit", -4: "op_low_reserve",
		-5: "op_self_not_allowed", -6: "op_trust_line_missing", -7: "op_cannot_delete",
		-8: "op_not_auth_maintain_liabilities",
	},
	xdr.OperationTypeAllowTrust: {
		-1: "op_malformed", -2: "op_no_trustline", -3: "op_not_required", -4: "op_cant_revoke",
		-5: "op_self_not_allowed", -6: "op_low_reserve",
	},
	xdr.OperationTypeAccountMerge: {
		-1: "op_malformed", -2: "op_no_account", -3: "op_immutable_set", -4: "op_has_sub_entries",
		-5: "op_seq_num_too_far", -6: "op_dest_full", -7: "op_is_sponsor",
	},
	xdr.OperationTypeManageData: {
		-1: "op_not_supported_yet", -2: "op_data_name_not_found", -3: "op_low_reserve", -4: "op_data_invalid_name",
	},
	xdr.OperationTypeBumpSequence: {-1: "op_bad_seq"},
	xdr.OperationTypeCreateClaimableBalance: {
		-1: "op_malformed", -2: "op_low_reserve", -3: "op_no_trust", -4: "op_not_authorized", -5: "op_underfunded",
	},
	xdr.OperationTypeClaimClaimableBalance: {
		-1: "op_does_not_exist", -2: "op_cannot_claim", -3: "op_line_full", -4: "op_no_trust", -5: "op_not_authorized",
	},
	xdr.OperationTypeBeginSponsoringFutureReserves: {
		-1: "op_malformed", -2: "op_already_sponsored", -3: "op_recursive",
	},
	xdr.OperationTypeEndSponsoringFutureReserves: {-1: "op_not_sponsored"},
	xdr.OperationTypeRevokeSponsorship: {
		-1: "op_does_not_exist", -2: "op_not_sponsor", -3: "op_low_reserve", -4: "op_only_transferable", -5: "op_malformed",
	},
	xdr.OperationTypeClawback: {
		-1: "op_malformed", -2: "op_not_clawback_enabled", -3: "op_no_trust", -4: "op_underfunded",
	},
	xdr.OperationTypeClawbackClaimableBalance: {
		-1: "op_does_not_exist", -2: "op_not_issuer", -3: "op_not_clawback_enabled",
	},
	xdr.OperationTypeSetTrustLineFlags: {
		-1: "op_malformed", -2: "op_no_trust_line", -3: "op_cant_revoke", -4: "op_invalid_state", -5: "op_low_reserve",
	},
}

// opOutcome is what applying (or validating) one operation produced.
type opOutcome struct {
	outer  xdr.OperationResultCode // opINNER unless the operation never ran
	code   int32                   // the operation type's own result code
	cbID   *xdr.ClaimableBalanceId // CreateClaimableBalance success
	merged *xdr.Int64              // AccountMerge success: source balance

	beginSponsor string // EndSponsoringFutureReserves: whose sandwich it closed
}

func (o opOutcome) ok() bool { return o.outer == xdr.OperationResultCodeOpInner && o.code == 0 }

func inner(code int32) opOutcome { return opOutcome{code: code} }

func opCodeString(t xdr.OperationType, o opOutcome) string {
	if o.outer != xdr.OperationResultCodeOpInner {
		return outerOpCodeNames[o.outer]
	}
	if o.code == 0 {
		return "op_success"
	}
	if s, ok := innerOpCodeNames[t][o.code]; ok {
		return s
	}
	return "op_unknown"
}

// opResult encodes an outcome as the XDR OperationResult stellar-core
// would put in the TransactionResult.
func opResult(t xdr.OperationType, o opOutcome) xdr.OperationResult {
	if o.outer != xdr.OperationResultCodeOpInner {
		return xdr.OperationResult{Code: o.outer}
	}
	tr := xdr.OperationResultTr{Type: t}
	switch t {
	case xdr.OperationTypeCreateAccount:
		tr.CreateAccountResult = &xdr.CreateAccountResult{Code: xdr.CreateAccountResultCode(o.code)}
	case xdr.OperationTypePayment:
		tr.PaymentResult = &xdr.PaymentResult{Code: xdr.PaymentResultCode(o.code)}
	case xdr.OperationTypeSetOptions:
		tr.SetOptionsResult = &xdr.SetOptionsResult{Code: xdr.SetOptionsResultCode(o.code)}
	case xdr.OperationTypeChangeTrust:
		tr.ChangeTrustResult = &xdr.ChangeTrustResult{Code: xdr.ChangeTrustResultCode(o.code)}
	case xdr.OperationTypeAllowTrust:
		tr.AllowTrustResult = &xdr.AllowTrustResult{Code: xdr.AllowTrustResultCode(o.code)}
	case xdr.OperationTypeAccountMerge:
		r := xdr.AccountMergeResult{Code: xdr.AccountMergeResultCode(o.code)}
		if o.code == 0 {
			r.SourceAccountBalance = o.merged
		}
		tr.AccountMergeResult = &r
	case xdr.OperationTypeManageData:
		tr.ManageDataResult = &xdr.ManageDataResult{Code: xdr.ManageDataResultCode(o.code)}
	case xdr.OperationTypeBumpSequence:
		tr.BumpSeqResult = &xdr.BumpSequenceResult{Code: xdr.BumpSequenceResultCode(o.code)}
	case xdr.OperationTypeCreateClaimableBalance:
		r := xdr.CreateClaimableBalanceResult{Code: xdr.CreateClaimableBalanceResultCode(o.code)}
		if o.code == 0 {
			r.BalanceId = o.cbID
		}
		tr.CreateClaimableBalanceResult = &r
	case xdr.OperationTypeClaimClaimableBalance:
		tr.ClaimClaimableBalanceResult = &xdr.ClaimClaimableBalanceResult{Code: xdr.ClaimClaimableBalanceResultCode(o.code)}
	case xdr.OperationTypeBeginSponsoringFutureReserves:
		tr.BeginSponsoringFutureReservesResult = &xdr.BeginSponsoringFutureReservesResult{Code: xdr.BeginSponsoringFutureReservesResultCode(o.code)}
	case xdr.OperationTypeEndSponsoringFutureReserves:
		tr.EndSponsoringFutureReservesResult = &xdr.EndSponsoringFutureReservesResult{Code: xdr.EndSponsoringFutureReservesResultCode(o.code)}
	case xdr.OperationTypeRevokeSponsorship:
		tr.RevokeSponsorshipResult = &xdr.RevokeSponsorshipResult{Code: xdr.RevokeSponsorshipResultCode(o.code)}
	case xdr.OperationTypeClawback:
		tr.ClawbackResult = &xdr.ClawbackResult{Code: xdr.ClawbackResultCode(o.code)}
	case xdr.OperationTypeClawbackClaimableBalance:
		tr.ClawbackClaimableBalanceResult = &xdr.ClawbackClaimableBalanceResult{Code: xdr.ClawbackClaimableBalanceResultCode(o.code)}
	case xdr.OperationTypeSetTrustLineFlags:
		tr.SetTrustLineFlagsResult = &xdr.SetTrustLineFlagsResult{Code: xdr.SetTrustLineFlagsResultCode(o.code)}
	default:
		return xdr.OperationResult{Code: xdr.OperationResultCodeOpNotSupported}
	}
	return xdr.OperationResult{Code: xdr.OperationResultCodeOpInner, Tr: &tr}
}

// supportedOp reports whether devnet models the operation type; the rest
// fail validation with op_not_supported.
func supportedOp(t xdr.OperationType) bool {
	_, ok := innerOpCodeNames[t]
	return ok
}
