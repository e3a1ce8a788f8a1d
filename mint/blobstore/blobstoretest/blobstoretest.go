// Package blobstoretest is the conformance suite every blobstore.BlobStore
// must pass.
package blobstoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/medimint/medimint/mint/blobstore"
)

// LargeSize is the size of the object that exercises multipart uploads.
const LargeSize = 20 << 20

// Pseudo returns a reader of n deterministic pseudo-random bytes, so large
// objects are streamed rather than held in memory.
func Pseudo(n int64, seed uint64) io.Reader {
	return io.LimitReader(mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7}), n)
}

func pseudoBytes(t *testing.T, n int64, seed uint64) []byte {
	t.Helper()
	b, err := io.ReadAll(Pseudo(n, seed))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(t *testing.T, r io.Reader) ([32]byte, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil)), n
}

func get(t *testing.T, s blobstore.BlobStore, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", key, err)
	}
	return b
}

func put(t *testing.T, s blobstore.BlobStore, key string, b []byte) {
	t.Helper()
	n, err := s.Put(context.Background(), key, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	if n != int64(len(b)) {
		t.Fatalf("Put %s: n = %d, want %d", key, n, len(b))
	}
}

// failingReader yields n bytes then fails.
type failingReader struct {
	r io.Reader
}

var errBoom = errors.New("source failed")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBoom
	}
	return n, err
}

// Run runs the conformance suite against s, which must be empty.
func Run(t *testing.T, s blobstore.BlobStore) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		for _, n := range []int64{0, 1, 4095, 1 << 20} {
			key := fmt.Sprintf("rt/%d", n)
			want := pseudoBytes(t, n, uint64(n))
			put(t, s, key, want)
			if got := get(t, s, key); !bytes.Equal(got, want) {
				t.Fatalf("%s: got %d bytes, want %d", key, len(got), len(want))
			}
			info, err := s.Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if info.Key != key || info.Size != n || info.ModTime.IsZero() {
				t.Fatalf("Stat %s = %+v", key, info)
			}
		}
	})

	t.Run("Large", func(t *testing.T) {
		const key = "large/object.bin"
		n, err := s.Put(ctx, key, Pseudo(LargeSize, 99))
		if err != nil {
			t.Fatal(err)
		}
		if n != LargeSize {
			t.Fatalf("Put n = %d", n)
		}
		want, _ := sum(t, Pseudo(LargeSize, 99))
		rc, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, gn := sum(t, rc)
		rc.Close()
		if got != want || gn != LargeSize {
			t.Fatalf("large object differs (%d bytes read)", gn)
		}
		// A range spanning a multipart part boundary.
		rc, err = s.GetRange(ctx, key, 5<<20-3, 10)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		all, _ := io.ReadAll(Pseudo(5<<20+7, 99))
		if !bytes.Equal(b, all[5<<20-3:]) {
			t.Fatal("range across part boundary differs")
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		put(t, s, "ow/k", []byte("first version"))
		put(t, s, "ow/k", []byte("second"))
		if got := get(t, s, "ow/k"); string(got) != "second" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		for _, key := range []string{"nf/absent", "absent", "rt/1/deeper"} {
			if _, err := s.Get(ctx, key); !errors.Is(err, blobstore.ErrNotFound) {
				t.Errorf("Get %s: %v", key, err)
			}
			if _, err := s.GetRange(ctx, key, 0, 1); !errors.Is(err, blobstore.ErrNotFound) {
				t.Errorf("GetRange %s: %v", key, err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, blobstore.ErrNotFound) {
				t.Errorf("Stat %s: %v", key, err)
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Errorf("Delete absent %s: %v", key, err)
			}
		}
		// A "directory" on the way to keys is not an object.
		put(t, s, "nf/dir/obj", []byte("x"))
		if _, err := s.Stat(ctx, "nf/dir"); !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("Stat of key prefix: %v", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		put(t, s, "del/a/b/c", []byte("abc"))
		if err := s.Delete(ctx, "del/a/b/c"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "del/a/b/c"); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
		if err := s.Delete(ctx, "del/a/b/c"); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		put(t, s, "del/a/b/c", []byte("again"))
		if got := get(t, s, "del/a/b/c"); string(got) != "again" {
			t.Fatalf("re-put after delete: %q", got)
		}
	})

	t.Run("GetRange", func(t *testing.T) {
		data := pseudoBytes(t, 1000, 5)
		put(t, s, "range/k", data)
		for _, tc := range []struct{ off, n, wantLen int64 }{
			{0, 10, 10}, {990, 10, 10}, {995, 10, 5}, {0, -1, 1000}, {500, -1, 500}, {1000, 5, 0}, {1000, -1, 0}, {3, 0, 0},
		} {
			rc, err := s.GetRange(ctx, "range/k", tc.off, tc.n)
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", tc.off, tc.n, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, data[tc.off:tc.off+tc.wantLen]) {
				t.Errorf("GetRange(%d, %d): got %d bytes, want %d", tc.off, tc.n, len(b), tc.wantLen)
			}
		}
		if _, err := s.GetRange(ctx, "range/k", 1001, 1); !errors.Is(err, blobstore.ErrInvalidRange) {
			t.Errorf("GetRange past end: %v", err)
		}
		put(t, s, "range/empty", nil)
		rc, err := s.GetRange(ctx, "range/empty", 0, -1)
		if err != nil {
			t.Fatalf("GetRange of empty object: %v", err)
		}
		if b, _ := io.ReadAll(rc); len(b) != 0 {
			t.Error("empty object range not empty")
		}
		rc.Close()
	})

	t.Run("ReaderAt", func(t *testing.T) {
		data := pseudoBytes(t, 70000, 11)
		put(t, s, "readerat/k", data)
		ra, err := blobstore.NewReaderAt(ctx, s, "readerat/k")
		if err != nil {
			t.Fatal(err)
		}
		if ra.Size() != int64(len(data)) {
			t.Fatalf("Size = %d", ra.Size())
		}
		for _, tc := range []struct{ off, n int }{{0, 100}, {65530, 20}, {69990, 10}, {0, 70000}} {
			got, err := io.ReadAll(io.NewSectionReader(ra, int64(tc.off), int64(tc.n)))
			if err != nil || !bytes.Equal(got, data[tc.off:tc.off+tc.n]) {
				t.Errorf("range [%d,+%d): %v", tc.off, tc.n, err)
			}
		}
		p := make([]byte, 20)
		if n, err := ra.ReadAt(p, 69990); n != 10 || err != io.EOF {
			t.Errorf("ReadAt across end = %d, %v", n, err)
		}
		if _, err := blobstore.NewReaderAt(ctx, s, "readerat/absent"); !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("NewReaderAt of absent key: %v", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		keys := []string{"list/s1/i1", "list/s1/i2", "list/s10/i1", "list/s2/x/y", "list/t"}
		for _, k := range keys {
			put(t, s, k, []byte(k))
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"list/", keys},
			{"list/s1", keys[:3]},
			{"list/s1/", keys[:2]},
			{"list/s2/x/", keys[3:4]},
			{"list/none", nil},
			{"nolist/", nil},
		} {
			var got []string
			err := s.List(ctx, tc.prefix, func(i blobstore.Info) error {
				if i.Size != int64(len(i.Key)) {
					t.Errorf("List %q: %s has size %d", tc.prefix, i.Key, i.Size)
				}
				got = append(got, i.Key)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("List %q = %v, want %v", tc.prefix, got, tc.want)
			}
		}
		stop := errors.New("stop")
		calls := 0
		err := s.List(ctx, "list/", func(blobstore.Info) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("List stopping: err %v after %d calls", err, calls)
		}
	})

	t.Run("InvalidKey", func(t *testing.T) {
		for _, key := range []string{"", "/abs", "trailing/", "a//b", "a/../b", "..", ".", "a/.hidden", "back\\slash", "nul\x00"} {
			if _, err := s.Put(ctx, key, bytes.NewReader(nil)); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Put %q: %v, want ErrInvalidKey", key, err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Get %q: %v, want ErrInvalidKey", key, err)
			}
		}
	})

	t.Run("FailedPutLeavesNothing", func(t *testing.T) {
		for _, n := range []int64{10, LargeSize} { // single-shot and multipart
			key := fmt.Sprintf("fail/%d", n)
			if _, err := s.Put(ctx, key, &failingReader{Pseudo(n, 1)}); !errors.Is(err, errBoom) {
				t.Fatalf("Put with failing source: %v", err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, blobstore.ErrNotFound) {
				t.Fatalf("object exists after failed Put: %v", err)
			}
			// A failed overwrite leaves the old object.
			put(t, s, key, []byte("old"))
			if _, err := s.Put(ctx, key, &failingReader{Pseudo(n, 1)}); err == nil {
				t.Fatal("Put with failing source succeeded")
			}
			if got := get(t, s, key); string(got) != "old" {
				t.Fatalf("failed overwrite changed object to %d bytes", len(got))
			}
		}
		var seen []string
		if err := s.List(ctx, "fail/", func(i blobstore.Info) error { seen = append(seen, i.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(seen)
		if want := []string{"fail/10", fmt.Sprintf("fail/%d", LargeSize)}; !slices.Equal(seen, want) {
			t.Fatalf("List after failed puts = %v, want %v (no temporaries)", seen, want)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(cctx, "cancel/k", Pseudo(100, 1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with canceled context: %v", err)
		}
		if _, err := s.Stat(ctx, "cancel/k"); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("object exists after canceled Put: %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		const writers = 8
		var wg sync.WaitGroup
		errs := make(chan error, 2*writers)
		for i := range writers {
			wg.Go(func() {
				// distinct keys
				b := pseudoBytes(t, 256<<10, uint64(i))
				if _, err := s.Put(ctx, fmt.Sprintf("conc/own/%d", i), bytes.NewReader(b)); err != nil {
					errs <- err
				}
			})
			wg.Go(func() {
				// one shared key: the winner must be one whole value
				if _, err := s.Put(ctx, "conc/shared", bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 100<<10))); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i := range writers {
			if got := get(t, s, fmt.Sprintf("conc/own/%d", i)); !bytes.Equal(got, pseudoBytes(t, 256<<10, uint64(i))) {
				t.Errorf("conc/own/%d differs", i)
			}
		}
		got := get(t, s, "conc/shared")
		if len(got) != 100<<10 || !bytes.Equal(got, bytes.Repeat(got[:1], len(got))) {
			t.Errorf("conc/shared is a mix of writers (%d bytes)", len(got))
		}
	})
}
