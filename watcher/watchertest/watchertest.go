// Package watchertest sets up a devnet with Medimint's protocol accounts
// (sponsor, multisig registry, organisation issuer) for tests of the
// watcher and of packages fed by it, and compares derived tables.
package watchertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/multiformats/go-multihash"
	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/wallet"
)

// World is a devnet with Medimint's accounts on it.
type World struct {
	T         testing.TB
	Net       wallet.Network
	Devnet    *devnet.Network
	Sponsor   *wallet.Sponsor
	Registry  *keypair.Full
	Governors []*keypair.Full
	Issuer    *keypair.Full
	// Salt is the organisation's study-hash salt.
	Salt []byte
	keys map[string][]*keypair.Full
}

// New starts a devnet (opts as devnettest.Start), funds a sponsor with
// one channel, sets up a 2-of-3 registry and an issuer it lists.
func New(t testing.TB, opts ...devnettest.Option) *World {
	t.Helper()
	ctx := context.Background()
	url, dn := devnettest.Start(t, opts...)
	net := wallet.Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"}
	sk := keypair.MustRandom()
	if err := net.Fund(ctx, sk.Address()); err != nil {
		t.Fatal(err)
	}
	ch := keypair.MustRandom()
	s, err := wallet.NewSponsor(wallet.SponsorConfig{Network: net, Key: sk, Channels: []*keypair.Full{ch}, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := &World{T: t, Net: net, Devnet: dn, Sponsor: s, Registry: keypair.MustRandom(), Issuer: keypair.MustRandom(),
		Governors: []*keypair.Full{keypair.MustRandom(), keypair.MustRandom(), keypair.MustRandom()},
		Salt:      []byte("watchertest salt"), keys: map[string][]*keypair.Full{}}
	w.keys[w.Registry.Address()] = []*keypair.Full{w.Registry}
	w.keys[w.Issuer.Address()] = []*keypair.Full{w.Issuer}
	if _, err := s.CreateAccounts(ctx, ch, w.Registry, w.Issuer); err != nil {
		t.Fatal(err)
	}
	govs := []string{w.Governors[0].Address(), w.Governors[1].Address(), w.Governors[2].Address()}
	w.Submit(Must(contracts.SetupRegistry(s.Address(), w.Registry.Address(), govs, 2)))
	w.keys[w.Registry.Address()] = w.Governors[:2]
	w.Submit(Must(contracts.SetupIssuer(w.Issuer.Address(), "hospital.example")))
	w.Submit(Must(contracts.AddIssuer(s.Address(), w.Registry.Address(), w.Issuer.Address(), "hospital.example")))
	return w
}

// Account creates a sponsored 0-XLM account whose key the world keeps.
func (w *World) Account() *keypair.Full {
	w.T.Helper()
	kp := keypair.MustRandom()
	if _, err := w.Sponsor.CreateAccounts(context.Background(), kp); err != nil {
		w.T.Fatal(err)
	}
	w.keys[kp.Address()] = []*keypair.Full{kp}
	return kp
}

// Try submits a draft signed by every key of its signers.
func (w *World) Try(d contracts.Draft) (wallet.Result, error) {
	var signers []*keypair.Full
	for _, a := range d.Signers {
		signers = append(signers, w.keys[a]...)
	}
	return w.Sponsor.Submit(context.Background(), wallet.Submission{Operations: d.Operations, Memo: d.Memo, Signers: signers})
}

// Submit is Try that fails the test on error.
func (w *World) Submit(d contracts.Draft) wallet.Result {
	w.T.Helper()
	r, err := w.Try(d)
	if err != nil {
		w.T.Fatal(err)
	}
	return r
}

// StudyHash is the study hash of uid under the world's salt.
func (w *World) StudyHash(uid string) [32]byte { return contracts.StudyHash(w.Salt, uid) }

// Mint mints the study uid to holder and returns its token.
func (w *World) Mint(holder, uid string) contracts.Token {
	w.T.Helper()
	m := contracts.Mint{StudyHash: w.StudyHash(uid), CID: MetadataCID(uid), Holder: holder}
	ds := Must(contracts.MintBatches(w.Sponsor.Address(), w.Issuer.Address(), []contracts.Mint{m}))
	for _, d := range ds {
		w.Submit(d)
	}
	return m.Token(w.Issuer.Address())
}

// Grant has holder grant grantee scope on tok until exp.
func (w *World) Grant(tok contracts.Token, holder, grantee string, scope contracts.Scope, exp time.Time) wallet.Result {
	w.T.Helper()
	return w.Submit(Must(contracts.GrantAccess(w.Sponsor.Address(), contracts.Grant{Token: tok, Holder: holder, Grantee: grantee,
		Expires: exp, Scope: scope})))
}

// Revoke has holder delete its grants to grantees on tok.
func (w *World) Revoke(tok contracts.Token, holder string, grantees ...string) wallet.Result {
	w.T.Helper()
	return w.Submit(Must(contracts.RevokeAccess(holder, tok.Code, grantees...)))
}

// Transfer moves tok from one holder to another, deleting from's grants
// to grantees.
func (w *World) Transfer(tok contracts.Token, from, to string, grantees ...string) wallet.Result {
	w.T.Helper()
	return w.Submit(Must(contracts.TransferRecord(w.Sponsor.Address(), contracts.Transfer{Token: tok, From: from, To: to, Grantees: grantees})))
}

// MetadataCID is a made-up CIDv1 for a study's metadata.
func MetadataCID(uid string) string {
	mh := Must(multihash.Sum([]byte(fmt.Sprintf(`{"study":%q}`, uid)), multihash.SHA2_256, -1))
	return cid.NewCidV1(cid.Raw, mh).String()
}

// Must panics on error.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Tables are the tables the watcher derives from the chain.
var Tables = []string{"registry_issuers", "record_tokens", "grants", "access_requests", "watcher_violations"}

// Dump renders the watcher's tables, every row in a stable order, for
// comparing two derivations.
func Dump(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var b strings.Builder
	for _, t := range Tables {
		fmt.Fprintf(&b, "== %s\n", t)
		rows, err := pool.Query(ctx, "SELECT r::text FROM "+t+" r ORDER BY 1")
		if err != nil {
			return "", fmt.Errorf("dump %s: %w", t, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return "", err
			}
			b.WriteString(s)
			b.WriteByte('\n')
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}
