package dimse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const benchCorpusScript = "../../shared/corpus/bench-corpus.sh"

// benchCorpus builds (once, cached by the script's hash) the shared bench
// corpus: 200 instances, ~139 MiB of Explicit VR LE CT/MR.
func benchCorpus(b *testing.B) (dir string, instances int, size int64) {
	b.Helper()
	requireTool(b, "dump2dcm", "storescu", "storescp", "python3")
	script, err := os.ReadFile(benchCorpusScript)
	if err != nil {
		b.Fatalf("bench corpus script: %v", err)
	}
	sum := sha256.Sum256(script)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir = filepath.Join(cache, "medimint", "bench-corpus-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.sha256")); err != nil {
		tmp := dir + fmt.Sprintf(".tmp%d", os.Getpid())
		os.RemoveAll(tmp)
		os.MkdirAll(filepath.Dir(tmp), 0o755)
		if out, err := exec.Command("bash", benchCorpusScript, tmp).CombinedOutput(); err != nil {
			b.Fatalf("building the bench corpus: %v\n%s", err, out)
		}
		if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
			os.RemoveAll(tmp)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "s*", "se*", "*.dcm"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	return dir, len(files), size
}

// storescuRun sends the whole corpus with par concurrent storescu
// processes (one association each), TCP_NODELAY on (Debian's dcmtk 3.6.7
// leaves Nagle on unless TCP_NODELAY=1 is in the environment).
func storescuRun(b *testing.B, port, corpus string, par int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make([]error, par)
	outs := make([]string, par)
	for i := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("storescu", "-aet", fmt.Sprintf("BENCH%d", i), "-aec", "MEDIMINT", "+sd", "+r", "+sp", "*.dcm", "127.0.0.1", port, corpus)
			cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
			out, err := cmd.CombinedOutput()
			errs[i], outs[i] = err, string(out)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || strings.Contains(outs[i], "E:") {
			b.Fatalf("storescu %d: %v\n%s", i, err, outs[i])
		}
	}
}

func benchStore(b *testing.B, port, corpus string, instances int, size int64, par int) {
	b.SetBytes(size * int64(par))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		storescuRun(b, port, corpus, par)
	}
	el := time.Since(start)
	b.ReportMetric(float64(instances*par*b.N)/el.Seconds(), "inst/s")
}

// BenchmarkCStore measures C-STORE throughput of storescu into our Server
// (DirStore: fsync per instance; discard: receive only) and into dcmtk's
// storescp (files, no fsync; --ignore: receive only), on the same corpus,
// one association and 4 in parallel. Run with -benchtime=2x.
func BenchmarkCStore(b *testing.B) {
	corpus, instances, size := benchCorpus(b)
	discard := storeFunc(func(ctx context.Context, req StoreRequest, data io.Reader) Status {
		if _, err := io.Copy(io.Discard, data); err != nil {
			return Status{Code: StatusOutOfResources}
		}
		return Success
	})
	for _, par := range []int{1, 4} {
		b.Run(fmt.Sprintf("medimint/DirStore/assoc=%d", par), func(b *testing.B) {
			store, err := NewDirStore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			store.Log = testLogger(b)
			ts := startServer(b, Config{AETitle: "MEDIMINT", Store: store})
			benchStore(b, ts.port, corpus, instances, size, par)
		})
		// Receive only, by maximum PDU length (storescu sends at most
		// 128 KiB PDUs whatever we allow).
		for _, pdu := range []uint32{16384, 65536, DefaultMaxPDULength, 262144} {
			b.Run(fmt.Sprintf("medimint/discard/pdu=%d/assoc=%d", pdu, par), func(b *testing.B) {
				ts := startServer(b, Config{AETitle: "MEDIMINT", Store: discard, MaxPDULength: pdu})
				benchStore(b, ts.port, corpus, instances, size, par)
			})
		}
		for _, mode := range []string{"files", "ignore"} {
			b.Run(fmt.Sprintf("storescp/%s/assoc=%d", mode, par), func(b *testing.B) {
				args := []string{"-aet", "MEDIMINT", "-od", b.TempDir()}
				if mode == "ignore" {
					args = append(args, "--ignore")
				}
				if par > 1 {
					args = append(args, "--fork")
				}
				port := startStoreSCPBench(b, args)
				benchStore(b, port, corpus, instances, size, par)
			})
		}
	}
}

func startStoreSCPBench(b *testing.B, args []string) string {
	b.Helper()
	ln := freePortTB(b)
	cmd := exec.Command("storescp", append(args, ln)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// --fork children exit when their association ends.
	})
	waitListening(b, ln)
	return ln
}
