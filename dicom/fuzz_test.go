package dicom

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The checked-in seeds (testdata/fuzz/Fuzz*) are small corpus and pydicom
// files, whole and cut short; MEDIMINT_WRITE_FUZZ_SEEDS=1 go test -run
// TestWriteFuzzSeeds regenerates them. addSeeds adds hand-made broken
// inputs on top.
func addSeeds(f *testing.F) {
	hdr := part10(f, ExplicitVRLittleEndian)
	f.Add(hdr)
	f.Add(part10(f, ExplicitVRLittleEndian, nestedSQ(3)))
	f.Add(part10(f, ImplicitVRLittleEndian, []byte{0x09, 0x00, 0x01, 0x10, 0xFF, 0xFF, 0xFF, 0xFF}, el(TagItem, 0, undefinedLength, nil), el(TagItemDelimitationItem, 0, 0, nil), el(TagSequenceDelimitationItem, 0, 0, nil)))
	f.Add(part10(f, JPEGBaseline8Bit, el(TagPixelData, OB, undefinedLength, nil), el(TagItem, 0, 4, []byte{0, 0, 0, 0}), el(TagItem, 0, 3, []byte{1, 2, 3}), el(TagSequenceDelimitationItem, 0, 0, nil)))
	f.Add(part10(f, ExplicitVRBigEndian, []byte{0x00, 0x10, 0x00, 0x10, 'P', 'N', 0x00, 0x04, 'D', 'o', 'e', '^'}))
}

// checkParseError: every failure is a *ParseError at an offset within the
// input (or the inflated data set).
func checkParseError(t *testing.T, err error, in []byte, deflated bool) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	if pe.Offset < 0 || !deflated && pe.Offset > int64(len(in)) {
		t.Fatalf("error offset %d outside the %d-byte input: %v", pe.Offset, len(in), err)
	}
}

// roundTrip checks that what parsed writes, and reads back the same.
func roundTrip(t *testing.T, f *File) {
	t.Helper()
	var out bytes.Buffer
	if err := f.Write(&out, WriteOptions{}); err != nil {
		t.Fatalf("writing a parsed file: %v", err)
	}
	g, err := ParseBytes(out.Bytes(), ReadOptions{})
	if err != nil {
		t.Fatalf("reading what we wrote: %v", err)
	}
	if d := diffFuzz(&f.Dataset, &g.Dataset); d != "" {
		t.Fatalf("round trip: %s", d)
	}
}

// diffFuzz is diffDatasets, allowing the one change the writer makes on
// purpose: a value too long for its VR's 16-bit length becomes UN, in
// items as at the top level.
func diffFuzz(a, b *Dataset) string {
	d := diffDatasets(a, b, "")
	if d == "" {
		return ""
	}
	return diffDatasets(asWritten(a), b, "")
}

// asWritten returns a copy of ds with the VRs the explicit VR writer
// gives values too long for a 16-bit length (group FFFE elements have no
// VR written).
func asWritten(ds *Dataset) *Dataset {
	c := &Dataset{Elements: append([]Element(nil), ds.Elements...)}
	for i := range c.Elements {
		e := &c.Elements[i]
		if e.Items != nil {
			items := make([]*Dataset, len(e.Items))
			for j, it := range e.Items {
				items[j] = asWritten(it)
			}
			e.Items = items
		} else if e.Tag.Group() != 0xFFFE && !e.VR.LongLength() && len(e.Value) > 0xFFFF {
			// Padded by the VR it had, as the writer pads it.
			e.Value, e.VR = padded(e.Value, e.VR.PaddingByte()), UN
		}
	}
	return c
}

func FuzzParseBytes(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, opts := range []ReadOptions{{}, {SkipBulk: true, BulkThreshold: 8}, {StopAtTag: TagPixelData, MaxDepth: 4}} {
			file, err := ParseBytes(in, opts)
			if err != nil {
				checkParseError(t, err, in, true)
				continue
			}
			if !opts.SkipBulk {
				roundTrip(t, file)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		mem, memErr := ParseBytes(in, ReadOptions{})
		for _, opts := range []ReadOptions{{}, {SkipBulk: true, BulkThreshold: 8}} {
			str, err := Parse(onlyReader{bytes.NewReader(in)}, opts)
			if err != nil {
				checkParseError(t, err, in, true)
				if memErr == nil {
					t.Fatalf("Parse failed (%v) where ParseBytes succeeded", err)
				}
				continue
			}
			if memErr != nil {
				t.Fatalf("Parse succeeded where ParseBytes failed: %v", memErr)
			}
			if opts.SkipBulk {
				continue
			}
			if d := diffDatasets(&mem.Dataset, &str.Dataset, ""); d != "" {
				t.Fatalf("Parse and ParseBytes differ: %s", d)
			}
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus (only when asked).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MEDIMINT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set MEDIMINT_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	dir := buildCorpus(t)
	srcs := map[string]string{
		"allvrs":        filepath.Join(dir, "allvrs.dcm"),
		"nested-undef":  filepath.Join(dir, "nested-undef-implicit.dcm"),
		"deflated":      filepath.Join(dir, "nested-deflated.dcm"),
		"japanese":      filepath.Join(dir, "charset-japanese.dcm"),
		"jpeg":          filepath.Join(dir, "sc-jpeg.dcm"),
		"bigendian":     filepath.Join(dir, "nested-bigendian.dcm"),
		"be-nometa":     filepath.Join(pydicomDir, "ExplVR_BigEndNoMeta.dcm"),
		"no-tsyntax":    filepath.Join(pydicomDir, "meta_missing_tsyntax.dcm"),
		"priv-sq":       filepath.Join(pydicomDir, "priv_SQ.dcm"),
		"empty-charset": filepath.Join(pydicomDir, "empty_charset_LEI.dcm"),
	}
	for _, target := range []string{"FuzzParseBytes", "FuzzParse"} {
		out := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, src := range srcs {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			seeds := map[string][]byte{name: b, name + "-cut": b[:len(b)*2/3]}
			for n, s := range seeds {
				body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
				if err := os.WriteFile(filepath.Join(out, n), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
