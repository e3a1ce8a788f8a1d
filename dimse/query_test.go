package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

const (
	mrStudy   = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
	mrSeriesA = "1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457"
	mrSeriesB = "2.25.1000000000000000000000000000000000002"
	mrInstB   = "2.25.1000000000000000000000000000000000011"
	mrInstC   = "2.25.1000000000000000000000000000000000012"
)

// buildArchive makes a directory of Part-10 files for the query/retrieve
// tests: six patients, one of them (4MR1) with a study of two series and
// three instances.
func buildArchive(t *testing.T) string {
	t.Helper()
	requireTool(t, "dcmconv", "dcmodify")
	dir := t.TempDir()
	for _, name := range []string{"CT_small.dcm", "MR_small.dcm", "MR2_UNCR.dcm", "US1_UNCR.dcm", "SC_rgb.dcm", "rtplan.dcm"} {
		mustRun(t, "dcmconv", "+te", "-p", sample(t, name), filepath.Join(dir, name))
	}
	b := filepath.Join(dir, "MR_b.dcm")
	mustRun(t, "dcmconv", "+te", "-p", sample(t, "MR_small.dcm"), b)
	mustRun(t, "dcmodify", "-nb", "-m", "(0008,0018)="+mrInstB, b)
	c := filepath.Join(dir, "MR_c.dcm")
	mustRun(t, "dcmconv", "+te", "-p", sample(t, "MR_small.dcm"), c)
	mustRun(t, "dcmodify", "-nb", "-m", "(0008,0018)="+mrInstC, "-m", "(0020,000e)="+mrSeriesB, "-m", "(0008,0060)=OT", c)
	return dir
}

// findscu runs findscu and returns the response identifiers it extracted.
func findscu(t *testing.T, port string, args ...string) ([]*dicom.Dataset, string) {
	t.Helper()
	out := t.TempDir()
	all := append([]string{"-v", "-X", "-od", out, "-aet", "FINDSCU", "-aec", "MEDIMINT"}, args...)
	all = append(all, "127.0.0.1", port)
	log, err := run(t, "findscu", all...)
	if err != nil {
		t.Fatalf("findscu %v: %v\n%s", all, err, log)
	}
	files, _ := filepath.Glob(filepath.Join(out, "rsp*.dcm"))
	sort.Strings(files)
	var res []*dicom.Dataset
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := dicom.ParseBytes(b, dicom.ReadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		res = append(res, &file.Dataset)
	}
	return res, log
}

func values(res []*dicom.Dataset, t dicom.Tag) []string {
	var out []string
	for _, ds := range res {
		out = append(out, ds.String(t))
	}
	sort.Strings(out)
	return out
}

func TestFindSCU(t *testing.T) {
	requireTool(t, "findscu")
	checkNoLeak(t)
	archive := buildArchive(t)
	ts := startServer(t, Config{AETitle: "MEDIMINT", Find: NewDirIndex(archive)})

	cases := []struct {
		name   string
		args   []string
		key    dicom.Tag
		want   []string
		status string // substring of findscu's log, if checked
	}{
		{"PatientRoot/PATIENT/all", []string{"-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID", "-k", "PatientName"},
			tag.PatientID, []string{"13US1", "1CT1", "4MR1", "5MR2", "ID1", "id00001"}, ""},
		{"PatientRoot/PATIENT/wildcard", []string{"-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID", "-k", "PatientName=compressedsamples^MR*"},
			tag.PatientID, []string{"4MR1", "5MR2"}, ""},
		{"PatientRoot/STUDY", []string{"-P", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=4MR1", "-k", "StudyInstanceUID", "-k", "NumberOfStudyRelatedInstances"},
			tag.NumberOfStudyRelatedInstances, []string{"3"}, ""},
		{"PatientRoot/SERIES", []string{"-P", "-k", "QueryRetrieveLevel=SERIES", "-k", "PatientID=4MR1", "-k", "StudyInstanceUID=" + mrStudy, "-k", "SeriesInstanceUID", "-k", "Modality"},
			tag.Modality, []string{"MR", "OT"}, ""},
		{"PatientRoot/IMAGE", []string{"-P", "-k", "QueryRetrieveLevel=IMAGE", "-k", "PatientID=4MR1", "-k", "StudyInstanceUID=" + mrStudy, "-k", "SeriesInstanceUID=" + mrSeriesA, "-k", "SOPInstanceUID"},
			tag.SOPInstanceUID, []string{"1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457", mrInstB}, ""},
		{"StudyRoot/STUDY/dates", []string{"-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyDate=20040101-20041231", "-k", "PatientID"},
			tag.PatientID, []string{"13US1", "1CT1", "4MR1", "5MR2"}, ""},
		{"StudyRoot/STUDY/modalities", []string{"-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "ModalitiesInStudy=OT", "-k", "PatientID", "-k", "NumberOfStudyRelatedSeries"},
			tag.PatientID, []string{"4MR1", "ID1"}, ""},
		{"StudyRoot/SERIES", []string{"-S", "-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID=" + mrStudy, "-k", "SeriesInstanceUID", "-k", "NumberOfSeriesRelatedInstances"},
			tag.NumberOfSeriesRelatedInstances, []string{"1", "2"}, ""},
		{"StudyRoot/IMAGE/uidlist", []string{"-S", "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID=" + mrStudy, "-k", "SOPInstanceUID=" + mrInstB + `\` + mrInstC},
			tag.SOPInstanceUID, []string{mrInstB, mrInstC}, ""},
		{"StudyRoot/PATIENT/refused", []string{"-S", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID"},
			tag.PatientID, nil, "DataSetDoesNotMatchSOPClass"},
		{"StudyRoot/nomatch", []string{"-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=nobody"},
			tag.PatientID, nil, "Success"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, log := findscu(t, ts.port, c.args...)
			if got := values(res, c.key); strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("%s = %q, want %q\n%s", c.key, got, c.want, log)
			}
			if c.status != "" && !strings.Contains(strings.ToLower(log), strings.ToLower(c.status)) {
				t.Errorf("log lacks %q:\n%s", c.status, log)
			}
		})
	}
}

func freePort(t *testing.T) string { return freePortTB(t) }

func freePortTB(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func waitListening(t testing.TB, port string) {
	t.Helper()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			return
		}
		if i == 500 {
			t.Fatalf("nothing listens on %s: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startStoreSCP runs dcmtk's storescp as a C-MOVE destination.
func startStoreSCP(t *testing.T, aet, dir string, extra ...string) string {
	t.Helper()
	requireTool(t, "storescp")
	port := freePort(t)
	args := append([]string{"-aet", aet, "-od", dir}, extra...)
	cmd := exec.Command("storescp", append(args, port)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitListening(t, port)
	return port
}

// storedInstances maps SOP Instance UID to file for a storescp/getscu
// output directory (file names are <modality>.<SOP Instance UID>).
func storedInstances(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	out := map[string]string{}
	for _, e := range ents {
		if _, uid, ok := strings.Cut(e.Name(), "."); ok {
			out[uid] = filepath.Join(dir, e.Name())
		}
	}
	return out
}

func archiveFile(t *testing.T, archive, inst string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(archive, "*.dcm"))
	for _, f := range files {
		if metaOf(t, f).Meta.String(dicom.TagMediaStorageSOPInstanceUID) == inst {
			return f
		}
	}
	t.Fatalf("instance %s not in the archive", inst)
	return ""
}

func checkRetrieved(t *testing.T, archive, dir string, want []string) {
	t.Helper()
	got := storedInstances(t, dir)
	if len(got) != len(want) {
		t.Errorf("retrieved %d instances, want %d: %v", len(got), len(want), got)
	}
	for _, inst := range want {
		f, ok := got[inst]
		if !ok {
			t.Errorf("instance %s not retrieved", inst)
			continue
		}
		if !bytes.Equal(datasetBytes(t, f), datasetBytes(t, archiveFile(t, archive, inst))) {
			t.Errorf("instance %s: retrieved data set differs", inst)
		}
	}
}

var mrStudyInstances = []string{"1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457", mrInstB, mrInstC}

func TestMoveSCU(t *testing.T) {
	requireTool(t, "movescu")
	checkNoLeak(t)
	archive := buildArchive(t)
	destDir := t.TempDir()
	destPort := startStoreSCP(t, "DEST", destDir, "+xa")
	idx := NewDirIndex(archive)
	ts := startServer(t, Config{AETitle: "MEDIMINT", Retrieve: idx, Find: idx, MoveDestinations: map[string]string{"DEST": "127.0.0.1:" + destPort}})

	t.Run("Study", func(t *testing.T) {
		out := mustRun(t, "movescu", "-d", "-S", "-aet", "MOVESCU", "-aec", "MEDIMINT", "-aem", "DEST",
			"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+mrStudy, "127.0.0.1", ts.port)
		checkRetrieved(t, archive, destDir, mrStudyInstances)
		if !regexp.MustCompile(`Remaining Suboperations\s+: 2`).MatchString(out) || !regexp.MustCompile(`Completed Suboperations\s+: 3`).MatchString(out) {
			t.Errorf("movescu output lacks the counters:\n%s", out)
		}
	})
	t.Run("UnknownDestination", func(t *testing.T) {
		out, _ := run(t, "movescu", "-v", "-S", "-aet", "MOVESCU", "-aec", "MEDIMINT", "-aem", "NOWHERE",
			"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+mrStudy, "127.0.0.1", ts.port)
		if !strings.Contains(out, "MoveDestinationUnknown") {
			t.Errorf("no A801 status:\n%s", out)
		}
	})
}

func TestGetSCU(t *testing.T) {
	requireTool(t, "getscu")
	checkNoLeak(t)
	archive := buildArchive(t)
	ts := startServer(t, Config{AETitle: "MEDIMINT", Retrieve: NewDirIndex(archive)})
	for _, c := range []struct {
		name string
		keys []string
		want []string
	}{
		{"Study", []string{"-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + mrStudy}, mrStudyInstances},
		{"Series", []string{"-S", "-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID=" + mrStudy, "-k", "SeriesInstanceUID=" + mrSeriesB}, []string{mrInstC}},
		{"PatientRootImage", []string{"-P", "-k", "QueryRetrieveLevel=IMAGE", "-k", "PatientID=4MR1", "-k", "StudyInstanceUID=" + mrStudy, "-k", "SeriesInstanceUID=" + mrSeriesA, "-k", "SOPInstanceUID=" + mrInstB}, []string{mrInstB}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"-v", "-aet", "GETSCU", "-aec", "MEDIMINT", "-od", dir}, c.keys...)
			out := mustRun(t, "getscu", append(args, "127.0.0.1", ts.port)...)
			checkRetrieved(t, archive, dir, c.want)
			if t.Failed() {
				t.Log(out)
			}
		})
	}
	_ = fmt.Sprint
}

// endlessFind emits the same match until told to stop: a C-CANCEL must
// end it.
type endlessFind struct{ emitted atomic.Int64 }

func (f *endlessFind) Find(ctx context.Context, req FindRequest, emit func(*dicom.Dataset) error) Status {
	ds := &dicom.Dataset{}
	ds.Set(dicom.NewStrings(tag.QueryRetrieveLevel, dicom.CS, req.Level))
	ds.Set(dicom.NewStrings(tag.PatientID, dicom.LO, "ENDLESS"))
	f.emitted.Store(0)
	for f.emitted.Load() < 100000 {
		f.emitted.Add(1)
		if err := emit(ds); err != nil {
			return Status{Code: StatusUnableToProcess} // overridden by Cancel
		}
	}
	return Success
}

func TestFindCancel(t *testing.T) {
	checkNoLeak(t)
	h := &endlessFind{}
	ts := startServer(t, Config{AETitle: "MEDIMINT", Find: h})
	t.Run("findscu", func(t *testing.T) {
		requireTool(t, "findscu")
		out := mustRun(t, "findscu", "-v", "--cancel", "2", "-S", "-aet", "FINDSCU", "-aec", "MEDIMINT",
			"-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID", "127.0.0.1", ts.port)
		if !strings.Contains(out, "Received Final Find Response (Cancel") {
			t.Errorf("no final Cancel response:\n%s", out)
		}
	})
	t.Run("Client", func(t *testing.T) {
		ctx := context.Background()
		c, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "GO", CalledAE: "MEDIMINT", Contexts: []ProposedContext{
			{AbstractSyntax: dicom.StudyRootQueryRetrieveFind, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release(ctx)
		q := &dicom.Dataset{}
		q.Set(dicom.NewStrings(tag.QueryRetrieveLevel, dicom.CS, "STUDY"))
		q.Set(dicom.Element{Tag: tag.PatientID, VR: dicom.LO})
		stop := errors.New("enough")
		n := 0
		st, err := c.Find(ctx, dicom.StudyRootQueryRetrieveFind, q, func(ds *dicom.Dataset) error {
			if ds.String(tag.PatientID) != "ENDLESS" {
				t.Errorf("match %v", ds)
			}
			if n++; n == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || st.Code != StatusCancel {
			t.Errorf("Find: %v %v, want the callback's error and Cancel", st, err)
		}
		if h.emitted.Load() >= 100000 {
			t.Error("the handler was not stopped")
		}
		// The association is still good for another query.
		n = 0
		_, err = c.Find(ctx, dicom.StudyRootQueryRetrieveFind, q, func(*dicom.Dataset) error { return stop })
		if !errors.Is(err, stop) {
			t.Errorf("second Find: %v", err)
		}
	})
}

// TestClientFindOverDirIndex runs our SCU against our SCP.
func TestClientFindOverDirIndex(t *testing.T) {
	checkNoLeak(t)
	archive := buildArchive(t)
	ts := startServer(t, Config{AETitle: "MEDIMINT", Find: NewDirIndex(archive)})
	ctx := context.Background()
	for _, tsUID := range []string{dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian, dicom.DeflatedExplicitVRLittleEndian, dicom.ExplicitVRBigEndian} {
		t.Run(tsUID, func(t *testing.T) {
			c, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "GO", CalledAE: "MEDIMINT", Contexts: []ProposedContext{
				{AbstractSyntax: dicom.PatientRootQueryRetrieveFind, TransferSyntaxes: []string{tsUID}}}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release(ctx)
			q := &dicom.Dataset{}
			q.Set(dicom.NewStrings(tag.QueryRetrieveLevel, dicom.CS, "STUDY"))
			q.Set(dicom.NewStrings(tag.PatientName, dicom.PN, "CompressedSamples^MR1"))
			q.Set(dicom.Element{Tag: tag.StudyInstanceUID, VR: dicom.UI})
			q.Set(dicom.Element{Tag: tag.NumberOfStudyRelatedInstances, VR: dicom.IS})
			var got []*dicom.Dataset
			st, err := c.Find(ctx, dicom.PatientRootQueryRetrieveFind, q, func(ds *dicom.Dataset) error {
				got = append(got, ds)
				return nil
			})
			if err != nil || st.Code != StatusSuccess {
				t.Fatalf("Find: %v %v", st, err)
			}
			if len(got) != 1 || got[0].String(tag.StudyInstanceUID) != mrStudy || got[0].String(tag.NumberOfStudyRelatedInstances) != "3" {
				t.Errorf("matches %+v", got)
			}
		})
	}
}
