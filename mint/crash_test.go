package mint

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dimse"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/mint/pinning"
)

// server is one run of the medimint binary.
type server struct {
	cmd  *exec.Cmd
	addr string
	once sync.Once
}

const ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"

var dimseAddrRE = regexp.MustCompile(`DIMSE listening"? addr=(\S+)`)

func startBinary(t *testing.T, bin string, env []string) *server {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A server that neither listens nor exits is killed, which ends the scan.
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	lines := bufio.NewScanner(stderr)
	var log strings.Builder
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if m := dimseAddrRE.FindStringSubmatch(lines.Text()); m != nil {
			go io.Copy(io.Discard, stderr)
			return &server{cmd: cmd, addr: m[1]}
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("serve never listened for DIMSE:\n%s", log.String())
	return nil
}

func (s *server) kill() {
	s.once.Do(func() {
		s.cmd.Process.Kill() // SIGKILL: no shutdown code runs
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			// A SIGKILLed process that does not exit is stuck in the kernel
			// (seen once when another job flooded the disk with writeback):
			// say so instead of hanging until the test binary's timeout.
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
			panic(fmt.Sprintf("serve (pid %d) still running 2 minutes after SIGKILL: %s", s.cmd.Process.Pid, stat))
		}
	})
}

// crashInstance is an instance to push and what to expect back.
type crashInstance struct {
	sopClass, sop, study string
	data                 []byte // the data set as sent (no File Meta)
}

// TestCrashSafety pushes instances into the real binary over DIMSE while
// killing it with SIGKILL at random moments, restarting it each time, and
// then checks that every acknowledged instance is stored and decrypts to
// the bytes sent, that the sweeper leaves no blob without a row, and that
// every study completion yields exactly one mint job.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and repeatedly kills the binary")
	}
	const kills = 20
	pool := dbtest.New(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "medimint")
	build := exec.Command("go", "build", "-o", bin, "github.com/medimint/medimint/cmd/medimint")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir, kekFile := filepath.Join(dir, "data"), filepath.Join(dir, "kek")
	env := []string{
		"DATABASE_URL=" + pool.Config().ConnString(),
		"MEDIMINT_HTTP_ADDR=127.0.0.1:0", "MEDIMINT_DIMSE_ADDR=127.0.0.1:0",
		"MEDIMINT_DATA_DIR=" + dataDir, "MEDIMINT_KEK_FILE=" + kekFile, "MEDIMINT_LOG_LEVEL=info",
		"MEDIMINT_DEVNET_ADDR=127.0.0.1:0", // serve may run the embedded devnet
	}

	// 4 studies of 15 instances, 256 KiB of pixels each, so that kills
	// land inside transfers, encryption and commits alike.
	var pending []crashInstance
	for s := range 4 {
		study := fmt.Sprintf("1.2.826.0.1.3680043.10.995.%d", s)
		for i := range 15 {
			f := bigInstance(t, study, fmt.Sprintf("%s.1.%d", study, i), 362)
			pf, err := dicom.ParseBytes(f, dicom.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pending = append(pending, crashInstance{pf.Dataset.String(dicom.TagSOPClassUID), pf.Dataset.String(dicom.TagSOPInstanceUID), study, f[pf.DatasetOffset:]})
		}
	}
	total := len(pending)
	acked := map[string]crashInstance{}
	rng := mrand.New(mrand.NewPCG(1, 2))
	ctx := context.Background()

	interrupted := 0
	for round := 0; len(pending) > 0 || round < kills; round++ {
		if round > kills+total {
			t.Fatalf("%d instances still unacknowledged after %d rounds", len(pending), round)
		}
		srv := startBinary(t, bin, env)
		// Let a few stores through, then kill during the next one, at a
		// random moment of its transfer, encryption or commit.
		killAfter := -1
		if round < kills {
			killAfter = rng.IntN(3)
		}
		killed := false
		c, err := dimse.Associate(ctx, srv.addr, dimse.ClientConfig{CallingAE: "CRASHSCU", CalledAE: "MEDIMINT",
			Contexts: []dimse.ProposedContext{{AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}})
		for n := 0; err == nil && len(pending) > 0; n++ {
			in := pending[0]
			if n == killAfter {
				time.AfterFunc(time.Duration(rng.IntN(40_000))*time.Microsecond, srv.kill)
				killed = true
			}
			var st dimse.Status
			sctx, cancel := context.WithTimeout(ctx, time.Minute) // a wedged server fails the test, not hangs it
			st, err = c.Store(sctx, in.sopClass, in.sop, dicom.ExplicitVRLittleEndian, bytes.NewReader(in.data))
			cancel()
			var se *dimse.StatusError
			if errors.As(err, &se) {
				st, err = se.Status, nil // a failure status is an answer, not an interruption
			}
			if err != nil {
				interrupted++
				break
			}
			switch st.Code {
			case StatusSuccess, StatusDuplicate: // duplicate: stored by a run whose answer was lost
				acked[in.sop] = in
				pending = pending[1:]
			default:
				t.Fatalf("C-STORE %s: %+v", in.sop, st)
			}
			if killed {
				break // the store beat the kill; wait for it below
			}
		}
		if !killed && c != nil && err == nil {
			c.Release(ctx)
		}
		srv.kill() // idle, if nothing was left to send mid-kill

	}
	if len(acked) != total {
		t.Fatalf("%d of %d acknowledged", len(acked), total)
	}

	// Inspect what the killed processes left, with a pipeline of our own.
	blobs, err := blobstore.NewFS(filepath.Join(dataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := envelope.OpenLocalKEK(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	pinner, err := pinning.NewLocal(filepath.Join(dataDir, "ipfs"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Pool: pool, Blobs: blobs, Keys: kek, Pinner: pinner, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for sop, in := range acked {
		rc, ref, err := p.Open(ctx, sop)
		if err != nil {
			t.Fatalf("acknowledged %s: %v", sop, err)
		}
		got, err := p.OpenDataset(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(got)
		got.Close()
		rc.Close()
		if err != nil || !bytes.Equal(b, in.data) {
			t.Errorf("acknowledged %s: %d bytes back, %v", sop, len(b), err)
		}
	}
	swept, err := p.Sweep(ctx, 0) // every process is dead: no commit is coming
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM instances`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	left := 0
	blobs.List(ctx, BlobPrefix, func(blobstore.Info) error { left++; return nil })
	if rows != total || left != total {
		t.Errorf("%d rows and %d blobs after sweeping %d orphans, want %d of each", rows, left, swept, total)
	}

	// Every study completes; each completion queued exactly one mint job.
	if _, err := pool.Exec(ctx, `UPDATE outbox SET available_at = now(), leased_until = NULL WHERE done_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CompleteDue(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	var studies, pendingTouched, badStudies int
	err = pool.QueryRow(ctx, `SELECT
    (SELECT count(*) FROM studies),
    (SELECT count(*) FROM outbox WHERE kind = 'study.touched' AND done_at IS NULL),
    (SELECT count(*) FROM (
        SELECT s.study_instance_uid FROM studies s
        LEFT JOIN outbox m ON m.kind = 'mint' AND m.subject = s.study_instance_uid
        GROUP BY s.study_instance_uid
        HAVING count(m.id) = 0 OR count(m.id) <> (SELECT count(*) FROM outbox d WHERE d.kind = 'study.touched'
            AND d.subject = s.study_instance_uid AND d.done_at IS NOT NULL)) bad)`).Scan(&studies, &pendingTouched, &badStudies)
	if err != nil {
		t.Fatal(err)
	}
	if studies != 4 || pendingTouched != 0 || badStudies != 0 {
		t.Errorf("%d studies, %d pending completions, %d studies whose mint jobs do not match their completions", studies, pendingTouched, badStudies)
	}
	t.Logf("%d kills (%d interrupting a C-STORE), %d instances acknowledged, %d orphan blobs swept", kills, interrupted, len(acked), swept)
}
