package wallet

import (
	"context"
	"fmt"

	"github.com/stellar/go-stellar-sdk/keypair"
)

// KeyWrapper encrypts key material at rest (envelope encryption with a KEK
// file or a KMS key). It has the same method set as mint/envelope's
// wrappers, declared here so wallet does not depend on mint.
type KeyWrapper interface {
	Wrap(ctx context.Context, plaintext []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped []byte) ([]byte, error)
}

// SEP-5 account indexes reserved for the organisation's own roles. Users
// start at UserIndexBase so that adding roles never collides with users.
const (
	SponsorIndex     uint32 = 0
	IssuerIndex      uint32 = 1
	ChannelIndexBase uint32 = 100  // channel k is at ChannelIndexBase+k
	MaxChannels      uint32 = 900  // channels stay below UserIndexBase
	UserIndexBase    uint32 = 1000 // user n is at UserIndexBase+n
)

// SealSeed wraps a BIP-39 seed for storage; only the wrapped form is ever
// written anywhere.
func SealSeed(ctx context.Context, w KeyWrapper, seed []byte) ([]byte, error) {
	if len(seed) < 16 {
		return nil, fmt.Errorf("wallet: seal seed: %d bytes is too short", len(seed))
	}
	wrapped, err := w.Wrap(ctx, seed)
	if err != nil {
		return nil, fmt.Errorf("wallet: seal seed: %w", err)
	}
	return wrapped, nil
}

// Custodian derives custodial accounts from the organisation's wrapped
// master seed. The seed is unwrapped for each derivation and wiped right
// after, so plaintext seed bytes live only for the duration of a call.
type Custodian struct {
	wrapper KeyWrapper
	sealed  []byte
}

// NewCustodian returns a Custodian for a seed sealed with SealSeed.
func NewCustodian(w KeyWrapper, sealedSeed []byte) *Custodian {
	return &Custodian{wrapper: w, sealed: append([]byte(nil), sealedSeed...)}
}

// Accounts returns the key pairs at the given SEP-5 indexes, unwrapping
// the seed once.
func (c *Custodian) Accounts(ctx context.Context, indexes ...uint32) ([]*keypair.Full, error) {
	seed, err := c.wrapper.Unwrap(ctx, c.sealed)
	if err != nil {
		return nil, fmt.Errorf("wallet: unwrap master seed: %w", err)
	}
	defer clear(seed)
	hd, err := NewHD(seed)
	if err != nil {
		return nil, err
	}
	defer clear(hd.root.Key)
	out := make([]*keypair.Full, 0, len(indexes))
	for _, i := range indexes {
		kp, err := hd.Account(i)
		if err != nil {
			return nil, err
		}
		out = append(out, kp)
	}
	return out, nil
}

// Account returns the key pair at one SEP-5 index.
func (c *Custodian) Account(ctx context.Context, index uint32) (*keypair.Full, error) {
	kps, err := c.Accounts(ctx, index)
	if err != nil {
		return nil, err
	}
	return kps[0], nil
}

// User returns user n's custodial key pair (index UserIndexBase+n).
func (c *Custodian) User(ctx context.Context, n uint32) (*keypair.Full, error) {
	if n > MaxAccountIndex-UserIndexBase {
		return nil, fmt.Errorf("wallet: user number %d out of range", n)
	}
	return c.Account(ctx, UserIndexBase+n)
}

// Channels returns the first n channel-account key pairs.
func (c *Custodian) Channels(ctx context.Context, n uint32) ([]*keypair.Full, error) {
	if n > MaxChannels {
		return nil, fmt.Errorf("wallet: %d channels, at most %d", n, MaxChannels)
	}
	idx := make([]uint32, n)
	for k := range idx {
		idx[k] = ChannelIndexBase + uint32(k)
	}
	return c.Accounts(ctx, idx...)
}
