package contracts

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/stellar/go-stellar-sdk/strkey"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// OneStroop is a record token's whole supply: 0.0000001, the smallest
// amount (SEP-39's indivisible NFT unit).
const OneStroop = "0.0000001"

// CodeLength is the length of a record token's asset code.
const CodeLength = 12

// ErrMalformed marks protocol data that does not decode.
var ErrMalformed = errors.New("contracts: malformed")

// Token is a record token: asset Code issued by an organisation's Issuer.
type Token struct {
	Code   string
	Issuer string
}

// Asset is the token as a txnbuild asset.
func (t Token) Asset() txnbuild.CreditAsset {
	return txnbuild.CreditAsset{Code: t.Code, Issuer: t.Issuer}
}

func (t Token) String() string { return t.Code + ":" + t.Issuer }

// StudyHash is the study's identity on chain: HMAC-SHA-256 of the
// StudyInstanceUID under the organisation's secret salt, so the chain
// never carries the UID and nobody without the salt can link a UID to a
// token.
func StudyHash(salt []byte, studyInstanceUID string) [32]byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(studyInstanceUID))
	var h [32]byte
	copy(h[:], m.Sum(nil))
	return h
}

var code32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// AssetCode derives a record token's asset code from its study hash: the
// first 60 bits in base32, 12 characters of [A-Z2-7]. Deterministic, so a
// retried mint finds its own token on chain before submitting.
func AssetCode(studyHash [32]byte) string {
	return code32.EncodeToString(studyHash[:8])[:CodeLength]
}

// IsRecordCode reports whether code has the shape of a record token code.
func IsRecordCode(code string) bool {
	if len(code) != CodeLength {
		return false
	}
	for _, c := range code {
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// Codecs a metadata CID may have: raw (a single block, how small JSON
// files are added with CIDv1) or dag-pb (UnixFS, CIDv0 default).
const (
	CodecRaw   = cid.Raw
	CodecDagPB = cid.DagProtobuf
)

// Pointer is a metadata CID reduced to what goes on chain: its codec and
// its sha2-256 digest.
type Pointer struct {
	Codec  uint64
	Digest [32]byte
}

// ParseCID accepts a CID of the metadata JSON: sha2-256, codec raw or
// dag-pb, version 0 or 1.
func ParseCID(s string) (Pointer, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return Pointer{}, fmt.Errorf("contracts: CID %q: %w", s, err)
	}
	dm, err := multihash.Decode(c.Hash())
	if err != nil || dm.Code != multihash.SHA2_256 || len(dm.Digest) != 32 {
		return Pointer{}, fmt.Errorf("contracts: CID %q: want a sha2-256 multihash", s)
	}
	p := Pointer{Codec: c.Type()}
	if p.Codec != CodecRaw && p.Codec != CodecDagPB {
		return Pointer{}, fmt.Errorf("contracts: CID %q: codec %#x, want raw or dag-pb", s, p.Codec)
	}
	copy(p.Digest[:], dm.Digest)
	return p, nil
}

// CID is the pointer's CIDv1 in its canonical base32 form; url is
// ipfs://CID.
func (p Pointer) CID() string {
	mh, _ := multihash.Encode(p.Digest[:], multihash.SHA2_256) // cannot fail for sha2-256 with 32 bytes
	return cid.NewCidV1(p.Codec, mh).String()
}

func rawKey(addr string) ([]byte, error) {
	b, err := strkey.Decode(strkey.VersionByteAccountID, addr)
	if err != nil {
		return nil, fmt.Errorf("contracts: account %q: %w", addr, err)
	}
	return b, nil
}

func addrOf(raw []byte) string {
	return strkey.MustEncode(strkey.VersionByteAccountID, raw)
}
