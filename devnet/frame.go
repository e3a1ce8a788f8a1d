package devnet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/strkey"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// txFrame is a decoded transaction envelope with what validation and
// application need pulled out of its union arms (stellar-core's
// TransactionFrame / FeeBumpTransactionFrame).
type txFrame struct {
	env       xdr.TransactionEnvelope
	envB64    string
	hash      [32]byte // of the envelope: the outer transaction for fee bumps
	innerHash [32]byte // of the inner transaction; == hash unless fee bump
	feeBump   bool
	source    string // transaction source account (muxed accounts resolved to G...)
	feeSource string // pays the fee: the fee bump's fee source, else source
	fee       int64  // maximum fee offered by the fee source
	innerFee  int64  // inner transaction's own fee field
	seq       int64
	ops       []xdr.Operation
	sigs      []xdr.DecoratedSignature // over innerHash
	feeSigs   []xdr.DecoratedSignature // over hash, fee bumps only
	cond      xdr.Preconditions
	soroban   bool

	// verified memoizes ed25519 verifications: a transaction is checked at
	// submission, again when its ledger's set is built and when it applies,
	// and the same signature against the same key cannot change its answer.
	// Guarded by Network.mu like the rest of the queue.
	verified map[verification]bool
}

type verification struct {
	hash [32]byte
	sig  int
	key  string
}

var errMalformed = errors.New("transaction envelope malformed")

func decodeFrame(envB64, passphrase string) (*txFrame, error) {
	var env xdr.TransactionEnvelope
	if err := xdr.SafeUnmarshalBase64(envB64, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return newFrame(env, passphrase)
}

func newFrame(env xdr.TransactionEnvelope, passphrase string) (*txFrame, error) {
	f := &txFrame{env: env}
	var err error
	if f.envB64, err = xdr.MarshalBase64(env); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if f.hash, err = network.HashTransactionInEnvelope(env, passphrase); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	f.innerHash = f.hash
	switch env.Type {
	case xdr.EnvelopeTypeEnvelopeTypeTxFeeBump:
		fb := env.MustFeeBump()
		f.feeBump = true
		f.feeSigs = fb.Signatures
		f.fee = int64(fb.Tx.Fee)
		if f.innerHash, err = network.HashTransaction(fb.Tx.InnerTx.MustV1().Tx, passphrase); err != nil {
			return nil, fmt.Errorf("%w: %v", errMalformed, err)
		}
		f.feeSource = fb.Tx.FeeSource.ToAccountId().Address()
		f.soroban = fb.Tx.InnerTx.MustV1().Tx.Ext.V != 0
	case xdr.EnvelopeTypeEnvelopeTypeTx:
		f.soroban = env.MustV1().Tx.Ext.V != 0
	}
	f.source = env.SourceAccount().ToAccountId().Address()
	if !f.feeBump {
		f.feeSource = f.source
		f.fee = int64(env.Fee())
	}
	f.innerFee = int64(env.Fee())
	f.seq = env.SeqNum()
	f.ops = env.Operations()
	f.sigs = env.Signatures()
	f.cond = env.Preconditions()
	return f, nil
}

func (f *txFrame) hashHex() string      { return fmt.Sprintf("%x", f.hash) }
func (f *txFrame) innerHashHex() string { return fmt.Sprintf("%x", f.innerHash) }

// opSource is the operation's source account, defaulting to the
// transaction's.
func (f *txFrame) opSource(op xdr.Operation) string {
	if op.SourceAccount != nil {
		return op.SourceAccount.ToAccountId().Address()
	}
	return f.source
}

// sigChecker is stellar-core's SignatureChecker: it accumulates signer
// weights against one transaction hash and remembers which signatures were
// used, so unused ones can be reported as tx_bad_auth_extra.
type sigChecker struct {
	hash    [32]byte
	sigs    []xdr.DecoratedSignature
	used    []bool
	cache   map[verification]bool
	oneTime map[string]bool // pre-auth tx signers that authorized this tx
}

func (f *txFrame) newSigChecker(hash [32]byte, sigs []xdr.DecoratedSignature) *sigChecker {
	if f.verified == nil {
		f.verified = map[verification]bool{}
	}
	return &sigChecker{hash: hash, sigs: sigs, used: make([]bool, len(sigs)), cache: f.verified, oneTime: map[string]bool{}}
}

// weighted is a signer and its weight as it applies to one check.
type weighted struct {
	key    string
	weight uint32
}

func signersOf(a *account) []weighted {
	var out []weighted
	if a.MasterWeight > 0 {
		out = append(out, weighted{a.ID, a.MasterWeight})
	}
	for _, s := range a.Signers {
		out = append(out, weighted{s.Key, s.Weight})
	}
	return out
}

// check reports whether the signatures reach needed weight with these
// signers. Like stellar-core it stops at the first signature that reaches
// the threshold (signatures past it stay unused) and always needs at least
// one matching signer, so a threshold of 0 still needs a signature.
func (c *sigChecker) check(signers []weighted, needed uint32) bool {
	var total uint32
	var hashX, ed []weighted
	for _, s := range signers {
		vb, raw, err := decodeSignerKey(s.key)
		if err != nil {
			continue
		}
		switch vb {
		case strkey.VersionByteHashTx:
			if bytes.Equal(raw, c.hash[:]) {
				c.oneTime[s.key] = true
				total += min(s.weight, 255)
				if total >= needed {
					return true
				}
			}
		case strkey.VersionByteHashX:
			hashX = append(hashX, s)
		case strkey.VersionByteAccountID:
			ed = append(ed, s)
		}
	}
	verifyAll := func(signers []weighted, verify func(sig xdr.DecoratedSignature, raw []byte) bool) bool {
		for i, sig := range c.sigs {
			for j, s := range signers {
				_, raw, _ := decodeSignerKey(s.key)
				if !bytes.Equal(sig.Hint[:], raw[len(raw)-4:]) {
					continue
				}
				k := verification{c.hash, i, s.key}
				ok, seen := c.cache[k]
				if !seen {
					ok = verify(sig, raw)
					c.cache[k] = ok
				}
				if !ok {
					continue
				}
				c.used[i] = true
				total += min(s.weight, 255)
				if total >= needed {
					return true
				}
				signers = append(signers[:j:j], signers[j+1:]...)
				break
			}
		}
		return false
	}
	if verifyAll(hashX, func(sig xdr.DecoratedSignature, raw []byte) bool {
		h := sha256.Sum256(sig.Signature)
		return bytes.Equal(h[:], raw)
	}) {
		return true
	}
	return verifyAll(ed, func(sig xdr.DecoratedSignature, raw []byte) bool {
		return len(sig.Signature) == ed25519.SignatureSize && ed25519.Verify(raw, c.hash[:], sig.Signature)
	})
}

func (c *sigChecker) allUsed() bool {
	for _, u := range c.used {
		if !u {
			return false
		}
	}
	return true
}

func decodeSignerKey(key string) (strkey.VersionByte, []byte, error) {
	vb, err := strkey.Version(key)
	if err != nil {
		return 0, nil, err
	}
	raw, err := strkey.Decode(vb, key)
	if err != nil || len(raw) < 4 {
		return 0, nil, fmt.Errorf("signer key %q: %w", key, err)
	}
	return vb, raw, nil
}

func signatureStrings(sigs []xdr.DecoratedSignature) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = base64.StdEncoding.EncodeToString(s.Signature)
	}
	return out
}
