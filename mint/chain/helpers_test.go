package chain

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/multiformats/go-multihash"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"

	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/wallet"
)

const samples = "../../../shared/dicom-samples/pydicom"

var quiet = slog.New(slog.DiscardHandler)

// world is a devnet, a database and a bootstrapped organisation.
type world struct {
	t        testing.TB
	ctx      context.Context
	pool     *pgxpool.Pool
	net      wallet.Network
	dn       *devnet.Network
	kek      *envelope.LocalKEK
	dataDir  string
	cust     *wallet.Custodian
	d        *Deployment
	patients *Patients
}

func newKEK(t testing.TB) *envelope.LocalKEK {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	kek, err := envelope.NewLocalKEK(b)
	if err != nil {
		t.Fatal(err)
	}
	return kek
}

func newWorld(t testing.TB, channels int, interval time.Duration) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), pool: dbtest.New(t), kek: newKEK(t), dataDir: t.TempDir()}
	url, dn := devnettest.Start(t, devnettest.WithInterval(interval), devnettest.WithConfig(func(c *devnet.Config) { c.Logger = quiet }))
	w.dn = dn
	w.net = wallet.Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"}
	m, _, err := OpenMaster(w.ctx, filepath.Join(w.dataDir, MasterFile), w.kek)
	if err != nil {
		t.Fatal(err)
	}
	if w.cust, err = m.Custodian(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.d = w.bootstrap(channels)
	w.patients = NewPatients(w.pool, w.cust)
	return w
}

func (w *world) bootstrap(channels int) *Deployment {
	w.t.Helper()
	d, err := Bootstrap(w.ctx, BootstrapConfig{Network: w.net, Custodian: w.cust, HomeDomain: "hospital.example", Channels: channels,
		Pool: w.pool, TxTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

func (w *world) minter(cfg MinterConfig) *Minter {
	w.t.Helper()
	cfg.Pool, cfg.Deployment, cfg.Patients = w.pool, w.d, w.patients
	if cfg.Poll == 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	m, err := NewMinter(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

// queue puts mint jobs straight into the outbox, as study completion does.
func (w *world) queue(jobs ...mint.MintJob) {
	w.t.Helper()
	for _, j := range jobs {
		payload, err := json.Marshal(j)
		if err != nil {
			w.t.Fatal(err)
		}
		if _, err := w.pool.Exec(w.ctx, `INSERT INTO outbox (kind, subject, payload, dedupe_key) VALUES ($1, $2, $3, $4)`,
			mint.KindMint, "1.2.3."+j.StudyRef[:8], payload, fmt.Sprintf("mint:test:%s:%d", j.StudyRef, j.Completion)); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) count(q string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.pool.QueryRow(w.ctx, q, args...).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) pendingMints() int {
	return w.count(`SELECT count(*) FROM outbox WHERE kind = 'mint' AND done_at IS NULL`)
}

// makeDue makes every pending job due now (skipping retry backoff).
func (w *world) makeDue() {
	w.t.Helper()
	if _, err := w.pool.Exec(w.ctx, `UPDATE outbox SET available_at = now(), leased_until = NULL WHERE done_at IS NULL`); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) account(addr string) horizon.Account {
	w.t.Helper()
	acc, err := w.net.Horizon(w.ctx).AccountDetail(horizonclient.AccountRequest{AccountID: addr})
	if err != nil {
		w.t.Fatalf("account %s: %v", addr, err)
	}
	return acc
}

// chainMints reads the issuer's whole history: every recorded mint, by
// study hash.
func (w *world) chainMints() map[[32]byte][]contracts.RecordMinted {
	w.t.Helper()
	hz := w.net.Horizon(w.ctx)
	out := map[[32]byte][]contracts.RecordMinted{}
	page, err := hz.Transactions(horizonclient.TransactionRequest{ForAccount: w.d.Issuer.Address(), Order: horizonclient.OrderAsc, Limit: 200})
	for ; err == nil && len(page.Embedded.Records) > 0; page, err = hz.NextTransactionsPage(page) {
		for _, tx := range page.Embedded.Records {
			if !tx.Successful {
				continue
			}
			evs, err := contracts.Interpret(contracts.Transaction{Hash: tx.Hash, Ledger: tx.Ledger, EnvelopeXDR: tx.EnvelopeXdr, ResultXDR: tx.ResultXdr})
			if err != nil {
				w.t.Fatal(err)
			}
			for _, ev := range evs {
				if rm, ok := ev.(contracts.RecordMinted); ok {
					out[rm.StudyHash] = append(out[rm.StudyHash], rm)
				}
			}
		}
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func metadataCID(s string) string {
	mh, err := multihash.Sum([]byte(`{"name":"Medimint study `+s+`"}`), multihash.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, mh).String()
}

func randomRef() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// job is a synthetic mint job for a patient reference.
func job(patientRef string, completion int64) mint.MintJob {
	ref := randomRef()
	return mint.MintJob{StudyRef: ref, OrgID: "org1", PatientRef: patientRef, ManifestCID: metadataCID("manifest " + ref),
		MetadataCID: metadataCID(ref), InstanceCount: 1, Completion: completion}
}

// instance rewrites a sample file as an instance of the given study and
// patient.
func instance(t testing.TB, sample, patientID, study, sop string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samples, sample))
	if err != nil {
		t.Fatalf("sample %s: %v", sample, err)
	}
	f, err := dicom.ParseBytes(b, dicom.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.Dataset.Set(dicom.NewStrings(tag.StudyInstanceUID, dicom.UI, study))
	f.Dataset.Set(dicom.NewStrings(tag.SeriesInstanceUID, dicom.UI, study+".1"))
	f.Dataset.Set(dicom.NewStrings(dicom.TagSOPInstanceUID, dicom.UI, sop))
	f.Dataset.Set(dicom.NewStrings(tag.PatientID, dicom.LO, patientID))
	f.Meta.Set(dicom.NewStrings(dicom.TagMediaStorageSOPInstanceUID, dicom.UI, sop))
	var buf bytes.Buffer
	if err := f.Write(&buf, dicom.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
