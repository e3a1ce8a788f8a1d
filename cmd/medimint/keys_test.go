package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/chain"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/wallet"
)

const samples = "../../../shared/dicom-samples/pydicom"

// blobState is every blob file's content hash and modification time.
type blobState map[string]struct {
	sum   [32]byte
	mtime time.Time
}

func blobsOf(t *testing.T, dir string) blobState {
	t.Helper()
	st := blobState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st[p] = struct {
			sum   [32]byte
			mtime time.Time
		}{sha256.Sum256(b), fi.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestKeysRotate stores real studies under one KEK, rotates to another
// with `medimint keys rotate` in small batches (after a simulated
// interrupted run), and checks that no blob changed, that every instance
// decrypts with the new KEK alone (the old key file deleted), that the
// old KEK no longer opens anything, and that the master mnemonic derives
// the same issuer.
func TestKeysRotate(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old.kek"), filepath.Join(dir, "keys", "new.kek")
	t.Setenv("DATABASE_URL", pool.Config().ConnString())
	t.Setenv("MEDIMINT_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("MEDIMINT_KEK_FILE", oldFile)
	t.Setenv("MEDIMINT_KMS_KEY_ID", "")
	t.Setenv("MEDIMINT_BLOBSTORE", "fs")
	t.Setenv("MEDIMINT_PINNER", "local")
	cfg, err := config.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	log := newLogger(io.Discard, 0)
	oldKEK, err := envelope.OpenLocalKEK(oldFile)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := chain.OpenMaster(ctx, masterPath(cfg), oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	issuer := func(m *chain.Master) string {
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
	wantIssuer := issuer(m)

	// Five studies (distinct Study Instance UIDs in the samples).
	p, err := buildPipeline(ctx, cfg, pool, oldKEK, "", log)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][32]byte{} // SOP Instance UID → plaintext hash
	for _, name := range []string{"CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "OBXXXX1A.dcm"} {
		f, err := os.Open(filepath.Join(samples, name))
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.StorePart10(ctx, mint.Source{OrgID: "org1", Transport: "test"}, f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want[st.SOPInstanceUID] = plainSum(t, p, st.SOPInstanceUID)
	}
	var studies int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM study_keys`).Scan(&studies); err != nil || studies < 3 {
		t.Fatalf("%d study keys (%v); the test needs several", studies, err)
	}
	blobDir := filepath.Join(cfg.DataDir, "blobs")
	before := blobsOf(t, blobDir)
	if len(before) != len(want) {
		t.Fatalf("%d blobs for %d instances", len(before), len(want))
	}

	// An earlier run was interrupted after re-wrapping one study key.
	newKEK, err := localKeys(newFile)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rewrapBatch(ctx, pool, oldKEK, newKEK, 1); err != nil || n != 1 {
		t.Fatalf("partial run: %d, %v", n, err)
	}

	var out, errb bytes.Buffer
	if code := run(ctx, []string{"keys", "status"}, &out, &errb); code != 0 {
		t.Fatalf("keys status: exit %d: %s", code, errb.String())
	}
	for _, s := range []string{oldKEK.KeyID(), "(current)", newKEK.KeyID(), "sealed under the current KEK"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("status before does not say %q:\n%s", s, out.String())
		}
	}

	out.Reset()
	if code := run(ctx, []string{"keys", "rotate", "-new-kek", newFile, "-batch", "2"}, &out, &errb); code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", code, errb.String())
	}
	for _, s := range []string{"re-wrapped: " + strconv.Itoa(studies-1) + " ", "already under " + newKEK.KeyID() + ": 1", "re-sealed under " + newKEK.KeyID()} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("rotate output does not say %q:\n%s", s, out.String())
		}
	}
	// Idempotent: a second run has nothing to do.
	out.Reset()
	if code := run(ctx, []string{"keys", "rotate", "-new-kek", newFile}, &out, &errb); code != 0 {
		t.Fatalf("second keys rotate: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "re-wrapped: 0 ") || !strings.Contains(out.String(), "master mnemonic: already under") {
		t.Errorf("second rotate did something:\n%s", out.String())
	}

	// The operator switches to the new KEK and destroys the old one.
	if err := os.Remove(oldFile); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MEDIMINT_KEK_FILE", newFile)
	out.Reset()
	if code := run(ctx, []string{"keys", "status"}, &out, &errb); code != 0 {
		t.Fatalf("keys status after: exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), oldKEK.KeyID()) || !strings.Contains(out.String(), newKEK.KeyID()+"  "+strconv.Itoa(studies)) {
		t.Errorf("status after rotation:\n%s", out.String())
	}

	after := blobsOf(t, blobDir)
	if len(after) != len(before) {
		t.Errorf("%d blobs after rotation, %d before", len(after), len(before))
	}
	for path, b := range before {
		a, ok := after[path]
		if !ok || a.sum != b.sum || !a.mtime.Equal(b.mtime) {
			t.Errorf("blob %s changed by the rotation", path)
		}
	}

	reopened, err := envelope.OpenLocalKEK(newFile)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := buildPipeline(ctx, cfg, pool, reopened, "", log) // fresh: no cached DEKs
	if err != nil {
		t.Fatal(err)
	}
	for sop, sum := range want {
		if got := plainSum(t, p2, sop); got != sum {
			t.Errorf("instance %s decrypts differently after rotation", sop)
		}
	}
	pOld, err := buildPipeline(ctx, cfg, pool, oldKEK, "", log)
	if err != nil {
		t.Fatal(err)
	}
	for sop := range want {
		if rc, _, err := pOld.Open(ctx, sop); err == nil {
			rc.Close()
			t.Errorf("instance %s still opens with the old KEK", sop)
		}
	}
	m2, err := chain.LoadMaster(masterPath(cfg), reopened)
	if err != nil {
		t.Fatal(err)
	}
	if got := issuer(m2); got != wantIssuer {
		t.Errorf("issuer after rotation %s, want %s", got, wantIssuer)
	}
}

func TestKeysRotateRefuses(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	dir := t.TempDir()
	kekFile := filepath.Join(dir, "kek")
	t.Setenv("DATABASE_URL", pool.Config().ConnString())
	t.Setenv("MEDIMINT_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("MEDIMINT_KEK_FILE", kekFile)
	t.Setenv("MEDIMINT_KMS_KEY_ID", "")
	if _, err := pool.Exec(ctx, `INSERT INTO study_keys (study_instance_uid, kek_id, wrapped_dek) VALUES ('1.2.3', 'local:0000000000000000', '\x00')`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		setup  func()
		args   []string
		code   int
		stderr string
	}{
		{"no new KEK", nil, []string{"rotate"}, 2, "usage: medimint keys rotate"},
		{"both new KEKs", nil, []string{"rotate", "-new-kek", "x", "-new-kms-key-id", "y"}, 2, "usage: medimint keys rotate"},
		{"unknown command", nil, []string{"frob"}, 2, `unknown command "frob"`},
		{"no current KEK", nil, []string{"rotate", "-new-kek", filepath.Join(dir, "new")}, 1, "MEDIMINT_KEK_FILE"},
		{"same KEK", func() { _, _ = envelope.OpenLocalKEK(kekFile) }, []string{"rotate", "-new-kek", kekFile}, 2, "the new KEK is the current one"},
		{"foreign KEK", nil, []string{"rotate", "-new-kek", filepath.Join(dir, "new")}, 1, "neither the current nor the new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			var stderr bytes.Buffer
			if code := run(ctx, append([]string{"keys"}, tt.args...), io.Discard, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
		})
	}
	var kek string
	if err := pool.QueryRow(ctx, `SELECT kek_id FROM study_keys`).Scan(&kek); err != nil || kek != "local:0000000000000000" {
		t.Errorf("refused rotation changed a row: %q %v", kek, err)
	}
}

func plainSum(t *testing.T, p *mint.Pipeline, sop string) [32]byte {
	t.Helper()
	rc, _, err := p.Open(context.Background(), sop)
	if err != nil {
		t.Fatalf("open %s: %v", sop, err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatalf("read %s: %v", sop, err)
	}
	return [32]byte(h.Sum(nil))
}
