package dicom

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// withoutGroupLengths returns ds without its top-level group length
// elements, which Transcode drops.
func withoutGroupLengths(ds *Dataset) *Dataset {
	out := &Dataset{}
	for _, e := range ds.Elements {
		if !e.Tag.IsGroupLength() {
			out.Elements = append(out.Elements, e)
		}
	}
	return out
}

// TestTranscode streams every native corpus file through TranscodeFile
// into every native transfer syntax (and back to its own) and checks the
// result parses to the source's data set, and that dcmdump reads it
// cleanly; encapsulated files are refused for any other syntax.
func TestTranscode(t *testing.T) {
	needTool(t, "dcmdump")
	native := []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
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
			if f.TransferSyntax.UID == "" || f.Meta.Get(TagTransferSyntaxUID) == nil {
				t.Skip("no File Meta Information to name the source's transfer syntax")
			}
			if f.TransferSyntax.Encapsulated {
				ts, _ := LookupTransferSyntax(ExplicitVRLittleEndian)
				err := TranscodeFile(&bytes.Buffer{}, bytes.NewReader(b), ts)
				if !errors.Is(err, ErrNotTranscodable) {
					t.Fatalf("TranscodeFile from %s: %v, want ErrNotTranscodable", f.TransferSyntax.UID, err)
				}
				return
			}
			allowed, _ := dcmdumpWarnings(t, path)
			want := withoutGroupLengths(&f.Dataset)
			for _, uid := range native {
				ts, _ := LookupTransferSyntax(uid)
				var out bytes.Buffer
				if err := TranscodeFile(&out, onlyReader{bytes.NewReader(b)}, ts); err != nil {
					t.Fatalf("to %s: %v", ts.Keyword, err)
				}
				g, err := ParseBytes(out.Bytes(), ReadOptions{})
				if err != nil {
					t.Fatalf("reading %s: %v", ts.Keyword, err)
				}
				if g.TransferSyntax.UID != uid {
					t.Errorf("to %s: file says %s", ts.Keyword, g.TransferSyntax.UID)
				}
				if d := diffTranscoded(want, withoutGroupLengths(&g.Dataset), "", ts.Implicit); d != "" {
					t.Errorf("to %s: %s", ts.Keyword, d)
				}
				dcmdumpClean(t, out.Bytes(), ts.Keyword, allowed)
			}
		})
	}
}

// TestTranscodeDataset converts a bare data set through every pair of
// native syntaxes and back.
func TestTranscodeDataset(t *testing.T) {
	f, err := ParseBytes(mustRead(t, filepath.Join(pydicomDir, "MR_small.dcm")), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := withoutGroupLengths(&f.Dataset)
	native := []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
	for _, a := range native {
		for _, b := range native {
			from, _ := LookupTransferSyntax(a)
			to, _ := LookupTransferSyntax(b)
			t.Run(from.Keyword+"-"+to.Keyword, func(t *testing.T) {
				var src, out bytes.Buffer
				if err := WriteDataset(&src, want, from, WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				if err := Transcode(&out, onlyReader{&src}, from, to); err != nil {
					t.Fatal(err)
				}
				got, err := ReadDataset(&out, to, ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if d := diffTranscoded(want, got, "", from.Implicit || to.Implicit); d != "" {
					t.Error(d)
				}
			})
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
