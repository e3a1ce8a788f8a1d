package portal_test

import (
	"crypto/ed25519"
	"crypto/rand"

	"github.com/stellar/go-stellar-sdk/keypair"
)

type keypairFull = keypair.Full

func ed25519Key() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}
