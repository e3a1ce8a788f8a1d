package devnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stellar/go-stellar-sdk/xdr"
)

const stateVersion = 1

// stateFile is the persisted form of a Network: the ledger state and the
// whole history. Entries and records are never modified once committed
// (overlays replace them), so a snapshot only copies pointers under the
// lock and encodes outside it.
type stateFile struct {
	Version    int                 `json:"version"`
	Passphrase string              `json:"network_passphrase"`
	FeePool    int64               `json:"fee_pool"`
	Accounts   []*account          `json:"accounts"`
	Trustlines []*trustline        `json:"trustlines"`
	Data       []*dataEntry        `json:"data"`
	Balances   []*claimableBalance `json:"claimable_balances"`
	Ledgers    []*ledgerRec        `json:"ledgers"`
	Txs        []*txRec            `json:"transactions"`
	Ops        []*opRec            `json:"operations"`
	Effects    []*effectRec        `json:"effects"`
}

// MarshalJSON keeps the predicate as XDR, which round-trips exactly.
func (c claimant) MarshalJSON() ([]byte, error) {
	p, err := xdr.MarshalBase64(c.Predicate)
	if err != nil {
		return nil, fmt.Errorf("claimant predicate: %w", err)
	}
	return json.Marshal(struct {
		Destination string `json:"destination"`
		Predicate   string `json:"predicate_xdr"`
	}{c.Destination, p})
}

func (c *claimant) UnmarshalJSON(b []byte) error {
	var v struct {
		Destination string `json:"destination"`
		Predicate   string `json:"predicate_xdr"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	c.Destination = v.Destination
	if err := xdr.SafeUnmarshalBase64(v.Predicate, &c.Predicate); err != nil {
		return fmt.Errorf("claimant predicate: %w", err)
	}
	return nil
}

func (n *Network) snapshotLocked() *stateFile {
	if n.cfg.StatePath == "" {
		return nil
	}
	s := &stateFile{
		Version: stateVersion, Passphrase: n.cfg.NetworkPassphrase, FeePool: n.feePool,
		Ledgers: append([]*ledgerRec(nil), n.hist.ledgers...),
		Txs:     append([]*txRec(nil), n.hist.txs...),
		Ops:     append([]*opRec(nil), n.hist.ops...),
		Effects: append([]*effectRec(nil), n.hist.effects...),
	}
	for _, a := range n.state.accounts {
		s.Accounts = append(s.Accounts, a)
	}
	for _, t := range n.state.trustlines {
		s.Trustlines = append(s.Trustlines, t)
	}
	for _, d := range n.state.data {
		s.Data = append(s.Data, d)
	}
	for _, b := range n.state.balances {
		s.Balances = append(s.Balances, b)
	}
	return s
}

// Persist writes the current state to StatePath now (a no-op in memory).
func (n *Network) Persist() error {
	n.mu.Lock()
	s := n.snapshotLocked()
	n.mu.Unlock()
	return n.write(s)
}

// write replaces StatePath atomically: a crash leaves the old or the new
// file, never a torn one.
func (n *Network) write(s *stateFile) error {
	if s == nil {
		return nil
	}
	n.persistMu.Lock()
	defer n.persistMu.Unlock()
	dir := filepath.Dir(n.cfg.StatePath)
	tmp, err := os.CreateTemp(dir, ".devnet-state-*")
	if err != nil {
		return fmt.Errorf("devnet: persist: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	enc := json.NewEncoder(tmp)
	if err := enc.Encode(s); err != nil {
		tmp.Close()
		return fmt.Errorf("devnet: persist: encoding: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("devnet: persist: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devnet: persist: %w", err)
	}
	if err := os.Rename(tmp.Name(), n.cfg.StatePath); err != nil {
		return fmt.Errorf("devnet: persist: %w", err)
	}
	return nil
}

// load reads StatePath; it reports false when there is none yet.
func (n *Network) load() (bool, error) {
	f, err := os.Open(n.cfg.StatePath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	var s stateFile
	if err := json.NewDecoder(f).Decode(&s); err != nil {
		return false, fmt.Errorf("decoding: %w", err)
	}
	if s.Version != stateVersion {
		return false, fmt.Errorf("state version %d, want %d", s.Version, stateVersion)
	}
	if s.Passphrase != n.cfg.NetworkPassphrase {
		return false, fmt.Errorf("state is for network %q, not %q", s.Passphrase, n.cfg.NetworkPassphrase)
	}
	if len(s.Ledgers) == 0 {
		return false, errors.New("state has no ledgers")
	}
	n.feePool = s.FeePool
	for _, a := range s.Accounts {
		n.state.accounts[a.ID] = a
	}
	for _, t := range s.Trustlines {
		n.state.putTrustline(tlKey(t.Account, t.Asset), t)
	}
	for _, d := range s.Data {
		n.state.putData(dataKey(d.Account, d.Name), d)
	}
	for _, b := range s.Balances {
		n.state.balances[b.ID] = b
	}
	n.hist.ledgers = s.Ledgers
	for _, t := range s.Txs {
		n.hist.addTx(t)
	}
	for _, o := range s.Ops {
		n.hist.addOp(o)
	}
	for _, e := range s.Effects {
		n.hist.addEffect(e)
	}
	return true, nil
}
