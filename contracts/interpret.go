package contracts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/stellar/go-stellar-sdk/xdr"
)

// Transaction is a successful transaction as Horizon lists it.
type Transaction struct {
	Hash        string
	Ledger      int32
	CreatedAt   time.Time
	EnvelopeXDR string
	// ResultXDR is optional; a transaction whose result is not a success
	// yields no events (its operations had no effect).
	ResultXDR string
}

// Meta locates an event in the chain.
type Meta struct {
	TxHash    string
	Ledger    int32
	CloseTime time.Time
	Op        int // index of the operation in the transaction
}

// EventMeta returns the event's location; every event embeds Meta.
func (m Meta) EventMeta() Meta { return m }

// Event is one of the protocol events below.
type Event interface{ EventMeta() Meta }

// IssuerAdded: the registry lists Issuer as allowed to mint.
type IssuerAdded struct {
	Meta
	Registry, Issuer, HomeDomain string
}

// IssuerRemoved: the registry delists Issuer.
type IssuerRemoved struct {
	Meta
	Registry, Issuer string
}

// RecordMinted: the issuer issued Token to Holder (in a claimable balance
// when BalanceID is set). CID and StudyHash come from the mint record in
// the same transaction; an issuer payment without a record leaves them
// empty (the index counts it only as a supply violation of a known token).
type RecordMinted struct {
	Meta
	Token
	Holder    string
	Amount    int64 // stroops; 1 for a valid mint
	CID       string
	StudyHash [32]byte
	BalanceID string
}

// Recorded reports whether the mint carried a mint record.
func (e RecordMinted) Recorded() bool { return e.CID != "" }

// RecordTransferred: From moved Token to To (into a claimable balance
// for To when BalanceID is set).
type RecordTransferred struct {
	Meta
	Token
	From, To  string
	Amount    int64
	BalanceID string
}

// GrantCreated: Holder granted Grantee Scope on Token until Expires.
type GrantCreated struct {
	Meta
	Token
	Holder, Grantee string
	Expires         time.Time
	Scope           Scope
}

// GrantRevoked: Holder deleted its grant to Grantee on the token with Code
// (revoked, or cleaned up after expiry).
type GrantRevoked struct {
	Meta
	Code, Holder, Grantee string
}

// AccessRequested: Requester asked for Scope on Token until Until.
type AccessRequested struct {
	Meta
	Token
	Requester string
	Scope     Scope
	Until     time.Time
}

// AccessAnswered: Holder answered Requester's request (made in
// transaction RequestTx) on the token with Code.
type AccessAnswered struct {
	Meta
	Code, Holder, Requester string
	RequestTx               string
	Approved                bool
}

// Interpret turns a successful transaction into protocol events, in
// operation order. Unrelated transactions yield no events; protocol data
// that does not decode yields an error wrapping ErrMalformed.
//
// Interpret is syntactic: it does not know which issuers are trusted or
// who holds what. Index applies those rules.
func Interpret(tx Transaction) ([]Event, error) {
	var env xdr.TransactionEnvelope
	if err := xdr.SafeUnmarshalBase64(tx.EnvelopeXDR, &env); err != nil {
		return nil, fmt.Errorf("%w: envelope of %s: %v", ErrMalformed, tx.Hash, err)
	}
	if tx.ResultXDR != "" {
		var res xdr.TransactionResult
		if err := xdr.SafeUnmarshalBase64(tx.ResultXDR, &res); err != nil {
			return nil, fmt.Errorf("%w: result of %s: %v", ErrMalformed, tx.Hash, err)
		}
		if !res.Successful() {
			return nil, nil
		}
	}
	txSource := env.SourceAccount().ToAccountId()
	ops := env.Operations()

	// Mint records follow the payments they describe: read them first.
	records := map[Token]mintRecord{}
	for i, op := range ops {
		md, ok := op.Body.GetManageDataOp()
		if !ok || md.DataValue == nil || !strings.HasPrefix(string(md.DataName), mintPrefix) {
			continue
		}
		r, err := parseMint(string(md.DataName), *md.DataValue)
		if err != nil {
			return nil, fmt.Errorf("transaction %s operation %d: %w", tx.Hash, i, err)
		}
		records[Token{Code: r.code, Issuer: opSource(op, txSource)}] = r
	}

	var events []Event
	for i, op := range ops {
		meta := Meta{TxHash: tx.Hash, Ledger: tx.Ledger, CloseTime: tx.CreatedAt, Op: i}
		from := opSource(op, txSource)
		switch op.Body.Type {
		case xdr.OperationTypePayment:
			p := op.Body.MustPaymentOp()
			if tok, ok := recordToken(p.Asset); ok {
				to := p.Destination.ToAccountId()
				events = append(events, movement(meta, tok, from, to.Address(), int64(p.Amount), "", records))
			}
		case xdr.OperationTypeCreateClaimableBalance:
			c := op.Body.MustCreateClaimableBalanceOp()
			if tok, ok := recordToken(c.Asset); ok && len(c.Claimants) > 0 {
				to := c.Claimants[0].MustV0().Destination.Address()
				id := balanceID(txSource, env.SeqNum(), i)
				events = append(events, movement(meta, tok, from, to, int64(c.Amount), id, records))
			}
		case xdr.OperationTypeManageData:
			ev, err := dataEvent(meta, from, op.Body.MustManageDataOp())
			if err != nil {
				return nil, fmt.Errorf("transaction %s operation %d: %w", tx.Hash, i, err)
			}
			if ev != nil {
				events = append(events, ev)
			}
		}
	}
	return events, nil
}

func opSource(op xdr.Operation, txSource xdr.AccountId) string {
	if op.SourceAccount != nil {
		aid := op.SourceAccount.ToAccountId()
		return aid.Address()
	}
	return txSource.Address()
}

func recordToken(a xdr.Asset) (Token, bool) {
	a12, ok := a.GetAlphaNum12()
	if !ok {
		return Token{}, false
	}
	code := strings.TrimRight(string(a12.AssetCode[:]), "\x00")
	return Token{Code: code, Issuer: a12.Issuer.Address()}, IsRecordCode(code)
}

// movement is a mint when the issuer moves its own token, a transfer
// otherwise.
func movement(meta Meta, tok Token, from, to string, amount int64, balance string, records map[Token]mintRecord) Event {
	if from != tok.Issuer {
		return RecordTransferred{Meta: meta, Token: tok, From: from, To: to, Amount: amount, BalanceID: balance}
	}
	ev := RecordMinted{Meta: meta, Token: tok, Holder: to, Amount: amount, BalanceID: balance}
	if r, ok := records[tok]; ok {
		ev.CID, ev.StudyHash = r.ptr.CID(), r.studyHash
	}
	return ev
}

// balanceID is the ID stellar-core gives the claimable balance created by
// operation op: the hash of (transaction source, sequence number, op).
func balanceID(source xdr.AccountId, seq int64, op int) string {
	pre := xdr.HashIdPreimage{
		Type: xdr.EnvelopeTypeEnvelopeTypeOpId,
		OperationId: &xdr.HashIdPreimageOperationId{
			SourceAccount: source, SeqNum: xdr.SequenceNumber(seq), OpNum: xdr.Uint32(op),
		},
	}
	// Marshalling a fully populated fixed-shape preimage cannot fail.
	b, _ := pre.MarshalBinary()
	h := sha256.Sum256(b)
	// A ClaimableBalanceId of type V0 is the 4-byte type (0) then the hash.
	return "00000000" + hex.EncodeToString(h[:])
}

func dataEvent(meta Meta, source string, md xdr.ManageDataOp) (Event, error) {
	name := string(md.DataName)
	if !strings.HasPrefix(name, prefix) {
		return nil, nil
	}
	set := md.DataValue != nil
	var v []byte
	if set {
		v = *md.DataValue
	}
	switch {
	case strings.HasPrefix(name, issuerPrefix):
		issuer := strings.TrimPrefix(name, issuerPrefix)
		if _, err := rawKey(issuer); err != nil {
			return nil, malformed(name, "not an issuer address")
		}
		if !set {
			return IssuerRemoved{Meta: meta, Registry: source, Issuer: issuer}, nil
		}
		domain, err := parseDomain(name, v)
		if err != nil {
			return nil, err
		}
		return IssuerAdded{Meta: meta, Registry: source, Issuer: issuer, HomeDomain: domain}, nil
	case strings.HasPrefix(name, mintPrefix):
		return nil, nil // read before the payments
	case strings.HasPrefix(name, grantPrefix):
		code, grantee, err := splitKey(name, grantPrefix, true)
		if err != nil {
			return nil, err
		}
		if !set {
			return GrantRevoked{Meta: meta, Code: code, Holder: source, Grantee: grantee}, nil
		}
		issuer, exp, scope, err := parseTerms(name, v)
		if err != nil {
			return nil, err
		}
		return GrantCreated{Meta: meta, Token: Token{Code: code, Issuer: issuer}, Holder: source,
			Grantee: grantee, Expires: exp, Scope: scope}, nil
	case strings.HasPrefix(name, reqPrefix):
		code, _, err := splitKey(name, reqPrefix, false)
		if err != nil || !set {
			return nil, err // the deletion half of the record says nothing new
		}
		issuer, until, scope, err := parseTerms(name, v)
		if err != nil {
			return nil, err
		}
		return AccessRequested{Meta: meta, Token: Token{Code: code, Issuer: issuer}, Requester: source,
			Scope: scope, Until: until}, nil
	case strings.HasPrefix(name, ansPrefix):
		code, requester, err := splitKey(name, ansPrefix, true)
		if err != nil || !set {
			return nil, err
		}
		approve, reqTx, err := parseAnswer(name, v)
		if err != nil {
			return nil, err
		}
		return AccessAnswered{Meta: meta, Code: code, Holder: source, Requester: requester,
			RequestTx: hex.EncodeToString(reqTx[:]), Approved: approve}, nil
	}
	return nil, nil // a name we do not define: not ours
}
