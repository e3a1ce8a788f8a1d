package access_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/db/dbtest"
)

// synthetic fills the watcher's tables with n tokens, each held by its
// own account and granted to another, and n/10 index studies, as the
// watcher and the ingest pipeline would write them.
type synthetic struct {
	issuer            string
	tokens            []contracts.Token
	hashes            []string
	holders, grantees []string
	uids              []string
}

func fillSynthetic(b testing.TB, pool *pgxpool.Pool, n int) synthetic {
	ctx := context.Background()
	s := synthetic{issuer: keypair.MustRandom().Address()}
	var toks, grants [][]any
	// Accounts only need to look like G-addresses to the cache.
	acct := func(i int, kind byte) string {
		var raw [32]byte
		binary.BigEndian.PutUint64(raw[:], uint64(i))
		raw[31] = kind
		kp, _ := keypair.FromRawSeed(raw)
		return kp.Address()
	}
	exp := time.Now().Add(24 * time.Hour)
	for i := range n {
		h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		tok := contracts.Token{Code: contracts.AssetCode(h), Issuer: s.issuer}
		holder, grantee := acct(i, 1), acct(i, 2)
		s.tokens, s.hashes = append(s.tokens, tok), append(s.hashes, hex.EncodeToString(h[:]))
		s.holders, s.grantees = append(s.holders, holder), append(s.grantees, grantee)
		toks = append(toks, []any{tok.Code, tok.Issuer, hex.EncodeToString(h[:]), "bafy", holder, "tx", int32(1), exp, "tx", int32(1)})
		grants = append(grants, []any{fmt.Sprintf("tx%d", i), int32(0), tok.Code, tok.Issuer, holder, grantee, int16(3), exp, int32(1), exp, "active"})
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"record_tokens"}, []string{"code", "issuer", "study_hash", "cid", "holder",
		"minted_tx", "minted_ledger", "minted_at", "holder_tx", "holder_ledger"}, pgx.CopyFromRows(toks)); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"grants"}, []string{"tx_hash", "op", "code", "issuer", "holder", "grantee",
		"scope", "expires_at", "ledger", "created_at", "state"}, pgx.CopyFromRows(grants)); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO org_issuers (issuer, org_id) VALUES ($1, 'org-a')", s.issuer); err != nil {
		b.Fatal(err)
	}
	for i := range n / 10 {
		uid := fmt.Sprintf("1.2.826.0.1.%d", i)
		s.uids = append(s.uids, uid)
		addStudy(b, pool, uid, "org-a", s.hashes[i])
	}
	return s
}

// BenchmarkDecide measures decisions through the cache holding 100 000
// tokens and 100 000 grants: a mix of owners, grantees, strangers and
// staff, naming studies by token, study hash or (warm) Study Instance
// UID. It reports the 50th and 99th percentile latency of one decision.
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	pool := dbtest.New(b)
	s := fillSynthetic(b, pool, 100_000)
	start := time.Now()
	az, err := access.NewAuthorizer(ctx, access.Config{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	defer az.Close()
	b.Logf("cache of %d tokens and grants loaded in %v", len(s.tokens), time.Since(start))
	for _, u := range s.uids {
		az.Decide(ctx, access.Subject{}, access.Query, access.Resource{StudyInstanceUID: u}) // warm
	}
	clinician := access.Subject{Account: keypair.MustRandom().Address(), OrgID: "org-a", Roles: []access.Role{access.RoleClinician}}
	stranger := access.Subject{Account: keypair.MustRandom().Address()}

	for _, form := range []string{"token", "hash", "uid"} {
		b.Run("by="+form, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			lat := make([]time.Duration, 0, b.N)
			allowed := 0
			b.ResetTimer()
			for range b.N {
				i := r.IntN(len(s.tokens))
				var res access.Resource
				switch form {
				case "token":
					res.Token = s.tokens[i]
				case "hash":
					res.StudyHash = s.hashes[i]
				default:
					i = r.IntN(len(s.uids))
					res.StudyInstanceUID = s.uids[i]
				}
				var sub access.Subject
				switch i % 4 {
				case 0:
					sub = access.Subject{Account: s.holders[i]}
				case 1:
					sub = access.Subject{Account: s.grantees[i]}
				case 2:
					sub = stranger
				default:
					sub = clinician
				}
				t0 := time.Now()
				d := az.Decide(ctx, sub, access.Retrieve, res)
				lat = append(lat, time.Since(t0))
				if d.Allow {
					allowed++
				}
			}
			b.StopTimer()
			if b.N >= 100 && (allowed == 0 || allowed == b.N) {
				b.Fatalf("%d of %d allowed: the mix is not exercised", allowed, b.N)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 3))
			for pb.Next() {
				i := r.IntN(len(s.tokens))
				az.Decide(ctx, access.Subject{Account: s.grantees[i]}, access.Retrieve, access.Resource{Token: s.tokens[i]})
			}
		})
	})
}

// BenchmarkAuditLog measures how many entries a second the batching
// writer appends to the hash chain.
func BenchmarkAuditLog(b *testing.B) {
	ctx := context.Background()
	pool := dbtest.New(b)
	a := access.NewAuditor(pool, nil, 8192)
	e := access.Entry{Category: access.CategoryDecision, Action: "retrieve", Outcome: access.OutcomeAllow,
		Actor: keypair.MustRandom().Address(), Resource: "ABCDEFGHIJKL:" + keypair.MustRandom().Address(), Reason: "grant: scope 3"}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := a.Log(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	a.Close() // waits for everything queued to be committed
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}
