package pinning

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"io"
)

// newPseudo returns n deterministic pseudo-random bytes that anyone can
// regenerate to check the known CIDs with Kubo: the AES-256-CTR keystream
// under key SHA-256("medimint pinning test") and an all-zero IV, i.e.
//
//	openssl enc -aes-256-ctr -K $(printf 'medimint pinning test' | sha256sum | cut -c1-64) \
//	  -iv 00000000000000000000000000000000 -in /dev/zero | head -c N
func newPseudo(n int64) io.Reader {
	key := sha256.Sum256([]byte("medimint pinning test"))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	s := cipher.NewCTR(block, make([]byte, aes.BlockSize))
	return io.LimitReader(cipher.StreamReader{S: s, R: zeroReader{}}, n)
}
