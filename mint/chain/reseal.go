package chain

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/medimint/medimint/mint/envelope"
)

// MasterSealedUnder reports whether the sealed master mnemonic at path
// opens with kek.
func MasterSealedUnder(ctx context.Context, path string, kek envelope.KeyWrapper) (bool, error) {
	m, err := LoadMaster(path, kek)
	if err != nil {
		return false, err
	}
	mn, err := mnemonicSealer(kek).Unwrap(ctx, m.sealed)
	clear(mn)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, envelope.ErrWrongKEK), errors.Is(err, envelope.ErrFormat), errors.Is(err, envelope.ErrAuth):
		return false, nil
	}
	return false, err
}

// ResealMaster re-seals the master mnemonic at path from the old KEK to
// the new one, for KEK rotation. It is idempotent: a file already sealed
// under the new KEK is left alone (changed false). The file is replaced
// atomically (a temporary file renamed over it, then the directory
// synced), so a crash leaves either the old or the new sealing, never
// neither; the mnemonic itself is unchanged, so every derived key stays
// the same.
func ResealMaster(ctx context.Context, path string, old, new envelope.KeyWrapper) (changed bool, err error) {
	if done, err := MasterSealedUnder(ctx, path, new); err != nil || done {
		return false, err
	}
	m, err := LoadMaster(path, old)
	if err != nil {
		return false, err
	}
	mn, err := mnemonicSealer(old).Unwrap(ctx, m.sealed)
	if err != nil {
		return false, fmt.Errorf("chain: reseal master %s: opens under neither KEK: %w", path, err)
	}
	defer clear(mn)
	sealed, err := mnemonicSealer(new).Wrap(ctx, mn)
	if err != nil {
		return false, fmt.Errorf("chain: reseal master: %w", err)
	}
	check, err := mnemonicSealer(new).Unwrap(ctx, sealed)
	if err != nil || !bytes.Equal(check, mn) {
		clear(check)
		return false, errors.Join(errors.New("chain: reseal master: the new sealing does not open"), err)
	}
	clear(check)
	if err := replaceFile(path, []byte(masterHeader+"\n"+base64.StdEncoding.EncodeToString(sealed)+"\n")); err != nil {
		return false, fmt.Errorf("chain: reseal master %s: %w", path, err)
	}
	return true, nil
}
