package dicom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// pydicomDir holds the shared pydicom samples, relative to this package.
const pydicomDir = "../../shared/dicom-samples/pydicom"

// brokenSamples are pydicom samples that are deliberately damaged (or that
// dcmtk cannot read either); they are exercised by the bad-input tests,
// not the round trips.
var brokenSamples = map[string]bool{
	"MR_truncated.dcm":                          true,
	"rtplan_truncated.dcm":                      true,
	"emri_small_jpeg_2k_lossless_too_short.dcm": true,
	"no_meta.dcm":                               true, // a stray byte before the first element; dcmtk fails too
}

// requireTools reports whether missing external tools must fail tests
// rather than skip them (CI sets MEDIMINT_REQUIRE_TOOLS).
func requireTools() bool { return os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" }

// needTool skips (or, under MEDIMINT_REQUIRE_TOOLS, fails) when a tool is
// not installed.
func needTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if requireTools() {
				t.Fatalf("%s not installed (apt-get install -y dcmtk) and MEDIMINT_REQUIRE_TOOLS is set", n)
			}
			t.Skipf("%s not installed (apt-get install -y dcmtk)", n)
		}
	}
}

var (
	corpusOnce sync.Once
	corpusDir  string
	corpusErr  error
)

// buildCorpus runs testdata/mkcorpus.sh once per script version into a
// cache directory keyed by the hash of the script and its sources.
func buildCorpus(t testing.TB) string {
	t.Helper()
	needTool(t, "dump2dcm", "img2dcm", "dcmconv", "dcmcjpeg", "dcmcrle", "dcmj2pnm", "python3")
	corpusOnce.Do(func() {
		h := sha256.New()
		files, _ := filepath.Glob("testdata/corpus/*")
		files = append([]string{"testdata/mkcorpus.sh"}, files...)
		sort.Strings(files[1:])
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				corpusErr = err
				return
			}
			fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
			h.Write(b)
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "medimint", "corpus-"+hex.EncodeToString(h.Sum(nil))[:16])
		if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
			corpusDir = dir
			return
		}
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			corpusErr = err
			return
		}
		cmd := exec.Command("bash", "testdata/mkcorpus.sh", tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			corpusErr = fmt.Errorf("mkcorpus.sh: %v\n%s", err, out)
			return
		}
		os.WriteFile(filepath.Join(tmp, ".done"), nil, 0o644)
		os.RemoveAll(dir)
		if err := os.Rename(tmp, dir); err != nil {
			corpusErr = err
			return
		}
		corpusDir = dir
	})
	if corpusErr != nil {
		t.Fatal(corpusErr)
	}
	return corpusDir
}

// testCorpus returns the paths of every valid test file: the corpus
// testdata/mkcorpus.sh builds with dcmtk, and the pydicom samples that
// are not deliberately broken. Other tests of the package (DICOM JSON)
// reuse it.
func testCorpus(t testing.TB) []string {
	t.Helper()
	dir := buildCorpus(t)
	paths, err := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("empty corpus in %s: %v", dir, err)
	}
	return append(paths, pydicomSamples(t)...)
}

// pydicomSamples returns the valid pydicom samples.
func pydicomSamples(t testing.TB) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(pydicomDir, "*.dcm"))
	if err != nil || len(all) == 0 {
		t.Fatalf("no pydicom samples in %s: %v", pydicomDir, err)
	}
	var out []string
	for _, p := range all {
		if !brokenSamples[filepath.Base(p)] {
			out = append(out, p)
		}
	}
	return out
}

// diffDatasets describes the first difference between a and b, or "".
// Values are compared after even-length padding (the writer pads odd
// values) and group length values are ignored (the writer recomputes
// them).
func diffDatasets(a, b *Dataset, path string) string { return diffDS(a, b, path, false) }

// vrCompatible reports whether a value read with VR x, written in implicit
// VR and read back as y, is the same value: the reader can only guess UN
// for tags the dictionary does not know (or the dictionary's VR for UN),
// OW for OB or UN pixel data, US or SS by Pixel Representation.
func vrCompatible(x, y VR) bool {
	switch {
	case x == UN || y == UN:
		return true
	case (x == OB || x == OW) && (y == OB || y == OW):
		return true
	case (x == US || x == SS || x == OW) && (y == US || y == SS || y == OW):
		return true
	}
	return false
}

func diffDS(a, b *Dataset, path string, lenientVR bool) string {
	if a.Len() != b.Len() {
		return fmt.Sprintf("%s: %d elements vs %d (%s vs %s)", path, a.Len(), b.Len(), tagList(a), tagList(b))
	}
	for i := range a.Elements {
		x, y := &a.Elements[i], &b.Elements[i]
		p := path + x.Tag.String()
		if x.Tag != y.Tag || x.VR != y.VR && !(lenientVR && vrCompatible(x.VR, y.VR)) {
			return fmt.Sprintf("%s: %s %s vs %s %s", p, x.Tag, x.VR, y.Tag, y.VR)
		}
		if lenientVR && x.VR != y.VR && (x.VR == UN || y.VR == UN) && (x.Items != nil || y.Items != nil) {
			continue // raw bytes on one side, parsed items on the other
		}
		if x.Tag.IsGroupLength() {
			continue
		}
		if len(x.Items) != len(y.Items) || (x.Items == nil) != (y.Items == nil) && x.VR != SQ {
			return fmt.Sprintf("%s: %d items vs %d", p, len(x.Items), len(y.Items))
		}
		if x.VR == SQ && x.UndefinedLength != y.UndefinedLength {
			return fmt.Sprintf("%s: undefined length %v vs %v", p, x.UndefinedLength, y.UndefinedLength)
		}
		for j := range x.Items {
			if d := diffDS(x.Items[j], y.Items[j], fmt.Sprintf("%s[%d]", p, j), lenientVR); d != "" {
				return d
			}
		}
		if (x.Fragments == nil) != (y.Fragments == nil) {
			return fmt.Sprintf("%s: fragments %v vs %v", p, x.Fragments != nil, y.Fragments != nil)
		}
		if x.Fragments != nil {
			fx, fy := x.Fragments, y.Fragments
			if fmt.Sprint(fx.BasicOffsetTable) != fmt.Sprint(fy.BasicOffsetTable) || len(fx.Items) != len(fy.Items) {
				return fmt.Sprintf("%s: BOT %v/%d fragments vs %v/%d", p, fx.BasicOffsetTable, len(fx.Items), fy.BasicOffsetTable, len(fy.Items))
			}
			for j := range fx.Items {
				if !bytes.Equal(padded(fx.Items[j].Data, 0), padded(fy.Items[j].Data, 0)) {
					return fmt.Sprintf("%s: fragment %d differs", p, j)
				}
			}
		}
		if (x.Bulk == nil) != (y.Bulk == nil) || x.Bulk != nil && x.Bulk.Length != y.Bulk.Length {
			return fmt.Sprintf("%s: bulk %v vs %v", p, x.Bulk, y.Bulk)
		}
		if !bytes.Equal(padded(x.Value, x.VR.PaddingByte()), padded(y.Value, y.VR.PaddingByte())) {
			return fmt.Sprintf("%s %s: value %q vs %q", p, x.VR, clip(x.Value), clip(y.Value))
		}
	}
	return ""
}

func padded(b []byte, p byte) []byte {
	if len(b)%2 == 1 {
		return append(append([]byte(nil), b...), p)
	}
	return b
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func tagList(ds *Dataset) string {
	var s []string
	for _, e := range ds.Elements {
		s = append(s, e.Tag.String())
	}
	return strings.Join(s, " ")
}
