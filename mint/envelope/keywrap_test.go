package envelope

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLocalKEK(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	k1, err := OpenLocalKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != KeySize {
		t.Fatalf("kek file mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), KeySize)
	}
	again, err := OpenLocalKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.KeyID() != k1.KeyID() {
		t.Fatalf("reopened KEK id %s != %s", again.KeyID(), k1.KeyID())
	}

	dek, wrapped, err := NewDEK(ctx, k1)
	if err != nil {
		t.Fatal(err)
	}
	if len(dek) != KeySize || bytes.Contains(wrapped, dek) {
		t.Fatal("bad DEK or DEK visible in wrapped form")
	}
	got, err := again.Unwrap(ctx, wrapped)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap: %v", err)
	}

	k2, err := OpenLocalKEK(filepath.Join(dir, "kek2"))
	if err != nil {
		t.Fatal(err)
	}
	if k2.KeyID() == k1.KeyID() {
		t.Fatal("two KEKs share an id")
	}
	if _, err := k2.Unwrap(ctx, wrapped); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("unwrap under other KEK: %v, want ErrWrongKEK", err)
	}
	for i := 1 + localIDSize; i < len(wrapped); i++ {
		bad := bytes.Clone(wrapped)
		bad[i] ^= 0x80
		if _, err := k1.Unwrap(ctx, bad); !errors.Is(err, ErrAuth) {
			t.Errorf("tampered byte %d: %v, want ErrAuth", i, err)
		}
	}
	if _, err := k1.Unwrap(ctx, wrapped[:len(wrapped)-1]); !errors.Is(err, ErrFormat) {
		t.Errorf("short wrapped key: %v, want ErrFormat", err)
	}

	// Rotation: the DEK survives, the old KEK no longer opens the new form.
	re, err := Rewrap(ctx, k1, k2, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Unwrap(ctx, re); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap rewrapped: %v", err)
	}
	if _, err := k1.Unwrap(ctx, re); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("old KEK on rewrapped: %v, want ErrWrongKEK", err)
	}
	if _, err := Rewrap(ctx, k2, k1, wrapped); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("rewrap with wrong old KEK: %v", err)
	}
}

func TestLocalKEKRefusesOpenMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, bytes.Repeat([]byte{1}, KeySize), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocalKEK(path); err == nil {
		t.Fatal("accepted a world-readable KEK file")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocalKEK(path); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocalKEK(short); !errors.Is(err, ErrKeySize) {
		t.Fatalf("short KEK: %v", err)
	}
}
