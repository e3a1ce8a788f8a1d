package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/blobstore/blobstoretest"
)

func TestFS(t *testing.T) {
	s, err := blobstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && !blobstore.UsesUnnamedFiles(s) {
		t.Error("no O_TMPFILE on Linux: the named temporary file path is taken")
	}
	blobstoretest.Run(t, s)
}

// The named temporary file path, taken where O_TMPFILE is unsupported.
func TestFSNamedTemporaries(t *testing.T) {
	s, err := blobstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobstore.WithoutUnnamedFiles(s)
	blobstoretest.Run(t, s)
}

// Puts leave nothing but their objects: no temporary files, whether they
// succeed, fail or replace an object, and the store's spare unnamed files
// have no names.
func TestFSLeavesNoTemporaries(t *testing.T) {
	dir := t.TempDir()
	s, err := blobstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		if _, err := s.Put(ctx, "a/b", bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 300<<10))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "a/c", iotest.TimeoutReader(bytes.NewReader(make([]byte, 1<<20)))); err == nil {
			t.Fatal("Put of a failing reader succeeded")
		}
	}
	var names []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return err
	})
	if fmt.Sprint(names) != "[a/b]" {
		t.Fatalf("files after Puts: %v", names)
	}
	got, err := os.ReadFile(filepath.Join(dir, "a", "b"))
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{19}, 300<<10)) {
		t.Fatalf("a/b holds %d bytes (%v), want the last Put's", len(got), err)
	}
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

// A shard directory removed behind the store's back is made again, on
// both write paths.
func TestFSDirectoryRemoved(t *testing.T) {
	for _, named := range []bool{false, true} {
		dir := t.TempDir()
		s, err := blobstore.NewFS(dir)
		if err != nil {
			t.Fatal(err)
		}
		if named {
			blobstore.WithoutUnnamedFiles(s)
		}
		ctx := context.Background()
		if _, err := s.Put(ctx, "a/b/c", bytes.NewReader([]byte("one"))); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "a/b/d", bytes.NewReader([]byte("two"))); err != nil {
			t.Fatalf("named temporaries %v: Put after its directory was removed: %v", named, err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "a", "b", "d")); err != nil || string(got) != "two" {
			t.Fatalf("named temporaries %v: a/b/d = %q, %v", named, got, err)
		}
	}
}

// MakeDirs makes the directories keys will need, once, and is not
// fooled into listing them as objects.
func TestFSMakeDirs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := blobstore.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{"i/00", "i/01", "a/b/c"}
	for range 2 { // the second call finds them made
		if err := s.MakeDirs(ctx, dirs...); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(d))); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v, %v", d, fi, err)
		}
	}
	n := 0
	if err := s.List(ctx, "", func(blobstore.Info) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("List after MakeDirs: %d objects, %v", n, err)
	}
	if _, err := s.Put(ctx, "i/00/obj", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	// Made by another store opening the same root: still usable.
	s2, err := blobstore.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.MakeDirs(ctx, dirs...); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "../x", "i/.tmp-x", "/abs"} {
		if err := s.MakeDirs(ctx, bad); err == nil {
			t.Errorf("MakeDirs(%q): no error", bad)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s2.MakeDirs(canceled, "i/02"); err == nil {
		t.Error("MakeDirs with a canceled context: no error")
	}
}

// A reader failing with an error that says "not exist" (a source that
// lost its file, say) fails the Put: only a failed link is retried.
func TestFSReaderNotExistFails(t *testing.T) {
	dir := t.TempDir()
	s, err := blobstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := io.MultiReader(bytes.NewReader(make([]byte, 100<<10)), iotest.ErrReader(fmt.Errorf("source: %w", fs.ErrNotExist)))
	if _, err := s.Put(context.Background(), "a/b", r); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Put = %v, want the reader's error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a half-written object was stored: %v", err)
	}
}
