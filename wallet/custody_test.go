package wallet

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"
)

// gcmWrapper is a real AES-256-GCM key wrapper (what mint/envelope's KEK
// file wrapper does), so custody is tested with actual encryption.
type gcmWrapper struct{ aead cipher.AEAD }

func newGCMWrapper(t *testing.T) *gcmWrapper {
	t.Helper()
	kek := make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &gcmWrapper{aead: aead}
}

func (w *gcmWrapper) Wrap(_ context.Context, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, w.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return w.aead.Seal(nonce, nonce, plaintext, []byte("medimint seed")), nil
}

func (w *gcmWrapper) Unwrap(_ context.Context, wrapped []byte) ([]byte, error) {
	n := w.aead.NonceSize()
	if len(wrapped) < n {
		return nil, errors.New("short")
	}
	return w.aead.Open(nil, wrapped[:n], wrapped[n:], []byte("medimint seed"))
}

func TestCustodian(t *testing.T) {
	ctx := context.Background()
	w := newGCMWrapper(t)
	v := sep5Vectors[1]
	seed, err := SeedFromMnemonic(v.mnemonic, v.passphrase)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealSeed(ctx, w, seed)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, seed[:16]) {
		t.Fatal("sealed seed contains plaintext seed bytes")
	}
	c := NewCustodian(w, sealed)

	tests := []struct {
		name string
		get  func() (string, error)
		want string
	}{
		{"sponsor", func() (string, error) { kp, err := c.Account(ctx, SponsorIndex); return addr(kp, err) }, v.accounts[0][:56]},
		{"issuer", func() (string, error) { kp, err := c.Account(ctx, IssuerIndex); return addr(kp, err) }, v.accounts[1][:56]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.get()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}

	hd, _ := NewHD(seed)
	u7, err := c.User(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hd.Account(UserIndexBase + 7)
	if u7.Address() != want.Address() {
		t.Errorf("user 7 is %s, want index %d = %s", u7.Address(), UserIndexBase+7, want.Address())
	}
	chans, err := c.Channels(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{u7.Address(): true}
	for _, kp := range chans {
		if seen[kp.Address()] {
			t.Errorf("channel %s collides", kp.Address())
		}
		seen[kp.Address()] = true
	}
	if _, err := c.Channels(ctx, MaxChannels+1); err == nil {
		t.Error("too many channels accepted")
	}
	if _, err := c.User(ctx, MaxAccountIndex); err == nil {
		t.Error("out-of-range user accepted")
	}

	// A different KEK cannot open the seed.
	other := NewCustodian(newGCMWrapper(t), sealed)
	if _, err := other.Account(ctx, 0); err == nil {
		t.Error("seed unwrapped with the wrong key")
	}
	if _, err := SealSeed(ctx, w, []byte("short")); err == nil {
		t.Error("short seed sealed")
	}
}

func addr(kp interface{ Address() string }, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return kp.Address(), nil
}
