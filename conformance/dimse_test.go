//go:build conformance

package conformance

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// storescuProposal is the storescu option that proposes a file's
// transfer syntax (with the uncompressed ones): storescu never proposes a
// compressed syntax unasked.
var storescuProposal = map[string]string{
	"1.2.840.10008.1.2.4.70": "-xs",
	"1.2.840.10008.1.2.4.50": "-xy",
	"1.2.840.10008.1.2.5":    "-xr",
	"1.2.840.10008.1.2.4.80": "-xt",
	"1.2.840.10008.1.2.1.99": "-xd",
	"1.2.840.10008.1.2.1":    "-x=",
	"1.2.840.10008.1.2":      "-x=",
}

// getscuPreference is the getscu option that makes it accept a stored
// transfer syntax as C-GET storage SCP (it always accepts the uncompressed
// ones).
var getscuPreference = map[string]string{
	"1.2.840.10008.1.2.4.70": "+xs",
	"1.2.840.10008.1.2.4.50": "+xy",
	"1.2.840.10008.1.2.5":    "+xr",
	"1.2.840.10008.1.2.4.80": "+xt",
	"1.2.840.10008.1.2.1.99": "+xd",
	"1.2.840.10008.1.2.1":    "+x=",
	"1.2.840.10008.1.2":      "+x=", // getscu proposes only explicit VR LE (+xi too): implicit data comes transcoded
}

// storeDIMSE sends instances with storescu, one association per
// proposal option (storescu proposes one compressed syntax at most), to
// the SCP at port with called AE title aec.
func storeDIMSE(t testing.TB, aec string, port int, insts []Instance) {
	t.Helper()
	groups := map[string][]string{}
	var order []string
	for _, in := range insts {
		opt := storescuProposal[in.TS]
		if opt == "" {
			t.Fatalf("no storescu proposal for transfer syntax %s", in.TS)
		}
		if groups[opt] == nil {
			order = append(order, opt)
		}
		groups[opt] = append(groups[opt], in.File())
	}
	for _, opt := range order {
		// -R: only the contexts the files need. storescu halts at the
		// first failed store without an error line; -v shows each status.
		args := append([]string{opt, "-R", "-v", "-aec", aec, "-aet", "CONFSCU", "127.0.0.1", strconv.Itoa(port)}, groups[opt]...)
		out := mustDcmtk(t, "storescu", args...)
		if n := strings.Count(out, "Received Store Response (Success)"); n != len(groups[opt]) {
			t.Fatalf("storescu %s: %d of %d stores succeeded:\n%s", opt, n, len(groups[opt]), lastLines(out, 30))
		}
	}
}

// wire holds, per SOP Instance UID, the data set storescu puts on the wire
// for each corpus file. storescu re-encodes what it sends (explicit
// sequence lengths, its own deflate stream), so what an SCP gives back
// after C-STORE is compared with this, captured by dcmtk's storescp in
// bit-preserving mode, not with the file.
var wire struct {
	sync.Mutex
	data map[string][]byte
}

// wireDataset returns the data set storescu sends for in.
func wireDataset(t testing.TB, in Instance) []byte {
	t.Helper()
	wire.Lock()
	defer wire.Unlock()
	if wire.data == nil {
		wire.data = captureWire(t)
	}
	b, ok := wire.data[in.SOP]
	if !ok {
		t.Fatalf("storescp did not receive %s", in.Path)
	}
	return b
}

func captureWire(t testing.TB) map[string][]byte {
	t.Helper()
	port, dir := startStorescp(t, "WIRE")
	storeDIMSE(t, "WIRE", port, corpus.Instances)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string][]byte{}
	for _, e := range entries {
		p, err := ReadPart10(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		data[p.MetaString(tagMediaStorageSOPInstance)] = p.Dataset
	}
	return data
}

// startStorescp starts dcmtk's storescp as AE title aet, bit-preserving
// and accepting every transfer syntax, writing into a new directory; it is
// stopped when the test ends.
func startStorescp(t testing.TB, aet string) (port int, dir string) {
	t.Helper()
	dir = t.TempDir()
	port = freePort(t)
	cmd := exec.Command("storescp", "+B", "+xa", "-aet", aet, "-od", dir, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err := waitFor(30*time.Second, 50*time.Millisecond, func() (bool, error) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil, nil
	}); err != nil {
		t.Fatalf("storescp did not listen: %v\n%s", err, log.String())
	}
	return port, dir
}

// studyUIDsIn extracts Study Instance UIDs from findscu's response dumps.
var studyUIDLine = regexp.MustCompile(`\(0020,000d\) UI \[([0-9.]+)[\x00 ]?\]`)

func findStudies(t *testing.T, s *Server, keys ...string) []string {
	t.Helper()
	args := []string{"-S", "-aec", s.AETitle, "-aet", "CONFSCU", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID"}
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	args = append(args, "127.0.0.1", strconv.Itoa(s.DIMSEPort))
	out := mustDcmtk(t, "findscu", args...)
	var uids []string
	for _, m := range studyUIDLine.FindAllStringSubmatch(out, -1) {
		uids = append(uids, m[1])
	}
	slices.Sort(uids)
	return uids
}

// getStudy retrieves one study with getscu (bit-preserving) and compares
// every received file with what storescu sent. A study whose series differ
// in transfer syntax is retrieved series by series: getscu proposes one
// compressed syntax at most.
func getStudy(t *testing.T, s *Server, study string) {
	t.Helper()
	insts := corpus.Study(study)
	type retrieval struct{ level, uid, ts string }
	var rs []retrieval
	uniform := true
	for _, in := range insts {
		uniform = uniform && in.TS == insts[0].TS
	}
	if uniform {
		rs = append(rs, retrieval{"STUDY", "", insts[0].TS})
	} else {
		seen := map[string]bool{}
		for _, in := range insts {
			if !seen[in.Series] {
				seen[in.Series] = true
				rs = append(rs, retrieval{"SERIES", in.Series, in.TS})
			}
		}
	}
	dir := t.TempDir()
	for _, r := range rs {
		args := []string{"-S", "-v", "-aec", s.AETitle, "-aet", "CONFGET", "+B", "-od", dir,
			"-k", "QueryRetrieveLevel=" + r.level, "-k", "StudyInstanceUID=" + study}
		if r.uid != "" {
			args = append(args, "-k", "SeriesInstanceUID="+r.uid)
		}
		args = append(args, getscuPreference[r.ts], "127.0.0.1", strconv.Itoa(s.DIMSEPort))
		out := mustDcmtk(t, "getscu", args...)
		if strings.Contains(out, "Failed Suboperations") && !strings.Contains(out, "Number of Failed Suboperations    : 0") {
			t.Errorf("getscu %s %s: sub-operations failed:\n%s", r.level, r.uid, lastLines(out, 8))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if in, handled, ok := transcodedMatches(t, path, b, "C-GET "+e.Name()); handled {
			if ok {
				seen[in.SOP] = true
			}
			continue
		}
		if in, ok := compareRetrieved(t, b, "C-GET "+e.Name(), wireDataset); ok {
			seen[in.SOP] = true
		}
	}
	checkComplete(t, []string{study}, seen, "C-GET")
}

// transcodedMatches handles a file received in Explicit VR Little Endian
// that is stored in Implicit VR Little Endian: getscu proposes only
// Explicit VR LE for its storage contexts (+xi included), so such data
// arrives transcoded by the server, as PS3.4 allows between uncompressed
// syntaxes, and cannot be compared byte for byte. It reports whether the
// file is such a one (handled) and, if so, compares dcmdump's listing of
// both data sets element by element, value by value (group lengths
// aside: they change with the encoding and are retired; unknown VRs
// become UN).
func transcodedMatches(t *testing.T, path string, b []byte, what string) (in Instance, handled, ok bool) {
	t.Helper()
	p, err := ParsePart10(b)
	if err != nil {
		return Instance{}, false, false
	}
	in, found := corpus.Instance(p.MetaString(tagMediaStorageSOPInstance))
	if !found || in.TS != "1.2.840.10008.1.2" || p.MetaString(tagTransferSyntax) != "1.2.840.10008.1.2.1" {
		return in, false, false
	}
	dump := func(file string) []string {
		out := mustDcmtk(t, "dcmdump", "-q", "-M", "+L", "+U8", "-dc", file)
		var lines []string
		for l := range strings.Lines(out) {
			if strings.HasPrefix(l, "(0002,") || strings.HasPrefix(l, "#") || regexp.MustCompile(`^\s*\([0-9a-f]{4},0000\)`).MatchString(l) {
				continue
			}
			// An element whose VR implicit VR leaves unknown (dcmdump's ??)
			// is UN in explicit VR (PS3.5 6.2.2).
			lines = append(lines, strings.Replace(strings.TrimRight(l, "\n"), ") ?? ", ") UN ", 1))
		}
		return lines
	}
	got, want := dump(path), dump(in.File())
	if !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s (%s): transcoded data set differs from what was sent at element %d: %q, want %q",
			what, in.Path, i, at(got, i), at(want, i))
		return in, true, false
	}
	return in, true, true
}

var groupLength = regexp.MustCompile(`^\s*\([0-9a-f]{4},0000\)`)

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end)"
}

// corpusStudy returns the UID of the study whose first file lies under
// the corpus directory key (A, B, ...).
func corpusStudy(key string) string {
	for _, in := range corpus.Instances {
		if strings.HasPrefix(in.Path, key+"/") {
			return in.Study
		}
	}
	panic("no corpus study " + key)
}

// TestDIMSE drives the DIMSE listener with dcmtk: association policy,
// C-ECHO, C-STORE of the whole corpus, C-FIND matching, C-GET of every
// study compared byte for byte, C-MOVE to an unknown destination and to a
// configured one (storescp), compared byte for byte.
func TestDIMSE(t *testing.T) {
	track(t)
	destPort, destDir := startStorescp(t, "MOVEDEST")
	s := startServer(t, fmt.Sprintf("MEDIMINT_MOVE_DESTINATIONS=MOVEDEST=127.0.0.1:%d", destPort))
	port := strconv.Itoa(s.DIMSEPort)

	t.Run("C-ECHO", func(t *testing.T) {
		track(t)
		mustDcmtk(t, "echoscu", "-aec", s.AETitle, "-aet", "CONFSCU", "127.0.0.1", port)
	})
	t.Run("RejectsUnknownCalledAE", func(t *testing.T) {
		track(t)
		out, err := dcmtk(t, "echoscu", "-aec", "NOT-MEDIMINT", "-aet", "CONFSCU", "127.0.0.1", port)
		if err == nil {
			t.Fatalf("echoscu to a wrong called AE title succeeded:\n%s", out)
		}
		if !strings.Contains(out, "Called AE Title Not Recognized") {
			t.Errorf("want rejection reason Called AE Title Not Recognized, got:\n%s", out)
		}
	})
	t.Run("RejectsUnsupportedAbstractSyntax", func(t *testing.T) {
		track(t)
		// Modality Worklist FIND is not offered: the context is refused,
		// so echoscu proposing only it cannot associate usefully.
		out, err := dcmtk(t, "findscu", "-W", "-aec", s.AETitle, "-aet", "CONFSCU", "-k", "PatientName=*", "127.0.0.1", port)
		if err == nil && !strings.Contains(out, "No Acceptable Presentation Contexts") {
			t.Fatalf("worklist C-FIND was accepted:\n%s", out)
		}
	})
	t.Run("C-STORE", func(t *testing.T) {
		track(t)
		storeDIMSE(t, s.AETitle, s.DIMSEPort, corpus.Instances)
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("C-FIND", func(t *testing.T) {
		track(t)
		all := corpus.Studies()
		slices.Sort(all)
		cases := []struct {
			name string
			keys []string
			want []string
		}{
			{"all", nil, all},
			{"PatientID", []string{"PatientID=CONF-A"}, []string{corpusStudy("A")}},
			{"PatientIDWildcard", []string{"PatientID=CONF-?"}, without(all, corpusStudy("P"))},
			{"StudyDateRange", []string{"StudyDate=20230101-20230303"}, sorted(corpusStudy("A"), corpusStudy("B"), corpusStudy("C"))},
			{"ModalitiesInStudy", []string{"ModalitiesInStudy=US"}, []string{corpusStudy("G")}},
			{"UTF8Greek", []string{"SpecificCharacterSet=ISO_IR 192", "PatientName=Γεωργίου*"}, []string{corpusStudy("I")}},
			{"UTF8Japanese", []string{"SpecificCharacterSet=ISO_IR 192", "PatientName=Yamada^Tarou=山田^太郎=やまだ^たろう"}, []string{corpusStudy("J")}},
			{"NoMatch", []string{"PatientID=NOBODY"}, nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				track(t)
				got := findStudies(t, s, c.keys...)
				if !slices.Equal(got, c.want) {
					t.Errorf("C-FIND %v: got %d studies %v, want %d %v", c.keys, len(got), got, len(c.want), c.want)
				}
			})
		}
	})

	t.Run("C-GET", func(t *testing.T) {
		track(t)
		for _, st := range corpus.Studies() {
			key := strings.SplitN(corpus.Study(st)[0].Path, "/", 2)[0]
			t.Run("Study"+key, func(t *testing.T) {
				track(t)
				getStudy(t, s, st)
			})
		}
	})

	t.Run("C-MOVE", func(t *testing.T) {
		track(t)
		t.Run("UnknownDestination", func(t *testing.T) {
			track(t)
			out, _ := dcmtk(t, "movescu", "-S", "-aec", s.AETitle, "-aet", "CONFSCU", "-aem", "NOWHERE",
				"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+corpusStudy("A"), "127.0.0.1", port)
			if !strings.Contains(out, "a801") && !strings.Contains(out, "A801") && !strings.Contains(out, "MoveDestinationUnknown") {
				t.Errorf("C-MOVE to an unknown AE: want status A801 (Move Destination Unknown), got:\n%s", out)
			}
		})
		t.Run("ToConfiguredDestination", func(t *testing.T) {
			track(t)
			// MOVEDEST is storescp, named in MEDIMINT_MOVE_DESTINATIONS.
			study := corpusStudy("A")
			out := mustDcmtk(t, "movescu", "-S", "-v", "-aec", s.AETitle, "-aet", "CONFSCU", "-aem", "MOVEDEST",
				"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "127.0.0.1", port)
			if strings.Contains(out, "Failed Suboperations") && !strings.Contains(out, "Number of Failed Suboperations    : 0") {
				t.Errorf("movescu: sub-operations failed:\n%s", lastLines(out, 8))
			}
			entries, err := os.ReadDir(destDir)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(destDir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if in, ok := compareRetrieved(t, b, "C-MOVE "+e.Name(), wireDataset); ok {
					seen[in.SOP] = true
				}
			}
			checkComplete(t, []string{study}, seen, "C-MOVE")
		})
	})
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
