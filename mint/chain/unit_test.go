package chain

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/wallet"
)

func TestSealer(t *testing.T) {
	ctx := context.Background()
	kek := newKEK(t)
	secret := []byte("abandon ability able about above absent absorb abstract absurd abuse access accident")
	sealed, err := Sealer{KEK: kek, Purpose: "a"}.Wrap(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret[:20]) {
		t.Fatal("sealed form contains the secret")
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name   string
		s      Sealer
		sealed []byte
		ok     bool
	}{
		{"same KEK and purpose", Sealer{KEK: kek, Purpose: "a"}, sealed, true},
		{"other purpose", Sealer{KEK: kek, Purpose: "b"}, sealed, false},
		{"other KEK", Sealer{KEK: newKEK(t), Purpose: "a"}, sealed, false},
		{"ciphertext flipped", Sealer{KEK: kek, Purpose: "a"}, flip(len(sealed) - 20), false},
		{"wrapped key flipped", Sealer{KEK: kek, Purpose: "a"}, flip(10), false},
		{"truncated", Sealer{KEK: kek, Purpose: "a"}, sealed[:40], false},
		{"empty", Sealer{KEK: kek, Purpose: "a"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Unwrap(ctx, tt.sealed)
			if tt.ok && (err != nil || !bytes.Equal(got, secret)) {
				t.Fatalf("Unwrap: %q, %v", got, err)
			}
			if !tt.ok && err == nil {
				t.Fatal("Unwrap succeeded")
			}
		})
	}
}

// The master mnemonic is created once, even by concurrent first starts,
// sealed (never in clear), mode 0600, and derives the same keys after a
// reload.
func TestOpenMaster(t *testing.T) {
	ctx := context.Background()
	kek := newKEK(t)
	path := filepath.Join(t.TempDir(), "sub", MasterFile)
	if _, err := LoadMaster(path, kek); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadMaster of nothing: %v", err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		addrs   = map[string]bool{}
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, c, err := OpenMaster(ctx, path, kek)
			if err != nil {
				t.Error(err)
				return
			}
			cust, err := m.Custodian(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			kp, err := cust.Account(ctx, wallet.SponsorIndex)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if c {
				created++
			}
			addrs[kp.Address()] = true
		}()
	}
	wg.Wait()
	if created != 1 || len(addrs) != 1 {
		t.Fatalf("%d creators, %d distinct sponsors; want 1 and 1", created, len(addrs))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	m, err := LoadMaster(path, kek)
	if err != nil {
		t.Fatal(err)
	}
	mnemonic, err := mnemonicSealer(kek).Unwrap(ctx, m.sealed)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(string(mnemonic))); n != 24 {
		t.Errorf("%d words", n)
	}
	raw, _ := os.ReadFile(path)
	for _, w := range strings.Fields(string(mnemonic)) {
		if len(w) >= 5 && bytes.Contains(raw, []byte(w)) {
			t.Errorf("file contains mnemonic word %q", w)
		}
	}
	if _, err := LoadMaster(path, newKEK(t)); err != nil {
		t.Fatal(err) // loading needs no key ...
	}
	other, _ := LoadMaster(path, newKEK(t))
	if _, err := other.Custodian(ctx); err == nil {
		t.Error("a different KEK unsealed the master") // ... unsealing does
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "junk"), []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMaster(filepath.Join(filepath.Dir(path), "junk"), kek); err == nil {
		t.Error("junk file loaded as a master")
	}
}

func TestPatientRef(t *testing.T) {
	salt := []byte("salt")
	a := mint.PatientRef(salt, "", "PAT-A")
	tests := []struct {
		issuer, id string
		same       bool
	}{
		{"", "PAT-A", true},
		{"HOSP", "PAT-A", false},
		{"", "PAT-B", false},
		{"PAT-A", "", false},
	}
	for _, tt := range tests {
		got := mint.PatientRef(salt, tt.issuer, tt.id)
		if (got == a) != tt.same {
			t.Errorf("PatientRef(%q, %q) = %s, same as PAT-A: %v", tt.issuer, tt.id, got, got == a)
		}
	}
	if len(a) != 64 || strings.Contains(a, "PAT") {
		t.Errorf("ref %q", a)
	}
	if mint.PatientRef(salt, "HOSP", "") != "" {
		t.Error("empty Patient ID got a reference")
	}
	// Unidentified patients each get their own account.
	j1, j2 := job("", 1), job("", 2)
	if patientKey(j1) == patientKey(j2) {
		t.Error("two unidentified patients share a key")
	}
}

// plan's operation count matches what MintBatches builds: each group is
// exactly one transaction of at most 100 operations once new accounts are
// created inside it.
func TestPlan(t *testing.T) {
	sponsor, issuer := keypair.MustRandom().Address(), keypair.MustRandom().Address()
	holders := make([]string, 40)
	for i := range holders {
		holders[i] = keypair.MustRandom().Address()
	}
	mk := func(n int, holderOf func(i int) int, escrow, newAcc bool) []*item {
		var out []*item
		for i := range n {
			it := &item{mj: job("", int64(i)), holder: holders[holderOf(i)], newAccount: newAcc}
			if err := checkJob(it); err != nil {
				t.Fatal(err)
			}
			if !escrow {
				it.patient = &Patient{Address: it.holder}
			}
			out = append(out, it)
		}
		return out
	}
	tests := []struct {
		name   string
		items  []*item
		groups int
		first  int // studies in the first group
	}{
		{"one patient, 19 studies fit", mk(19, func(int) int { return 0 }, false, false), 1, 19},
		{"one patient, 20 studies", mk(20, func(int) int { return 0 }, false, false), 2, 19},
		{"new patients, one study each", mk(24, func(i int) int { return i }, false, true), 2, 12},
		{"existing patients, one study each", mk(28, func(i int) int { return i }, false, false), 2, 14},
		{"new patients, three studies each", mk(30, func(i int) int { return i / 3 }, false, true), 2, 16},
		{"escrow", mk(40, func(i int) int { return i }, true, false), 2, 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			groups := plan(tt.items)
			if len(groups) != tt.groups || len(groups[0]) != tt.first {
				t.Fatalf("%d groups, first of %d; want %d, %d", len(groups), len(groups[0]), tt.groups, tt.first)
			}
			for _, g := range groups {
				var mints []contracts.Mint
				newAcc := map[string]bool{}
				for _, it := range g {
					mints = append(mints, contracts.Mint{StudyHash: it.hash, CID: it.mj.MetadataCID, Holder: it.holder, Escrow: it.escrow()})
					if it.newAccount {
						newAcc[it.holder] = true
					}
				}
				ds, err := contracts.MintBatches(sponsor, issuer, mints)
				if err != nil || len(ds) != 1 {
					t.Fatalf("group of %d: %d drafts, %v", len(g), len(ds), err)
				}
				d, ok := withAccounts(ds[0], sponsor, newAcc)
				if !ok || len(d.Operations) > contracts.MaxOperations {
					t.Fatalf("group of %d: with accounts %v, %d operations", len(g), ok, len(d.Operations))
				}
				if len(d.Operations) != len(ds[0].Operations)+len(newAcc) {
					t.Errorf("%d operations after adding %d accounts to %d", len(d.Operations), len(newAcc), len(ds[0].Operations))
				}
			}
		})
	}
}
