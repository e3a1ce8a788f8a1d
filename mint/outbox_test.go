package mint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/medimint/medimint/index"
)

// makeDue makes every pending job due now, standing in for the passing
// of StableAge.
func (e *env) makeDue(t testing.TB) {
	t.Helper()
	if _, err := e.p.cfg.Pool.Exec(e.ctx, `UPDATE outbox SET available_at = now() WHERE done_at IS NULL`); err != nil {
		t.Fatal(err)
	}
}

func (e *env) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.p.cfg.Pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCompletionExactlyOnce(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	e.p.cfg.StableAge = time.Hour // due only when the test says so
	const studies = 5
	for s := range studies {
		study := fmt.Sprintf("1.2.826.0.1.3680043.10.998.%d", s)
		for i := range 3 {
			b, _ := phiStudy(t, study, fmt.Sprintf("%s.1.%d", study, i))
			if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE kind = 'study.touched' AND done_at IS NULL`); n != studies {
		t.Fatalf("%d pending touched rows, want one per study", n)
	}
	// Not due yet: nothing happens.
	if n, err := e.p.CompleteDue(e.ctx, time.Minute); err != nil || n != 0 {
		t.Fatalf("completed %d before StableAge, %v", n, err)
	}
	e.makeDue(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.p.CompleteDue(e.ctx, time.Minute); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE kind = 'mint'`); n != studies {
		t.Errorf("%d mint jobs, want %d", n, studies)
	}
	if n := e.count(t, `SELECT count(DISTINCT subject) FROM outbox WHERE kind = 'mint'`); n != studies {
		t.Errorf("mint jobs for %d studies", n)
	}
	if n := e.count(t, `SELECT count(*) FROM study_bundles`); n != studies {
		t.Errorf("%d bundles", n)
	}
	// Running again finds nothing; a late instance makes a new completion.
	if n, _ := e.p.CompleteDue(e.ctx, time.Minute); n != 0 {
		t.Errorf("second pass handled %d", n)
	}
	late, _ := phiStudy(t, "1.2.826.0.1.3680043.10.998.0", "1.2.826.0.1.3680043.10.998.0.1.9")
	if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(late)); err != nil {
		t.Fatal(err)
	}
	e.makeDue(t)
	if n, err := e.p.CompleteDue(e.ctx, time.Minute); err != nil || n != 1 {
		t.Errorf("late completion: %d, %v", n, err)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE kind = 'mint' AND subject = '1.2.826.0.1.3680043.10.998.0'`); n != 2 {
		t.Errorf("%d mint jobs after a second completion, want 2", n)
	}
	var job MintJob
	if err := e.p.cfg.Pool.QueryRow(e.ctx, `SELECT payload FROM outbox WHERE kind = 'mint' ORDER BY id DESC LIMIT 1`).Scan(&job); err != nil {
		t.Fatal(err)
	}
	if job.InstanceCount != 4 || job.OrgID != "org1" || job.MetadataCID == "" || job.Completion == 0 {
		t.Errorf("mint job %+v", job)
	}
	// The chain worker claims mint jobs the same way.
	j, ok, err := e.p.Outbox().Claim(e.ctx, KindMint, time.Minute)
	if err != nil || !ok || j.Kind != KindMint {
		t.Fatalf("claim mint: %+v %v %v", j, ok, err)
	}
	if done, err := e.p.Outbox().Done(e.ctx, j); err != nil || !done {
		t.Errorf("done: %v %v", done, err)
	}
}

func TestCompletionSupersededByNewInstance(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	const study = "1.2.826.0.1.3680043.10.997.1"
	b, _ := phiStudy(t, study, study+".1.1")
	if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	e.makeDue(t)
	j, ok, err := e.p.Outbox().Claim(e.ctx, KindStudyTouched, time.Minute)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// An instance arrives while the worker publishes.
	b2, _ := phiStudy(t, study, study+".1.2")
	if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(b2)); err != nil {
		t.Fatal(err)
	}
	if err := e.p.completeStudy(e.ctx, j); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE kind = 'mint'`); n != 0 {
		t.Errorf("a superseded completion queued %d mint jobs", n)
	}
	e.makeDue(t)
	if n, err := e.p.CompleteDue(e.ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("completed %d, %v", n, err)
	}
	var job MintJob
	if err := e.p.cfg.Pool.QueryRow(e.ctx, `SELECT payload FROM outbox WHERE kind = 'mint'`).Scan(&job); err != nil || job.InstanceCount != 2 {
		t.Errorf("mint job %+v, %v", job, err)
	}
}

func TestCompletionRetriesWithBackoff(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	const study = "1.2.826.0.1.3680043.10.997.2"
	b, _ := phiStudy(t, study, study+".1.1")
	if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	e.makeDue(t)
	pinner := e.p.cfg.Pinner
	e.p.cfg.Pinner = nil // publishing fails
	if n, err := e.p.CompleteDue(e.ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("handled %d, %v", n, err)
	}
	var attempts int
	var lastErr string
	var delay time.Duration
	if err := e.p.cfg.Pool.QueryRow(e.ctx, `SELECT attempts, last_error, available_at - now() FROM outbox WHERE kind = 'study.touched'`).
		Scan(&attempts, &lastErr, &delay); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || lastErr == "" || delay <= 0 {
		t.Errorf("after a failure: attempts %d, error %q, due in %v", attempts, lastErr, delay)
	}
	e.p.cfg.Pinner = pinner
	e.makeDue(t)
	if n, err := e.p.CompleteDue(e.ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("retry handled %d, %v", n, err)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE kind = 'mint'`); n != 1 {
		t.Errorf("%d mint jobs", n)
	}
	for a, want := range map[int]time.Duration{1: time.Second, 3: 4 * time.Second, 30: 10 * time.Minute} {
		if d := Backoff(a); d < want || d > want+want/4 {
			t.Errorf("Backoff(%d) = %v", a, d)
		}
	}
}

func TestSweep(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	st, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(readSample(t, "CT_small.dcm")))
	if err != nil {
		t.Fatal(err)
	}
	// An orphan, as a crash between Put and commit leaves it, and one too
	// young to judge.
	for _, k := range []string{BlobPrefix + "ab/orphan", BlobPrefix + "cd/young"} {
		if _, err := e.blobs.Put(e.ctx, k, bytes.NewReader([]byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	err = filepath.WalkDir(e.blobDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p) != "young" {
			err = os.Chtimes(p, old, old)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.p.Sweep(e.ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	if _, err := e.blobs.Stat(e.ctx, BlobPrefix+"ab/orphan"); err == nil {
		t.Error("orphan survived")
	}
	if _, err := e.blobs.Stat(e.ctx, BlobPrefix+"cd/young"); err != nil {
		t.Errorf("young blob swept: %v", err)
	}
	if b := e.retrieve(t, st.SOPInstanceUID); len(b) == 0 {
		t.Error("indexed instance lost")
	}
}

// The manifest's digests are those of the pinned ciphertext (hashed when
// the bundle is published, not at ingest), and a blob altered at rest
// fails its study's completion rather than being published.
func TestCompletionHashesAndAuthenticatesBlobs(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	e.p.cfg.StableAge = time.Hour
	var studies []string
	for s := range 2 {
		study := fmt.Sprintf("1.2.826.0.1.3680043.10.997.%d", s)
		studies = append(studies, study)
		b, _ := phiStudy(t, study, study+".1.1")
		if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	// Tamper with the second study's blob.
	refs, err := e.p.Index().Instances(e.ctx, index.Study, studies[1:])
	if err != nil || len(refs) != 1 {
		t.Fatal(refs, err)
	}
	path := filepath.Join(e.blobDir, filepath.FromSlash(refs[0].BlobKey))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.makeDue(t)
	if _, err := e.p.CompleteDue(e.ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	var lastErr string
	if err := e.p.cfg.Pool.QueryRow(e.ctx, `SELECT COALESCE(last_error, '') FROM outbox WHERE kind = 'study.touched' AND subject = $1 AND done_at IS NULL`,
		studies[1]).Scan(&lastErr); err != nil || !strings.Contains(lastErr, "fails authentication") {
		t.Errorf("tampered study: pending completion with error %q (%v)", lastErr, err)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE kind = 'mint' AND subject = $1`, studies[1]); n != 0 {
		t.Errorf("tampered study got %d mint jobs", n)
	}
	// The intact study's manifest names its blob's digest and CID.
	var manCID string
	if err := e.p.cfg.Pool.QueryRow(e.ctx, `SELECT manifest_cid FROM study_bundles WHERE study_instance_uid = $1`, studies[0]).Scan(&manCID); err != nil {
		t.Fatal(err)
	}
	c, err := cid.Decode(manCID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e.pinner.Get(e.ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	var man Manifest
	err = json.NewDecoder(rc).Decode(&man)
	rc.Close()
	if err != nil || len(man.Objects) != 1 {
		t.Fatalf("manifest %+v %v", man, err)
	}
	refs, err = e.p.Index().Instances(e.ctx, index.Study, studies[:1])
	if err != nil || len(refs) != 1 {
		t.Fatal(refs, err)
	}
	blob, err := os.ReadFile(filepath.Join(e.blobDir, filepath.FromSlash(refs[0].BlobKey)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	if man.Objects[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest SHA-256 %s, blob's %x", man.Objects[0].SHA256, sum)
	}
	oc, err := cid.Decode(man.Objects[0].CID)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := e.pinner.Get(e.ctx, oc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(pinned)
	pinned.Close()
	if !bytes.Equal(got, blob) {
		t.Error("pinned object is not the stored blob")
	}
}
