package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrInvalidToken reports an access token that is malformed, not signed by
// one of our keys, not meant for us, or expired.
var ErrInvalidToken = errors.New("auth: invalid token")

// Claims are the access token's claims (RFC 7519 registered names plus
// ours).
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"` // user ID
	Audience  string   `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	ID        string   `json:"jti"`
	Account   string   `json:"acct,omitempty"` // Stellar account
	Custodial bool     `json:"cust,omitempty"`
	OrgID     string   `json:"org,omitempty"`
	Roles     []Role   `json:"roles,omitempty"`
	Session   string   `json:"sid,omitempty"` // refresh token family
	Study     string   `json:"study,omitempty"`
	Scopes    []string `json:"scp,omitempty"`
}

// Audiences of the tokens we issue.
const (
	AudienceAPI    = "medimint-api"    // the portal API and DICOMweb
	AudienceViewer = "medimint-viewer" // a viewer link: DICOMweb reads of one study
)

// Keys signs access tokens with the current ed25519 key and verifies
// tokens signed by it or by earlier keys still trusted (key rotation).
type Keys struct {
	issuer  string
	current ed25519.PrivateKey
	kid     string
	trusted map[string]ed25519.PublicKey
}

// KeyID names a public key in the JWS "kid" header: the first 8 bytes of
// its SHA-256, hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// NewKeys returns Keys signing with key as issuer iss and also accepting
// tokens signed by previous.
func NewKeys(iss string, key ed25519.PrivateKey, previous ...ed25519.PublicKey) *Keys {
	pub := key.Public().(ed25519.PublicKey)
	k := &Keys{issuer: iss, current: key, kid: KeyID(pub), trusted: map[string]ed25519.PublicKey{}}
	k.trusted[k.kid] = pub
	for _, p := range previous {
		k.trusted[KeyID(p)] = p
	}
	return k
}

// LoadOrCreateKey reads an ed25519 seed (32 bytes, hex) from path, or
// creates the file (mode 0600) with a new random one. The key signs
// access tokens only: losing it signs everyone out, nothing more.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("auth: token key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("auth: token key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKey(path) // another process won the race
		}
		if err != nil {
			return nil, fmt.Errorf("auth: token key: %w", err)
		}
		if _, err := f.WriteString(hex.EncodeToString(seed) + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("auth: token key %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("auth: token key %s: %w", path, err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: token key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("auth: token key %s: want %d hex-encoded bytes", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

var b64 = base64.RawURLEncoding

type jwsHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

// Sign returns c as a compact JWS (RFC 7515) with alg EdDSA (RFC 8037).
// Issuer is set to the Keys' issuer.
func (k *Keys) Sign(c Claims) (string, error) {
	c.Issuer = k.issuer
	h, err := json.Marshal(jwsHeader{Alg: "EdDSA", Typ: "JWT", Kid: k.kid})
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sig := ed25519.Sign(k.current, []byte(signing))
	return signing + "." + b64.EncodeToString(sig), nil
}

// Verify checks a compact JWS: the header must say EdDSA and name a
// trusted key (no "none", no algorithm confusion), the signature must
// verify, and the claims must be ours, for audience aud and current at
// now (with 30 seconds of leeway for clocks).
func (k *Keys) Verify(token, aud string, now time.Time) (Claims, error) {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > 8<<10 {
		return c, fmt.Errorf("%w: not a compact JWS", ErrInvalidToken)
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return c, fmt.Errorf("%w: header: %v", ErrInvalidToken, err)
	}
	var h jwsHeader
	if err := strictJSON(hb, &h); err != nil || h.Alg != "EdDSA" {
		return c, fmt.Errorf("%w: header is not EdDSA", ErrInvalidToken)
	}
	pub, ok := k.trusted[h.Kid]
	if !ok {
		return c, fmt.Errorf("%w: unknown key %q", ErrInvalidToken, h.Kid)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return c, fmt.Errorf("%w: bad signature", ErrInvalidToken)
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return c, fmt.Errorf("%w: payload: %v", ErrInvalidToken, err)
	}
	if err := strictJSON(pb, &c); err != nil {
		return c, fmt.Errorf("%w: payload: %v", ErrInvalidToken, err)
	}
	const leeway = 30
	t := now.Unix()
	switch {
	case c.Issuer != k.issuer:
		return c, fmt.Errorf("%w: issuer %q", ErrInvalidToken, c.Issuer)
	case c.Audience != aud:
		return c, fmt.Errorf("%w: audience %q", ErrInvalidToken, c.Audience)
	case t >= c.Expires+leeway:
		return c, fmt.Errorf("%w: expired", ErrInvalidToken)
	case t < c.NotBefore-leeway:
		return c, fmt.Errorf("%w: not yet valid", ErrInvalidToken)
	case c.Subject == "":
		return c, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	return c, nil
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// randomToken returns n random bytes as unpadded base64url and the
// SHA-256 of that text, which is what gets stored.
func randomToken(n int) (string, []byte) {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	s := b64.EncodeToString(b)
	return s, hashToken(s)
}

func hashToken(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
