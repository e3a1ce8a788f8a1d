package devnet

import (
	"slices"
	"strings"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/base"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// Account flags (AccountFlags in Stellar-ledger-entries.x).
const (
	flagAuthRequired        = uint32(xdr.AccountFlagsAuthRequiredFlag)
	flagAuthRevocable       = uint32(xdr.AccountFlagsAuthRevocableFlag)
	flagAuthImmutable       = uint32(xdr.AccountFlagsAuthImmutableFlag)
	flagAuthClawbackEnabled = uint32(xdr.AccountFlagsAuthClawbackEnabledFlag)
	allAccountFlags         = flagAuthRequired | flagAuthRevocable | flagAuthImmutable | flagAuthClawbackEnabled
)

// Trust line flags (TrustLineFlags in Stellar-ledger-entries.x).
const (
	tlAuthorized                = uint32(xdr.TrustLineFlagsAuthorizedFlag)
	tlAuthorizedToMaintainLiabs = uint32(xdr.TrustLineFlagsAuthorizedToMaintainLiabilitiesFlag)
	tlClawbackEnabled           = uint32(xdr.TrustLineFlagsTrustlineClawbackEnabledFlag)
	allTrustLineFlags           = tlAuthorized | tlAuthorizedToMaintainLiabs | tlClawbackEnabled

	claimableBalanceClawbackFlag = uint32(xdr.ClaimableBalanceFlagsClaimableBalanceClawbackEnabledFlag)
)

// Limits stellar-core enforces.
const (
	maxSigners     = 20
	maxOpsPerTx    = 100
	maxSubentries  = 1000
	maxDataNameLen = 64
	maxInt64       = int64(^uint64(0) >> 1)
)

// asset is a classic asset; the zero value is the native asset (lumens).
type asset struct {
	Code   string `json:"code,omitempty"`
	Issuer string `json:"issuer,omitempty"`
}

func assetFromXDR(a xdr.Asset) asset {
	if a.Type == xdr.AssetTypeAssetTypeNative {
		return asset{}
	}
	return asset{Code: strings.TrimRight(a.GetCode(), "\x00"), Issuer: a.GetIssuer()}
}

// validAsset is stellar-core's isAssetValid: codes are alphanumeric,
// zero-padded only at the end, 1-4 or 5-12 characters.
func validAsset(a xdr.Asset) bool {
	var raw []byte
	minLen := 1
	switch a.Type {
	case xdr.AssetTypeAssetTypeNative:
		return true
	case xdr.AssetTypeAssetTypeCreditAlphanum4:
		raw = a.AlphaNum4.AssetCode[:]
	case xdr.AssetTypeAssetTypeCreditAlphanum12:
		raw, minLen = a.AlphaNum12.AssetCode[:], 5
	default:
		return false
	}
	n, padded := 0, false
	for _, b := range raw {
		switch {
		case b == 0:
			padded = true
		case padded || !isAlnum(b):
			return false
		default:
			n++
		}
	}
	return n >= minLen
}

func isAlnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// validString is stellar-core's isString32Valid: no control characters.
func validString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f || s[i] > 0x7f {
			return false
		}
	}
	return true
}

func (a asset) native() bool { return a.Code == "" }

// canonical is SEP-11's form, which Horizon uses in claimable balances and
// sponsorship effects: "native" or "CODE:ISSUER".
func (a asset) canonical() string {
	if a.native() {
		return "native"
	}
	return a.Code + ":" + a.Issuer
}

func (a asset) horizonType() string {
	switch {
	case a.native():
		return "native"
	case len(a.Code) <= 4:
		return "credit_alphanum4"
	default:
		return "credit_alphanum12"
	}
}

func (a asset) horizon() base.Asset {
	return base.Asset{Type: a.horizonType(), Code: a.Code, Issuer: a.Issuer}
}

// signer is an additional signer of an account (the master key is kept as
// account.MasterWeight).
type signer struct {
	Key     string `json:"key"` // strkey: G... ed25519, T... pre-auth tx, X... hash(x)
	Weight  uint32 `json:"weight"`
	Sponsor string `json:"sponsor,omitempty"`
}

type account struct {
	ID            string   `json:"id"`
	Balance       int64    `json:"balance"`
	Seq           int64    `json:"seq"`
	SeqLedger     uint32   `json:"seq_ledger"`
	SeqTime       int64    `json:"seq_time"`
	NumSubEntries uint32   `json:"num_sub_entries"`
	Flags         uint32   `json:"flags"`
	HomeDomain    string   `json:"home_domain,omitempty"`
	MasterWeight  uint32   `json:"master_weight"`
	Low           uint32   `json:"low"`
	Med           uint32   `json:"med"`
	High          uint32   `json:"high"`
	Signers       []signer `json:"signers,omitempty"` // sorted by key, as stellar-core keeps them
	NumSponsoring uint32   `json:"num_sponsoring"`
	NumSponsored  uint32   `json:"num_sponsored"`
	Sponsor       string   `json:"sponsor,omitempty"`
	LastModified  uint32   `json:"last_modified"`
}

func (a *account) clone() *account {
	c := *a
	c.Signers = slices.Clone(a.Signers)
	return &c
}

func (a *account) signerIndex(key string) int {
	for i, s := range a.Signers {
		if s.Key == key {
			return i
		}
	}
	return -1
}

type trustline struct {
	Account      string `json:"account"`
	Asset        asset  `json:"asset"`
	Balance      int64  `json:"balance"`
	Limit        int64  `json:"limit"`
	Flags        uint32 `json:"flags"`
	Sponsor      string `json:"sponsor,omitempty"`
	LastModified uint32 `json:"last_modified"`
}

func (t *trustline) authorized() bool { return t.Flags&tlAuthorized != 0 }

// authorizedToMaintain reports whether the line may keep (and lose) its
// balance: fully authorized or authorized to maintain liabilities.
func (t *trustline) authorizedToMaintain() bool {
	return t.Flags&(tlAuthorized|tlAuthorizedToMaintainLiabs) != 0
}

type dataEntry struct {
	Account      string `json:"account"`
	Name         string `json:"name"`
	Value        []byte `json:"value"`
	Sponsor      string `json:"sponsor,omitempty"`
	LastModified uint32 `json:"last_modified"`
}

type claimant struct {
	Destination string             `json:"destination"`
	Predicate   xdr.ClaimPredicate `json:"-"`
}

type claimableBalance struct {
	ID           string     `json:"id"` // hex of the XDR ClaimableBalanceId, as Horizon shows it
	Claimants    []claimant `json:"claimants"`
	Asset        asset      `json:"asset"`
	Amount       int64      `json:"amount"`
	Flags        uint32     `json:"flags"`
	Sponsor      string     `json:"sponsor"`
	LastModified uint32     `json:"last_modified"`
}

func tlKey(acc string, a asset) string { return acc + "|" + a.canonical() }
func dataKey(acc, name string) string  { return acc + "|" + name }

// minBalance is (2 + numSubEntries + numSponsoring - numSponsored) x base
// reserve (CAP-33).
func minBalance(a *account, reserve int64) int64 {
	return (2 + int64(a.NumSubEntries) + int64(a.NumSponsoring) - int64(a.NumSponsored)) * reserve
}

// ledgerState is the committed ledger: every entry keyed as Stellar keys it.
type ledgerState struct {
	accounts   map[string]*account
	trustlines map[string]*trustline // tlKey
	data       map[string]*dataEntry // dataKey
	balances   map[string]*claimableBalance

	// Per-account indexes of sub-entries, for rendering accounts.
	linesOf map[string]map[string]*trustline
	dataOf  map[string]map[string]*dataEntry
}

func newLedgerState() *ledgerState {
	return &ledgerState{
		accounts:   map[string]*account{},
		trustlines: map[string]*trustline{},
		data:       map[string]*dataEntry{},
		balances:   map[string]*claimableBalance{},
		linesOf:    map[string]map[string]*trustline{},
		dataOf:     map[string]map[string]*dataEntry{},
	}
}

func (s *ledgerState) putTrustline(k string, t *trustline) {
	s.trustlines[k] = t
	if s.linesOf[t.Account] == nil {
		s.linesOf[t.Account] = map[string]*trustline{}
	}
	s.linesOf[t.Account][k] = t
}

func (s *ledgerState) deleteTrustline(k string) {
	if t := s.trustlines[k]; t != nil {
		delete(s.linesOf[t.Account], k)
		if len(s.linesOf[t.Account]) == 0 {
			delete(s.linesOf, t.Account)
		}
	}
	delete(s.trustlines, k)
}

func (s *ledgerState) putData(k string, d *dataEntry) {
	s.data[k] = d
	if s.dataOf[d.Account] == nil {
		s.dataOf[d.Account] = map[string]*dataEntry{}
	}
	s.dataOf[d.Account][k] = d
}

func (s *ledgerState) deleteData(k string) {
	if d := s.data[k]; d != nil {
		delete(s.dataOf[d.Account], k)
		if len(s.dataOf[d.Account]) == 0 {
			delete(s.dataOf, d.Account)
		}
	}
	delete(s.data, k)
}

// overlay is a copy-on-write view over the committed ledger, so a
// transaction's operations can be rolled back as a unit (stellar-core's
// nested LedgerTxn). A nil value in a map records a deletion.
type overlay struct {
	base       *ledgerState
	accounts   map[string]*account
	trustlines map[string]*trustline
	data       map[string]*dataEntry
	balances   map[string]*claimableBalance
}

func newOverlay(base *ledgerState) *overlay {
	return &overlay{
		base:       base,
		accounts:   map[string]*account{},
		trustlines: map[string]*trustline{},
		data:       map[string]*dataEntry{},
		balances:   map[string]*claimableBalance{},
	}
}

// peekAccount returns the current account without taking it for update;
// callers must not modify it.
func (o *overlay) peekAccount(id string) *account {
	if a, ok := o.accounts[id]; ok {
		return a
	}
	return o.base.accounts[id]
}

// account returns the account for update, or nil if it does not exist.
func (o *overlay) account(id string) *account {
	if a, ok := o.accounts[id]; ok {
		return a
	}
	a := o.base.accounts[id]
	if a == nil {
		return nil
	}
	a = a.clone()
	o.accounts[id] = a
	return a
}

func (o *overlay) putAccount(a *account) { o.accounts[a.ID] = a }
func (o *overlay) deleteAccount(id string) {
	o.accounts[id] = nil
}

func (o *overlay) trustline(acc string, a asset) *trustline {
	k := tlKey(acc, a)
	if t, ok := o.trustlines[k]; ok {
		return t
	}
	t := o.base.trustlines[k]
	if t == nil {
		return nil
	}
	c := *t
	o.trustlines[k] = &c
	return &c
}

func (o *overlay) putTrustline(t *trustline)           { o.trustlines[tlKey(t.Account, t.Asset)] = t }
func (o *overlay) deleteTrustline(acc string, a asset) { o.trustlines[tlKey(acc, a)] = nil }

func (o *overlay) dataEntry(acc, name string) *dataEntry {
	k := dataKey(acc, name)
	if d, ok := o.data[k]; ok {
		return d
	}
	d := o.base.data[k]
	if d == nil {
		return nil
	}
	c := *d
	c.Value = slices.Clone(d.Value)
	o.data[k] = &c
	return &c
}

func (o *overlay) putData(d *dataEntry)           { o.data[dataKey(d.Account, d.Name)] = d }
func (o *overlay) deleteData(acc, name string)    { o.data[dataKey(acc, name)] = nil }
func (o *overlay) putBalance(b *claimableBalance) { o.balances[b.ID] = b }
func (o *overlay) deleteBalance(id string)        { o.balances[id] = nil }

func (o *overlay) balance(id string) *claimableBalance {
	if b, ok := o.balances[id]; ok {
		return b
	}
	b := o.base.balances[id]
	if b == nil {
		return nil
	}
	c := *b
	c.Claimants = slices.Clone(b.Claimants)
	o.balances[id] = &c
	return &c
}

// commit writes the overlay into the committed ledger, stamping every
// touched entry with the ledger that modified it.
func (o *overlay) commit(ledger uint32) {
	for k, a := range o.accounts {
		if a == nil {
			delete(o.base.accounts, k)
			continue
		}
		a.LastModified = ledger
		o.base.accounts[k] = a
	}
	for k, t := range o.trustlines {
		if t == nil {
			o.base.deleteTrustline(k)
			continue
		}
		t.LastModified = ledger
		o.base.putTrustline(k, t)
	}
	for k, d := range o.data {
		if d == nil {
			o.base.deleteData(k)
			continue
		}
		d.LastModified = ledger
		o.base.putData(k, d)
	}
	for k, b := range o.balances {
		if b == nil {
			delete(o.base.balances, k)
			continue
		}
		b.LastModified = ledger
		o.base.balances[k] = b
	}
	clear(o.accounts)
	clear(o.trustlines)
	clear(o.data)
	clear(o.balances)
}
