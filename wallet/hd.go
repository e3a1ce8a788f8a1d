package wallet

import (
	"errors"
	"fmt"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/tools/stellar-hd-wallet/crypto/derivation"
	"github.com/tyler-smith/go-bip39"
)

// MaxAccountIndex is the largest SEP-5 account index: indexes are hardened,
// so they live below 2^31.
const MaxAccountIndex = derivation.FirstHardenedIndex - 1

// ErrInvalidMnemonic reports a mnemonic with unknown words or a bad checksum.
var ErrInvalidMnemonic = errors.New("wallet: invalid BIP-39 mnemonic")

// NewMnemonic returns a fresh BIP-39 mnemonic with the given entropy
// (128 bits: 12 words … 256 bits: 24 words).
func NewMnemonic(entropyBits int) (string, error) {
	entropy, err := bip39.NewEntropy(entropyBits)
	if err != nil {
		return "", fmt.Errorf("wallet: mnemonic entropy: %w", err)
	}
	m, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return "", fmt.Errorf("wallet: mnemonic: %w", err)
	}
	return m, nil
}

// SeedFromMnemonic turns a BIP-39 mnemonic and optional passphrase into the
// 64-byte BIP-39 seed, checking the mnemonic's words and checksum.
func SeedFromMnemonic(mnemonic, passphrase string) ([]byte, error) {
	seed, err := bip39.NewSeedWithErrorChecking(mnemonic, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMnemonic, err)
	}
	return seed, nil
}

// HD derives SEP-5 Stellar keys from a BIP-39 seed.
type HD struct {
	// root is the key at m/44'/148'; accounts are its hardened children.
	root *derivation.Key
}

// NewHD prepares SEP-5 derivation for a BIP-39 seed.
func NewHD(seed []byte) (*HD, error) {
	root, err := derivation.DeriveForPath(derivation.StellarAccountPrefix, seed)
	if err != nil {
		return nil, fmt.Errorf("wallet: derive %s: %w", derivation.StellarAccountPrefix, err)
	}
	return &HD{root: root}, nil
}

// Account returns the key pair at m/44'/148'/index'.
func (h *HD) Account(index uint32) (*keypair.Full, error) {
	if index > MaxAccountIndex {
		return nil, fmt.Errorf("wallet: account index %d above %d", index, MaxAccountIndex)
	}
	k, err := h.root.Derive(derivation.FirstHardenedIndex + index)
	if err != nil {
		return nil, fmt.Errorf("wallet: derive account %d: %w", index, err)
	}
	kp, err := keypair.FromRawSeed(k.RawSeed())
	if err != nil {
		return nil, fmt.Errorf("wallet: key pair for account %d: %w", index, err)
	}
	return kp, nil
}

// AccountPath is the SEP-5 derivation path of an account index.
func AccountPath(index uint32) string {
	return fmt.Sprintf(derivation.StellarAccountPathFormat, index)
}
