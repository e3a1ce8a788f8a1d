package devnet

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"slices"

	"github.com/stellar/go-stellar-sdk/amount"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/base"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/strkey"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// doCheckValid is each operation's state-independent well-formedness check
// (OperationFrame::doCheckValid); it returns the operation's own result code.
func doCheckValid(src string, op xdr.Operation) int32 {
	b := op.Body
	switch b.Type {
	case xdr.OperationTypeCreateAccount:
		o := b.MustCreateAccountOp()
		if o.StartingBalance < 0 || o.Destination.Address() == src {
			return int32(xdr.CreateAccountResultCodeCreateAccountMalformed)
		}
	case xdr.OperationTypePayment:
		o := b.MustPaymentOp()
		if o.Amount <= 0 || !validAsset(o.Asset) {
			return int32(xdr.PaymentResultCodePaymentMalformed)
		}
	case xdr.OperationTypeSetOptions:
		return checkSetOptions(src, b.MustSetOptionsOp())
	case xdr.OperationTypeChangeTrust:
		o := b.MustChangeTrustOp()
		if o.Limit < 0 || o.Line.Type == xdr.AssetTypeAssetTypeNative || !validAsset(o.Line.ToAsset()) {
			return int32(xdr.ChangeTrustResultCodeChangeTrustMalformed)
		}
		// Since protocol 16 an issuer trusting itself is malformed.
		if a := o.Line.ToAsset(); a.GetIssuer() == src {
			return int32(xdr.ChangeTrustResultCodeChangeTrustMalformed)
		}
	case xdr.OperationTypeAllowTrust:
		o := b.MustAllowTrustOp()
		if o.Authorize > xdr.Uint32(tlAuthorizedToMaintainLiabs) || o.Trustor.Address() == src ||
			!validAsset(o.Asset.ToAsset(xdr.MustAddress(src))) {
			return int32(xdr.AllowTrustResultCodeAllowTrustMalformed)
		}
	case xdr.OperationTypeAccountMerge:
		if b.MustDestination().ToAccountId().Address() == src {
			return int32(xdr.AccountMergeResultCodeAccountMergeMalformed)
		}
	case xdr.OperationTypeManageData:
		name := string(b.MustManageDataOp().DataName)
		if len(name) == 0 || len(name) > maxDataNameLen || !validString(name) {
			return int32(xdr.ManageDataResultCodeManageDataInvalidName)
		}
	case xdr.OperationTypeBumpSequence:
		if b.MustBumpSequenceOp().BumpTo < 0 {
			return int32(xdr.BumpSequenceResultCodeBumpSequenceBadSeq)
		}
	case xdr.OperationTypeCreateClaimableBalance:
		o := b.MustCreateClaimableBalanceOp()
		malformed := int32(xdr.CreateClaimableBalanceResultCodeCreateClaimableBalanceMalformed)
		if o.Amount <= 0 || len(o.Claimants) == 0 || !validAsset(o.Asset) {
			return malformed
		}
		seen := map[string]bool{}
		for _, c := range o.Claimants {
			d := c.MustV0().Destination.Address()
			if seen[d] || !validPredicate(c.MustV0().Predicate, 1) {
				return malformed
			}
			seen[d] = true
		}
	case xdr.OperationTypeBeginSponsoringFutureReserves:
		if b.MustBeginSponsoringFutureReservesOp().SponsoredId.Address() == src {
			return int32(xdr.BeginSponsoringFutureReservesResultCodeBeginSponsoringFutureReservesMalformed)
		}
	case xdr.OperationTypeClawback:
		o := b.MustClawbackOp()
		if o.Amount <= 0 || o.From.ToAccountId().Address() == src || o.Asset.Type == xdr.AssetTypeAssetTypeNative ||
			o.Asset.GetIssuer() != src || !validAsset(o.Asset) {
			return int32(xdr.ClawbackResultCodeClawbackMalformed)
		}
	case xdr.OperationTypeSetTrustLineFlags:
		o := b.MustSetTrustLineFlagsOp()
		set, clr := uint32(o.SetFlags), uint32(o.ClearFlags)
		if o.Asset.Type == xdr.AssetTypeAssetTypeNative || o.Asset.GetIssuer() != src || !validAsset(o.Asset) ||
			o.Trustor.Address() == src || set&clr != 0 || (set|clr)&^allTrustLineFlags != 0 ||
			set&(tlAuthorized|tlAuthorizedToMaintainLiabs) == tlAuthorized|tlAuthorizedToMaintainLiabs ||
			set&tlClawbackEnabled != 0 {
			return int32(xdr.SetTrustLineFlagsResultCodeSetTrustLineFlagsMalformed)
		}
	}
	return 0
}

func checkSetOptions(src string, o xdr.SetOptionsOp) int32 {
	if o.SetFlags != nil && uint32(*o.SetFlags)&^allAccountFlags != 0 ||
		o.ClearFlags != nil && uint32(*o.ClearFlags)&^allAccountFlags != 0 {
		return int32(xdr.SetOptionsResultCodeSetOptionsUnknownFlag)
	}
	if o.SetFlags != nil && o.ClearFlags != nil && *o.SetFlags&*o.ClearFlags != 0 {
		return int32(xdr.SetOptionsResultCodeSetOptionsBadFlags)
	}
	for _, t := range []*xdr.Uint32{o.MasterWeight, o.LowThreshold, o.MedThreshold, o.HighThreshold} {
		if t != nil && *t > 255 {
			return int32(xdr.SetOptionsResultCodeSetOptionsThresholdOutOfRange)
		}
	}
	if o.Signer != nil {
		if o.Signer.Key.Address() == src {
			return int32(xdr.SetOptionsResultCodeSetOptionsBadSigner)
		}
		if o.Signer.Weight > 255 {
			return int32(xdr.SetOptionsResultCodeSetOptionsThresholdOutOfRange)
		}
	}
	if o.HomeDomain != nil && !validString(string(*o.HomeDomain)) {
		return int32(xdr.SetOptionsResultCodeSetOptionsInvalidHomeDomain)
	}
	return 0
}

// modelled reports whether devnet implements this particular operation:
// liquidity-pool trust lines and offers are not.
func modelled(op xdr.Operation) bool {
	switch op.Body.Type {
	case xdr.OperationTypeChangeTrust:
		return op.Body.MustChangeTrustOp().Line.Type != xdr.AssetTypeAssetTypePoolShare
	case xdr.OperationTypeRevokeSponsorship:
		r := op.Body.MustRevokeSponsorshipOp()
		if r.Type == xdr.RevokeSponsorshipTypeRevokeSponsorshipLedgerEntry {
			switch r.LedgerKey.Type {
			case xdr.LedgerEntryTypeAccount, xdr.LedgerEntryTypeData, xdr.LedgerEntryTypeClaimableBalance:
			case xdr.LedgerEntryTypeTrustline:
				return r.LedgerKey.TrustLine.Asset.Type != xdr.AssetTypeAssetTypePoolShare
			default:
				return false
			}
		}
	}
	return supportedOp(op.Body.Type)
}

func validPredicate(p xdr.ClaimPredicate, depth int) bool {
	if depth > 4 {
		return false
	}
	switch p.Type {
	case xdr.ClaimPredicateTypeClaimPredicateUnconditional:
		return true
	case xdr.ClaimPredicateTypeClaimPredicateAnd, xdr.ClaimPredicateTypeClaimPredicateOr:
		ps := p.AndPredicates
		if p.Type == xdr.ClaimPredicateTypeClaimPredicateOr {
			ps = p.OrPredicates
		}
		return ps != nil && len(*ps) == 2 && validPredicate((*ps)[0], depth+1) && validPredicate((*ps)[1], depth+1)
	case xdr.ClaimPredicateTypeClaimPredicateNot:
		return p.NotPredicate != nil && *p.NotPredicate != nil && validPredicate(**p.NotPredicate, depth+1)
	case xdr.ClaimPredicateTypeClaimPredicateBeforeAbsoluteTime:
		return *p.AbsBefore >= 0
	case xdr.ClaimPredicateTypeClaimPredicateBeforeRelativeTime:
		return *p.RelBefore >= 0
	}
	return false
}

// absolutePredicate turns relative times into absolute ones, as
// stellar-core does when it stores a claimable balance.
func absolutePredicate(p xdr.ClaimPredicate, closeTime int64) xdr.ClaimPredicate {
	switch p.Type {
	case xdr.ClaimPredicateTypeClaimPredicateAnd, xdr.ClaimPredicateTypeClaimPredicateOr:
		src := p.AndPredicates
		if p.Type == xdr.ClaimPredicateTypeClaimPredicateOr {
			src = p.OrPredicates
		}
		ps := []xdr.ClaimPredicate{absolutePredicate((*src)[0], closeTime), absolutePredicate((*src)[1], closeTime)}
		if p.Type == xdr.ClaimPredicateTypeClaimPredicateAnd {
			return xdr.ClaimPredicate{Type: p.Type, AndPredicates: &ps}
		}
		return xdr.ClaimPredicate{Type: p.Type, OrPredicates: &ps}
	case xdr.ClaimPredicateTypeClaimPredicateNot:
		in := absolutePredicate(**p.NotPredicate, closeTime)
		ip := &in
		return xdr.ClaimPredicate{Type: p.Type, NotPredicate: &ip}
	case xdr.ClaimPredicateTypeClaimPredicateBeforeRelativeTime:
		t := int64(*p.RelBefore)
		abs := xdr.Int64(maxInt64)
		if t <= maxInt64-closeTime {
			abs = xdr.Int64(closeTime + t)
		}
		return xdr.ClaimPredicate{Type: xdr.ClaimPredicateTypeClaimPredicateBeforeAbsoluteTime, AbsBefore: &abs}
	}
	return p
}

func predicateHolds(p xdr.ClaimPredicate, closeTime int64) bool {
	switch p.Type {
	case xdr.ClaimPredicateTypeClaimPredicateUnconditional:
		return true
	case xdr.ClaimPredicateTypeClaimPredicateAnd:
		ps := *p.AndPredicates
		return predicateHolds(ps[0], closeTime) && predicateHolds(ps[1], closeTime)
	case xdr.ClaimPredicateTypeClaimPredicateOr:
		ps := *p.OrPredicates
		return predicateHolds(ps[0], closeTime) || predicateHolds(ps[1], closeTime)
	case xdr.ClaimPredicateTypeClaimPredicateNot:
		return !predicateHolds(**p.NotPredicate, closeTime)
	case xdr.ClaimPredicateTypeClaimPredicateBeforeAbsoluteTime:
		return closeTime < int64(*p.AbsBefore)
	}
	return false
}

// effect is one Horizon effect produced by an operation; body points to an
// effects.* struct whose Base is filled in when the ledger closes.
type effect struct {
	account string
	typ     effects.EffectType
	body    any
}

// opCtx applies one transaction's operations to an overlay.
type opCtx struct {
	reserve  int64
	o        *overlay
	lc       ledgerCtx
	f        *txFrame
	index    int               // of the operation being applied
	sponsors map[string]string // CAP-33: sponsored account -> sponsoring account
	effects  []effect          // of the operation being applied
}

func (c *opCtx) emit(acc string, typ effects.EffectType, body any) {
	c.effects = append(c.effects, effect{account: acc, typ: typ, body: body})
}

func (c *opCtx) available(a *account) int64 { return a.Balance - minBalance(a, c.reserve) }

// canSponsor reports whether s can take on mult more sponsored reserves.
func (c *opCtx) canSponsor(s *account, mult uint32) bool {
	if s == nil {
		return false
	}
	need := (2 + int64(s.NumSubEntries) + int64(s.NumSponsoring) + int64(mult) - int64(s.NumSponsored)) * c.reserve
	return s.Balance >= need
}

// addSubentry is createEntryWithPossibleSponsorship for a sub-entry (trust
// line, data entry, signer) of owner: an active sponsor pays the reserve,
// else the owner must afford it. It returns the sponsor ("" for none).
func (c *opCtx) addSubentry(owner *account) (string, bool) {
	if sp, ok := c.sponsors[owner.ID]; ok {
		s := c.o.account(sp)
		if !c.canSponsor(s, 1) {
			return "", false
		}
		s.NumSponsoring++
		owner.NumSponsored++
		owner.NumSubEntries++
		return sp, true
	}
	owner.NumSubEntries++
	if owner.Balance < minBalance(owner, c.reserve) {
		owner.NumSubEntries--
		return "", false
	}
	return "", true
}

func (c *opCtx) removeSubentry(owner *account, sponsor string) {
	owner.NumSubEntries--
	if sponsor != "" {
		owner.NumSponsored--
		if s := c.o.account(sponsor); s != nil {
			s.NumSponsoring--
		}
	}
}

// apply runs one operation (stellar-core's OperationFrame::apply).
func (c *opCtx) apply(op xdr.Operation) opOutcome {
	src := c.f.opSource(op)
	if c.o.peekAccount(src) == nil {
		return opOutcome{outer: xdr.OperationResultCodeOpNoAccount}
	}
	if !modelled(op) {
		return opOutcome{outer: xdr.OperationResultCodeOpNotSupported}
	}
	if code := doCheckValid(src, op); code != 0 {
		return inner(code)
	}
	b := op.Body
	switch b.Type {
	case xdr.OperationTypeCreateAccount:
		return c.createAccount(src, b.MustCreateAccountOp())
	case xdr.OperationTypePayment:
		return c.payment(src, b.MustPaymentOp())
	case xdr.OperationTypeSetOptions:
		return c.setOptions(src, b.MustSetOptionsOp())
	case xdr.OperationTypeChangeTrust:
		return c.changeTrust(src, b.MustChangeTrustOp())
	case xdr.OperationTypeAllowTrust:
		o := b.MustAllowTrustOp()
		a := assetFromXDR(o.Asset.ToAsset(xdr.MustAddress(src)))
		return c.setTrustLineFlags(src, o.Trustor.Address(), a, tlAuthorized|tlAuthorizedToMaintainLiabs, uint32(o.Authorize), true)
	case xdr.OperationTypeSetTrustLineFlags:
		o := b.MustSetTrustLineFlagsOp()
		return c.setTrustLineFlags(src, o.Trustor.Address(), assetFromXDR(o.Asset), uint32(o.ClearFlags), uint32(o.SetFlags), false)
	case xdr.OperationTypeAccountMerge:
		return c.accountMerge(src, b.MustDestination().ToAccountId().Address())
	case xdr.OperationTypeManageData:
		return c.manageData(src, b.MustManageDataOp())
	case xdr.OperationTypeBumpSequence:
		return c.bumpSequence(src, int64(b.MustBumpSequenceOp().BumpTo))
	case xdr.OperationTypeCreateClaimableBalance:
		return c.createClaimableBalance(src, b.MustCreateClaimableBalanceOp())
	case xdr.OperationTypeClaimClaimableBalance:
		return c.claimClaimableBalance(src, b.MustClaimClaimableBalanceOp().BalanceId)
	case xdr.OperationTypeClawbackClaimableBalance:
		return c.clawbackClaimableBalance(src, b.MustClawbackClaimableBalanceOp().BalanceId)
	case xdr.OperationTypeBeginSponsoringFutureReserves:
		return c.beginSponsoring(src, b.MustBeginSponsoringFutureReservesOp().SponsoredId.Address())
	case xdr.OperationTypeEndSponsoringFutureReserves:
		sp, ok := c.sponsors[src]
		if !ok {
			return inner(int32(xdr.EndSponsoringFutureReservesResultCodeEndSponsoringFutureReservesNotSponsored))
		}
		delete(c.sponsors, src)
		return opOutcome{beginSponsor: sp}
	case xdr.OperationTypeRevokeSponsorship:
		return c.revokeSponsorship(src, b.MustRevokeSponsorshipOp())
	case xdr.OperationTypeClawback:
		return c.clawback(src, b.MustClawbackOp())
	}
	return opOutcome{outer: xdr.OperationResultCodeOpNotSupported}
}

func nativeAsset() base.Asset { return base.Asset{Type: "native"} }

func (c *opCtx) createAccount(src string, op xdr.CreateAccountOp) opOutcome {
	dest := op.Destination.Address()
	start := int64(op.StartingBalance)
	if c.o.peekAccount(dest) != nil {
		return inner(int32(xdr.CreateAccountResultCodeCreateAccountAlreadyExist))
	}
	sp, sponsored := c.sponsors[dest]
	if sponsored {
		if !c.canSponsor(c.o.peekAccount(sp), 2) {
			return inner(int32(xdr.CreateAccountResultCodeCreateAccountLowReserve))
		}
	} else if start < 2*c.reserve {
		return inner(int32(xdr.CreateAccountResultCodeCreateAccountLowReserve))
	}
	s := c.o.account(src)
	avail := c.available(s)
	if sponsored && sp == src {
		avail -= 2 * c.reserve
	}
	if avail < start {
		return inner(int32(xdr.CreateAccountResultCodeCreateAccountUnderfunded))
	}
	s.Balance -= start
	acc := &account{ID: dest, Balance: start, Seq: startingSeq(c.lc.seq), MasterWeight: 1}
	if sponsored {
		c.o.account(sp).NumSponsoring += 2
		acc.NumSponsored, acc.Sponsor = 2, sp
	}
	c.o.putAccount(acc)
	amt := amount.StringFromInt64(start)
	c.emit(dest, effects.EffectAccountCreated, &effects.AccountCreated{StartingBalance: amt})
	c.emit(src, effects.EffectAccountDebited, &effects.AccountDebited{Asset: nativeAsset(), Amount: amt})
	c.emit(dest, effects.EffectSignerCreated, &effects.SignerCreated{Weight: 1, PublicKey: dest, Key: dest})
	if sponsored {
		c.emit(dest, effects.EffectAccountSponsorshipCreated, &effects.AccountSponsorshipCreated{Sponsor: sp})
	}
	return inner(0)
}

func (c *opCtx) payment(src string, op xdr.PaymentOp) opOutcome {
	dest := op.Destination.ToAccountId().Address()
	a := assetFromXDR(op.Asset)
	amt := int64(op.Amount)
	if dest == src && a.native() {
		c.emitTransfer(src, dest, a, amt)
		return inner(0)
	}
	if !(!a.native() && dest == a.Issuer) && c.o.peekAccount(dest) == nil {
		return inner(int32(xdr.PaymentResultCodePaymentNoDestination))
	}
	// Credit the destination first, then debit the source, in
	// PathPaymentStrictReceive's order (which Payment is built on).
	switch {
	case a.native():
		d := c.o.account(dest)
		if d.Balance > maxInt64-amt {
			return inner(int32(xdr.PaymentResultCodePaymentLineFull))
		}
		d.Balance += amt
	case dest != a.Issuer:
		tl := c.o.trustline(dest, a)
		if tl == nil {
			return inner(int32(xdr.PaymentResultCodePaymentNoTrust))
		}
		if !tl.authorized() {
			return inner(int32(xdr.PaymentResultCodePaymentNotAuthorized))
		}
		if tl.Limit-tl.Balance < amt {
			return inner(int32(xdr.PaymentResultCodePaymentLineFull))
		}
		tl.Balance += amt
	}
	switch {
	case a.native():
		s := c.o.account(src)
		if c.available(s) < amt {
			return inner(int32(xdr.PaymentResultCodePaymentUnderfunded))
		}
		s.Balance -= amt
	case src != a.Issuer:
		tl := c.o.trustline(src, a)
		if tl == nil {
			return inner(int32(xdr.PaymentResultCodePaymentSrcNoTrust))
		}
		if !tl.authorized() {
			return inner(int32(xdr.PaymentResultCodePaymentSrcNotAuthorized))
		}
		if tl.Balance < amt {
			return inner(int32(xdr.PaymentResultCodePaymentUnderfunded))
		}
		tl.Balance -= amt
	}
	c.emitTransfer(src, dest, a, amt)
	return inner(0)
}

func (c *opCtx) emitTransfer(from, to string, a asset, amt int64) {
	s := amount.StringFromInt64(amt)
	c.emit(to, effects.EffectAccountCredited, &effects.AccountCredited{Asset: a.horizon(), Amount: s})
	c.emit(from, effects.EffectAccountDebited, &effects.AccountDebited{Asset: a.horizon(), Amount: s})
}

// accountFlagsUpdated carries all four flags; the SDK's struct only has two.
type accountFlagsUpdated struct {
	effects.Base
	AuthRequired        *bool `json:"auth_required_flag,omitempty"`
	AuthRevocable       *bool `json:"auth_revokable_flag,omitempty"`
	AuthImmutable       *bool `json:"auth_immutable_flag,omitempty"`
	AuthClawbackEnabled *bool `json:"auth_clawback_enabled_flag,omitempty"`
}

func (c *opCtx) setOptions(src string, op xdr.SetOptionsOp) opOutcome {
	acc := c.o.account(src)
	before := signersOf(acc)
	if op.ClearFlags != nil {
		if acc.Flags&flagAuthImmutable != 0 && uint32(*op.ClearFlags) != 0 {
			return inner(int32(xdr.SetOptionsResultCodeSetOptionsCantChange))
		}
		acc.Flags &^= uint32(*op.ClearFlags)
	}
	if op.SetFlags != nil {
		if acc.Flags&flagAuthImmutable != 0 && uint32(*op.SetFlags) != 0 {
			return inner(int32(xdr.SetOptionsResultCodeSetOptionsCantChange))
		}
		acc.Flags |= uint32(*op.SetFlags)
	}
	if acc.Flags&flagAuthClawbackEnabled != 0 && acc.Flags&flagAuthRevocable == 0 {
		return inner(int32(xdr.SetOptionsResultCodeSetOptionsAuthRevocableRequired))
	}
	if op.HomeDomain != nil {
		acc.HomeDomain = string(*op.HomeDomain)
	}
	if op.MasterWeight != nil {
		acc.MasterWeight = uint32(*op.MasterWeight)
	}
	if op.LowThreshold != nil {
		acc.Low = uint32(*op.LowThreshold)
	}
	if op.MedThreshold != nil {
		acc.Med = uint32(*op.MedThreshold)
	}
	if op.HighThreshold != nil {
		acc.High = uint32(*op.HighThreshold)
	}
	if op.Signer != nil {
		key, w := op.Signer.Key.Address(), uint32(op.Signer.Weight)
		i := acc.signerIndex(key)
		switch {
		case w > 0 && i >= 0:
			acc.Signers[i].Weight = w
		case w > 0:
			if len(acc.Signers) >= maxSigners {
				return inner(int32(xdr.SetOptionsResultCodeSetOptionsTooManySigners))
			}
			sp, ok := c.addSubentry(acc)
			if !ok {
				return inner(int32(xdr.SetOptionsResultCodeSetOptionsLowReserve))
			}
			acc.Signers = append(acc.Signers, signer{Key: key, Weight: w, Sponsor: sp})
			slices.SortFunc(acc.Signers, func(a, b signer) int { return compareSignerKeys(a.Key, b.Key) })
			if sp != "" {
				c.emit(src, effects.EffectSignerSponsorshipCreated, &effects.SignerSponsorshipCreated{Signer: key, Sponsor: sp})
			}
		case i >= 0:
			sp := acc.Signers[i].Sponsor
			acc.Signers = slices.Delete(acc.Signers, i, i+1)
			c.removeSubentry(acc, sp)
			if sp != "" {
				c.emit(src, effects.EffectSignerSponsorshipRemoved, &effects.SignerSponsorshipRemoved{Signer: key, FormerSponsor: sp})
			}
		}
	}

	if op.HomeDomain != nil {
		c.emit(src, effects.EffectAccountHomeDomainUpdated, &effects.AccountHomeDomainUpdated{HomeDomain: acc.HomeDomain})
	}
	if op.LowThreshold != nil || op.MedThreshold != nil || op.HighThreshold != nil {
		c.emit(src, effects.EffectAccountThresholdsUpdated, &effects.AccountThresholdsUpdated{
			LowThreshold: int32(acc.Low), MedThreshold: int32(acc.Med), HighThreshold: int32(acc.High),
		})
	}
	if op.SetFlags != nil || op.ClearFlags != nil {
		fe := &accountFlagsUpdated{}
		mark := func(flags *xdr.Uint32, v bool) {
			if flags == nil {
				return
			}
			for bit, p := range map[uint32]**bool{
				flagAuthRequired: &fe.AuthRequired, flagAuthRevocable: &fe.AuthRevocable,
				flagAuthImmutable: &fe.AuthImmutable, flagAuthClawbackEnabled: &fe.AuthClawbackEnabled,
			} {
				if uint32(*flags)&bit != 0 {
					*p = &v
				}
			}
		}
		mark(op.SetFlags, true)
		mark(op.ClearFlags, false)
		c.emit(src, effects.EffectAccountFlagsUpdated, fe)
	}
	c.emitSignerDiff(src, before, signersOf(acc))
	return inner(0)
}

// emitSignerDiff emits signer_removed/updated/created effects comparing the
// signers (master key included) before and after, as Horizon does.
func (c *opCtx) emitSignerDiff(acc string, before, after []weighted) {
	find := func(ws []weighted, key string) (uint32, bool) {
		for _, w := range ws {
			if w.key == key {
				return w.weight, true
			}
		}
		return 0, false
	}
	for _, b := range before {
		w, ok := find(after, b.key)
		switch {
		case !ok:
			c.emit(acc, effects.EffectSignerRemoved, &effects.SignerRemoved{Weight: 0, PublicKey: b.key, Key: b.key})
		case w != b.weight:
			c.emit(acc, effects.EffectSignerUpdated, &effects.SignerUpdated{Weight: int32(w), PublicKey: b.key, Key: b.key})
		}
	}
	for _, a := range after {
		if _, ok := find(before, a.key); !ok {
			c.emit(acc, effects.EffectSignerCreated, &effects.SignerCreated{Weight: int32(a.weight), PublicKey: a.key, Key: a.key})
		}
	}
}

// compareSignerKeys orders signer keys as XDR SignerKey values compare
// (type, then key bytes), which is how stellar-core keeps them.
func compareSignerKeys(a, b string) int {
	va, ra, _ := decodeSignerKey(a)
	vb, rb, _ := decodeSignerKey(b)
	ta, tb := signerKeyType(va), signerKeyType(vb)
	if ta != tb {
		return ta - tb
	}
	return bytes.Compare(ra, rb)
}

func signerKeyType(vb strkey.VersionByte) int {
	switch vb {
	case strkey.VersionByteHashTx:
		return 1
	case strkey.VersionByteHashX:
		return 2
	case strkey.VersionByteSignedPayload:
		return 3
	}
	return 0
}

func (c *opCtx) changeTrust(src string, op xdr.ChangeTrustOp) opOutcome {
	a := assetFromXDR(op.Line.ToAsset())
	limit := int64(op.Limit)
	acc := c.o.account(src)
	tl := c.o.trustline(src, a)
	if tl != nil {
		if limit < tl.Balance {
			return inner(int32(xdr.ChangeTrustResultCodeChangeTrustInvalidLimit))
		}
		if limit == 0 {
			c.o.deleteTrustline(src, a)
			c.removeSubentry(acc, tl.Sponsor)
			c.emit(src, effects.EffectTrustlineRemoved, &effects.TrustlineRemoved{
				LiquidityPoolOrAsset: base.LiquidityPoolOrAsset{Asset: a.horizon()}, Limit: amount.StringFromInt64(0)})
			if tl.Sponsor != "" {
				c.emit(src, effects.EffectTrustlineSponsorshipRemoved, &effects.TrustlineSponsorshipRemoved{
					Type: a.horizonType(), Asset: a.canonical(), FormerSponsor: tl.Sponsor})
			}
			return inner(0)
		}
		tl.Limit = limit
		c.emit(src, effects.EffectTrustlineUpdated, &effects.TrustlineUpdated{
			LiquidityPoolOrAsset: base.LiquidityPoolOrAsset{Asset: a.horizon()}, Limit: amount.StringFromInt64(limit)})
		return inner(0)
	}
	if limit == 0 {
		return inner(int32(xdr.ChangeTrustResultCodeChangeTrustInvalidLimit))
	}
	issuer := c.o.peekAccount(a.Issuer)
	if issuer == nil {
		return inner(int32(xdr.ChangeTrustResultCodeChangeTrustNoIssuer))
	}
	sp, ok := c.addSubentry(acc)
	if !ok {
		return inner(int32(xdr.ChangeTrustResultCodeChangeTrustLowReserve))
	}
	tl = &trustline{Account: src, Asset: a, Limit: limit, Sponsor: sp}
	if issuer.Flags&flagAuthRequired == 0 {
		tl.Flags |= tlAuthorized
	}
	if issuer.Flags&flagAuthClawbackEnabled != 0 {
		tl.Flags |= tlClawbackEnabled
	}
	c.o.putTrustline(tl)
	c.emit(src, effects.EffectTrustlineCreated, &effects.TrustlineCreated{
		LiquidityPoolOrAsset: base.LiquidityPoolOrAsset{Asset: a.horizon()}, Limit: amount.StringFromInt64(limit)})
	if sp != "" {
		c.emit(src, effects.EffectTrustlineSponsorshipCreated, &effects.TrustlineSponsorshipCreated{
			Type: a.horizonType(), Asset: a.canonical(), Sponsor: sp})
	}
	return inner(0)
}

// trustlineFlagsUpdated is Horizon's trustline_flags_updated effect.
type trustlineFlagsUpdated = effects.TrustlineFlagsUpdated

// setTrustLineFlags implements SetTrustLineFlags (CAP-35) and the older
// AllowTrust, which replaces both authorization bits.
func (c *opCtx) setTrustLineFlags(src, trustor string, a asset, clearFlags, setFlags uint32, allowTrust bool) opOutcome {
	noTrust, cantRevoke := int32(xdr.SetTrustLineFlagsResultCodeSetTrustLineFlagsNoTrustLine), int32(xdr.SetTrustLineFlagsResultCodeSetTrustLineFlagsCantRevoke)
	if allowTrust {
		noTrust, cantRevoke = int32(xdr.AllowTrustResultCodeAllowTrustNoTrustLine), int32(xdr.AllowTrustResultCodeAllowTrustCantRevoke)
	}
	tl := c.o.trustline(trustor, a)
	if tl == nil {
		return inner(noTrust)
	}
	issuer := c.o.peekAccount(src)
	flags := tl.Flags&^clearFlags | setFlags
	revokes := tl.Flags&tlAuthorized != 0 && flags&tlAuthorized == 0 ||
		tl.authorizedToMaintain() && flags&(tlAuthorized|tlAuthorizedToMaintainLiabs) == 0
	if revokes && issuer.Flags&flagAuthRevocable == 0 {
		return inner(cantRevoke)
	}
	if flags&(tlAuthorized|tlAuthorizedToMaintainLiabs) == tlAuthorized|tlAuthorizedToMaintainLiabs {
		return inner(int32(xdr.SetTrustLineFlagsResultCodeSetTrustLineFlagsInvalidState))
	}
	old := tl.Flags
	tl.Flags = flags
	e := &trustlineFlagsUpdated{Asset: a.horizon(), Trustor: trustor}
	for bit, p := range map[uint32]**bool{
		tlAuthorized: &e.Authorized, tlAuthorizedToMaintainLiabs: &e.AuthorizedToMaintainLiabilities, tlClawbackEnabled: &e.ClawbackEnabled,
	} {
		if (old^flags)&bit != 0 {
			v := flags&bit != 0
			*p = &v
		}
	}
	c.emit(src, effects.EffectTrustlineFlagsUpdated, e)
	return inner(0)
}

func (c *opCtx) manageData(src string, op xdr.ManageDataOp) opOutcome {
	name := string(op.DataName)
	acc := c.o.account(src)
	d := c.o.dataEntry(src, name)
	if op.DataValue == nil {
		if d == nil {
			return inner(int32(xdr.ManageDataResultCodeManageDataNameNotFound))
		}
		c.o.deleteData(src, name)
		c.removeSubentry(acc, d.Sponsor)
		c.emit(src, effects.EffectDataRemoved, &effects.DataRemoved{Name: name})
		if d.Sponsor != "" {
			c.emit(src, effects.EffectDataSponsorshipRemoved, &effects.DataSponsorshipRemoved{DataName: name, FormerSponsor: d.Sponsor})
		}
		return inner(0)
	}
	v := slices.Clone([]byte(*op.DataValue))
	val := base64.StdEncoding.EncodeToString(v)
	if d != nil {
		d.Value = v
		c.emit(src, effects.EffectDataUpdated, &effects.DataUpdated{Name: name, Value: val})
		return inner(0)
	}
	sp, ok := c.addSubentry(acc)
	if !ok {
		return inner(int32(xdr.ManageDataResultCodeManageDataLowReserve))
	}
	c.o.putData(&dataEntry{Account: src, Name: name, Value: v, Sponsor: sp})
	c.emit(src, effects.EffectDataCreated, &effects.DataCreated{Name: name, Value: val})
	if sp != "" {
		c.emit(src, effects.EffectDataSponsorshipCreated, &effects.DataSponsorshipCreated{DataName: name, Sponsor: sp})
	}
	return inner(0)
}

func (c *opCtx) bumpSequence(src string, to int64) opOutcome {
	acc := c.o.account(src)
	if to > acc.Seq {
		acc.Seq, acc.SeqLedger, acc.SeqTime = to, c.lc.seq, c.lc.closeTime
		c.emit(src, effects.EffectSequenceBumped, &effects.SequenceBumped{NewSeq: to})
	}
	return inner(0)
}

func (c *opCtx) accountMerge(src, dest string) opOutcome {
	d := c.o.account(dest)
	if d == nil {
		return inner(int32(xdr.AccountMergeResultCodeAccountMergeNoAccount))
	}
	s := c.o.account(src)
	switch {
	case s.Flags&flagAuthImmutable != 0:
		return inner(int32(xdr.AccountMergeResultCodeAccountMergeImmutableSet))
	case int(s.NumSubEntries) != len(s.Signers):
		return inner(int32(xdr.AccountMergeResultCodeAccountMergeHasSubEntries))
	case s.Seq >= startingSeq(c.lc.seq):
		return inner(int32(xdr.AccountMergeResultCodeAccountMergeSeqnumTooFar))
	case s.NumSponsoring > 0:
		return inner(int32(xdr.AccountMergeResultCodeAccountMergeIsSponsor))
	case d.Balance > maxInt64-s.Balance:
		return inner(int32(xdr.AccountMergeResultCodeAccountMergeDestFull))
	}
	for _, sg := range s.Signers {
		if sg.Sponsor != "" {
			if sp := c.o.account(sg.Sponsor); sp != nil {
				sp.NumSponsoring--
			}
		}
	}
	if s.Sponsor != "" {
		if sp := c.o.account(s.Sponsor); sp != nil {
			sp.NumSponsoring -= 2
		}
	}
	d.Balance += s.Balance
	c.o.deleteAccount(src)
	bal := xdr.Int64(s.Balance)
	amt := amount.StringFromInt64(s.Balance)
	c.emit(src, effects.EffectAccountDebited, &effects.AccountDebited{Asset: nativeAsset(), Amount: amt})
	c.emit(dest, effects.EffectAccountCredited, &effects.AccountCredited{Asset: nativeAsset(), Amount: amt})
	c.emit(src, effects.EffectAccountRemoved, &effects.Base{})
	if s.Sponsor != "" {
		c.emit(src, effects.EffectAccountSponsorshipRemoved, &effects.AccountSponsorshipRemoved{FormerSponsor: s.Sponsor})
	}
	return opOutcome{merged: &bal}
}

func (c *opCtx) clawback(src string, op xdr.ClawbackOp) opOutcome {
	from := op.From.ToAccountId().Address()
	a := assetFromXDR(op.Asset)
	tl := c.o.trustline(from, a)
	switch {
	case tl == nil:
		return inner(int32(xdr.ClawbackResultCodeClawbackNoTrust))
	case tl.Flags&tlClawbackEnabled == 0:
		return inner(int32(xdr.ClawbackResultCodeClawbackNotClawbackEnabled))
	case tl.Balance < int64(op.Amount):
		return inner(int32(xdr.ClawbackResultCodeClawbackUnderfunded))
	}
	tl.Balance -= int64(op.Amount)
	c.emitTransfer(from, src, a, int64(op.Amount))
	return inner(0)
}

// claimableBalanceID is the V0 id of the balance created by operation
// index of the transaction: sha256 of the OperationID preimage.
func claimableBalanceID(f *txFrame, index int) xdr.ClaimableBalanceId {
	pre := xdr.HashIdPreimage{
		Type: xdr.EnvelopeTypeEnvelopeTypeOpId,
		OperationId: &xdr.HashIdPreimageOperationId{
			SourceAccount: xdr.MustAddress(f.source),
			SeqNum:        xdr.SequenceNumber(f.seq),
			OpNum:         xdr.Uint32(index),
		},
	}
	raw, err := pre.MarshalBinary()
	if err != nil {
		panic(err) // a well-formed preimage always encodes
	}
	h := xdr.Hash(sha256.Sum256(raw))
	return xdr.ClaimableBalanceId{Type: xdr.ClaimableBalanceIdTypeClaimableBalanceIdTypeV0, V0: &h}
}

func balanceIDHex(id xdr.ClaimableBalanceId) string {
	s, err := xdr.MarshalHex(id)
	if err != nil {
		return ""
	}
	return s
}

func (c *opCtx) createClaimableBalance(src string, op xdr.CreateClaimableBalanceOp) opOutcome {
	a := assetFromXDR(op.Asset)
	amt := int64(op.Amount)
	flags := uint32(0)
	switch {
	case a.native():
		s := c.o.account(src)
		if c.available(s) < amt {
			return inner(int32(xdr.CreateClaimableBalanceResultCodeCreateClaimableBalanceUnderfunded))
		}
		s.Balance -= amt
	case src == a.Issuer:
		if c.o.peekAccount(src).Flags&flagAuthClawbackEnabled != 0 {
			flags = claimableBalanceClawbackFlag
		}
	default:
		tl := c.o.trustline(src, a)
		switch {
		case tl == nil:
			return inner(int32(xdr.CreateClaimableBalanceResultCodeCreateClaimableBalanceNoTrust))
		case !tl.authorized():
			return inner(int32(xdr.CreateClaimableBalanceResultCodeCreateClaimableBalanceNotAuthorized))
		case tl.Balance < amt:
			return inner(int32(xdr.CreateClaimableBalanceResultCodeCreateClaimableBalanceUnderfunded))
		}
		tl.Balance -= amt
		if tl.Flags&tlClawbackEnabled != 0 {
			flags = claimableBalanceClawbackFlag
		}
	}
	sponsor, ok := c.sponsors[src]
	if !ok {
		sponsor = src
	}
	n := uint32(len(op.Claimants))
	s := c.o.account(sponsor)
	if !c.canSponsor(s, n) {
		return inner(int32(xdr.CreateClaimableBalanceResultCodeCreateClaimableBalanceLowReserve))
	}
	s.NumSponsoring += n
	id := claimableBalanceID(c.f, c.index)
	idHex := balanceIDHex(id)
	cb := &claimableBalance{ID: idHex, Asset: a, Amount: amt, Flags: flags, Sponsor: sponsor}
	for _, cl := range op.Claimants {
		v0 := cl.MustV0()
		cb.Claimants = append(cb.Claimants, claimant{Destination: v0.Destination.Address(), Predicate: absolutePredicate(v0.Predicate, c.lc.closeTime)})
	}
	c.o.putBalance(cb)
	amtS := amount.StringFromInt64(amt)
	c.emit(src, effects.EffectClaimableBalanceCreated, &effects.ClaimableBalanceCreated{Asset: a.canonical(), BalanceID: idHex, Amount: amtS})
	for _, cl := range cb.Claimants {
		c.emit(cl.Destination, effects.EffectClaimableBalanceClaimantCreated, &effects.ClaimableBalanceClaimantCreated{
			Asset: a.canonical(), BalanceID: idHex, Amount: amtS, Predicate: cl.Predicate})
	}
	c.emit(src, effects.EffectAccountDebited, &effects.AccountDebited{Asset: a.horizon(), Amount: amtS})
	c.emit(src, effects.EffectClaimableBalanceSponsorshipCreated, &effects.ClaimableBalanceSponsorshipCreated{BalanceID: idHex, Sponsor: sponsor})
	return opOutcome{cbID: &id}
}

func (c *opCtx) claimClaimableBalance(src string, id xdr.ClaimableBalanceId) opOutcome {
	idHex := balanceIDHex(id)
	b := c.o.balance(idHex)
	if b == nil {
		return inner(int32(xdr.ClaimClaimableBalanceResultCodeClaimClaimableBalanceDoesNotExist))
	}
	i := slices.IndexFunc(b.Claimants, func(cl claimant) bool { return cl.Destination == src })
	if i < 0 || !predicateHolds(b.Claimants[i].Predicate, c.lc.closeTime) {
		return inner(int32(xdr.ClaimClaimableBalanceResultCodeClaimClaimableBalanceCannotClaim))
	}
	switch {
	case b.Asset.native():
		acc := c.o.account(src)
		if acc.Balance > maxInt64-b.Amount {
			return inner(int32(xdr.ClaimClaimableBalanceResultCodeClaimClaimableBalanceLineFull))
		}
		acc.Balance += b.Amount
	case src != b.Asset.Issuer:
		tl := c.o.trustline(src, b.Asset)
		switch {
		case tl == nil:
			return inner(int32(xdr.ClaimClaimableBalanceResultCodeClaimClaimableBalanceNoTrust))
		case !tl.authorized():
			return inner(int32(xdr.ClaimClaimableBalanceResultCodeClaimClaimableBalanceNotAuthorized))
		case tl.Limit-tl.Balance < b.Amount:
			return inner(int32(xdr.ClaimClaimableBalanceResultCodeClaimClaimableBalanceLineFull))
		}
		tl.Balance += b.Amount
	}
	c.removeBalance(b)
	amtS := amount.StringFromInt64(b.Amount)
	c.emit(src, effects.EffectClaimableBalanceClaimed, &effects.ClaimableBalanceClaimed{Asset: b.Asset.canonical(), BalanceID: idHex, Amount: amtS})
	c.emit(src, effects.EffectAccountCredited, &effects.AccountCredited{Asset: b.Asset.horizon(), Amount: amtS})
	c.emit(src, effects.EffectClaimableBalanceSponsorshipRemoved, &effects.ClaimableBalanceSponsorshipRemoved{BalanceID: idHex, FormerSponsor: b.Sponsor})
	return inner(0)
}

func (c *opCtx) removeBalance(b *claimableBalance) {
	c.o.deleteBalance(b.ID)
	if s := c.o.account(b.Sponsor); s != nil {
		s.NumSponsoring -= uint32(len(b.Claimants))
	}
}

func (c *opCtx) clawbackClaimableBalance(src string, id xdr.ClaimableBalanceId) opOutcome {
	idHex := balanceIDHex(id)
	b := c.o.balance(idHex)
	switch {
	case b == nil:
		return inner(int32(xdr.ClawbackClaimableBalanceResultCodeClawbackClaimableBalanceDoesNotExist))
	case b.Asset.native() || b.Asset.Issuer != src:
		return inner(int32(xdr.ClawbackClaimableBalanceResultCodeClawbackClaimableBalanceNotIssuer))
	case b.Flags&claimableBalanceClawbackFlag == 0:
		return inner(int32(xdr.ClawbackClaimableBalanceResultCodeClawbackClaimableBalanceNotClawbackEnabled))
	}
	c.removeBalance(b)
	c.emit(src, effects.EffectClaimableBalanceClawedBack, &effects.ClaimableBalanceClawedBack{BalanceID: idHex})
	c.emit(src, effects.EffectClaimableBalanceSponsorshipRemoved, &effects.ClaimableBalanceSponsorshipRemoved{BalanceID: idHex, FormerSponsor: b.Sponsor})
	return inner(0)
}

func (c *opCtx) beginSponsoring(src, sponsored string) opOutcome {
	if _, ok := c.sponsors[sponsored]; ok {
		return inner(int32(xdr.BeginSponsoringFutureReservesResultCodeBeginSponsoringFutureReservesAlreadySponsored))
	}
	// No chains: the sponsor may not itself be sponsored, and the sponsored
	// account may not be sponsoring anyone.
	if _, ok := c.sponsors[src]; ok {
		return inner(int32(xdr.BeginSponsoringFutureReservesResultCodeBeginSponsoringFutureReservesRecursive))
	}
	for _, s := range c.sponsors {
		if s == sponsored {
			return inner(int32(xdr.BeginSponsoringFutureReservesResultCodeBeginSponsoringFutureReservesRecursive))
		}
	}
	c.sponsors[sponsored] = src
	return inner(0)
}

// sponsorable is one ledger entry (or signer) whose sponsorship
// RevokeSponsorship can change.
type sponsorable struct {
	owner   *account // pays the reserve when unsponsored; nil for claimable balances
	sponsor *string  // the entry's sponsor field
	mult    uint32   // reserves it takes
	emit    func(former, current string)
}

func (c *opCtx) revokeSponsorship(src string, op xdr.RevokeSponsorshipOp) opOutcome {
	code := func(v xdr.RevokeSponsorshipResultCode) opOutcome { return inner(int32(v)) }
	var e sponsorable
	if op.Type == xdr.RevokeSponsorshipTypeRevokeSponsorshipSigner {
		acc := c.o.account(op.Signer.AccountId.Address())
		if acc == nil {
			return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipDoesNotExist)
		}
		key := op.Signer.SignerKey.Address()
		i := acc.signerIndex(key)
		if i < 0 {
			return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipDoesNotExist)
		}
		e = sponsorable{owner: acc, sponsor: &acc.Signers[i].Sponsor, mult: 1, emit: func(former, current string) {
			switch {
			case former == "":
				c.emit(acc.ID, effects.EffectSignerSponsorshipCreated, &effects.SignerSponsorshipCreated{Signer: key, Sponsor: current})
			case current == "":
				c.emit(acc.ID, effects.EffectSignerSponsorshipRemoved, &effects.SignerSponsorshipRemoved{Signer: key, FormerSponsor: former})
			default:
				c.emit(acc.ID, effects.EffectSignerSponsorshipUpdated, &effects.SignerSponsorshipUpdated{Signer: key, FormerSponsor: former, NewSponsor: current})
			}
		}}
	} else {
		k := op.LedgerKey
		switch k.Type {
		case xdr.LedgerEntryTypeAccount:
			acc := c.o.account(k.Account.AccountId.Address())
			if acc == nil {
				return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipDoesNotExist)
			}
			e = sponsorable{owner: acc, sponsor: &acc.Sponsor, mult: 2, emit: func(former, current string) {
				switch {
				case former == "":
					c.emit(acc.ID, effects.EffectAccountSponsorshipCreated, &effects.AccountSponsorshipCreated{Sponsor: current})
				case current == "":
					c.emit(acc.ID, effects.EffectAccountSponsorshipRemoved, &effects.AccountSponsorshipRemoved{FormerSponsor: former})
				default:
					c.emit(acc.ID, effects.EffectAccountSponsorshipUpdated, &effects.AccountSponsorshipUpdated{FormerSponsor: former, NewSponsor: current})
				}
			}}
		case xdr.LedgerEntryTypeTrustline:
			owner := k.TrustLine.AccountId.Address()
			a := assetFromXDR(k.TrustLine.Asset.ToAsset())
			tl := c.o.trustline(owner, a)
			if tl == nil {
				return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipDoesNotExist)
			}
			e = sponsorable{owner: c.o.account(owner), sponsor: &tl.Sponsor, mult: 1, emit: func(former, current string) {
				switch {
				case former == "":
					c.emit(owner, effects.EffectTrustlineSponsorshipCreated, &effects.TrustlineSponsorshipCreated{Type: a.horizonType(), Asset: a.canonical(), Sponsor: current})
				case current == "":
					c.emit(owner, effects.EffectTrustlineSponsorshipRemoved, &effects.TrustlineSponsorshipRemoved{Type: a.horizonType(), Asset: a.canonical(), FormerSponsor: former})
				default:
					c.emit(owner, effects.EffectTrustlineSponsorshipUpdated, &effects.TrustlineSponsorshipUpdated{Type: a.horizonType(), Asset: a.canonical(), FormerSponsor: former, NewSponsor: current})
				}
			}}
		case xdr.LedgerEntryTypeData:
			owner, name := k.Data.AccountId.Address(), string(k.Data.DataName)
			d := c.o.dataEntry(owner, name)
			if d == nil {
				return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipDoesNotExist)
			}
			e = sponsorable{owner: c.o.account(owner), sponsor: &d.Sponsor, mult: 1, emit: func(former, current string) {
				switch {
				case former == "":
					c.emit(owner, effects.EffectDataSponsorshipCreated, &effects.DataSponsorshipCreated{DataName: name, Sponsor: current})
				case current == "":
					c.emit(owner, effects.EffectDataSponsorshipRemoved, &effects.DataSponsorshipRemoved{DataName: name, FormerSponsor: former})
				default:
					c.emit(owner, effects.EffectDataSponsorshipUpdated, &effects.DataSponsorshipUpdated{DataName: name, FormerSponsor: former, NewSponsor: current})
				}
			}}
		case xdr.LedgerEntryTypeClaimableBalance:
			idHex := balanceIDHex(k.ClaimableBalance.BalanceId)
			b := c.o.balance(idHex)
			if b == nil {
				return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipDoesNotExist)
			}
			e = sponsorable{sponsor: &b.Sponsor, mult: uint32(len(b.Claimants)), emit: func(former, current string) {
				c.emit(src, effects.EffectClaimableBalanceSponsorshipUpdated, &effects.ClaimableBalanceSponsorshipUpdated{BalanceID: idHex, FormerSponsor: former, NewSponsor: current})
			}}
		default:
			return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipDoesNotExist)
		}
	}

	former := *e.sponsor
	if former != "" && former != src || former == "" && (e.owner == nil || e.owner.ID != src) {
		return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipNotSponsor)
	}
	next, transfer := c.sponsors[src]
	switch {
	case former != "" && transfer:
		ns := c.o.account(next)
		if !c.canSponsor(ns, e.mult) {
			return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipLowReserve)
		}
		c.o.account(former).NumSponsoring -= e.mult
		ns.NumSponsoring += e.mult
		*e.sponsor = next
	case former != "":
		if e.owner == nil {
			return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipOnlyTransferable)
		}
		e.owner.NumSponsored -= e.mult
		if e.owner.Balance < minBalance(e.owner, c.reserve) {
			e.owner.NumSponsored += e.mult
			return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipLowReserve)
		}
		c.o.account(former).NumSponsoring -= e.mult
		*e.sponsor = ""
	case transfer:
		ns := c.o.account(next)
		if !c.canSponsor(ns, e.mult) {
			return code(xdr.RevokeSponsorshipResultCodeRevokeSponsorshipLowReserve)
		}
		ns.NumSponsoring += e.mult
		e.owner.NumSponsored += e.mult
		*e.sponsor = next
	default:
		return inner(0) // not sponsored and nobody to sponsor it: nothing to do
	}
	e.emit(former, *e.sponsor)
	return inner(0)
}
