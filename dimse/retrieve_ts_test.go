package dimse

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/medimint/medimint/dicom"
)

const (
	dataSetTrailingPadding = dicom.Tag(0xFFFCFFFC)
	jpegInst               = "2.25.1000000000000000000000000000000000013"
	jpegSeries             = "2.25.1000000000000000000000000000000000014"
)

// buildMixedArchive stores the MR study with each instance in another
// transfer syntax (implicit, explicit, big endian) and adds a JPEG
// Baseline instance to it.
func buildMixedArchive(t *testing.T) (dir string, stored map[string]string) {
	t.Helper()
	requireTool(t, "dcmconv", "dcmodify")
	dir = t.TempDir()
	a := filepath.Join(dir, "MR_a.dcm")
	mustRun(t, "dcmconv", "+ti", sample(t, "MR_small.dcm"), a)
	b := filepath.Join(dir, "MR_b.dcm")
	mustRun(t, "dcmconv", "+te", sample(t, "MR_small.dcm"), b)
	mustRun(t, "dcmodify", "-nb", "-m", "(0008,0018)="+mrInstB, b)
	c := filepath.Join(dir, "MR_c.dcm")
	mustRun(t, "dcmconv", "+tb", sample(t, "MR_small.dcm"), c)
	mustRun(t, "dcmodify", "-nb", "-m", "(0008,0018)="+mrInstC, "-m", "(0020,000e)="+mrSeriesB, c)
	j := filepath.Join(dir, "SC_jpeg.dcm")
	mustRun(t, "dcmconv", sample(t, "SC_rgb_jpeg_dcmtk.dcm"), j)
	mustRun(t, "dcmodify", "-nb", "-m", "(0008,0018)="+jpegInst, "-m", "(0020,000d)="+mrStudy, "-m", "(0020,000e)="+jpegSeries, "-m", "(0010,0020)=4MR1", j)
	stored = map[string]string{}
	for _, f := range []string{a, b, c, j} {
		m := metaOf(t, f).Meta
		stored[m.String(dicom.TagMediaStorageSOPInstanceUID)] = m.String(dicom.TagTransferSyntaxUID)
	}
	want := map[string]string{mrStudyInstances[0]: dicom.ImplicitVRLittleEndian, mrInstB: dicom.ExplicitVRLittleEndian, mrInstC: dicom.ExplicitVRBigEndian, jpegInst: dicom.JPEGBaseline8Bit}
	for inst, ts := range want {
		if stored[inst] != ts {
			t.Fatalf("archive: %s stored as %q, want %s", inst, stored[inst], ts)
		}
	}
	return dir, stored
}

// parsedDataset returns the data set of the Part 10 file at path.
func parsedDataset(t *testing.T, path string) *dicom.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dicom.ParseBytes(b, dicom.ReadOptions{})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// diffValues compares two data sets by tags and (little endian) values,
// recursively; VRs are not compared (an implicit VR reader guesses
// them) and neither are group lengths or trailing padding (storescp
// drops it).
func diffValues(a, b *dicom.Dataset, path string) string {
	strip := func(ds *dicom.Dataset) []dicom.Element {
		var out []dicom.Element
		for _, e := range ds.Elements {
			if !e.Tag.IsGroupLength() && e.Tag != dataSetTrailingPadding {
				out = append(out, e)
			}
		}
		return out
	}
	ea, eb := strip(a), strip(b)
	for i := range max(len(ea), len(eb)) {
		if i >= len(ea) || i >= len(eb) {
			return fmt.Sprintf("%s: %d elements vs %d", path, len(ea), len(eb))
		}
		x, y := &ea[i], &eb[i]
		p := path + x.Tag.String()
		switch {
		case x.Tag != y.Tag:
			return fmt.Sprintf("%s: tag %s vs %s", path, x.Tag, y.Tag)
		case len(x.Items) != len(y.Items):
			return fmt.Sprintf("%s: %d items vs %d", p, len(x.Items), len(y.Items))
		case (x.Fragments == nil) != (y.Fragments == nil):
			return p + ": encapsulated in one only"
		case !bytes.Equal(x.Value, y.Value):
			return p + ": value differs"
		}
		if x.Fragments != nil {
			if len(x.Fragments.Items) != len(y.Fragments.Items) {
				return p + ": fragment count differs"
			}
			for k := range x.Fragments.Items {
				if !bytes.Equal(x.Fragments.Items[k].Data, y.Fragments.Items[k].Data) {
					return fmt.Sprintf("%s: fragment %d differs", p, k)
				}
			}
		}
		for k := range x.Items {
			if d := diffValues(x.Items[k], y.Items[k], fmt.Sprintf("%s[%d].", p, k)); d != "" {
				return d
			}
		}
	}
	return ""
}

// checkReceived checks that dir holds exactly the instances of want, each
// in the transfer syntax want gives and with the archive's data set.
func checkReceived(t *testing.T, archive, dir string, want map[string]string) {
	t.Helper()
	got := storedInstances(t, dir)
	if len(got) != len(want) {
		t.Errorf("received %d instances, want %d: %v", len(got), len(want), got)
	}
	for inst, ts := range want {
		p, ok := got[inst]
		if !ok {
			t.Errorf("instance %s not received", inst)
			continue
		}
		g := parsedDataset(t, p)
		if g.TransferSyntax.UID != ts {
			t.Errorf("instance %s received in %s, want %s", inst, g.TransferSyntax.UID, ts)
		}
		src := parsedDataset(t, archiveFile(t, archive, inst))
		if d := diffValues(&src.Dataset, &g.Dataset, ""); d != "" {
			t.Errorf("instance %s (stored %s, received %s): %s", inst, src.TransferSyntax.UID, ts, d)
		}
	}
}

func counter(out, name string) string {
	m := regexp.MustCompile(`(?m)`+name+` Suboperations\s+: (\d+)\s*$`).FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

// TestGetSCUTransferSyntaxes retrieves instances stored in implicit,
// explicit, big endian and JPEG Baseline transfer syntaxes with getscu
// proposing various storage transfer syntaxes: native instances arrive in
// the syntax accepted (transcoded if need be) with the stored data set;
// the JPEG instance arrives as stored or, if its syntax was not
// accepted, fails and is counted and listed as failed.
func TestGetSCUTransferSyntaxes(t *testing.T) {
	requireTool(t, "getscu")
	checkNoLeak(t)
	archive, _ := buildMixedArchive(t)
	srv := startServer(t, Config{AETitle: "MEDIMINT", Retrieve: NewDirIndex(archive)})
	natives := func(ts string) map[string]string {
		return map[string]string{mrStudyInstances[0]: ts, mrInstB: ts, mrInstC: ts}
	}
	study := []string{"-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + mrStudy}
	for _, c := range []struct {
		name   string
		args   []string
		want   map[string]string
		failed string
		status string
	}{
		// getscu's default: Explicit LE, Big Endian, Implicit LE in one
		// context per class; Explicit LE is accepted.
		{"Default", study, natives(dicom.ExplicitVRLittleEndian), "1", "B000"},
		// (getscu 3.6.7's +xi proposes Explicit LE only for storage, so
		// implicit targets are covered by TestMoveSCUTransferSyntaxes.)
		{"PreferDeflated", append([]string{"+xd"}, study...), natives(dicom.DeflatedExplicitVRLittleEndian), "1", "B000"},
		{"PreferBig", append([]string{"+xb"}, study...), natives(dicom.ExplicitVRBigEndian), "1", "B000"},
		// JPEG Baseline first: the JPEG instance goes as stored; native
		// instances are never compressed, so they fail.
		{"PreferJPEG", append([]string{"+xy"}, study...), map[string]string{jpegInst: dicom.JPEGBaseline8Bit}, "3", "B000"},
		// Only the JPEG instance, which no context takes: every
		// sub-operation failed, a failure status (A702).
		{"JPEGNotAccepted", []string{"-S", "-k", "QueryRetrieveLevel=SERIES", "-k", "StudyInstanceUID=" + mrStudy, "-k", "SeriesInstanceUID=" + jpegSeries}, nil, "1", "A702"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"-d", "-aet", "GETSCU", "-aec", "MEDIMINT", "-od", dir}, c.args...)
			out, _ := run(t, "getscu", append(args, "127.0.0.1", srv.port)...)
			checkReceived(t, archive, dir, c.want)
			if got := counter(out, "Failed"); got != c.failed {
				t.Errorf("failed sub-operations %q, want %s", got, c.failed)
			}
			if !regexp.MustCompile(`(?i)DIMSE Status\s+: 0x` + c.status).MatchString(out) {
				t.Errorf("final status is not 0x%s", c.status)
			}
			if t.Failed() {
				t.Log(out)
			}
		})
	}
}

// TestMoveSCUTransferSyntaxes moves the mixed archive to storescp
// accepting all syntaxes (every instance arrives as stored) and only
// Implicit VR Little Endian (native instances transcoded, the JPEG one
// failed).
func TestMoveSCUTransferSyntaxes(t *testing.T) {
	requireTool(t, "movescu")
	checkNoLeak(t)
	archive, stored := buildMixedArchive(t)
	for _, c := range []struct {
		name   string
		scp    []string
		want   map[string]string
		failed string
		status string
	}{
		{"AcceptAll", []string{"+xa"}, stored, "0", "0000"},
		{"ImplicitOnly", []string{"+xi"}, map[string]string{mrStudyInstances[0]: dicom.ImplicitVRLittleEndian, mrInstB: dicom.ImplicitVRLittleEndian, mrInstC: dicom.ImplicitVRLittleEndian}, "1", "B000"},
		{"PreferBig", []string{"+xb"}, map[string]string{mrStudyInstances[0]: dicom.ImplicitVRLittleEndian, mrInstB: dicom.ExplicitVRLittleEndian, mrInstC: dicom.ExplicitVRBigEndian}, "1", "B000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			destDir := t.TempDir()
			destPort := startStoreSCP(t, "DEST", destDir, c.scp...)
			srv := startServer(t, Config{AETitle: "MEDIMINT", Retrieve: NewDirIndex(archive), MoveDestinations: map[string]string{"DEST": "127.0.0.1:" + destPort}})
			out, _ := run(t, "movescu", "-d", "-S", "-aet", "MOVESCU", "-aec", "MEDIMINT", "-aem", "DEST",
				"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+mrStudy, "127.0.0.1", srv.port)
			checkReceived(t, archive, destDir, c.want)
			if got := counter(out, "Failed"); got != c.failed {
				t.Errorf("failed sub-operations %q, want %s", got, c.failed)
			}
			if !regexp.MustCompile(`(?i)DIMSE Status\s+: 0x` + c.status).MatchString(out) {
				t.Errorf("final status is not 0x%s", c.status)
			}
			if t.Failed() {
				t.Log(out)
			}
		})
	}
}
