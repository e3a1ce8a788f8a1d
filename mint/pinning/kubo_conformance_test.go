//go:build conformance

package pinning

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Run with: scripts/conformance-kubo.sh && go test -tags conformance ./mint/pinning/

func kuboBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MEDIMINT_TOOLS")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "medimint", "tools")
	}
	p := filepath.Join(dir, "ipfs")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
			t.Fatalf("ipfs not found in %s (MEDIMINT_REQUIRE_TOOLS is set); run scripts/conformance-kubo.sh", dir)
		}
		t.Skipf("ipfs not found in %s; run scripts/conformance-kubo.sh", dir)
	}
	return p
}

// startKubo inits a repo with the test profile (loopback, random ports, no
// bootstrap) and runs an offline daemon; it returns the RPC API multiaddr.
func startKubo(t *testing.T) string {
	t.Helper()
	bin := kuboBinary(t)
	repo := t.TempDir()
	env := append(os.Environ(), "IPFS_PATH="+repo)
	init := exec.Command(bin, "init", "--profile=test")
	init.Env = env
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("ipfs init: %v\n%s", err, out)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "daemon", "--offline")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	// The daemon writes its API address to $IPFS_PATH/api once it serves.
	for {
		if b, err := os.ReadFile(filepath.Join(repo, "api")); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("ipfs daemon exited: %v\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestKuboMatchesLocal(t *testing.T) {
	ctx := context.Background()
	k := NewKubo(startKubo(t))
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range knownCIDs {
		kc, err := k.Add(ctx, tc.r())
		if err != nil {
			t.Fatalf("%s: kubo add: %v", tc.name, err)
		}
		lc, err := l.Add(ctx, tc.r())
		if err != nil {
			t.Fatal(err)
		}
		if !kc.Equals(lc) {
			t.Errorf("%s: kubo %s, local %s", tc.name, kc, lc)
		}
		if tc.want != "" && kc.String() != tc.want {
			t.Errorf("%s: kubo %s, want %s", tc.name, kc, tc.want)
		}
	}
}

func TestKuboPinner(t *testing.T) {
	ctx := context.Background()
	k := NewKubo(startKubo(t))
	data, _ := io.ReadAll(newPseudo(ChunkSize*3 + 1))
	c, err := k.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := k.Pinned(ctx, c); err != nil || !ok {
		t.Fatalf("Pinned = %v, %v", ok, err)
	}
	rc, err := k.Get(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %v, equal %v", err, bytes.Equal(got, data))
	}
	if err := k.Unpin(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ok, err := k.Pinned(ctx, c); err != nil || ok {
		t.Fatalf("Pinned after Unpin = %v, %v", ok, err)
	}
	if err := k.Unpin(ctx, c); err != nil {
		t.Fatalf("second Unpin: %v", err)
	}
	// Content never added: the offline node must say so rather than hang.
	absent, _, _ := CID(strings.NewReader("never added"))
	if _, err := k.Get(ctx, absent); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of absent content: %v, want ErrNotFound", err)
	}
	if ok, err := k.Pinned(ctx, absent); err != nil || ok {
		t.Fatalf("Pinned of absent content = %v, %v", ok, err)
	}
}

// A depth-3 DAG (more than 174*174 chunks, about 7.9 GB). Its CID was
// produced by Kubo v0.42.0 for newPseudo's stream. Hashing 7.9 GB is too
// slow for `make test` (and far slower under -race), so it runs only in
// conformance, and not under -short.
func TestCIDKnownDepth3(t *testing.T) {
	if testing.Short() {
		t.Skip("7.9 GB hash")
	}
	const n = MaxLinks*MaxLinks*ChunkSize + 1
	c, got, err := CID(newPseudo(n))
	if err != nil {
		t.Fatal(err)
	}
	if want := "bafybeihzhwn7mtlvgyjutwuaxsybarhaaddmhfbcmjw7zvay55njs6lmsi"; c.String() != want || got != n {
		t.Fatalf("CID = %s (%d bytes), want %s", c, got, want)
	}
}
