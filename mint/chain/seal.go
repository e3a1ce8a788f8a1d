package chain

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/wallet"
)

// Sealer seals secrets of any length under a KEK or KMS key. The
// envelope wrappers only wrap 32-byte data keys, so a fresh data key,
// wrapped by them, encrypts the secret with AES-256-GCM. Sealer is a
// wallet.KeyWrapper, so a Custodian keeps its seed sealed with it.
//
// Sealed form: version (1) | length of wrapped key (u16) | wrapped key |
// nonce (12) | ciphertext and tag; version, length and wrapped key are
// authenticated with Purpose.
type Sealer struct {
	KEK envelope.KeyWrapper
	// Purpose binds a sealed secret to its use, so a sealed seed cannot
	// be passed off as a sealed mnemonic.
	Purpose string
}

const sealVersion = 1

var _ wallet.KeyWrapper = Sealer{}

// Wrap seals plaintext.
func (s Sealer) Wrap(ctx context.Context, plaintext []byte) ([]byte, error) {
	dek, wrapped, err := envelope.NewDEK(ctx, s.KEK)
	if err != nil {
		return nil, fmt.Errorf("chain: seal: %w", err)
	}
	defer clear(dek)
	if len(wrapped) > 0xffff {
		return nil, fmt.Errorf("chain: seal: wrapped key of %d bytes", len(wrapped))
	}
	aead, err := gcm(dek)
	if err != nil {
		return nil, err
	}
	out := []byte{sealVersion}
	out = binary.BigEndian.AppendUint16(out, uint16(len(wrapped)))
	out = append(out, wrapped...)
	ad := s.ad(out)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("chain: seal nonce: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, ad), nil
}

// Unwrap opens a secret sealed by Wrap with the same KEK and Purpose.
func (s Sealer) Unwrap(ctx context.Context, sealed []byte) ([]byte, error) {
	if len(sealed) < 3 || sealed[0] != sealVersion {
		return nil, errors.New("chain: unseal: not a version 1 sealed secret")
	}
	n := int(binary.BigEndian.Uint16(sealed[1:3]))
	if len(sealed) < 3+n+12+16 {
		return nil, errors.New("chain: unseal: truncated")
	}
	head, rest := sealed[:3+n], sealed[3+n:]
	dek, err := s.KEK.Unwrap(ctx, head[3:])
	if err != nil {
		return nil, fmt.Errorf("chain: unseal: %w", err)
	}
	defer clear(dek)
	aead, err := gcm(dek)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], s.ad(head))
	if err != nil {
		return nil, errors.New("chain: unseal: authentication failed (wrong purpose or tampered)")
	}
	return pt, nil
}

func (s Sealer) ad(head []byte) []byte {
	return append([]byte("medimint sealed "+s.Purpose+"\x00"), head...)
}

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	return cipher.NewGCM(block)
}

// MasterFile is the name of the sealed master mnemonic under
// MEDIMINT_DATA_DIR.
const MasterFile = "master-mnemonic.sealed"

const masterHeader = "medimint sealed BIP-39 mnemonic v1"

// Master is the organisation's master secret: a 24-word BIP-39 mnemonic
// from which every custodial key (sponsor, issuer, registry, governors,
// channels, patients) derives by SEP-5. It exists on disk only sealed
// under the KEK.
type Master struct {
	kek    envelope.KeyWrapper
	sealed []byte
}

func mnemonicSealer(kek envelope.KeyWrapper) Sealer {
	return Sealer{KEK: kek, Purpose: "master mnemonic"}
}

// OpenMaster loads the sealed master mnemonic at path, generating and
// sealing a new one (file mode 0600, written once with O_EXCL so that two
// processes starting together agree on one) if there is none. created
// reports whether it was generated now.
func OpenMaster(ctx context.Context, path string, kek envelope.KeyWrapper) (m *Master, created bool, err error) {
	m, err = LoadMaster(path, kek)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return m, false, err
	}
	mnemonic, err := wallet.NewMnemonic(256)
	if err != nil {
		return nil, false, err
	}
	sealed, err := mnemonicSealer(kek).Wrap(ctx, []byte(mnemonic))
	if err != nil {
		return nil, false, err
	}
	if err := writeExclusive(path, []byte(masterHeader+"\n"+base64.StdEncoding.EncodeToString(sealed)+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			m, err := LoadMaster(path, kek)
			return m, false, err
		}
		return nil, false, fmt.Errorf("chain: write master %s: %w", path, err)
	}
	return &Master{kek: kek, sealed: sealed}, true, nil
}

// LoadMaster loads an existing sealed master mnemonic; a missing file is
// an error wrapping fs.ErrNotExist.
func LoadMaster(path string, kek envelope.KeyWrapper) (*Master, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chain: master %s: %w", path, err)
	}
	head, body, ok := strings.Cut(string(b), "\n")
	if !ok || head != masterHeader {
		return nil, fmt.Errorf("chain: master %s: not a sealed master mnemonic", path)
	}
	sealed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(body))
	if err != nil {
		return nil, fmt.Errorf("chain: master %s: %w", path, err)
	}
	return &Master{kek: kek, sealed: sealed}, nil
}

// Custodian unseals the mnemonic once, checks it, and returns a Custodian
// holding the BIP-39 seed sealed again (the plaintext lives only during
// this call and each derivation).
func (m *Master) Custodian(ctx context.Context) (*wallet.Custodian, error) {
	mn, err := mnemonicSealer(m.kek).Unwrap(ctx, m.sealed)
	if err != nil {
		return nil, fmt.Errorf("chain: master mnemonic: %w", err)
	}
	defer clear(mn)
	seed, err := wallet.SeedFromMnemonic(string(mn), "")
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	s := Sealer{KEK: m.kek, Purpose: "master seed"}
	sealedSeed, err := wallet.SealSeed(ctx, s, seed)
	if err != nil {
		return nil, err
	}
	return wallet.NewCustodian(s, sealedSeed), nil
}

// writeExclusive creates path with data durably; it fails with
// fs.ErrExist if the file exists.
func writeExclusive(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// A hard link never replaces an existing file: the first writer wins.
	return writeDurably(path, data, os.Link)
}

// replaceFile writes data to path durably and atomically, mode 0600.
func replaceFile(path string, data []byte) error {
	return writeDurably(path, data, os.Rename)
}

// writeDurably writes data to a temporary file beside path, fsyncs it,
// gives it its name with place (os.Link or os.Rename) and fsyncs the
// directory.
func writeDurably(path string, data []byte, place func(oldname, newname string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".master-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := place(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
