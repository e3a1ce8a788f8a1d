package contracts

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Data entry names. All protocol names start with "mm."; the layouts are
// specified in PROTOCOL.md. Names and values are at most 64 bytes.
const (
	prefix       = "mm."
	issuerPrefix = "mm.iss."  // + issuer G-address                      (63 bytes)
	mintPrefix   = "mm.mint." // + code + "." + codec (2 hex)             (23 bytes)
	grantPrefix  = "mm.g."    // + code + "." + base64url(grantee key)    (61 bytes)
	reqPrefix    = "mm.req."  // + code                                   (19 bytes)
	ansPrefix    = "mm.ans."  // + code + "." + base64url(requester key)  (63 bytes)
	valueVersion = 1
)

var b64 = base64.RawURLEncoding

// Scope is what a grant allows, as a bit set.
type Scope uint16

const (
	// ScopeQuery allows searching the study's PHI-free metadata (QIDO-RS).
	ScopeQuery Scope = 1 << iota
	// ScopeRetrieve allows retrieving the study itself (WADO-RS).
	ScopeRetrieve
	scopeAll = ScopeQuery | ScopeRetrieve
)

func (s Scope) valid() bool { return s != 0 && s&^scopeAll == 0 }

func malformed(name string, format string, args ...any) error {
	return fmt.Errorf("%w: data entry %q: %s", ErrMalformed, name, fmt.Sprintf(format, args...))
}

// splitKey splits name after prefix into a record code and, when withAcct,
// an account in base64url; the account comes back as a G-address.
func splitKey(name, prefix string, withAcct bool) (code, acct string, err error) {
	rest := strings.TrimPrefix(name, prefix)
	code, tail, found := strings.Cut(rest, ".")
	if !IsRecordCode(code) || found != withAcct {
		return "", "", malformed(name, "want %s<code>[.<account>]", prefix)
	}
	if !withAcct {
		return code, "", nil
	}
	raw, err := b64.DecodeString(tail)
	if err != nil || len(raw) != 32 {
		return "", "", malformed(name, "account is not a base64url ed25519 key")
	}
	return code, addrOf(raw), nil
}

func acctKey(prefix, code, addr string) (string, error) {
	raw, err := rawKey(addr)
	if err != nil {
		return "", err
	}
	return prefix + code + "." + b64.EncodeToString(raw), nil
}

// issuerName is the registry entry for an issuer.
func issuerName(issuer string) (string, error) {
	if _, err := rawKey(issuer); err != nil {
		return "", err
	}
	return issuerPrefix + issuer, nil
}

// mintName and mintValue encode a mint record: the CID pointer and the
// study hash of a freshly minted token.
func mintName(code string, codec uint64) string {
	return fmt.Sprintf("%s%s.%02x", mintPrefix, code, codec)
}

func mintValue(p Pointer, studyHash [32]byte) []byte {
	return append(p.Digest[:], studyHash[:]...)
}

type mintRecord struct {
	code      string
	ptr       Pointer
	studyHash [32]byte
}

func parseMint(name string, value []byte) (mintRecord, error) {
	code, codecHex, _ := strings.Cut(strings.TrimPrefix(name, mintPrefix), ".")
	codec, err := strconv.ParseUint(codecHex, 16, 64)
	if !IsRecordCode(code) || err != nil || len(codecHex) != 2 || (codec != CodecRaw && codec != CodecDagPB) {
		return mintRecord{}, malformed(name, "want %scode.codec", mintPrefix)
	}
	if len(value) != 64 {
		return mintRecord{}, malformed(name, "value is %d bytes, want 64", len(value))
	}
	r := mintRecord{code: code, ptr: Pointer{Codec: codec}}
	copy(r.ptr.Digest[:], value[:32])
	copy(r.studyHash[:], value[32:])
	if AssetCode(r.studyHash) != code {
		return mintRecord{}, malformed(name, "code is not derived from the study hash")
	}
	return r, nil
}

// termsValue encodes what grants and requests carry: version, issuer,
// time, scope (43 bytes).
func termsValue(issuer string, t time.Time, scope Scope) ([]byte, error) {
	raw, err := rawKey(issuer)
	if err != nil {
		return nil, err
	}
	if !scope.valid() {
		return nil, fmt.Errorf("contracts: scope %#x invalid", uint16(scope))
	}
	if t.Unix() <= 0 {
		return nil, fmt.Errorf("contracts: time %v invalid", t)
	}
	v := append([]byte{valueVersion}, raw...)
	v = binary.BigEndian.AppendUint64(v, uint64(t.Unix()))
	return binary.BigEndian.AppendUint16(v, uint16(scope)), nil
}

func parseTerms(name string, v []byte) (issuer string, t time.Time, scope Scope, err error) {
	if len(v) != 43 || v[0] != valueVersion {
		return "", time.Time{}, 0, malformed(name, "want 43 bytes of version 1")
	}
	scope = Scope(binary.BigEndian.Uint16(v[41:]))
	secs := binary.BigEndian.Uint64(v[33:41])
	if !scope.valid() || secs == 0 || secs > 1<<62 {
		return "", time.Time{}, 0, malformed(name, "bad scope %#x or time %d", uint16(scope), secs)
	}
	return addrOf(v[1:33]), time.Unix(int64(secs), 0).UTC(), scope, nil
}

// answerValue encodes an answer: version, decision, request transaction
// hash (34 bytes).
func answerValue(approve bool, requestTx [32]byte) []byte {
	d := byte(0)
	if approve {
		d = 1
	}
	return append([]byte{valueVersion, d}, requestTx[:]...)
}

func parseAnswer(name string, v []byte) (approve bool, requestTx [32]byte, err error) {
	if len(v) != 34 || v[0] != valueVersion || v[1] > 1 {
		return false, requestTx, malformed(name, "want 34 bytes: version 1, decision 0/1, request hash")
	}
	copy(requestTx[:], v[2:])
	return v[1] == 1, requestTx, nil
}

func parseDomain(name string, v []byte) (string, error) {
	if len(v) == 0 || len(v) > 32 || bytes.ContainsAny(v, " /\x00") {
		return "", malformed(name, "want a home domain of 1..32 bytes")
	}
	return string(v), nil
}
