package contracts

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Violations of the protocol's rules, reported by Index.Apply.
var (
	ErrDuplicateMint   = errors.New("contracts: token already minted (supply is one)")
	ErrUntrustedIssuer = errors.New("contracts: issuer not in the registry")
	ErrSupply          = errors.New("contracts: amount is not one stroop")
	ErrNotHolder       = errors.New("contracts: account does not hold the token")
)

// Record is the index's view of a record token.
type Record struct {
	Token
	StudyHash [32]byte
	CID       string
	Holder    string
	// BalanceID is set while the token waits in a claimable balance for
	// Holder.
	BalanceID string
	MintTx    string
	Minted    time.Time
}

type grantKey struct{ holder, code, grantee string }

// Index folds protocol events, in chain order, into the current state:
// trusted issuers, studies → tokens → CIDs and holders, grants that count,
// pending access requests. Replaying the chain's transactions through
// Interpret and Apply reproduces it from chain data alone. It is safe for
// concurrent use.
type Index struct {
	mu       sync.RWMutex
	registry string
	issuers  map[string]string // issuer → home domain
	records  map[Token]*Record
	byStudy  map[[32]byte]Token
	grants   map[grantKey]GrantCreated
	requests map[string]AccessRequested // by request transaction hash
}

// NewIndex returns an empty index that trusts the issuers listed by the
// registry account.
func NewIndex(registry string) *Index {
	return &Index{
		registry: registry,
		issuers:  map[string]string{},
		records:  map[Token]*Record{},
		byStudy:  map[[32]byte]Token{},
		grants:   map[grantKey]GrantCreated{},
		requests: map[string]AccessRequested{},
	}
}

// Apply applies events in order. An event that breaks a rule (a second
// mint, an untrusted issuer, a grant by someone who does not hold the
// token) is not applied; Apply reports all of them and applies the rest.
// Events about tokens the index does not know are ignored.
func (x *Index) Apply(events ...Event) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	var errs []error
	for _, ev := range events {
		if err := x.apply(ev); err != nil {
			m := ev.EventMeta()
			errs = append(errs, fmt.Errorf("transaction %s operation %d: %w", m.TxHash, m.Op, err))
		}
	}
	return errors.Join(errs...)
}

func (x *Index) apply(ev Event) error {
	switch e := ev.(type) {
	case IssuerAdded:
		if e.Registry == x.registry {
			x.issuers[e.Issuer] = e.HomeDomain
		}
	case IssuerRemoved:
		if e.Registry == x.registry {
			delete(x.issuers, e.Issuer)
		}
	case RecordMinted:
		return x.mint(e)
	case RecordTransferred:
		r, ok := x.records[e.Token]
		switch {
		case !ok:
			return nil
		case e.Amount != 1:
			return ErrSupply
		case e.From != r.Holder:
			return ErrNotHolder
		}
		r.Holder, r.BalanceID = e.To, e.BalanceID
		// Grants are bound to the holder that wrote them.
		for k := range x.grants {
			if x.grants[k].Token == e.Token {
				delete(x.grants, k)
			}
		}
	case GrantCreated:
		r, ok := x.records[e.Token]
		if !ok {
			return nil
		}
		if e.Holder != r.Holder {
			return ErrNotHolder
		}
		x.grants[grantKey{e.Holder, e.Code, e.Grantee}] = e
	case GrantRevoked:
		delete(x.grants, grantKey{e.Holder, e.Code, e.Grantee})
	case AccessRequested:
		if _, ok := x.records[e.Token]; ok {
			x.requests[e.TxHash] = e
		}
	case AccessAnswered:
		delete(x.requests, e.RequestTx)
	}
	return nil
}

func (x *Index) mint(e RecordMinted) error {
	if _, ok := x.records[e.Token]; ok {
		return ErrDuplicateMint
	}
	if !e.Recorded() {
		return nil // an issuer payment without a mint record: not one of ours
	}
	if _, ok := x.issuers[e.Issuer]; !ok {
		return ErrUntrustedIssuer
	}
	if e.Amount != 1 {
		return ErrSupply
	}
	if _, ok := x.byStudy[e.StudyHash]; ok {
		return ErrDuplicateMint
	}
	x.records[e.Token] = &Record{Token: e.Token, StudyHash: e.StudyHash, CID: e.CID, Holder: e.Holder,
		BalanceID: e.BalanceID, MintTx: e.TxHash, Minted: e.CloseTime}
	x.byStudy[e.StudyHash] = e.Token
	return nil
}

// Trusted reports whether the registry lists issuer, and its home domain.
func (x *Index) Trusted(issuer string) (homeDomain string, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	homeDomain, ok = x.issuers[issuer]
	return homeDomain, ok
}

// Record returns a token's record.
func (x *Index) Record(t Token) (Record, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r, ok := x.records[t]
	if !ok {
		return Record{}, false
	}
	return *r, true
}

// ByStudy returns the record of a study by its study hash.
func (x *Index) ByStudy(studyHash [32]byte) (Record, bool) {
	x.mu.RLock()
	t, ok := x.byStudy[studyHash]
	x.mu.RUnlock()
	if !ok {
		return Record{}, false
	}
	return x.Record(t)
}

// Allowed reports whether account may use the token's study within need at
// time at: the holder always may; anyone else needs a grant from the
// current holder, unexpired, covering need.
func (x *Index) Allowed(t Token, account string, need Scope, at time.Time) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r, ok := x.records[t]
	if !ok {
		return false
	}
	if account == r.Holder {
		return true
	}
	g, ok := x.grants[grantKey{r.Holder, t.Code, account}]
	return ok && g.Token == t && at.Before(g.Expires) && g.Scope&need == need
}

// Grants lists the grants on a token that count (written by its current
// holder), expired ones included until they are cleaned up.
func (x *Index) Grants(t Token) []GrantCreated {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []GrantCreated
	for _, g := range x.grants {
		if g.Token == t {
			out = append(out, g)
		}
	}
	return out
}

// Pending lists unanswered access requests on a token.
func (x *Index) Pending(t Token) []AccessRequested {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []AccessRequested
	for _, r := range x.requests {
		if r.Token == t {
			out = append(out, r)
		}
	}
	return out
}
