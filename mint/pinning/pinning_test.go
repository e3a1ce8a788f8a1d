package pinning

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// knownCIDs were produced by Kubo v0.42.0 `ipfs add --cid-version=1` for the
// same bytes (zeros, or newPseudo's stream).
var knownCIDs = []struct {
	name string
	n    int64
	r    func() io.Reader
	want string
}{
	{"empty", 0, zeros(0), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
	{"hello world", 12, func() io.Reader { return strings.NewReader("hello world\n") }, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"},
	{"one chunk of zeros", ChunkSize, zeros(ChunkSize), "bafkreiekhhjkxu4ztk3tyng3er3ijhg56mb44oe3gwbgquhzu4afrg2ksa"},
	{"one chunk + 1 of zeros", ChunkSize + 1, zeros(ChunkSize + 1), "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki"},
	{"175 chunks of zeros", 175 * ChunkSize, zeros(175 * ChunkSize), "bafybeigfps5vzivfspwgm3uwsfyl5s6bn3ysh7uqidgauxgopw4yi66lse"},
	{"pseudo 1 MiB", 1 << 20, pseudoN(1 << 20), "bafybeidqgj55gdnqeywrfhhlkw37uo23ntfjfjfppyorsgmfn6lyjbld2m"},
	{"pseudo 174 chunks", MaxLinks * ChunkSize, pseudoN(MaxLinks * ChunkSize), "bafybeiajusnsji2vr57wjlu7u5ti46gnrpecmsz2rqd762hif6z3zjwbs4"},
	{"pseudo 174 chunks + 1", MaxLinks*ChunkSize + 1, pseudoN(MaxLinks*ChunkSize + 1), "bafybeib2tzwgpp4i4v5n3koe73flojribasiv4bzytfwsqt3yxlxloerce"},
	{"pseudo 50 MiB", 50 << 20, pseudoN(50 << 20), "bafybeifv7p2tvqwjwb7ba6pi5cyarhz5mposiv5buvff253wa7molwg2cq"},
	{"pseudo 2*174 chunks + 3", 2*MaxLinks*ChunkSize + 3, pseudoN(2*MaxLinks*ChunkSize + 3), "bafybeih72qot7whzwjtul7mgxdy37zmoweiv6spq4o5fd5ipkk6mx7zfhe"},
}

func zeros(n int64) func() io.Reader {
	return func() io.Reader { return io.LimitReader(zeroReader{}, n) }
}

func pseudoN(n int64) func() io.Reader { return func() io.Reader { return newPseudo(n) } }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestCIDKnown(t *testing.T) {
	for _, tc := range knownCIDs {
		c, n, err := CID(tc.r())
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != tc.want || n != tc.n {
			t.Errorf("%s: CID = %s (%d bytes), want %s (%d bytes)", tc.name, c, n, tc.want, tc.n)
		}
	}
}

// Chunking must not depend on how the bytes arrive.
func TestCIDReadSizes(t *testing.T) {
	want, _, _ := CID(newPseudo(3*ChunkSize + 5))
	for name, r := range map[string]io.Reader{
		"one byte": iotest.OneByteReader(newPseudo(3*ChunkSize + 5)),
		"half":     iotest.HalfReader(newPseudo(3*ChunkSize + 5)),
	} {
		got, _, err := CID(r)
		if err != nil || !got.Equals(want) {
			t.Errorf("%s: %s, %v; want %s", name, got, err, want)
		}
	}
}

func TestLocalKnown(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range knownCIDs {
		c, err := l.Add(ctx, tc.r())
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != tc.want {
			t.Errorf("%s: Add = %s, want %s", tc.name, c, tc.want)
		}
	}
}

func TestLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(newPseudo(2*ChunkSize + 17))
	c, err := l.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := l.Add(ctx, bytes.NewReader(data)); err != nil || !again.Equals(c) {
		t.Fatalf("re-add: %s, %v", again, err)
	}
	if ok, err := l.Pinned(ctx, c); err != nil || !ok {
		t.Fatalf("Pinned = %v, %v", ok, err)
	}
	rc, err := l.Get(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %v, equal %v", err, bytes.Equal(got, data))
	}

	// Bit rot in the stored file is caught by Get.
	p := filepath.Join(dir, c.String())
	stored, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	stored[ChunkSize+3] ^= 1
	if err := os.WriteFile(p, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err = l.Get(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of corrupted content: %v, want ErrCorrupt", err)
	}
	rc.Close()

	if err := l.Unpin(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Pinned(ctx, c); err != nil || ok {
		t.Fatalf("Pinned after Unpin = %v, %v", ok, err)
	}
	if _, err := l.Get(ctx, c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Unpin: %v", err)
	}
	if err := l.Unpin(ctx, c); err != nil {
		t.Fatalf("second Unpin: %v", err)
	}

	// Failed and canceled adds leave nothing behind.
	if _, err := l.Add(ctx, iotest.ErrReader(errors.New("boom"))); err == nil {
		t.Fatal("Add of failing reader succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Add(cctx, newPseudo(10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with canceled context: %v", err)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("store holds %d entries after unpin and failed adds", len(left))
	}
}

func BenchmarkCID(b *testing.B) {
	data, _ := io.ReadAll(newPseudo(64 << 20))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := CID(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocalAdd(b *testing.B) {
	data, _ := io.ReadAll(newPseudo(64 << 20))
	l, err := NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := l.Add(context.Background(), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
