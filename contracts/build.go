package contracts

import (
	"fmt"
	"time"

	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// Limits of one Stellar transaction, and what our envelopes spend of them:
// a channel account and the sponsor always sign.
const (
	MaxOperations = 100
	MaxSignatures = 20
	// MaxHoldersPerBatch leaves room for the channel, the sponsor and the
	// issuer signatures.
	MaxHoldersPerBatch = MaxSignatures - 3
)

// Draft is one transaction's worth of protocol operations. Every operation
// names its source account; the transaction source is whatever channel
// account submits it (wallet.Sponsor).
type Draft struct {
	Operations []txnbuild.Operation
	Memo       txnbuild.Memo
	// Signers are the accounts whose authority the operations need besides
	// the sponsor's (for a multisig account such as the registry: enough
	// of its signers to meet its thresholds).
	Signers []string
}

func sponsored(sponsor, account string, ops ...txnbuild.Operation) []txnbuild.Operation {
	out := append([]txnbuild.Operation{&txnbuild.BeginSponsoringFutureReserves{SponsoredID: account, SourceAccount: sponsor}}, ops...)
	return append(out, &txnbuild.EndSponsoringFutureReserves{SourceAccount: account})
}

// ephemeral writes a data entry and deletes it in the same transaction: the
// record stays in the transaction history forever, the ledger keeps no
// entry, and no reserve stays locked.
func ephemeral(source, name string, value []byte) []txnbuild.Operation {
	return []txnbuild.Operation{
		&txnbuild.ManageData{SourceAccount: source, Name: name, Value: value},
		&txnbuild.ManageData{SourceAccount: source, Name: name},
	}
}

// SetupRegistry makes registry a multisig account governed by governors
// (weight 1 each): thresholds are set to threshold and the master key is
// disabled. The registry's master key signs this one transaction.
func SetupRegistry(sponsor, registry string, governors []string, threshold uint8) (Draft, error) {
	if threshold == 0 || int(threshold) > len(governors) {
		return Draft{}, fmt.Errorf("contracts: threshold %d of %d governors", threshold, len(governors))
	}
	var ops []txnbuild.Operation
	for _, g := range governors {
		if _, err := rawKey(g); err != nil {
			return Draft{}, err
		}
		ops = append(ops, &txnbuild.SetOptions{SourceAccount: registry, Signer: &txnbuild.Signer{Address: g, Weight: 1}})
	}
	t := txnbuild.Threshold(threshold)
	ops = append(ops, &txnbuild.SetOptions{
		SourceAccount:   registry,
		MasterWeight:    txnbuild.NewThreshold(0),
		LowThreshold:    &t,
		MediumThreshold: &t,
		HighThreshold:   &t,
	})
	return Draft{Operations: sponsored(sponsor, registry, ops...), Signers: []string{registry}}, nil
}

// AddIssuer lists issuer in the registry as allowed to mint, with the
// organisation's home domain; the registry's governors sign.
func AddIssuer(sponsor, registry, issuer, homeDomain string) (Draft, error) {
	name, err := issuerName(issuer)
	if err != nil {
		return Draft{}, err
	}
	if _, err := parseDomain(name, []byte(homeDomain)); err != nil {
		return Draft{}, err
	}
	md := &txnbuild.ManageData{SourceAccount: registry, Name: name, Value: []byte(homeDomain)}
	return Draft{Operations: sponsored(sponsor, registry, md), Signers: []string{registry}}, nil
}

// RemoveIssuer delists issuer; the entry's reserve returns to its sponsor.
func RemoveIssuer(registry, issuer string) (Draft, error) {
	name, err := issuerName(issuer)
	if err != nil {
		return Draft{}, err
	}
	return Draft{Operations: []txnbuild.Operation{&txnbuild.ManageData{SourceAccount: registry, Name: name}},
		Signers: []string{registry}}, nil
}

// SetupIssuer configures an organisation issuer: AUTH_REQUIRED (a record
// token reaches only accounts the issuer authorised, which keeps every
// holder visible and supply at one stroop), AUTH_REVOCABLE (the
// organisation can freeze a token minted to the wrong patient), and its
// home domain.
func SetupIssuer(issuer, homeDomain string) (Draft, error) {
	if _, err := parseDomain("home_domain", []byte(homeDomain)); err != nil {
		return Draft{}, err
	}
	return Draft{Operations: []txnbuild.Operation{&txnbuild.SetOptions{
		SourceAccount: issuer,
		SetFlags:      []txnbuild.AccountFlag{txnbuild.AuthRequired, txnbuild.AuthRevocable},
		HomeDomain:    &homeDomain,
	}}, Signers: []string{issuer}}, nil
}

// Mint is one study to mint.
type Mint struct {
	StudyHash [32]byte // StudyHash(salt, StudyInstanceUID)
	CID       string   // CID of the study's PHI-free metadata JSON
	Holder    string   // the patient's account
	// Escrow mints into a claimable balance for Holder, who claims it
	// later (ClaimRecord): for holders who cannot sign now (their own keys).
	Escrow bool
	// HasTrustline: Holder already has a trustline for the token, so none
	// is created.
	HasTrustline bool
}

// Token is the record token a mint creates.
func (m Mint) Token(issuer string) Token {
	return Token{Code: AssetCode(m.StudyHash), Issuer: issuer}
}

// MintBatches lays out mints as as few transactions as fit Stellar's
// limits (100 operations, 20 signatures). In each transaction the sponsor
// sponsors every holder's new trustline (limit one stroop, so no holder
// can ever hold more than the supply) and the issuer's momentary entries;
// per study the issuer authorises the trustline, pays one stroop (or puts
// it in a claimable balance), and writes and deletes its mint record (CID
// digest and study hash). A transaction with one study also carries the
// CID's digest as its memo hash.
func MintBatches(sponsor, issuer string, mints []Mint) ([]Draft, error) {
	type batch struct {
		holders   []string
		trust     map[string][]txnbuild.Operation
		studies   []txnbuild.Operation
		n, ops    int
		lastPtr   Pointer
		byHolders map[string]bool
	}
	newBatch := func() *batch {
		return &batch{trust: map[string][]txnbuild.Operation{}, byHolders: map[string]bool{}, ops: 2}
	}
	var drafts []Draft
	flush := func(b *batch) {
		var ops []txnbuild.Operation
		for _, h := range b.holders {
			ops = append(ops, sponsored(sponsor, h, b.trust[h]...)...)
		}
		ops = append(ops, sponsored(sponsor, issuer, b.studies...)...)
		d := Draft{Operations: ops, Signers: append([]string{issuer}, b.holders...)}
		if b.n == 1 {
			d.Memo = txnbuild.MemoHash(b.lastPtr.Digest)
		}
		drafts = append(drafts, d)
	}
	b := newBatch()
	seen := map[[32]byte]bool{}
	for i, m := range mints {
		if seen[m.StudyHash] {
			return nil, fmt.Errorf("contracts: mint %d: study listed twice", i)
		}
		seen[m.StudyHash] = true
		ptr, err := ParseCID(m.CID)
		if err != nil {
			return nil, fmt.Errorf("contracts: mint %d: %w", i, err)
		}
		if _, err := rawKey(m.Holder); err != nil {
			return nil, fmt.Errorf("contracts: mint %d: %w", i, err)
		}
		tok := m.Token(issuer)
		asset := tok.Asset()
		needTrust := !m.Escrow && !m.HasTrustline
		costIn := func(b *batch) (cost int, newHolder bool) {
			cost = 3 // payment or claimable balance, mint record written and deleted
			if !m.Escrow {
				cost++ // SetTrustLineFlags
			}
			if needTrust {
				cost++ // ChangeTrust
			}
			if newHolder = needTrust && !b.byHolders[m.Holder]; newHolder {
				cost += 2 // the holder's sponsorship sandwich
			}
			return cost, newHolder
		}
		cost, newHolder := costIn(b)
		if b.n > 0 && (b.ops+cost > MaxOperations || (newHolder && len(b.holders) == MaxHoldersPerBatch)) {
			flush(b)
			b = newBatch()
			cost, newHolder = costIn(b)
		}
		if newHolder {
			b.holders = append(b.holders, m.Holder)
			b.byHolders[m.Holder] = true
		}
		if needTrust {
			b.trust[m.Holder] = append(b.trust[m.Holder], &txnbuild.ChangeTrust{
				SourceAccount: m.Holder, Line: asset.MustToChangeTrustAsset(), Limit: OneStroop,
			})
		}
		if m.Escrow {
			b.studies = append(b.studies, &txnbuild.CreateClaimableBalance{
				SourceAccount: issuer, Asset: asset, Amount: OneStroop,
				Destinations: []txnbuild.Claimant{txnbuild.NewClaimant(m.Holder, nil)},
			})
		} else {
			b.studies = append(b.studies,
				&txnbuild.SetTrustLineFlags{SourceAccount: issuer, Trustor: m.Holder, Asset: asset,
					SetFlags: []txnbuild.TrustLineFlag{txnbuild.TrustLineAuthorized}},
				&txnbuild.Payment{SourceAccount: issuer, Destination: m.Holder, Asset: asset, Amount: OneStroop})
		}
		b.studies = append(b.studies, ephemeral(issuer, mintName(tok.Code, ptr.Codec), mintValue(ptr, m.StudyHash))...)
		b.n++
		b.ops += cost
		b.lastPtr = ptr
	}
	if b.n > 0 {
		flush(b)
	}
	return drafts, nil
}

// ClaimRecord moves an escrowed token (minted with Mint.Escrow) from its
// claimable balance to its holder: a sponsored trustline, the issuer's
// authorisation, the claim. The claimable balance's reserve returns to the
// sponsor.
func ClaimRecord(sponsor string, tok Token, holder, balanceID string) Draft {
	asset := tok.Asset()
	ops := sponsored(sponsor, holder, &txnbuild.ChangeTrust{SourceAccount: holder, Line: asset.MustToChangeTrustAsset(), Limit: OneStroop})
	ops = append(ops,
		&txnbuild.SetTrustLineFlags{SourceAccount: tok.Issuer, Trustor: holder, Asset: asset,
			SetFlags: []txnbuild.TrustLineFlag{txnbuild.TrustLineAuthorized}},
		&txnbuild.ClaimClaimableBalance{SourceAccount: holder, BalanceID: balanceID})
	return Draft{Operations: ops, Signers: []string{holder, tok.Issuer}}
}

// Grant is an access grant: Holder lets Grantee use Token's study within
// Scope until Expires.
type Grant struct {
	Token   Token
	Holder  string
	Grantee string
	Expires time.Time
	Scope   Scope
}

func grantOp(g Grant) (*txnbuild.ManageData, error) {
	name, err := acctKey(grantPrefix, g.Token.Code, g.Grantee)
	if err != nil {
		return nil, err
	}
	v, err := termsValue(g.Token.Issuer, g.Expires, g.Scope)
	if err != nil {
		return nil, err
	}
	return &txnbuild.ManageData{SourceAccount: g.Holder, Name: name, Value: v}, nil
}

// GrantAccess writes a grant as a data entry on the holder's account, its
// reserve sponsored (returned to the sponsor by RevokeAccess). The holder
// signs. A grant only counts while its writer holds the token.
func GrantAccess(sponsor string, g Grant) (Draft, error) {
	md, err := grantOp(g)
	if err != nil {
		return Draft{}, err
	}
	return Draft{Operations: sponsored(sponsor, g.Holder, md), Signers: []string{g.Holder}}, nil
}

// RevokeAccess deletes grants (revoked, or expired and cleaned up); each
// entry's reserve returns to the sponsor.
func RevokeAccess(holder, code string, grantees ...string) (Draft, error) {
	var ops []txnbuild.Operation
	for _, g := range grantees {
		name, err := acctKey(grantPrefix, code, g)
		if err != nil {
			return Draft{}, err
		}
		ops = append(ops, &txnbuild.ManageData{SourceAccount: holder, Name: name})
	}
	if len(ops) == 0 {
		return Draft{}, fmt.Errorf("contracts: revoke: no grantees")
	}
	return Draft{Operations: ops, Signers: []string{holder}}, nil
}

// Request asks a token's holder for access.
type Request struct {
	Token     Token
	Requester string
	Scope     Scope
	Until     time.Time // the access period asked for
}

// RequestAccess records a request in the requester's transaction history
// (an entry written and deleted at once: nothing stays in the ledger).
func RequestAccess(sponsor string, r Request) (Draft, error) {
	if !IsRecordCode(r.Token.Code) {
		return Draft{}, fmt.Errorf("contracts: %q is not a record token code", r.Token.Code)
	}
	v, err := termsValue(r.Token.Issuer, r.Until, r.Scope)
	if err != nil {
		return Draft{}, err
	}
	ops := sponsored(sponsor, r.Requester, ephemeral(r.Requester, reqPrefix+r.Token.Code, v)...)
	return Draft{Operations: ops, Signers: []string{r.Requester}}, nil
}

// Answer is the holder's answer to a request.
type Answer struct {
	Token     Token
	Holder    string
	Requester string
	RequestTx [32]byte // hash of the request's transaction
	// Grant, if not nil, approves: the grant is written in the same
	// transaction (its Token, Holder and Grantee are filled in).
	Grant *Grant
}

// AnswerAccess records the holder's answer and, when it approves, writes
// the grant.
func AnswerAccess(sponsor string, a Answer) (Draft, error) {
	name, err := acctKey(ansPrefix, a.Token.Code, a.Requester)
	if err != nil {
		return Draft{}, err
	}
	ops := ephemeral(a.Holder, name, answerValue(a.Grant != nil, a.RequestTx))
	if a.Grant != nil {
		g := *a.Grant
		g.Token, g.Holder, g.Grantee = a.Token, a.Holder, a.Requester
		md, err := grantOp(g)
		if err != nil {
			return Draft{}, err
		}
		ops = append(ops, md)
	}
	return Draft{Operations: sponsored(sponsor, a.Holder, ops...), Signers: []string{a.Holder}}, nil
}

// Transfer moves a token to a new holder.
type Transfer struct {
	Token Token
	From  string
	To    string
	// ToHasTrustline: To already has a trustline for the token.
	ToHasTrustline bool
	// Grantees of From's grants on this token: deleted in the same
	// transaction (they stopped counting anyway) so their reserves return.
	Grantees []string
}

// TransferRecord builds a transfer: a sponsored trustline for the new
// holder, the issuer's authorisation, the payment of the one stroop, the
// old holder's trustline and grants removed (reserves back to the sponsor).
// From, To (for its trustline) and the issuer sign.
func TransferRecord(sponsor string, t Transfer) (Draft, error) {
	if t.From == t.To {
		return Draft{}, fmt.Errorf("contracts: transfer to the holder itself")
	}
	asset := t.Token.Asset()
	line := asset.MustToChangeTrustAsset()
	var ops []txnbuild.Operation
	signers := []string{t.From, t.Token.Issuer}
	if !t.ToHasTrustline {
		ops = sponsored(sponsor, t.To, &txnbuild.ChangeTrust{SourceAccount: t.To, Line: line, Limit: OneStroop})
		signers = append(signers, t.To)
	}
	ops = append(ops,
		&txnbuild.SetTrustLineFlags{SourceAccount: t.Token.Issuer, Trustor: t.To, Asset: asset,
			SetFlags: []txnbuild.TrustLineFlag{txnbuild.TrustLineAuthorized}},
		&txnbuild.Payment{SourceAccount: t.From, Destination: t.To, Asset: asset, Amount: OneStroop},
		&txnbuild.ChangeTrust{SourceAccount: t.From, Line: line, Limit: "0"})
	if len(t.Grantees) > 0 {
		rv, err := RevokeAccess(t.From, t.Token.Code, t.Grantees...)
		if err != nil {
			return Draft{}, err
		}
		ops = append(ops, rv.Operations...)
	}
	return Draft{Operations: ops, Signers: signers}, nil
}
