package chain

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/mint"
)

// The worker is killed (its context cancelled) at random moments, and
// right after a transaction applied but before it was recorded; every
// restart must find what is on chain. In the end each study is minted
// exactly once on chain and recorded once.
func TestCrashSafety(t *testing.T) {
	w := newWorld(t, 2, 50*time.Millisecond)
	var jobs []mint.MintJob
	for p := range 8 {
		ref := randomRef()
		for s := range 3 {
			jobs = append(jobs, job(ref, int64(p*10+s)))
		}
	}
	for i := range 4 {
		jobs = append(jobs, job("", int64(100+i))) // unidentified patients
	}
	own := keypair.MustRandom() // a patient with their own keys: escrow
	if _, err := w.d.Sponsor.CreateAccounts(w.ctx, own); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		j := job("", int64(200+i))
		j.PatientAccount = own.Address()
		jobs = append(jobs, j)
	}
	w.queue(jobs...)

	cfg := MinterConfig{BatchSize: 6, Lease: time.Second}
	var killedAfterSubmit atomic.Int32
	for round := 0; w.pendingMints() > 0; round++ {
		if round > 40 {
			t.Fatalf("%d mint jobs still pending after %d rounds", w.pendingMints(), round)
		}
		ctx, cancel := context.WithCancel(w.ctx)
		m := w.minter(cfg)
		switch {
		case round >= 8:
			// Enough crashes: let it finish (bounded by the round limit).
			time.AfterFunc(3*time.Second, cancel)
		case round%2 == 0:
			// Crash right after the k-th transaction applied.
			k, n := rand.Int32N(2)+1, atomic.Int32{}
			m.afterSubmit = func() {
				if n.Add(1) == k {
					killedAfterSubmit.Add(1)
					cancel()
				}
			}
			// Past the in-flight window, so deferred studies get their turn.
			time.AfterFunc(8*time.Second, cancel)
		default:
			time.AfterFunc(time.Duration(rand.Int64N(int64(400*time.Millisecond))), cancel)
		}
		pending := w.pendingMints()
		m.Run(ctx)
		cancel()
		t.Logf("round %d: %d pending before, %d after", round, pending, w.pendingMints())
		// A crashed worker's leases lapse; retries need not wait.
		w.makeDue()
	}
	if killedAfterSubmit.Load() == 0 {
		t.Error("no crash between submit and record happened")
	}

	onChain := w.chainMints()
	recs := w.minted()
	for _, j := range jobs {
		var h [32]byte
		copy(h[:], must(hex.DecodeString(j.StudyRef)))
		if n := len(onChain[h]); n != 1 {
			t.Errorf("study %s minted %d times on chain", j.StudyRef[:8], n)
			continue
		}
		r, ok := recs[j.StudyRef]
		if !ok || r.holder != onChain[h][0].Holder || r.tx != onChain[h][0].TxHash || r.ledger != onChain[h][0].Ledger {
			t.Errorf("study %s: record %+v, chain %+v", j.StudyRef[:8], r, onChain[h][0].Meta)
		}
		if j.PatientAccount != "" && (r.holder != own.Address() || r.balanceID == "") {
			t.Errorf("own-key study %s: holder %s, balance %q", j.StudyRef[:8], r.holder, r.balanceID)
		}
	}
	if len(onChain) != len(jobs) || len(recs) != len(jobs) {
		t.Errorf("%d studies on chain, %d recorded, want %d", len(onChain), len(recs), len(jobs))
	}
	if n := w.count(`SELECT count(*) FROM mint_attempts`); n != 0 {
		t.Errorf("%d attempts left", n)
	}
	// 8 identified + 4 unidentified custodial patients.
	if n := w.count(`SELECT count(*) FROM patient_accounts_on_chain`); n != 12 {
		t.Errorf("%d custodial accounts on chain, want 12", n)
	}
	t.Logf("%d crashes right after submit", killedAfterSubmit.Load())
}

// Several completions of a study mint once (the latest); a completion of
// a study already minted ends without a mint; a patient's linked
// custodial account receives directly; a malformed job is retried with
// its error kept.
func TestMintJobs(t *testing.T) {
	w := newWorld(t, 1, 20*time.Millisecond)
	m := w.minter(MinterConfig{})
	a1 := job(randomRef(), 1)
	a2 := a1
	a2.Completion, a2.MetadataCID = 2, metadataCID("second completion")
	w.queue(a1, a2)
	w.mintAll(m)
	recs := w.minted()
	if r := recs[a1.StudyRef]; r.cid != a2.MetadataCID {
		t.Errorf("minted %s, want the later completion's %s", r.cid, a2.MetadataCID)
	}
	a3 := a1
	a3.Completion, a3.MetadataCID = 3, metadataCID("third completion")
	w.queue(a3)
	w.mintAll(m)
	var h [32]byte
	copy(h[:], must(hex.DecodeString(a1.StudyRef)))
	if n := len(w.chainMints()[h]); n != 1 {
		t.Errorf("study minted %d times", n)
	}

	// Linked to the account the patient already has with us.
	linked := job("", 4)
	linked.PatientAccount = recs[a1.StudyRef].holder
	w.queue(linked)
	w.mintAll(m)
	if r := w.minted()[linked.StudyRef]; r.holder != linked.PatientAccount || r.balanceID != "" {
		t.Errorf("linked custodial mint: %+v", r)
	}
	if n := w.count(`SELECT count(*) FROM patient_accounts`); n != 1 {
		t.Errorf("%d patient accounts, want 1", n)
	}

	bad := job(randomRef(), 5)
	bad.StudyRef = "not hex at all"
	w.queue(bad)
	if _, err := m.MintDue(w.ctx); err != nil {
		t.Fatal(err)
	}
	var lastErr string
	if err := w.pool.QueryRow(w.ctx, `SELECT last_error FROM outbox WHERE kind = 'mint' AND done_at IS NULL`).Scan(&lastErr); err != nil {
		t.Fatal(err)
	}
	if lastErr == "" {
		t.Error("malformed job kept no error")
	}
}
