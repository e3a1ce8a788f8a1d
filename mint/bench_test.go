package mint

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
)

// benchCorpus returns the files to ingest: the benchmark corpus in
// $MEDIMINT_BENCH_CORPUS (built by /work/shared/corpus/bench-corpus.sh;
// scripts/bench-ingest.sh does it), else 16 synthetic 2 MiB CT instances
// written to a temporary directory.
func benchCorpus(b *testing.B) (dir string, files []string, total int64) {
	dir = os.Getenv("MEDIMINT_BENCH_CORPUS")
	if dir == "" {
		dir = b.TempDir()
		for i := range 16 {
			data := bigInstance(b, "1.2.826.0.1.3680043.10.996.1", fmt.Sprintf("1.2.826.0.1.3680043.10.996.1.1.%d", i), 1024)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d.dcm", i)), data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".dcm") {
			return err
		}
		info, err := d.Info()
		files = append(files, p)
		total += info.Size()
		return err
	})
	if err != nil || len(files) == 0 {
		b.Fatalf("corpus %s: %d files, %v", dir, len(files), err)
	}
	return dir, files, total
}

// bigInstance is a CT instance of size x size 16-bit pixels.
func bigInstance(b testing.TB, study, sop string, size int) []byte {
	px := make([]byte, size*size*2)
	rand.Read(px)
	f := dump2dcm(b, fmt.Sprintf(`(0008,0016) UI =CTImageStorage
(0008,0018) UI [%s]
(0008,0060) CS [CT]
(0010,0010) PN [Bench^Patient]
(0010,0020) LO [BENCH1]
(0020,000d) UI [%s]
(0020,000e) UI [%s.1]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US %d
(0028,0011) US %d
(0028,0100) US 16
(0028,0101) US 16
(0028,0102) US 15
(0028,0103) US 0
(7fe0,0010) OW 0000
`, sop, study, study, size, size))
	// Replace the 2-byte placeholder pixel data with the real pixels.
	f = f[:len(f)-6]
	f = append(f, byte(len(px)), byte(len(px)>>8), byte(len(px)>>16), byte(len(px)>>24))
	return append(f, px...)
}

// BenchmarkIngest compares encrypting and durably storing the corpus
// (encrypt+store), and storing it through the whole pipeline (parse,
// hash, encrypt, durable Put, index commit), with copying it with cp(1).
// SetBytes makes MB/s comparable; the ratio to cp is the figure to watch
// (target: encrypt+store >= 70% of cp).
func BenchmarkIngest(b *testing.B) {
	dir, files, total := benchCorpus(b)
	// Every copy goes under one directory removed when the benchmark
	// ends, not after each sub-benchmark: on ext4 without a journal (this
	// machine kind) creating a file in the ~30 s after a burst of
	// deletions costs up to a millisecond of CPU, which would land on
	// whichever sub-benchmark ran next.
	top := b.TempDir()
	// newDir also writes back what earlier runs left dirty, untimed, so
	// that no run's fsyncs queue behind another's writeback.
	newDir := func(b *testing.B) string {
		b.StopTimer()
		defer b.StartTimer()
		syscall.Sync()
		d, err := os.MkdirTemp(top, "run")
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	// newStore is a blob store in a new directory with its shard
	// directories made, as serve opens it (untimed).
	newStore := func(b *testing.B) *blobstore.FS {
		dir := newDir(b)
		b.StopTimer()
		defer b.StartTimer()
		blobs, err := blobstore.NewFS(dir)
		if err == nil {
			err = blobs.MakeDirs(context.Background(), BlobDirs()...)
		}
		if err != nil {
			b.Fatal(err)
		}
		return blobs
	}
	b.Run("cp", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			dst := filepath.Join(newDir(b), "copy")
			if out, err := exec.Command("cp", "-r", dir, dst).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v %s", err, out)
			}
		}
	})
	b.Run("cp+sync", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			dst := filepath.Join(newDir(b), "copy")
			if out, err := exec.Command("sh", "-c", `cp -r "$1" "$2" && sync -f "$2"`, "sh", dir, dst).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v %s", err, out)
			}
		}
	})
	data := make([][]byte, len(files))
	defer func() {
		b.Run("put-plaintext", func(b *testing.B) {
			// A durable copy: the blob store's Put (fsync, rename, directory
			// fsync) of each file as it is, without encryption or index.
			b.SetBytes(total)
			for b.Loop() {
				blobs := newStore(b)
				for _, d := range data {
					if _, err := blobs.Put(context.Background(), newBlobKey(), bytes.NewReader(d)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}()
	for i, f := range files {
		var err error
		if data[i], err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	}
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("encrypt+store-%d", workers), func(b *testing.B) {
			// What the issue names: each instance encrypted under its
			// study's key and made durable in the blob store, as the
			// pipeline does it (ciphertext streamed through an aheadPipe
			// to a Put), without the parse and index commit the
			// pipeline adds.
			b.SetBytes(total)
			dek := make([]byte, 32)
			rand.Read(dek)
			var chunks sync.Pool
			for b.Loop() {
				blobs := newStore(b)
				eachConcurrently(b, data, workers, func(d []byte) error {
					return encryptStore(blobs, &chunks, dek, d)
				})
			}
		})
	}
	pool := dbtest.New(b)
	kek := make([]byte, 32)
	rand.Read(kek)
	kw, _ := envelope.NewLocalKEK(kek)
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("pipeline-%d", workers), func(b *testing.B) {
			b.SetBytes(total)
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				if _, err := pool.Exec(ctx, `TRUNCATE patients, studies, series, instances, instance_data, study_keys, outbox CASCADE`); err != nil {
					b.Fatal(err)
				}
				p, err := New(Config{Pool: pool, Blobs: newStore(b), Keys: kw, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				// The files are in memory, as a receiver's network buffers
				// are; cp reads them from the page cache.
				eachConcurrently(b, data, workers, func(d []byte) error {
					_, err := p.StorePart10(ctx, Source{OrgID: "bench"}, bytes.NewReader(d))
					return err
				})
			}
		})
	}
}

// eachConcurrently calls fn on every item of data from workers goroutines.
func eachConcurrently(b *testing.B, data [][]byte, workers int, fn func([]byte) error) {
	var wg sync.WaitGroup
	next := make(chan []byte)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range next {
				if err := fn(d); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for _, d := range data {
		next <- d
	}
	close(next)
	wg.Wait()
}

// encryptStore encrypts plain under dek into a new durable blob.
func encryptStore(blobs blobstore.BlobStore, chunks *sync.Pool, dek, plain []byte) error {
	ctx := context.Background()
	key := newBlobKey()
	pipe := newAheadPipe(pipeDepth, chunks)
	done := make(chan error, 1)
	go func() {
		_, err := blobs.Put(ctx, key, pipe)
		pipe.CloseRead(io.ErrClosedPipe)
		done <- err
	}()
	enc, err := envelope.NewWriter(pipe, dek, []byte(key))
	if err == nil {
		_, err = enc.Write(plain)
	}
	if err == nil {
		err = enc.Close()
	}
	pipe.CloseWrite(err)
	return errors.Join(err, <-done)
}

// BenchmarkCStore sends the corpus with storescu (one association, or 4
// in parallel each with a quarter of it) into the pipeline over DIMSE
// (parse, encrypt, durable Put, index commit, then the C-STORE response)
// and, in the same run, into dcmtk's storescp writing files without
// fsync: the ratio of the inst/s figures is what to watch (target: >= 70%
// of storescp).
func BenchmarkCStore(b *testing.B) {
	requireTool(b, "storescu", "storescp")
	_, files, total := benchCorpus(b)
	pool := dbtest.New(b)
	kek := make([]byte, 32)
	rand.Read(kek)
	kw, _ := envelope.NewLocalKEK(kek)
	for _, par := range []int{1, 4} {
		b.Run(fmt.Sprintf("storescp/assoc=%d", par), func(b *testing.B) {
			args := []string{"-aet", "MEDIMINT"}
			if par > 1 {
				args = append(args, "--fork")
			}
			port := freePort(b)
			out := b.TempDir()
			cmd := exec.Command("storescp", append(args, "-od", out, port)...)
			cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			waitListening(b, port)
			benchStoreSCU(b, port, files, total, par, func() {
				os.RemoveAll(out)
				os.Mkdir(out, 0o700)
			})
		})
		b.Run(fmt.Sprintf("medimint/assoc=%d", par), func(b *testing.B) {
			blobDir := b.TempDir()
			blobs, err := blobstore.NewFS(blobDir)
			if err != nil {
				b.Fatal(err)
			}
			p, err := New(Config{Pool: pool, Blobs: blobs, Keys: kw, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			port := startDIMSE(b, p)
			benchStoreSCU(b, port, files, total, par, func() {
				if _, err := pool.Exec(context.Background(), `TRUNCATE patients, studies, series, instances, instance_data, study_keys, outbox CASCADE`); err != nil {
					b.Fatal(err)
				}
				removeFiles(b, blobDir)
			})
		})
	}
}

// benchStoreSCU sends the corpus's files with par storescu processes,
// one association each, dealt round robin so that every association
// carries a share of every study (as when a modality pushes one study over
// several associations), TCP_NODELAY on (Debian's dcmtk leaves Nagle on
// otherwise). reset runs untimed before each round.
func benchStoreSCU(b *testing.B, port string, files []string, size int64, par int, reset func()) {
	b.SetBytes(size)
	shares := make([][]string, par)
	for i, f := range files {
		shares[i%par] = append(shares[i%par], f)
	}
	var el time.Duration
	for b.Loop() {
		b.StopTimer()
		reset()
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, par)
		for i := range par {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := append([]string{"-aet", fmt.Sprintf("BENCH%d", i), "-aec", "MEDIMINT", "127.0.0.1", port}, shares[i]...)
				cmd := exec.Command("storescu", args...)
				cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
				out, err := cmd.CombinedOutput()
				if err == nil && strings.Contains(string(out), "E:") {
					err = fmt.Errorf("storescu reported errors")
				}
				if err != nil {
					errs[i] = fmt.Errorf("storescu %d: %w\n%s", i, err, out)
				}
			}()
		}
		wg.Wait()
		el += time.Since(start)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(files)*b.N)/el.Seconds(), "inst/s")
}

func freePort(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func waitListening(b *testing.B, port string) {
	for range 500 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("nothing listens on port %s", port)
}

// removeFiles empties a blob store between rounds but keeps its shard
// directories, as they are in a store that has been running: a store
// creates each of them once, on its first Puts.
func removeFiles(b *testing.B, dir string) {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Remove(p)
	})
	if err != nil {
		b.Fatal(err)
	}
}
