package chain

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/wallet"
)

func TestResealMaster(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	oldKEK, err := envelope.OpenLocalKEK(filepath.Join(dir, "old"))
	if err != nil {
		t.Fatal(err)
	}
	newKEK, err := envelope.OpenLocalKEK(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, MasterFile)
	m, _, err := OpenMaster(ctx, path, oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	issuer := func(m *Master) string {
		t.Helper()
		c, err := m.Custodian(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := c.Account(ctx, wallet.IssuerIndex)
		if err != nil {
			t.Fatal(err)
		}
		return kp.Address()
	}
	want := issuer(m)

	for i, wantChanged := range []bool{true, false} { // the second run finds it done
		changed, err := ResealMaster(ctx, path, oldKEK, newKEK)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if changed != wantChanged {
			t.Errorf("run %d: changed %v, want %v", i, changed, wantChanged)
		}
	}
	if under, err := MasterSealedUnder(ctx, path, oldKEK); err != nil || under {
		t.Errorf("still opens under the old KEK: %v %v", under, err)
	}
	m2, err := LoadMaster(path, newKEK)
	if err != nil {
		t.Fatal(err)
	}
	if got := issuer(m2); got != want {
		t.Errorf("issuer after reseal %s, want %s (the mnemonic must not change)", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after reseal: %v %v", fi.Mode(), err)
	}

	// A third KEK opens neither: refused, file untouched.
	other, _ := envelope.NewLocalKEK(make([]byte, envelope.KeySize))
	before, _ := os.ReadFile(path)
	if _, err := ResealMaster(ctx, path, other, oldKEK); err == nil {
		t.Error("reseal from a KEK that does not open it succeeded")
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("failed reseal changed the file")
	}
}
