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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/mint/pinning"
)

const samples = "../../shared/dicom-samples/pydicom"

type env struct {
	p        *Pipeline
	blobDir  string
	pinDir   string
	blobs    *blobstore.FS
	pinner   *pinning.Local
	ctx      context.Context
	src      Source
	keyCount func() int
}

func newEnv(t testing.TB, policy DuplicatePolicy) *env {
	t.Helper()
	pool := dbtest.New(t)
	e := &env{blobDir: t.TempDir(), pinDir: t.TempDir(), ctx: context.Background(), src: Source{OrgID: "org1", Transport: "test"}}
	var err error
	if e.blobs, err = blobstore.NewFS(e.blobDir); err != nil {
		t.Fatal(err)
	}
	if e.pinner, err = pinning.NewLocal(e.pinDir); err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, 32)
	rand.Read(kek)
	kw, err := envelope.NewLocalKEK(kek)
	if err != nil {
		t.Fatal(err)
	}
	e.p, err = New(Config{Pool: pool, Blobs: e.blobs, Keys: kw, Pinner: e.pinner, Duplicates: policy, StableAge: time.Second, Issuer: "GISSUER", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.keyCount = func() int {
		var n int
		if err := pool.QueryRow(e.ctx, `SELECT count(*) FROM study_keys`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return e
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samples, name))
	if err != nil {
		t.Fatalf("sample %s: %v", name, err)
	}
	return b
}

func (e *env) retrieve(t testing.TB, sop string) []byte {
	t.Helper()
	rc, _, err := e.p.Open(e.ctx, sop)
	if err != nil {
		t.Fatalf("Open %s: %v", sop, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", sop, err)
	}
	return b
}

// blobFiles returns the contents of every file under dir.
func blobFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStorePart10RoundTrip(t *testing.T) {
	tests := []struct {
		file   string
		frames int // frames whose bytes to check against the file; 0: none
	}{
		{"CT_small.dcm", 1},
		{"MR_small.dcm", 1},
		{"MR_small_implicit.dcm", 1},
		{"MR_small_bigendian.dcm", 0},
		{"SC_rgb_2frame.dcm", 2},
		{"JPEG2000.dcm", 1},
		{"SC_rgb_rle_2frame.dcm", 2},
		{"emri_small_jpeg_2k_lossless.dcm", 10},
		{"image_dfl.dcm", 0},
		{"MR-SIEMENS-DICOM-WithOverlays.dcm", 0},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			e := newEnv(t, RejectDuplicates) // some samples share SOP Instance UIDs
			src := readSample(t, tc.file)
			st, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(src))
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != int64(len(src)) || st.Outcome != Created || st.SOPInstanceUID == "" {
				t.Errorf("stored %+v, file %d bytes", st, len(src))
			}
			if got := e.retrieve(t, st.SOPInstanceUID); !bytes.Equal(got, src) {
				t.Fatalf("retrieved %d bytes differ from the %d stored", len(got), len(src))
			}
			// Frames come from the stored plaintext by offset alone.
			f, err := dicom.ParseBytes(src, dicom.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pix := f.Dataset.Get(dicom.TagPixelData)
			for k := range tc.frames {
				r, fi, err := e.p.Frame(e.ctx, st.SOPInstanceUID, k)
				if err != nil {
					t.Fatalf("frame %d: %v", k+1, err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				var want []byte
				if pix.Fragments != nil {
					spans, _ := fi.Frame(k)
					for _, s := range spans {
						for _, it := range pix.Fragments.Items {
							if it.Offset == s.Offset {
								want = append(want, it.Data...)
							}
						}
					}
				} else {
					want = pix.Value[int64(k)*fi.FrameLength : int64(k+1)*fi.FrameLength]
				}
				if len(want) == 0 || !bytes.Equal(got, want) {
					t.Errorf("frame %d: %d bytes, want %d", k+1, len(got), len(want))
				}
			}
			if _, _, err := e.p.Frame(e.ctx, st.SOPInstanceUID, max(tc.frames, 1)+20); !errors.Is(err, ErrNotFound) {
				t.Errorf("frame past the end: %v", err)
			}
		})
	}
	// Metadata was precomputed with bulk data as URIs.
	e := newEnv(t, RejectDuplicates)
	var buf bytes.Buffer
	st, _ := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(readSample(t, "OBXXXX1A.dcm")))
	if err := e.p.Index().Metadata(e.ctx, &buf, "http://x", st.StudyInstanceUID, "", st.SOPInstanceUID); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"7FE00010":{"vr":"OW","BulkDataURI":"http://x/studies/`) {
		t.Errorf("metadata: %s", buf.String())
	}
	if _, sp, err := e.p.Index().Bulk(e.ctx, st.SOPInstanceUID, "7FE00010"); err != nil || sp.Length == 0 {
		t.Errorf("bulk of pixel data: %v %v", sp, err)
	}
}

func TestStorePart10WithoutMeta(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	src := readSample(t, "ExplVR_LitEndNoMeta.dcm")
	st, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	got := e.retrieve(t, st.SOPInstanceUID)
	f, err := dicom.ParseBytes(got, dicom.ReadOptions{})
	if err != nil || f.Meta.String(dicom.TagTransferSyntaxUID) != dicom.ExplicitVRLittleEndian {
		t.Fatalf("stored object is not Part 10: %v", err)
	}
	if !bytes.Equal(got[f.DatasetOffset:], src) {
		t.Error("data set bytes changed")
	}
}

func TestStoreDataset(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	for _, name := range []string{"CT_small.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm", "image_dfl.dcm"} {
		t.Run(name, func(t *testing.T) {
			src := readSample(t, name)
			f, err := dicom.ParseBytes(src, dicom.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			data := src[f.DatasetOffset:]
			cls, inst := f.Dataset.String(dicom.TagSOPClassUID), f.Dataset.String(dicom.TagSOPInstanceUID)
			st, err := e.p.StoreDataset(e.ctx, e.src, f.TransferSyntax.UID, cls, inst, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			got := e.retrieve(t, st.SOPInstanceUID)
			g, err := dicom.ParseBytes(got, dicom.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[g.DatasetOffset:], data) {
				t.Error("data set bytes differ from those received")
			}
			if g.Meta.String(dicom.TagMediaStorageSOPInstanceUID) != inst || g.Meta.String(dicom.TagTransferSyntaxUID) != f.TransferSyntax.UID {
				t.Errorf("meta: %v", g.Meta.Elements)
			}
		})
	}
}

func TestStoreRejects(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	ct := readSample(t, "CT_small.dcm")
	f, _ := dicom.ParseBytes(ct, dicom.ReadOptions{})
	data := ct[f.DatasetOffset:]
	cls, inst := f.Dataset.String(dicom.TagSOPClassUID), f.Dataset.String(dicom.TagSOPInstanceUID)
	noStudy := dump2dcm(t, `(0008,0016) UI =CTImageStorage
(0008,0018) UI [1.2.3.4.5]
(0020,000e) UI [1.2.3.4.6]
`)
	junk := make([]byte, 4096)
	rand.Read(junk)
	tests := []struct {
		name   string
		store  func() (Stored, error)
		err    error
		status uint16
	}{
		{"random bytes", func() (Stored, error) { return e.p.StorePart10(e.ctx, e.src, bytes.NewReader(junk)) }, ErrNotDICOM, 0xC000},
		{"empty", func() (Stored, error) { return e.p.StorePart10(e.ctx, e.src, bytes.NewReader(nil)) }, ErrNotDICOM, 0xC000},
		{"truncated", func() (Stored, error) {
			return e.p.StorePart10(e.ctx, e.src, bytes.NewReader(readSample(t, "MR_truncated.dcm")))
		}, ErrNotDICOM, 0xC000},
		{"truncated in pixel data", func() (Stored, error) {
			return e.p.StorePart10(e.ctx, e.src, bytes.NewReader(ct[:len(ct)-1000]))
		}, ErrNotDICOM, 0xC000},
		{"sop instance mismatch", func() (Stored, error) {
			return e.p.StoreDataset(e.ctx, e.src, dicom.ExplicitVRLittleEndian, cls, inst+".9", bytes.NewReader(data))
		}, ErrMismatch, 0xA900},
		{"sop class mismatch", func() (Stored, error) {
			return e.p.StoreDataset(e.ctx, e.src, dicom.ExplicitVRLittleEndian, "1.2.840.10008.5.1.4.1.1.4", inst, bytes.NewReader(data))
		}, ErrMismatch, 0xA900},
		{"missing study uid", func() (Stored, error) { return e.p.StorePart10(e.ctx, e.src, bytes.NewReader(noStudy)) }, ErrMissingUID, 0xC000},
		{"header too large", func() (Stored, error) {
			cfg := e.p.cfg
			cfg.MaxHeader = 100
			p2, _ := New(cfg)
			return p2.StorePart10(e.ctx, e.src, bytes.NewReader(ct))
		}, ErrHeaderTooLarge, 0xA700},
		{"values too large", func() (Stored, error) {
			cfg := e.p.cfg
			cfg.MaxInMemory = 1000
			p2, _ := New(cfg)
			return p2.StorePart10(e.ctx, e.src, bytes.NewReader(ct))
		}, ErrTooLarge, 0xA700},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.store()
			if !errors.Is(err, tc.err) || Status(err) != tc.status {
				t.Errorf("err = %v (status %04X), want %v (%04X)", err, Status(err), tc.err, tc.status)
			}
		})
	}
	if FailureReason(fmt.Errorf("x: %w", ErrMissingUID)) != 0xA900 {
		t.Error("STOW failure reason for missing UIDs")
	}
	if files := blobFiles(t, e.blobDir); len(files) != 0 {
		t.Errorf("failed stores left %d blobs", len(files))
	}
	res, err := e.p.Index().Find(e.ctx, index.Query{Level: index.Instance})
	if err != nil || len(res.Matches) != 0 {
		t.Errorf("failed stores left %d rows (%v)", len(res.Matches), err)
	}
}

// failingReader fails after n bytes, like a dropped connection.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestStoreSourceFailure(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	ct := readSample(t, "CT_small.dcm")
	_, err := e.p.StorePart10(e.ctx, e.src, &failingReader{bytes.NewReader(ct), len(ct) - 5000})
	if err == nil || errors.Is(err, ErrNotDICOM) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("err = %v", err)
	}
	if files := blobFiles(t, e.blobDir); len(files) != 0 {
		t.Errorf("left %d blobs", len(files))
	}
}

func TestTamperedBlob(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	st, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(readSample(t, "CT_small.dcm")))
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range blobFiles(t, e.blobDir) {
		b[len(b)/2] ^= 1
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rc, _, err := e.p.Open(e.ctx, st.SOPInstanceUID)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !errors.Is(err, envelope.ErrAuth) {
		t.Errorf("tampered blob read: %v", err)
	}
	if _, _, err := e.p.Frame(e.ctx, st.SOPInstanceUID, 0); err == nil {
		// The frame's chunk may or may not hold the flipped byte; the
		// ReaderAt authenticates the last chunk up front either way.
		r, _, _ := e.p.Frame(e.ctx, st.SOPInstanceUID, 0)
		if _, err := io.ReadAll(r); err == nil {
			t.Error("tampered frame read without error")
		}
	}
}

// dump2dcm builds a DICOM file from a dcmdump-style text.
func dump2dcm(t testing.TB, dump string) []byte {
	t.Helper()
	if _, err := exec.LookPath("dump2dcm"); err != nil {
		if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
			t.Fatalf("dump2dcm not installed and MEDIMINT_REQUIRE_TOOLS is set")
		}
		t.Skip("dump2dcm (dcmtk) not installed: apt-get install -y dcmtk")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.txt"), filepath.Join(dir, "out.dcm")
	if err := os.WriteFile(in, []byte(dump), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("dump2dcm", "+E", "+l", "1000000", "-q", in, out).CombinedOutput(); err != nil {
		t.Fatalf("dump2dcm: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// phiStudy returns a CT instance of a study in which every PHI attribute
// holds a distinctive marker, and its pixel data is a recognisable run.
func phiStudy(t testing.TB, study, sop string) ([]byte, []string) {
	markers := []string{"PHIMARKNAME", "PHIMARKID", "19010203", "PHIMARKACC", "PHIMARKREF", "PHIMARKADDR", "PHIMARKINST", study}
	pixels := strings.Repeat("PIXELRUN", 64*64*2/8)
	var hex []string
	for i := 0; i < len(pixels); i += 2 {
		hex = append(hex, fmt.Sprintf("%02x%02x", pixels[i+1], pixels[i]))
	}
	dump := fmt.Sprintf(`(0008,0016) UI =CTImageStorage
(0008,0018) UI [%s]
(0008,0020) DA [20240101]
(0008,0050) SH [PHIMARKACC]
(0008,0060) CS [CT]
(0008,0080) LO [PHIMARKINST]
(0008,0090) PN [PHIMARKREF]
(0010,0010) PN [PHIMARKNAME]
(0010,0020) LO [PHIMARKID]
(0010,0030) DA [19010203]
(0010,1040) LO [PHIMARKADDR]
(0020,000d) UI [%s]
(0020,000e) UI [%s.1]
(0020,0013) IS [1]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US 64
(0028,0011) US 64
(0028,0100) US 16
(0028,0101) US 16
(0028,0102) US 15
(0028,0103) US 0
(7fe0,0010) OW %s
`, sop, study, study, strings.Join(hex, `\`))
	return dump2dcm(t, dump), append(markers, "PIXELRUNPIXELRUN")
}

func TestNothingInTheClear(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	const study = "1.2.826.0.1.3680043.10.999.1"
	var markers []string
	for i := range 3 {
		b, m := phiStudy(t, study, fmt.Sprintf("%s.1.%d", study, i))
		markers = m
		if !bytes.Contains(b, []byte("DICM")) || !bytes.Contains(b, []byte("PIXELRUNPIXELRUN")) {
			t.Fatal("the PHI study lacks its own markers")
		}
		if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	// Complete the study now rather than after StableAge.
	if _, err := e.p.cfg.Pool.Exec(e.ctx, `UPDATE outbox SET available_at = now()`); err != nil {
		t.Fatal(err)
	}
	if n, err := e.p.CompleteDue(e.ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("completed %d, %v", n, err)
	}
	blobs, pins := blobFiles(t, e.blobDir), blobFiles(t, e.pinDir)
	if len(blobs) != 3 || len(pins) != 5 { // 3 instances + manifest + metadata
		t.Fatalf("%d blobs, %d pinned files", len(blobs), len(pins))
	}
	for _, files := range []map[string][]byte{blobs, pins} {
		for path, b := range files {
			for _, m := range append(markers, "DICM") {
				if bytes.Contains(b, []byte(m)) {
					t.Errorf("%s holds %q", path, m)
				}
			}
			if strings.Contains(path, study) {
				t.Errorf("path %s names the study", path)
			}
		}
	}
	// The metadata says what it should.
	var job MintJob
	if err := e.p.cfg.Pool.QueryRow(e.ctx, `SELECT payload FROM outbox WHERE kind = 'mint'`).Scan(&job); err != nil {
		t.Fatal(err)
	}
	for _, b := range pins {
		if bytes.Contains(b, []byte(`"url":"ipfs://`)) {
			s := string(b)
			for _, want := range []string{`"modalities":"CT"`, `"instance_count":3`, `"study_ref":"` + job.StudyRef, EncryptionScheme, "GISSUER"} {
				if !strings.Contains(s, want) {
					t.Errorf("NFT metadata lacks %s: %s", want, s)
				}
			}
		}
	}
}

func TestConcurrentFirstInstances(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	const study = "1.2.826.0.1.3680043.10.999.2"
	const n = 8
	files := make([][]byte, n)
	for i := range n {
		files[i], _ = phiStudy(t, study, fmt.Sprintf("%s.1.%d", study, i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.p.StorePart10(e.ctx, e.src, bytes.NewReader(files[i]))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if k := e.keyCount(); k != 1 {
		t.Errorf("%d study keys, want 1", k)
	}
	// A fresh pipeline (empty key cache) decrypts every instance.
	p2, _ := New(e.p.cfg)
	for i := range n {
		rc, _, err := p2.Open(e.ctx, fmt.Sprintf("%s.1.%d", study, i))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(b, files[i]) {
			t.Errorf("instance %d: %v", i, err)
		}
	}
}

func TestDuplicatePolicies(t *testing.T) {
	const study = "1.2.826.0.1.3680043.10.999.3"
	orig, _ := phiStudy(t, study, study+".1.1")
	// Same SOP instance, different content.
	changed := bytes.Replace(orig, []byte("PHIMARKACC"), []byte("PHIMARKACD"), 1)
	tests := []struct {
		policy      DuplicatePolicy
		same, other Outcome
		sameErr     error
		otherErr    error
		want        []byte // retrieved afterwards
	}{
		{RejectDuplicates, 0, 0, ErrDuplicate, ErrDuplicate, orig},
		{OverwriteDuplicates, Replaced, Replaced, nil, nil, changed},
		{IgnoreIdenticalDuplicates, Unchanged, 0, nil, ErrDuplicate, orig},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.policy), func(t *testing.T) {
			e := newEnv(t, tc.policy)
			if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(orig)); err != nil {
				t.Fatal(err)
			}
			st, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(orig))
			if !errors.Is(err, tc.sameErr) || (err == nil && st.Outcome != tc.same) {
				t.Errorf("identical resend: %+v, %v", st, err)
			}
			if tc.sameErr != nil && Status(err) != 0x0111 {
				t.Errorf("status %04X", Status(err))
			}
			st, err = e.p.StorePart10(e.ctx, e.src, bytes.NewReader(changed))
			if !errors.Is(err, tc.otherErr) || (err == nil && st.Outcome != tc.other) {
				t.Errorf("different content: %+v, %v", st, err)
			}
			if got := e.retrieve(t, study+".1.1"); !bytes.Equal(got, tc.want) {
				t.Error("retrieved the wrong version")
			}
			if n := len(blobFiles(t, e.blobDir)); n != 1 {
				t.Errorf("%d blobs, want 1", n)
			}
			res, _ := e.p.Index().Find(e.ctx, index.Query{Level: index.Study})
			if len(res.Matches) != 1 || res.Matches[0].String(0x00201208) != "1" {
				t.Errorf("index after duplicates: %d studies", len(res.Matches))
			}
		})
	}
}

func TestConcurrentDuplicate(t *testing.T) {
	e := newEnv(t, IgnoreIdenticalDuplicates)
	b, _ := phiStudy(t, "1.2.826.0.1.3680043.10.999.4", "1.2.826.0.1.3680043.10.999.4.1.1")
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.p.StorePart10(e.ctx, e.src, bytes.NewReader(b))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent identical store: %v", err)
		}
	}
	if n := len(blobFiles(t, e.blobDir)); n != 1 {
		t.Errorf("%d blobs, want 1", n)
	}
}

func TestSameStream(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // several 64 KiB rounds
	flipped := bytes.Clone(big)
	flipped[len(big)-1] ^= 1
	failing := io.MultiReader(bytes.NewReader(big[:70000]), iotest.ErrReader(errors.New("disk")))
	tests := []struct {
		name    string
		a, b    io.Reader
		want    bool
		wantErr bool
	}{
		{"empty", bytes.NewReader(nil), bytes.NewReader(nil), true, false},
		{"equal", bytes.NewReader(big), bytes.NewReader(big), true, false},
		{"equal, one-byte reads", iotest.OneByteReader(bytes.NewReader(big[:1000])), bytes.NewReader(big[:1000]), true, false},
		{"last byte differs", bytes.NewReader(big), bytes.NewReader(flipped), false, false},
		{"prefix", bytes.NewReader(big[:len(big)-1]), bytes.NewReader(big), false, false},
		{"prefix at a buffer boundary", bytes.NewReader(big[:64<<10]), bytes.NewReader(big), false, false},
		{"longer", bytes.NewReader(big), bytes.NewReader(big[:100]), false, false},
		{"read error", failing, bytes.NewReader(big), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sameStream(tc.a, tc.b)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("sameStream = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// A series' /metadata document is built shortly after its instances stop
// arriving, before anyone asks for it, and holds every instance.
func TestSeriesMetadataBuiltAfterIngest(t *testing.T) {
	e := newEnv(t, RejectDuplicates)
	const study = "1.2.826.0.1.3680043.10.999.7"
	for i := 1; i <= 3; i++ {
		b, _ := phiStudy(t, study, fmt.Sprintf("%s.1.%d", study, i))
		if _, err := e.p.StorePart10(e.ctx, e.src, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	pool := e.p.cfg.Pool
	deadline := time.Now().Add(10 * time.Second)
	for {
		var current bool
		var instances int
		err := pool.QueryRow(e.ctx, `SELECT sm.version = se.metadata_version, sm.instances FROM series se
JOIN series_metadata sm ON sm.series_pk = se.pk WHERE se.series_instance_uid = $1`, study+".1").Scan(&current, &instances)
		if err == nil && current && instances == 3 {
			break
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no current document for the series 10 s after its last instance (current %v, %d instances, %v)", current, instances, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
