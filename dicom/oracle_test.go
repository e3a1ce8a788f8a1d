package dicom

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var dumpLine = regexp.MustCompile(`^( *)\(([0-9a-f]{4}),([0-9a-f]{4})\) (\S\S) `)

// dcmdumpElements lists "level tag VR" for every element dcmdump prints
// for the file at p (meta and data set, items and delimiters left out).
func dcmdumpElements(t *testing.T, p string) []string {
	t.Helper()
	out, err := exec.Command("dcmdump", "-q", p).Output()
	if err != nil {
		t.Fatalf("dcmdump %s: %v", p, err)
	}
	var els []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := dumpLine.FindStringSubmatch(sc.Text())
		if m == nil || m[2] == "fffe" {
			continue
		}
		els = append(els, fmt.Sprintf("%d (%s,%s) %s", len(m[1])/4, strings.ToUpper(m[2]), strings.ToUpper(m[3]), m[4]))
	}
	return els
}

// ourElements lists the same for our parse.
func ourElements(ds *Dataset, level int, out []string) []string {
	for _, e := range ds.Elements {
		out = append(out, fmt.Sprintf("%d %s %s", level, e.Tag, e.VR))
		for _, it := range e.Items {
			out = ourElements(it, level+1, out)
		}
	}
	return out
}

// sameElement compares one line of each list. dcmtk has a private
// dictionary we lack, so for private tags it may know a VR where we can
// only say UN (or it prints ?? for unknown ones).
func sameElement(ours, theirs string) bool {
	if ours == theirs {
		return true
	}
	o, th := strings.Fields(ours), strings.Fields(theirs)
	if len(o) != 3 || len(th) != 3 || o[0] != th[0] || o[1] != th[1] {
		return false
	}
	tag, _ := ParseTag(o[1])
	switch {
	case o[2] == "UN" && (th[2] == "??" || tag.IsPrivate()):
		return true
	case th[2] == "xs" || th[2] == "lt":
		// dcmtk leaves "US or SS" (and LUT Data) unresolved in implicit
		// VR; we resolve it by Pixel Representation.
		return o[2] == "US" || o[2] == "SS" || o[2] == "OW"
	case th[2] == "ox":
		return o[2] == "OB" || o[2] == "OW"
	}
	return false
}

// TestAgainstDcmdump checks our tag tree and VRs against dcmdump's for
// every corpus file.
func TestAgainstDcmdump(t *testing.T) {
	needTool(t, "dcmdump")
	for _, path := range testCorpus(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseBytes(b, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ours := ourElements(&f.Dataset, 0, ourElements(&f.Meta, 0, nil))
			theirs := dcmdumpElements(t, path)
			for i := 0; i < max(len(ours), len(theirs)); i++ {
				var o, th string
				if i < len(ours) {
					o = ours[i]
				}
				if i < len(theirs) {
					th = theirs[i]
				}
				if !sameElement(o, th) {
					t.Fatalf("element %d: ours %q, dcmdump %q", i, o, th)
				}
			}
		})
	}
}

// TestCharacterSetAgainstDcmconv decodes the corpus' character set files
// and compares with dcmconv +U8 (dcmtk's iconv conversion to UTF-8), for
// the sets this machine's iconv supports.
func TestCharacterSetAgainstDcmconv(t *testing.T) {
	needTool(t, "dcmconv")
	paths, _ := filepath.Glob(filepath.Join(buildCorpus(t), "charset-*.dcm"))
	if len(paths) == 0 {
		t.Fatal("no charset-*.dcm in the corpus")
	}
	converted := 0
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			utf8Path := filepath.Join(t.TempDir(), "utf8.dcm")
			if out, err := exec.Command("dcmconv", "+U8", path, utf8Path).CombinedOutput(); err != nil {
				t.Skipf("dcmconv cannot convert this set here: %s", bytes.TrimSpace(out))
			}
			converted++
			orig := mustParseFile(t, path)
			conv := mustParseFile(t, utf8Path)
			cs, err := orig.Dataset.CharacterSet(nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tg := range []Tag{NewTag(0x0010, 0x0010), NewTag(0x0008, 0x1030)} {
				e := orig.Dataset.Get(tg)
				got, err := cs.Decode(e.Value, e.VR)
				if err != nil {
					t.Fatal(err)
				}
				want := strings.TrimRight(string(conv.Dataset.Get(tg).Value), " ")
				if strings.TrimRight(got, " ") != want {
					t.Errorf("%s: decoded %q, dcmconv %q", tg, got, want)
				}
				// And back: our encoding decodes to the same text.
				enc, err := cs.Encode(want, e.VR)
				if err != nil {
					t.Fatalf("%s: Encode: %v", tg, err)
				}
				if back, _ := cs.Decode(enc, e.VR); back != want {
					t.Errorf("%s: Encode/Decode gave %q", tg, back)
				}
			}
		})
	}
	if converted < 4 {
		t.Errorf("only %d character set files could be checked against dcmconv", converted)
	}
}

func mustParseFile(t testing.TB, path string) *File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseBytes(b, ReadOptions{})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}
