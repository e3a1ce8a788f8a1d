package blobstore_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/blobstore/blobstoretest"
)

func TestFS(t *testing.T) {
	s, err := blobstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobstoretest.Run(t, s)
}

// A crash mid-Put leaves a temporary file; it must not show as an object.
func TestFSIgnoresTemporaries(t *testing.T) {
	dir := t.TempDir()
	s, err := blobstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, "a/b", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.List(ctx, "", func(i blobstore.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "a/b" {
		t.Fatalf("List = %v", keys)
	}
}

func BenchmarkFSPut(b *testing.B) {
	const size = 64 << 20
	src := make([]byte, size)
	s, err := blobstore.NewFS(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		if _, err := s.Put(context.Background(), "bench/obj", bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileCopy is the baseline for BenchmarkFSPut: the same bytes
// written to a file with one fsync and no rename.
func BenchmarkFileCopy(b *testing.B) {
	const size = 64 << 20
	src := make([]byte, size)
	path := filepath.Join(b.TempDir(), "obj")
	b.SetBytes(size)
	for b.Loop() {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(f, bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
