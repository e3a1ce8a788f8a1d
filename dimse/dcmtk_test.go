package dimse

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/medimint/medimint/dicom"
)

func TestEchoSCU(t *testing.T) {
	requireTool(t, "echoscu")
	checkNoLeak(t)
	ts := startServer(t, Config{AETitle: "MEDIMINT"})
	out := mustRun(t, "echoscu", "-v", "-aet", "MODALITY", "-aec", "MEDIMINT", "127.0.0.1", ts.port)
	if !strings.Contains(out, "Received Echo Response (Success)") {
		t.Fatalf("no success echo response:\n%s", out)
	}
}

// storeCase is an input file in a transfer syntax; prepare makes it from a
// pydicom sample, with a dcmtk conversion tool when needed so that the file
// is encoded as dcmtk itself would send it.
type storeCase struct {
	name    string
	sample  string
	convert []string // tool and options; the input and output paths are appended
	ts      string
	propose []string // storescu proposal options
}

var storeCases = []storeCase{
	{name: "ExplicitLE", sample: "CT_small.dcm", convert: []string{"dcmconv", "+te"}, ts: dicom.ExplicitVRLittleEndian},
	{name: "ImplicitLE", sample: "CT_small.dcm", convert: []string{"dcmconv", "+ti"}, ts: dicom.ImplicitVRLittleEndian},
	{name: "ExplicitBE", sample: "MR_small.dcm", convert: []string{"dcmconv", "+tb"}, ts: dicom.ExplicitVRBigEndian, propose: []string{"-xb"}},
	{name: "Deflated", sample: "CT_small.dcm", convert: []string{"dcmconv", "+td"}, ts: dicom.DeflatedExplicitVRLittleEndian, propose: []string{"-xd"}},
	{name: "JPEGLosslessSV1", sample: "CT_small.dcm", convert: []string{"dcmcjpeg", "+e1"}, ts: dicom.JPEGLosslessSV1, propose: []string{"-xs"}},
	{name: "JPEGBaseline", sample: "SC_rgb.dcm", convert: []string{"dcmcjpeg", "+eb"}, ts: dicom.JPEGBaseline8Bit, propose: []string{"-xy"}},
	{name: "RLE", sample: "MR_small.dcm", convert: []string{"dcmcrle"}, ts: dicom.RLELossless, propose: []string{"-xr"}},
	{name: "JPEG2000", sample: "JPEG2000.dcm", ts: dicom.JPEG2000, propose: []string{"-xw"}},
	{name: "JPEGLSLossless", sample: "MR_small_jpeg_ls_lossless.dcm", ts: dicom.JPEGLSLossless, propose: []string{"-xt"}},
}

func (c storeCase) prepare(t *testing.T, dir string) string {
	t.Helper()
	src := sample(t, c.sample)
	if c.convert != nil {
		requireTool(t, c.convert[0])
		conv := filepath.Join(dir, c.name+"-conv.dcm")
		mustRun(t, c.convert[0], append(c.convert[1:], src, conv)...)
		src = conv
	}
	// storescu drops Data Set Trailing Padding when it sends: drop it from
	// the reference too.
	out := filepath.Join(dir, c.name+".dcm")
	mustRun(t, "dcmconv", "-p", src, out)
	return out
}

// dcmdumpClean checks that dcmdump reads path without a warning.
func dcmdumpClean(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command("dcmdump", "-q", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("dcmdump -q %s: %v\n%s", path, err, stderr.String())
	}
}

func TestStoreSCUTransferSyntaxes(t *testing.T) {
	requireTool(t, "storescu", "dcmconv")
	checkNoLeak(t)
	dir := t.TempDir()
	store, err := NewDirStore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	store.Log = testLogger(t)
	ts := startServer(t, Config{AETitle: "MEDIMINT", Store: store})
	for _, c := range storeCases {
		t.Run(c.name, func(t *testing.T) {
			in := c.prepare(t, dir)
			h := metaOf(t, in)
			if h.TransferSyntax.UID != c.ts {
				t.Fatalf("input %s is in %s, want %s", in, h.TransferSyntax.UID, c.ts)
			}
			args := append([]string{"-v", "-aet", "MODALITY", "-aec", "MEDIMINT"}, c.propose...)
			out := mustRun(t, "storescu", append(args, "127.0.0.1", ts.port, in)...)
			inst := h.Meta.String(dicom.TagMediaStorageSOPInstanceUID)
			got := store.Path(inst)
			gh := metaOf(t, got)
			if gh.TransferSyntax.UID != c.ts {
				t.Errorf("stored in %s, want %s\n%s", gh.TransferSyntax.UID, c.ts, out)
			}
			if g := gh.Meta.String(dicom.TagMediaStorageSOPClassUID); g != h.Meta.String(dicom.TagMediaStorageSOPClassUID) {
				t.Errorf("stored SOP class %s, want %s", g, h.Meta.String(dicom.TagMediaStorageSOPClassUID))
			}
			if !bytes.Equal(datasetBytes(t, got), datasetBytes(t, in)) {
				t.Errorf("stored data set differs from the input's (%d vs %d bytes)", len(datasetBytes(t, got)), len(datasetBytes(t, in)))
			}
			dcmdumpClean(t, got)
		})
	}
}

// TestStoreSCUDirectory sends many files in one association (storescu +sd)
// and runs several storescu processes at once.
func TestStoreSCUDirectory(t *testing.T) {
	requireTool(t, "storescu", "dcmconv")
	checkNoLeak(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	// Distinct instances: dcmconv keeps UIDs, so give each copy new ones
	// with dcmodify if present, else use distinct samples.
	var files []string
	for i, name := range []string{"CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm", "OT-PAL-8-face.dcm", "rtdose.dcm", "rtplan.dcm", "rtstruct.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "emri_small.dcm", "liver.dcm"} {
		p := filepath.Join(src, fmt.Sprintf("%02d.dcm", i))
		mustRun(t, "dcmconv", "+te", "-p", sample(t, name), p)
		files = append(files, p)
	}
	store, err := NewDirStore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	store.Log = testLogger(t)
	ts := startServer(t, Config{AETitle: "MEDIMINT", Store: store, MaxAssociations: 8})

	check := func(t *testing.T) {
		for _, f := range files {
			h := metaOf(t, f)
			got := store.Path(h.Meta.String(dicom.TagMediaStorageSOPInstanceUID))
			if !bytes.Equal(datasetBytes(t, got), datasetBytes(t, f)) {
				t.Errorf("%s: stored data set differs", f)
			}
		}
	}
	t.Run("OneAssociation", func(t *testing.T) {
		out := mustRun(t, "storescu", "-aet", "MODALITY", "-aec", "MEDIMINT", "-R", "+sd", "127.0.0.1", ts.port, src)
		_ = out
		check(t)
	})
	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		outs := make([]string, 4)
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = run(t, "storescu", "-aet", fmt.Sprintf("MODALITY%d", i), "-aec", "MEDIMINT", "-R", "+sd", "127.0.0.1", ts.port, src)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("storescu %d: %v\n%s", i, err, outs[i])
			}
		}
		check(t)
	})
}
