package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/mint"
)

// needTool skips the test when a tool is missing, unless
// MEDIMINT_REQUIRE_TOOLS says the machine must have it.
func needTool(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s unavailable and MEDIMINT_REQUIRE_TOOLS is set: %v", what, err)
	}
	t.Skipf("%s unavailable: %v", what, err)
}

// TestDicomwebClient runs gateway/jstest/dicomweb.test.cjs: the npm
// dicomweb-client package (what OHIF uses) stores, searches and retrieves
// through the gateway, and the bytes it gets back are compared with what
// was sent.
func TestDicomwebClient(t *testing.T) {
	node, err := exec.LookPath("node")
	needTool(t, "node", err)
	dir, err := filepath.Abs("jstest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "dicomweb-client")); err != nil {
		npm, err := exec.LookPath("npm")
		needTool(t, "npm", err)
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		needTool(t, "npm ci in gateway/jstest", errWithOutput(err, out))
	}

	e := newEnv(t, Config{}, mint.RejectDuplicates)
	study := dicom.NewUID()
	patientID := "JS-" + dicom.NewUID()[5:15]
	series := dicom.NewUID()
	tmp := t.TempDir()
	type inst struct {
		File      string   `json:"file"`
		Series    string   `json:"series"`
		SOP       string   `json:"sop"`
		Frames    []string `json:"frames"`
		PixelData string   `json:"pixelData"`
	}
	manifest := struct {
		URL       string `json:"url"`
		PatientID string `json:"patientID"`
		Study     string `json:"study"`
		Instances []inst `json:"instances"`
	}{URL: e.url, PatientID: patientID, Study: study}
	for i, sample := range []struct {
		name   string
		frames int
		series string
	}{
		{"CT_small.dcm", 1, series},
		{"MR_small.dcm", 1, series},
		{"SC_rgb_2frame.dcm", 2, dicom.NewUID()},
	} {
		id := newIDs(study, sample.series)
		obj := instance(t, sample.name, id, dicom.NewStrings(tag.PatientID, dicom.LO, patientID))
		it := inst{File: filepath.Join(tmp, sprintf("%d.dcm", i)), Series: id.series, SOP: id.sop, PixelData: filepath.Join(tmp, sprintf("%d.pix", i))}
		pix := pixelData(t, obj)
		writeFile(t, it.File, obj)
		writeFile(t, it.PixelData, pix)
		n := len(pix) / sample.frames
		for k := range sample.frames {
			f := filepath.Join(tmp, sprintf("%d.frame%d", i, k+1))
			writeFile(t, f, pix[k*n:(k+1)*n])
			it.Frames = append(it.Frames, f)
		}
		manifest.Instances = append(manifest.Instances, it)
	}
	mf := filepath.Join(tmp, "manifest.json")
	b, _ := json.Marshal(manifest)
	writeFile(t, mf, b)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dicomweb.test.cjs", mf)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dicomweb-client test failed: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

type outputError struct {
	err error
	out []byte
}

func (e *outputError) Error() string { return e.err.Error() + ": " + string(e.out) }

func errWithOutput(err error, out []byte) error {
	if err == nil {
		return nil
	}
	return &outputError{err, out}
}
