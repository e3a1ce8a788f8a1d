package mint

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dimse"
	"github.com/medimint/medimint/index"
)

func requireTool(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is required (MEDIMINT_REQUIRE_TOOLS is set): %v", tool, err)
			}
			t.Skipf("%s not installed (apt-get install -y dcmtk): %v", tool, err)
		}
	}
}

// startDIMSE serves the pipeline over DIMSE on a loopback port.
func startDIMSE(t testing.TB, p *Pipeline) string {
	t.Helper()
	h := DIMSE{P: p}
	srv, err := dimse.NewServer(dimse.Config{AETitle: "MEDIMINT", Store: h, Find: h, Retrieve: h,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func TestDIMSEWithDcmtk(t *testing.T) {
	requireTool(t, "storescu", "findscu", "getscu")
	e := newEnv(t, RejectDuplicates)
	port := startDIMSE(t, e.p)
	files := []string{"CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm"}
	args := []string{"-R", "-aec", "MEDIMINT", "-aet", "TESTSCU", "127.0.0.1", port}
	for _, f := range files {
		args = append(args, filepath.Join(samples, f))
	}
	if out, err := exec.Command("storescu", args...).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	for _, f := range files {
		// dcmtk re-encodes what it sends (group lengths, padding), so
		// compare content here; the raw-bytes check uses our own SCU below.
		src := readSample(t, f)
		pf, err := dicom.ParseBytes(src, dicom.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := e.retrieve(t, pf.Dataset.String(dicom.TagSOPInstanceUID))
		g, err := dicom.ParseBytes(got, dicom.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g.Dataset.Get(dicom.TagPixelData).Value, pf.Dataset.Get(dicom.TagPixelData).Value) {
			t.Errorf("%s: stored pixel data differs from the file's", f)
		}
	}

	// A resend is a duplicate: storescu reports the failure status.
	out, _ := exec.Command("storescu", "-v", "-aec", "MEDIMINT", "127.0.0.1", port, filepath.Join(samples, "CT_small.dcm")).CombinedOutput()
	if !strings.Contains(string(out), "Status: 0x111") {
		t.Errorf("duplicate C-STORE: %s", out)
	}

	// Our SCU sends the file's data set bytes unchanged: they are stored
	// exactly, after File Meta Information of our making.
	rgb := readSample(t, "OBXXXX1A.dcm")
	rf, _ := dicom.ParseBytes(rgb, dicom.ReadOptions{})
	cls, inst := rf.Dataset.String(dicom.TagSOPClassUID), rf.Dataset.String(dicom.TagSOPInstanceUID)
	c, err := dimse.Associate(e.ctx, "127.0.0.1:"+port, dimse.ClientConfig{CallingAE: "SCU", CalledAE: "MEDIMINT",
		Contexts: []dimse.ProposedContext{{AbstractSyntax: cls, TransferSyntaxes: []string{rf.TransferSyntax.UID}}}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Store(e.ctx, cls, inst, rf.TransferSyntax.UID, bytes.NewReader(rgb[rf.DatasetOffset:]))
	c.Release(e.ctx)
	if err != nil || st.Code != 0 {
		t.Fatalf("C-STORE: %+v %v", st, err)
	}
	got := e.retrieve(t, inst)
	g, err := dicom.ParseBytes(got, dicom.ReadOptions{})
	if err != nil || !bytes.Equal(got[g.DatasetOffset:], rgb[rf.DatasetOffset:]) {
		t.Errorf("data set bytes not stored as received (%v)", err)
	}

	// C-FIND answers from the index.
	out, err = exec.Command("findscu", "-S", "-aec", "MEDIMINT", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=CompressedSamples*",
		"-k", "StudyInstanceUID", "-k", "ModalitiesInStudy", "127.0.0.1", port).CombinedOutput()
	if err != nil {
		t.Fatalf("findscu: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "(0020,000d)"); n < 1 {
		t.Errorf("findscu found %d studies:\n%s", n, out)
	}

	// C-GET returns the stored data set bytes.
	dir := t.TempDir()
	ct := readSample(t, "CT_small.dcm")
	cf, _ := dicom.ParseBytes(ct, dicom.ReadOptions{})
	out, err = exec.Command("getscu", "-S", "-aec", "MEDIMINT", "-od", dir, "-k", "QueryRetrieveLevel=IMAGE",
		"-k", "StudyInstanceUID="+cf.Dataset.String(dicom.TagStudyInstanceUID),
		"-k", "SeriesInstanceUID="+cf.Dataset.String(dicom.TagSeriesInstanceUID),
		"-k", "SOPInstanceUID="+cf.Dataset.String(dicom.TagSOPInstanceUID), "127.0.0.1", port).CombinedOutput()
	if err != nil {
		t.Fatalf("getscu: %v\n%s", err, out)
	}
	got, err = os.ReadFile(filepath.Join(dir, "CT."+cf.Dataset.String(dicom.TagSOPInstanceUID)))
	if err != nil {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("getscu wrote %v: %v\n%s", entries, err, out)
	}
	rc, err := e.p.OpenDataset(e.ctx, mustRef(t, e, cf.Dataset.String(dicom.TagSOPInstanceUID)))
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc)
	rc.Close()
	whole := e.retrieve(t, cf.Dataset.String(dicom.TagSOPInstanceUID))
	if wf, err := dicom.ParseBytes(whole, dicom.ReadOptions{}); err != nil || !bytes.Equal(stored, whole[wf.DatasetOffset:]) {
		t.Errorf("OpenDataset is not the stored data set (%v)", err)
	}
	g, err = dicom.ParseBytes(got, dicom.ReadOptions{})
	if err != nil || !bytes.Equal(g.Dataset.Get(dicom.TagPixelData).Value, cf.Dataset.Get(dicom.TagPixelData).Value) {
		t.Errorf("C-GET pixel data differs (%v)", err)
	}
}

func mustRef(t *testing.T, e *env, sop string) index.InstanceRef {
	t.Helper()
	rc, ref, err := e.p.Open(e.ctx, sop)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	return ref
}
