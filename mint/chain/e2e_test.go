package chain

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"

	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/gateway"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/pinning"
	"github.com/medimint/medimint/wallet"
)

// mintAll runs the minter until no mint job is pending.
func (w *world) mintAll(m *Minter) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 2*time.Minute)
	defer cancel()
	for w.pendingMints() > 0 {
		if ctx.Err() != nil {
			w.t.Fatalf("%d mint jobs still pending", w.pendingMints())
		}
		if n, err := m.MintDue(ctx); err != nil {
			w.t.Fatal(err)
		} else if n == 0 {
			w.makeDue() // skip retry backoff
			time.Sleep(10 * time.Millisecond)
		}
	}
}

type mintedRow struct {
	ref, org, holder, balanceID, code, issuer, cid, tx, url string
	ledger                                                  int32
	fee                                                     int64
}

func (w *world) minted() map[string]mintedRow {
	w.t.Helper()
	rows, err := w.pool.Query(w.ctx, `SELECT study_ref, org_id, holder, escrow_balance_id, asset_code, asset_issuer, metadata_cid, tx_hash,
    explorer_url, ledger, fee_charged FROM minted_records WHERE network_passphrase = $1`, w.net.Passphrase)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]mintedRow{}
	for rows.Next() {
		var r mintedRow
		if err := rows.Scan(&r.ref, &r.org, &r.holder, &r.balanceID, &r.code, &r.issuer, &r.cid, &r.tx, &r.url, &r.ledger, &r.fee); err != nil {
			w.t.Fatal(err)
		}
		out[r.ref] = r
	}
	return out
}

// Studies ingested through the pipeline are completed, pinned and minted
// to their patients' custodial accounts on the devnet: one account per
// patient (0 XLM, created by the mint itself), the organisation issuer's
// token with the metadata CID in the transaction, every fee and reserve
// paid by the sponsor. Then the patient grants and revokes access.
func TestMintOnIngest(t *testing.T) {
	w := newWorld(t, 2, 20*time.Millisecond)
	ctx := w.ctx
	pinner, err := pinning.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := mint.New(mint.Config{Pool: w.pool, Blobs: blobs, Keys: w.kek, Pinner: pinner, StableAge: time.Millisecond,
		Issuer: w.d.Issuer.Address(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	type study struct{ sample, patient, uid string }
	studies := []study{
		{"CT_small.dcm", "PAT-A", "1.2.826.0.1.3680043.10.777.1"},
		{"MR_small.dcm", "PAT-A", "1.2.826.0.1.3680043.10.777.2"},
		{"CT_small.dcm", "PAT-B", "1.2.826.0.1.3680043.10.777.3"},
	}
	// The first two studies go straight into the pipeline, the third is
	// pushed by STOW-RS over HTTP through the gateway.
	for _, s := range studies[:2] {
		for i := range 2 {
			b := instance(t, s.sample, s.patient, s.uid, s.uid+".1."+string(rune('1'+i)))
			if _, err := p.StorePart10(ctx, mint.Source{OrgID: "org1", Transport: "test"}, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	stow(t, p, w, [][]byte{
		instance(t, studies[2].sample, studies[2].patient, studies[2].uid, studies[2].uid+".1.1"),
		instance(t, studies[2].sample, studies[2].patient, studies[2].uid, studies[2].uid+".1.2"),
	})
	for done := 0; done < len(studies); {
		n, err := p.CompleteDue(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		done += n
	}
	if n := w.pendingMints(); n != len(studies) {
		t.Fatalf("%d mint jobs", n)
	}
	jobs := map[string]mint.MintJob{} // by Study Instance UID
	rows, err := w.pool.Query(ctx, `SELECT subject, payload FROM outbox WHERE kind = 'mint'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var subj string
		var j mint.MintJob
		if err := rows.Scan(&subj, &j); err != nil {
			t.Fatal(err)
		}
		jobs[subj] = j
	}
	rows.Close()

	w.mintAll(w.minter(MinterConfig{}))

	recs := w.minted()
	if len(recs) != len(studies) {
		t.Fatalf("%d minted records", len(recs))
	}
	if n := w.count(`SELECT count(*) FROM patient_accounts`); n != 2 {
		t.Errorf("%d patient accounts, want 2", n)
	}
	if n := w.count(`SELECT count(*) FROM patient_accounts WHERE patient_ref LIKE '%PAT%' OR address LIKE '%PAT%'`); n != 0 {
		t.Error("PHI in patient_accounts")
	}
	if n := w.count(`SELECT count(*) FROM mint_attempts`); n != 0 {
		t.Errorf("%d attempts left", n)
	}
	hz := w.net.Horizon(ctx)
	holders := map[string]string{} // patient → account
	sponsor := w.d.Sponsor.Address()
	for _, s := range studies {
		j := jobs[s.uid]
		r, ok := recs[j.StudyRef]
		if !ok {
			t.Fatalf("study %s not recorded", s.uid)
		}
		if prev, ok := holders[s.patient]; ok && prev != r.holder {
			t.Errorf("patient %s has two accounts", s.patient)
		}
		holders[s.patient] = r.holder
		var hash [32]byte
		copy(hash[:], must(hex.DecodeString(j.StudyRef)))
		if r.code != contracts.AssetCode(hash) || r.issuer != w.d.Issuer.Address() || r.org != "org1" || r.cid != j.MetadataCID {
			t.Errorf("record %+v", r)
		}
		if !strings.HasSuffix(r.url, "/transactions/"+r.tx) || !strings.HasPrefix(r.url, w.net.HorizonURL) {
			t.Errorf("explorer URL %q", r.url)
		}
		// On chain: the holder has the token, the transaction is the
		// sponsor's fee bump and records the metadata CID and study hash.
		bal, line, err := w.net.Holding(ctx, r.holder, r.code, r.issuer)
		if err != nil || !line || bal != 1 {
			t.Errorf("holder %s: balance %d, trustline %v, %v", r.holder, bal, line, err)
		}
		tx, err := hz.TransactionDetail(r.tx)
		if err != nil {
			t.Fatal(err)
		}
		if tx.FeeAccount != sponsor || tx.Ledger != r.ledger || tx.FeeCharged != r.fee {
			t.Errorf("tx %s: fee account %s, ledger %d/%d, fee %d/%d", r.tx, tx.FeeAccount, tx.Ledger, r.ledger, tx.FeeCharged, r.fee)
		}
		evs, err := contracts.Interpret(contracts.Transaction{Hash: tx.Hash, EnvelopeXDR: tx.EnvelopeXdr, ResultXDR: tx.ResultXdr})
		if err != nil {
			t.Fatal(err)
		}
		want := must(contracts.ParseCID(j.MetadataCID))
		found := false
		for _, ev := range evs {
			if rm, ok := ev.(contracts.RecordMinted); ok && rm.StudyHash == hash {
				found = true
				got := must(contracts.ParseCID(rm.CID))
				if got.Digest != want.Digest || rm.Holder != r.holder || rm.Amount != 1 {
					t.Errorf("on chain: %+v", rm)
				}
			}
		}
		if !found {
			t.Errorf("tx %s carries no mint record for %s", r.tx, s.uid)
		}
		perTx := 0
		for _, o := range recs {
			if o.tx == r.tx {
				perTx++
			}
		}
		if perTx == 1 {
			// A transaction with one study also carries the CID digest as
			// its memo.
			if tx.MemoType != "hash" || !bytes.Equal(must(base64.StdEncoding.DecodeString(tx.Memo)), want.Digest[:]) {
				t.Errorf("memo %s %q, want the CID digest %x", tx.MemoType, tx.Memo, want.Digest)
			}
		}
		// The metadata is pinned.
		if ok, err := pinner.Pinned(ctx, must(cid.Decode(j.MetadataCID))); err != nil || !ok {
			t.Errorf("metadata %s not pinned: %v", j.MetadataCID, err)
		}
	}
	if len(holders) != 2 {
		t.Fatalf("holders %v", holders)
	}
	for _, h := range holders {
		acc := w.account(h)
		if b, _ := acc.GetNativeBalance(); b != "0.0000000" || acc.Sponsor != sponsor {
			t.Errorf("patient %s: %s XLM, sponsor %q", h, b, acc.Sponsor)
		}
		// Every transaction touching the patient was paid by the sponsor.
		page, err := hz.Transactions(horizonclient.TransactionRequest{ForAccount: h, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		// The account was created by its first mint, in one transaction.
		if first := page.Embedded.Records[0].Hash; w.count(`SELECT count(*) FROM minted_records WHERE tx_hash = $1 AND holder = $2`, first, h) == 0 {
			t.Errorf("patient %s: first transaction %s is not a mint", h, first)
		}
		for _, tx := range page.Embedded.Records {
			if tx.FeeAccount != sponsor {
				t.Errorf("tx %s paid by %s", tx.Hash, tx.FeeAccount)
			}
		}
	}

	// Grant and revoke through the builders and the sponsor, signed with
	// the patient's custodial key; both visible in the account's
	// /operations.
	r := recs[jobs[studies[0].uid].StudyRef]
	pt, ok, err := w.patients.ByAddress(ctx, r.holder)
	if err != nil || !ok {
		t.Fatalf("patient account %s: %v %v", r.holder, ok, err)
	}
	kps, err := w.patients.Keys(ctx, pt)
	if err != nil {
		t.Fatal(err)
	}
	doctor := keypair.MustRandom().Address()
	tok := contracts.Token{Code: r.code, Issuer: r.issuer}
	g := must(contracts.GrantAccess(sponsor, contracts.Grant{Token: tok, Holder: r.holder, Grantee: doctor,
		Expires: time.Now().Add(time.Hour), Scope: contracts.ScopeQuery | contracts.ScopeRetrieve}))
	if _, err := w.d.Sponsor.Submit(ctx, wallet.Submission{Operations: g.Operations, Signers: kps}); err != nil {
		t.Fatal(err)
	}
	rv := must(contracts.RevokeAccess(r.holder, r.code, doctor))
	if _, err := w.d.Sponsor.Submit(ctx, wallet.Submission{Operations: rv.Operations, Signers: kps}); err != nil {
		t.Fatal(err)
	}
	ops, err := hz.Operations(horizonclient.OperationRequest{ForAccount: r.holder, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var written, deleted bool
	for _, op := range ops.Embedded.Records {
		md, ok := op.(operations.ManageData)
		if !ok || !strings.HasPrefix(md.Name, "mm.g."+r.code+".") {
			continue
		}
		if md.Value != "" {
			written = true
		} else {
			deleted = true
		}
	}
	if !written || !deleted {
		t.Errorf("grant written %v, revoked %v in /operations", written, deleted)
	}
	if d := w.account(r.holder).Data; len(d) != 0 {
		t.Errorf("data entries left after revoke: %v", d)
	}
	if b, _ := w.account(r.holder).GetNativeBalance(); b != "0.0000000" {
		t.Errorf("patient holds %s XLM after grant/revoke", b)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// stow stores instances with one STOW-RS request to a gateway serving p.
func stow(t *testing.T, p *mint.Pipeline, w *world, parts [][]byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	gw := gateway.New(gateway.Config{OrgID: "org1"}, gateway.Deps{DB: w.pool, Pipeline: p, Logger: quiet})
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, b := range parts {
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(b)
	}
	mw.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ln.Addr().String()+gateway.DefaultBasePath+"/studies", &body)
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("STOW-RS: %s: %s", resp.Status, b)
	}
}
