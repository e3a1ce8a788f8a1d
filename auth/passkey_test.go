package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stellar/go-stellar-sdk/keypair"
)

var b64u = base64.RawURLEncoding

// softKey is a software authenticator: one ES256 discoverable credential,
// "none" attestation, user present and verified, as WebAuthn Level 2
// (§6.1 authenticator data, §8.7 none attestation) lays them out.
type softKey struct {
	origin, rpID string
	key          *ecdsa.PrivateKey
	credID       []byte
	handle       []byte
	count        uint32
}

func newSoftKey(t *testing.T, origin, rpID string) *softKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softKey{origin: origin, rpID: rpID, key: k, credID: id}
}

// cbor helpers: just the major types the structures below need.
func cborHead(major byte, n int) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 256:
		return []byte{major<<5 | 24, byte(n)}
	default:
		return []byte{major<<5 | 25, byte(n >> 8), byte(n)}
	}
}
func cborInt(i int) []byte {
	if i >= 0 {
		return cborHead(0, i)
	}
	return cborHead(1, -1-i)
}
func cborBytes(b []byte) []byte { return append(cborHead(2, len(b)), b...) }
func cborText(s string) []byte  { return append(cborHead(3, len(s)), s...) }

// options decodes what the server sent as the browser would: JSON with
// base64url binary members.
func options(t *testing.T, v any) (challenge, userID []byte) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	challenge, err = b64u.DecodeString(o.PublicKey.Challenge)
	if err != nil {
		t.Fatalf("challenge %q: %v", o.PublicKey.Challenge, err)
	}
	if o.PublicKey.User.ID != "" {
		userID, err = b64u.DecodeString(o.PublicKey.User.ID)
		if err != nil {
			t.Fatalf("user id %q: %v", o.PublicKey.User.ID, err)
		}
	}
	return challenge, userID
}

func (a *softKey) clientData(typ string, challenge []byte) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": b64u.EncodeToString(challenge), "origin": a.origin, "crossOrigin": false})
	return b
}

func (a *softKey) authData(flags byte, attested []byte) []byte {
	h := sha256.Sum256([]byte(a.rpID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, a.count)
	return append(out, attested...)
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

func (a *softKey) create(t *testing.T, opts any) []byte {
	t.Helper()
	challenge, handle := options(t, opts)
	a.handle = handle
	// The uncompressed point is 0x04 || X || Y (SEC 1), 32 bytes each on P-256.
	point, err := a.key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	x, y := point[1:33], point[33:65]
	// COSE_Key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
	cose := append(cborHead(5, 5), cborInt(1)...)
	cose = append(cose, cborInt(2)...)
	cose = append(cose, cborInt(3)...)
	cose = append(cose, cborInt(-7)...)
	cose = append(cose, cborInt(-1)...)
	cose = append(cose, cborInt(1)...)
	cose = append(cose, cborInt(-2)...)
	cose = append(cose, cborBytes(x)...)
	cose = append(cose, cborInt(-3)...)
	cose = append(cose, cborBytes(y)...)
	attested := make([]byte, 16) // AAGUID: zeros
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.credID)))
	attested = append(attested, a.credID...)
	attested = append(attested, cose...)
	ad := a.authData(flagUP|flagUV|flagAT, attested)
	att := append(cborHead(5, 3), cborText("fmt")...)
	att = append(att, cborText("none")...)
	att = append(att, cborText("attStmt")...)
	att = append(att, cborHead(5, 0)...)
	att = append(att, cborText("authData")...)
	att = append(att, cborBytes(ad)...)
	b, _ := json.Marshal(map[string]any{
		"id": b64u.EncodeToString(a.credID), "rawId": b64u.EncodeToString(a.credID), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64u.EncodeToString(a.clientData("webauthn.create", challenge)),
			"attestationObject": b64u.EncodeToString(att),
			"transports":        []string{"internal"},
		},
		"clientExtensionResults": map[string]any{}, "authenticatorAttachment": "platform",
	})
	return b
}

func (a *softKey) get(t *testing.T, opts any, origin string) []byte {
	t.Helper()
	challenge, _ := options(t, opts)
	a.count++
	ad := a.authData(flagUP|flagUV, nil)
	cd := a.clientData("webauthn.get", challenge)
	if origin != "" {
		saved := a.origin
		a.origin = origin
		cd = a.clientData("webauthn.get", challenge)
		a.origin = saved
	}
	h := sha256.Sum256(cd)
	sum := sha256.Sum256(append(append([]byte(nil), ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"id": b64u.EncodeToString(a.credID), "rawId": b64u.EncodeToString(a.credID), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64u.EncodeToString(cd),
			"authenticatorData": b64u.EncodeToString(ad),
			"signature":         b64u.EncodeToString(sig),
			"userHandle":        b64u.EncodeToString(a.handle),
		},
		"clientExtensionResults": map[string]any{}, "authenticatorAttachment": "platform",
	})
	return b
}

// TestPasskeys: a custodial user registers a passkey and signs in with
// it; a replayed ceremony, another origin, a counter gone backwards and
// a wallet user are refused.
func TestPasskeys(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)
	pk, err := NewPasskeys(s, PasskeyConfig{PublicURL: "http://localhost:8042"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(ctx, NewUser{Email: "pat@example.org", DisplayName: "Pat", Account: keypair.MustRandom().Address(),
		HDIndex: 1000, Memberships: []Membership{{OrgID: "org1", Role: RolePatient}}})
	if err != nil {
		t.Fatal(err)
	}
	wallet, err := s.CreateUser(ctx, NewUser{Email: "own@example.org", Account: keypair.MustRandom().Address()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pk.BeginRegistration(ctx, wallet.ID); !errors.Is(err, ErrPasskeyNotAllowed) {
		t.Errorf("wallet user registering: %v, want ErrPasskeyNotAllowed", err)
	}

	a := newSoftKey(t, "http://localhost:8042", "localhost")
	cer, opts, err := pk.BeginRegistration(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp := a.create(t, opts)
	if _, err := pk.FinishRegistration(ctx, wallet.ID, cer, "x", resp); !errors.Is(err, ErrCeremony) {
		t.Errorf("someone else finishing the ceremony: %v", err)
	}
	// That attempt used the ceremony up: start again.
	cer, opts, err = pk.BeginRegistration(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp = a.create(t, opts)
	got, err := pk.FinishRegistration(ctx, u.ID, cer, "Laptop", resp)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != b64u.EncodeToString(a.credID) || got.Name != "Laptop" {
		t.Errorf("registered %+v", got)
	}
	if _, err := pk.FinishRegistration(ctx, u.ID, cer, "again", resp); !errors.Is(err, ErrCeremony) {
		t.Errorf("replayed registration: %v, want ErrCeremony", err)
	}

	cer, opts2, err := pk.BeginSignIn(ctx, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	assertion := a.get(t, opts2, "")
	sess, err := pk.FinishSignIn(ctx, cer, assertion, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.AuthenticateToken(sess.AccessToken)
	if err != nil || sub.UserID != u.ID || !sub.Has(RolePatient) {
		t.Errorf("session subject %+v, %v", sub, err)
	}
	if _, err := pk.FinishSignIn(ctx, cer, assertion, "10.0.0.1"); !errors.Is(err, ErrCeremony) {
		t.Errorf("replayed assertion: %v, want ErrCeremony", err)
	}

	tests := []struct {
		name  string
		tweak func()
		resp  func(opts any) []byte
	}{
		{"other origin", nil, func(o any) []byte { return a.get(t, o, "http://evil.example") }},
		{"counter went backwards", func() { a.count = 0 }, func(o any) []byte { return a.get(t, o, "") }},
		{"wrong key", nil, func(o any) []byte {
			b := newSoftKey(t, a.origin, a.rpID)
			b.credID, b.handle, b.count = a.credID, a.handle, 100
			return b.get(t, o, "")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.tweak != nil {
				tt.tweak()
			}
			cer, o, err := pk.BeginSignIn(ctx, "10.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pk.FinishSignIn(ctx, cer, tt.resp(o), "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("signed in: %v, want ErrBadCredentials", err)
			}
		})
	}

	list, err := pk.List(ctx, u.ID)
	if err != nil || len(list) != 1 || list[0].LastUsedAt == nil {
		t.Fatalf("list %+v, %v", list, err)
	}
	if err := pk.Delete(ctx, wallet.ID, list[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("someone else deleting: %v", err)
	}
	if err := pk.Delete(ctx, u.ID, list[0].ID); err != nil {
		t.Fatal(err)
	}
	cer, o, err := pk.BeginSignIn(ctx, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	a.count = 1000
	if _, err := pk.FinishSignIn(ctx, cer, a.get(t, o, ""), "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("deleted passkey signed in: %v", err)
	}
}
