package envelope

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyWrapper wraps and unwraps DEKs under a key-encryption key (KEK) that
// never leaves it. KeyID names the KEK so that stored wrapped DEKs can be
// matched to the KEK that unwraps them during rotation.
type KeyWrapper interface {
	KeyID() string
	Wrap(ctx context.Context, dek []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped []byte) ([]byte, error)
}

// ErrWrongKEK reports a wrapped DEK that was wrapped under another KEK.
var ErrWrongKEK = errors.New("envelope: DEK was wrapped under a different KEK")

// dataKeyGenerator is implemented by wrappers that generate DEKs
// themselves (KMS GenerateDataKey), so the plaintext DEK comes from the
// HSM's randomness.
type dataKeyGenerator interface {
	GenerateDataKey(ctx context.Context) (dek, wrapped []byte, err error)
}

// NewDEK returns a fresh 32-byte DEK and its wrapped form.
func NewDEK(ctx context.Context, kw KeyWrapper) (dek, wrapped []byte, err error) {
	if g, ok := kw.(dataKeyGenerator); ok {
		return g.GenerateDataKey(ctx)
	}
	dek = make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, fmt.Errorf("envelope: generate DEK: %w", err)
	}
	wrapped, err = kw.Wrap(ctx, dek)
	if err != nil {
		return nil, nil, err
	}
	return dek, wrapped, nil
}

// Rewrap re-wraps a DEK from the old KEK to the new one, for KEK rotation
// without re-encrypting data.
func Rewrap(ctx context.Context, old, new KeyWrapper, wrapped []byte) ([]byte, error) {
	dek, err := old.Unwrap(ctx, wrapped)
	if err != nil {
		return nil, fmt.Errorf("envelope: rewrap from %s: %w", old.KeyID(), err)
	}
	defer clear(dek)
	w, err := new.Wrap(ctx, dek)
	if err != nil {
		return nil, fmt.Errorf("envelope: rewrap to %s: %w", new.KeyID(), err)
	}
	return w, nil
}

// LocalKEK wraps DEKs with AES-256-GCM under a 32-byte KEK read from a file.
//
// Wrapped form: version (1) | KEK id (8) | nonce (12) | AES-GCM(dek) + tag,
// with version and KEK id as additional data.
type LocalKEK struct {
	aead cipher.AEAD
	id   [localIDSize]byte
}

const (
	localWrapVersion = 1
	localIDSize      = 8
	localWrappedSize = 1 + localIDSize + 12 + KeySize + 16
)

// OpenLocalKEK loads the KEK in path, creating it with fresh random bytes
// and mode 0600 if it does not exist. It refuses a key file that group or
// others may access.
func OpenLocalKEK(path string) (*LocalKEK, error) {
	kek, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		kek, err = createKEK(path)
	}
	if err != nil {
		return nil, fmt.Errorf("envelope: kek %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("envelope: kek %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("envelope: kek %s: mode %v is accessible by group or others; want 0600", path, fi.Mode().Perm())
	}
	return NewLocalKEK(kek)
}

// createKEK writes a new random KEK durably. O_EXCL makes two processes
// racing on first run agree on one key: the loser reads the winner's.
func createKEK(path string) ([]byte, error) {
	kek := make([]byte, KeySize)
	if _, err := rand.Read(kek); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(kek); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return nil, err
		}
	}
	return kek, nil
}

// NewLocalKEK returns a wrapper for a 32-byte KEK held in memory.
func NewLocalKEK(kek []byte) (*LocalKEK, error) {
	if len(kek) != KeySize {
		return nil, fmt.Errorf("%w (kek has %d)", ErrKeySize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	k := &LocalKEK{aead: aead}
	// The id is a domain-separated hash, so it reveals nothing usable
	// about the key yet tells keys apart.
	sum := sha256.Sum256(append([]byte("medimint local kek id\x00"), kek...))
	copy(k.id[:], sum[:])
	return k, nil
}

// KeyID returns "local:" and 16 hex digits identifying the KEK.
func (k *LocalKEK) KeyID() string { return "local:" + hex.EncodeToString(k.id[:]) }

// Wrap encrypts dek under the KEK with a random nonce.
func (k *LocalKEK) Wrap(_ context.Context, dek []byte) ([]byte, error) {
	if len(dek) != KeySize {
		return nil, ErrKeySize
	}
	out := make([]byte, 0, localWrappedSize)
	out = append(out, localWrapVersion)
	out = append(out, k.id[:]...)
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("envelope: wrap nonce: %w", err)
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, dek, out[:1+localIDSize]), nil
}

// Unwrap decrypts a DEK wrapped by Wrap under this KEK.
func (k *LocalKEK) Unwrap(_ context.Context, wrapped []byte) ([]byte, error) {
	if len(wrapped) != localWrappedSize || wrapped[0] != localWrapVersion {
		return nil, fmt.Errorf("%w: not a version %d local wrapped key", ErrFormat, localWrapVersion)
	}
	if !bytes.Equal(wrapped[1:1+localIDSize], k.id[:]) {
		return nil, fmt.Errorf("%w: wrapped under local:%x, have %s", ErrWrongKEK, wrapped[1:1+localIDSize], k.KeyID())
	}
	ad := wrapped[:1+localIDSize]
	nonce := wrapped[1+localIDSize : 1+localIDSize+12]
	dek, err := k.aead.Open(nil, nonce, wrapped[1+localIDSize+12:], ad)
	if err != nil {
		return nil, fmt.Errorf("envelope: unwrap: %w", ErrAuth)
	}
	return dek, nil
}
