package devnet

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stellar/go-stellar-sdk/amount"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/support/render/hal"
	"github.com/stellar/go-stellar-sdk/toid"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// Records are rendered to Horizon's JSON once, when their ledger closes,
// with links relative to the server root ("/..."); rendering for a request
// prefixes the request's base URL.

type ledgerRec struct {
	Seq       uint32          `json:"seq"`
	CloseTime int64           `json:"close_time"`
	Hash      string          `json:"hash"`
	JSON      json.RawMessage `json:"json"`
}

type txRec struct {
	ID          int64           `json:"id"` // TOID
	Hash        string          `json:"hash"`
	InnerHash   string          `json:"inner_hash,omitempty"` // fee bumps
	Ledger      uint32          `json:"ledger"`
	Successful  bool            `json:"successful"`
	Accounts    []string        `json:"accounts"` // participants
	FeeCharged  int64           `json:"fee_charged"`
	MaxFee      int64           `json:"max_fee"`
	NumOps      int             `json:"num_ops"`
	EnvelopeXDR string          `json:"envelope_xdr"`
	ResultXDR   string          `json:"result_xdr"`
	Codes       resultCodes     `json:"codes"`
	JSON        json.RawMessage `json:"json"`
}

type opRec struct {
	ID         int64             `json:"id"` // TOID
	TxHash     string            `json:"tx_hash"`
	Type       xdr.OperationType `json:"type"`
	Successful bool              `json:"successful"`
	Accounts   []string          `json:"accounts"`
	JSON       json.RawMessage   `json:"json"`
}

type effectRec struct {
	OpID    int64           `json:"op_id"`
	Index   uint32          `json:"index"`
	Account string          `json:"account"`
	JSON    json.RawMessage `json:"json"`
}

func effectPT(opID int64, index uint32) string { return fmt.Sprintf("%019d-%010d", opID, index) }

func (r *ledgerRec) key() pagingKey { return pagingKey{toid.New(int32(r.Seq), 0, 0).ToInt64(), 0} }
func (r *txRec) key() pagingKey     { return pagingKey{r.ID, 0} }
func (r *opRec) key() pagingKey     { return pagingKey{r.ID, 0} }
func (r *effectRec) key() pagingKey { return pagingKey{r.OpID, int64(r.Index)} }

func (r *ledgerRec) pt() string { return strconv.FormatInt(r.key()[0], 10) }
func (r *txRec) pt() string     { return strconv.FormatInt(r.ID, 10) }
func (r *opRec) pt() string     { return strconv.FormatInt(r.ID, 10) }
func (r *effectRec) pt() string { return effectPT(r.OpID, r.Index) }

// pagingKey orders every collection: (TOID, effect index).
type pagingKey [2]int64

func (k pagingKey) less(o pagingKey) bool {
	return k[0] < o[0] || k[0] == o[0] && k[1] < o[1]
}

// history is everything Horizon would have ingested, in ledger order, with
// the per-account indexes its endpoints need.
type history struct {
	ledgers []*ledgerRec
	txs     []*txRec
	ops     []*opRec
	effects []*effectRec

	txByHash    map[string]*txRec
	opByID      map[int64]*opRec
	txsByAcc    map[string][]int
	opsByAcc    map[string][]int
	effectByAcc map[string][]int
}

func newHistory() *history {
	return &history{
		txByHash:    map[string]*txRec{},
		opByID:      map[int64]*opRec{},
		txsByAcc:    map[string][]int{},
		opsByAcc:    map[string][]int{},
		effectByAcc: map[string][]int{},
	}
}

func (h *history) last() *ledgerRec { return h.ledgers[len(h.ledgers)-1] }

func (h *history) addTx(r *txRec) {
	h.txs = append(h.txs, r)
	h.txByHash[r.Hash] = r
	if r.InnerHash != "" {
		h.txByHash[r.InnerHash] = r
	}
	for _, a := range r.Accounts {
		h.txsByAcc[a] = append(h.txsByAcc[a], len(h.txs)-1)
	}
}

func (h *history) addOp(r *opRec) {
	h.ops = append(h.ops, r)
	h.opByID[r.ID] = r
	for _, a := range r.Accounts {
		h.opsByAcc[a] = append(h.opsByAcc[a], len(h.ops)-1)
	}
}

func (h *history) addEffect(r *effectRec) {
	h.effects = append(h.effects, r)
	h.effectByAcc[r.Account] = append(h.effectByAcc[r.Account], len(h.effects)-1)
}

// ledger returns the closed ledger with this sequence, or nil.
func (h *history) ledger(seq uint32) *ledgerRec {
	i := sort.Search(len(h.ledgers), func(i int) bool { return h.ledgers[i].Seq >= seq })
	if i < len(h.ledgers) && h.ledgers[i].Seq == seq {
		return h.ledgers[i]
	}
	return nil
}

// marshal renders JSON as Horizon does (no HTML escaping of '&' in links).
func marshal(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("devnet: rendering %T: %v", v, err)) // our own types always marshal
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func link(format string, args ...any) hal.Link { return hal.NewLink(fmt.Sprintf(format, args...)) }

// setBase fills the embedded Base field of an operations.* or effects.*
// value through its pointer.
func setBase(body any, b any) {
	v := reflect.ValueOf(body).Elem()
	if v.Type() == reflect.TypeOf(b) {
		v.Set(reflect.ValueOf(b))
		return
	}
	v.FieldByName("Base").Set(reflect.ValueOf(b))
}

func memoFields(m xdr.Memo) (typ, memo, memoBytes string) {
	switch m.Type {
	case xdr.MemoTypeMemoText:
		t := m.MustText()
		return "text", strings.ToValidUTF8(t, "?"), base64.StdEncoding.EncodeToString([]byte(t))
	case xdr.MemoTypeMemoId:
		return "id", strconv.FormatUint(uint64(m.MustId()), 10), ""
	case xdr.MemoTypeMemoHash:
		h := m.MustHash()
		return "hash", base64.StdEncoding.EncodeToString(h[:]), ""
	case xdr.MemoTypeMemoReturn:
		h := m.MustRetHash()
		return "return", base64.StdEncoding.EncodeToString(h[:]), ""
	}
	return "none", "", ""
}

func preconditions(f *txFrame) *horizon.TransactionPreconditions {
	p := &horizon.TransactionPreconditions{}
	empty := true
	if tb := f.env.TimeBounds(); tb != nil {
		p.TimeBounds = &horizon.TransactionPreconditionsTimebounds{MinTime: strconv.FormatUint(uint64(tb.MinTime), 10)}
		if tb.MaxTime != 0 {
			p.TimeBounds.MaxTime = strconv.FormatUint(uint64(tb.MaxTime), 10)
		}
		empty = false
	}
	if lb := f.env.LedgerBounds(); lb != nil {
		p.LedgerBounds = &horizon.TransactionPreconditionsLedgerbounds{MinLedger: uint32(lb.MinLedger), MaxLedger: uint32(lb.MaxLedger)}
		empty = false
	}
	if ms := f.env.MinSeqNum(); ms != nil {
		p.MinAccountSequence = strconv.FormatInt(*ms, 10)
		empty = false
	}
	if age := f.env.MinSeqAge(); age != nil && *age != 0 {
		p.MinAccountSequenceAge = strconv.FormatUint(uint64(*age), 10)
		empty = false
	}
	if gap := f.env.MinSeqLedgerGap(); gap != nil && *gap != 0 {
		p.MinAccountSequenceLedgerGap = uint32(*gap)
		empty = false
	}
	for _, s := range f.env.ExtraSigners() {
		p.ExtraSigners = append(p.ExtraSigners, s.Address())
		empty = false
	}
	if empty {
		return nil
	}
	return p
}

// txJSON renders the transaction resource.
func txJSON(r *txRec, f *txFrame, closeTime int64, hash string) json.RawMessage {
	t := horizon.Transaction{
		ID: hash, PT: r.pt(), Successful: r.Successful, Hash: hash, Ledger: int32(r.Ledger),
		LedgerCloseTime: time.Unix(closeTime, 0).UTC(), Account: f.source, AccountSequence: f.seq,
		FeeAccount: f.feeSource, FeeCharged: r.FeeCharged, MaxFee: f.fee, OperationCount: int32(len(f.ops)),
		EnvelopeXdr: f.envB64, ResultXdr: r.ResultXDR, Signatures: signatureStrings(f.sigs),
		Preconditions: preconditions(f),
	}
	if src := f.env.SourceAccount(); src.Type == xdr.CryptoKeyTypeKeyTypeMuxedEd25519 {
		t.AccountMuxed = src.Address()
		t.AccountMuxedID, _ = src.GetId()
	}
	t.MemoType, t.Memo, t.MemoBytes = memoFields(f.env.Memo())
	if f.feeBump {
		t.Signatures = signatureStrings(f.feeSigs)
		t.FeeBumpTransaction = &horizon.FeeBumpTransaction{Hash: f.hashHex(), Signatures: signatureStrings(f.feeSigs)}
		t.InnerTransaction = &horizon.InnerTransaction{Hash: f.innerHashHex(), Signatures: signatureStrings(f.sigs), MaxFee: f.innerFee}
	}
	t.Links.Self = link("/transactions/%s", hash)
	t.Links.Transaction = t.Links.Self
	t.Links.Account = link("/accounts/%s", f.source)
	t.Links.Ledger = link("/ledgers/%d", r.Ledger)
	t.Links.Operations = link("/transactions/%s/operations%s", hash, hal.StandardPagingOptions)
	t.Links.Effects = link("/transactions/%s/effects%s", hash, hal.StandardPagingOptions)
	t.Links.Precedes = link("/transactions?order=asc&cursor=%s", r.pt())
	t.Links.Succeeds = link("/transactions?order=desc&cursor=%s", r.pt())
	return marshal(t)
}

// opJSON renders an operation resource from the envelope and its result,
// the way Horizon's ingestion derives it.
func opJSON(r *opRec, f *txFrame, op xdr.Operation, out opOutcome, sponsor string, closeTime int64) json.RawMessage {
	src := f.opSource(op)
	b := operations.Base{
		ID: strconv.FormatInt(r.ID, 10), PT: r.pt(), TransactionSuccessful: r.Successful, SourceAccount: src,
		Type: operations.TypeNames[op.Body.Type], TypeI: int32(op.Body.Type),
		LedgerCloseTime: time.Unix(closeTime, 0).UTC(), TransactionHash: r.TxHash, Sponsor: sponsor,
	}
	if op.SourceAccount != nil && op.SourceAccount.Type == xdr.CryptoKeyTypeKeyTypeMuxedEd25519 {
		b.SourceAccountMuxed = op.SourceAccount.Address()
		b.SourceAccountMuxedID, _ = op.SourceAccount.GetId()
	}
	b.Links.Self = link("/operations/%d", r.ID)
	b.Links.Transaction = link("/transactions/%s", r.TxHash)
	b.Links.Effects = link("/operations/%d/effects", r.ID)
	b.Links.Succeeds = link("/effects?order=desc&cursor=%d", r.ID)
	b.Links.Precedes = link("/effects?order=asc&cursor=%d", r.ID)

	var body any = &b
	ob := op.Body
	switch ob.Type {
	case xdr.OperationTypeCreateAccount:
		o := ob.MustCreateAccountOp()
		body = &operations.CreateAccount{StartingBalance: amount.String(o.StartingBalance), Funder: src, Account: o.Destination.Address()}
	case xdr.OperationTypePayment:
		o := ob.MustPaymentOp()
		p := &operations.Payment{Asset: assetFromXDR(o.Asset).horizon(), From: src, To: o.Destination.ToAccountId().Address(), Amount: amount.String(o.Amount)}
		if o.Destination.Type == xdr.CryptoKeyTypeKeyTypeMuxedEd25519 {
			p.ToMuxed = o.Destination.Address()
			p.ToMuxedID, _ = o.Destination.GetId()
		}
		body = p
	case xdr.OperationTypeSetOptions:
		body = setOptionsJSON(ob.MustSetOptionsOp())
	case xdr.OperationTypeChangeTrust:
		o := ob.MustChangeTrustOp()
		a := assetFromXDR(o.Line.ToAsset())
		ct := &operations.ChangeTrust{Limit: amount.String(o.Limit), Trustee: a.Issuer, Trustor: src}
		ct.Asset = a.horizon()
		body = ct
	case xdr.OperationTypeAllowTrust:
		o := ob.MustAllowTrustOp()
		//lint:ignore SA1019 AllowTrust is deprecated for clients, but still a valid operation Horizon renders.
		body = &operations.AllowTrust{
			Asset: assetFromXDR(o.Asset.ToAsset(xdr.MustAddress(src))).horizon(), Trustee: src, Trustor: o.Trustor.Address(),
			Authorize:                      uint32(o.Authorize)&tlAuthorized != 0,
			AuthorizeToMaintainLiabilities: uint32(o.Authorize)&tlAuthorizedToMaintainLiabs != 0,
		}
	case xdr.OperationTypeAccountMerge:
		body = &operations.AccountMerge{Account: src, Into: ob.MustDestination().ToAccountId().Address()}
	case xdr.OperationTypeManageData:
		o := ob.MustManageDataOp()
		md := &operations.ManageData{Name: string(o.DataName)}
		if o.DataValue != nil {
			md.Value = base64.StdEncoding.EncodeToString(*o.DataValue)
		}
		body = md
	case xdr.OperationTypeBumpSequence:
		body = &operations.BumpSequence{BumpTo: strconv.FormatInt(int64(ob.MustBumpSequenceOp().BumpTo), 10)}
	case xdr.OperationTypeCreateClaimableBalance:
		o := ob.MustCreateClaimableBalanceOp()
		cb := &operations.CreateClaimableBalance{Asset: assetFromXDR(o.Asset).canonical(), Amount: amount.String(o.Amount)}
		for _, c := range o.Claimants {
			cb.Claimants = append(cb.Claimants, horizon.Claimant{Destination: c.MustV0().Destination.Address(), Predicate: c.MustV0().Predicate})
		}
		body = cb
	case xdr.OperationTypeClaimClaimableBalance:
		body = &operations.ClaimClaimableBalance{BalanceID: balanceIDHex(ob.MustClaimClaimableBalanceOp().BalanceId), Claimant: src}
	case xdr.OperationTypeClawbackClaimableBalance:
		body = &operations.ClawbackClaimableBalance{BalanceID: balanceIDHex(ob.MustClawbackClaimableBalanceOp().BalanceId)}
	case xdr.OperationTypeBeginSponsoringFutureReserves:
		body = &operations.BeginSponsoringFutureReserves{SponsoredID: ob.MustBeginSponsoringFutureReservesOp().SponsoredId.Address()}
	case xdr.OperationTypeEndSponsoringFutureReserves:
		body = &operations.EndSponsoringFutureReserves{BeginSponsor: out.beginSponsor}
	case xdr.OperationTypeRevokeSponsorship:
		body = revokeJSON(ob.MustRevokeSponsorshipOp())
	case xdr.OperationTypeClawback:
		o := ob.MustClawbackOp()
		body = &operations.Clawback{Asset: assetFromXDR(o.Asset).horizon(), From: o.From.ToAccountId().Address(), Amount: amount.String(o.Amount)}
	case xdr.OperationTypeSetTrustLineFlags:
		o := ob.MustSetTrustLineFlagsOp()
		st := &operations.SetTrustLineFlags{Asset: assetFromXDR(o.Asset).horizon(), Trustor: o.Trustor.Address()}
		st.SetFlags, st.SetFlagsS = flagLists(uint32(o.SetFlags), trustLineFlagNames)
		st.ClearFlags, st.ClearFlagsS = flagLists(uint32(o.ClearFlags), trustLineFlagNames)
		body = st
	}
	if body != any(&b) {
		setBase(body, b)
	}
	return marshal(body)
}

var accountFlagNames = []struct {
	bit  uint32
	name string
}{{flagAuthRequired, "auth_required"}, {flagAuthRevocable, "auth_revocable"}, {flagAuthImmutable, "auth_immutable"}, {flagAuthClawbackEnabled, "auth_clawback_enabled"}}

var trustLineFlagNames = []struct {
	bit  uint32
	name string
}{{tlAuthorized, "authorized"}, {tlAuthorizedToMaintainLiabs, "authorized_to_maintain_liabilites"}, {tlClawbackEnabled, "clawback_enabled"}}

func flagLists(v uint32, names []struct {
	bit  uint32
	name string
}) ([]int, []string) {
	var ints []int
	var strs []string
	for _, n := range names {
		if v&n.bit != 0 {
			ints = append(ints, int(n.bit))
			strs = append(strs, n.name)
		}
	}
	return ints, strs
}

func setOptionsJSON(o xdr.SetOptionsOp) *operations.SetOptions {
	so := &operations.SetOptions{}
	intp := func(v *xdr.Uint32) *int {
		if v == nil {
			return nil
		}
		i := int(*v)
		return &i
	}
	so.MasterKeyWeight = intp(o.MasterWeight)
	so.LowThreshold, so.MedThreshold, so.HighThreshold = intp(o.LowThreshold), intp(o.MedThreshold), intp(o.HighThreshold)
	if o.HomeDomain != nil {
		so.HomeDomain = string(*o.HomeDomain)
	}
	if o.InflationDest != nil {
		so.InflationDest = o.InflationDest.Address()
	}
	if o.Signer != nil {
		so.SignerKey = o.Signer.Key.Address()
		w := int(o.Signer.Weight)
		so.SignerWeight = &w
	}
	if o.SetFlags != nil {
		so.SetFlags, so.SetFlagsS = flagLists(uint32(*o.SetFlags), accountFlagNames)
	}
	if o.ClearFlags != nil {
		so.ClearFlags, so.ClearFlagsS = flagLists(uint32(*o.ClearFlags), accountFlagNames)
	}
	return so
}

func revokeJSON(o xdr.RevokeSponsorshipOp) *operations.RevokeSponsorship {
	r := &operations.RevokeSponsorship{}
	str := func(s string) *string { return &s }
	if o.Type == xdr.RevokeSponsorshipTypeRevokeSponsorshipSigner {
		r.SignerAccountID = str(o.Signer.AccountId.Address())
		r.SignerKey = str(o.Signer.SignerKey.Address())
		return r
	}
	k := o.LedgerKey
	switch k.Type {
	case xdr.LedgerEntryTypeAccount:
		r.AccountID = str(k.Account.AccountId.Address())
	case xdr.LedgerEntryTypeTrustline:
		r.TrustlineAccountID = str(k.TrustLine.AccountId.Address())
		r.TrustlineAsset = str(assetFromXDR(k.TrustLine.Asset.ToAsset()).canonical())
	case xdr.LedgerEntryTypeData:
		r.DataAccountID = str(k.Data.AccountId.Address())
		r.DataName = str(string(k.Data.DataName))
	case xdr.LedgerEntryTypeClaimableBalance:
		r.ClaimableBalanceID = str(balanceIDHex(k.ClaimableBalance.BalanceId))
	}
	return r
}

// opParticipants are the accounts an operation concerns, for the
// per-account endpoints.
func opParticipants(f *txFrame, op xdr.Operation) []string {
	out := []string{f.opSource(op)}
	b := op.Body
	switch b.Type {
	case xdr.OperationTypeCreateAccount:
		out = append(out, b.MustCreateAccountOp().Destination.Address())
	case xdr.OperationTypePayment:
		out = append(out, b.MustPaymentOp().Destination.ToAccountId().Address())
	case xdr.OperationTypeChangeTrust:
		out = append(out, assetFromXDR(b.MustChangeTrustOp().Line.ToAsset()).Issuer)
	case xdr.OperationTypeAllowTrust:
		out = append(out, b.MustAllowTrustOp().Trustor.Address())
	case xdr.OperationTypeSetTrustLineFlags:
		out = append(out, b.MustSetTrustLineFlagsOp().Trustor.Address())
	case xdr.OperationTypeAccountMerge:
		out = append(out, b.MustDestination().ToAccountId().Address())
	case xdr.OperationTypeCreateClaimableBalance:
		for _, c := range b.MustCreateClaimableBalanceOp().Claimants {
			out = append(out, c.MustV0().Destination.Address())
		}
	case xdr.OperationTypeBeginSponsoringFutureReserves:
		out = append(out, b.MustBeginSponsoringFutureReservesOp().SponsoredId.Address())
	case xdr.OperationTypeClawback:
		out = append(out, b.MustClawbackOp().From.ToAccountId().Address())
	}
	return dedupe(out)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// effectJSON renders an effect with its Base filled in.
func effectJSON(r *effectRec, e effect, closeTime int64) json.RawMessage {
	b := effects.Base{
		ID: r.pt(), PT: r.pt(), Account: e.account, Type: effects.EffectTypeNames[e.typ], TypeI: int32(e.typ),
		LedgerCloseTime: time.Unix(closeTime, 0).UTC(),
	}
	b.Links.Operation = link("/operations/%d", r.OpID)
	b.Links.Succeeds = link("/effects?order=desc&cursor=%s", r.pt())
	b.Links.Precedes = link("/effects?order=asc&cursor=%s", r.pt())
	setBase(e.body, b)
	return marshal(e.body)
}
