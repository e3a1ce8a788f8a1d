package dicom

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// onlyReader hides io.Seeker so Parse must stream.
type onlyReader struct{ io.Reader }

// dcmdumpWarnings runs dcmdump on the file at p and returns its exit
// error and the warnings and errors it printed.
func dcmdumpWarnings(t *testing.T, p string) ([]string, error) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("dcmdump", "-E", p)
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	err := cmd.Run()
	var lines []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines, err
}

// dcmdumpClean runs dcmdump on b and fails on a non-zero exit or any
// warning or error it prints, except those it printed for the source file
// too (allowed) and the CP-246 notice for an undefined-length sequence
// under an unknown tag in implicit VR, which is the standard's encoding.
func dcmdumpClean(t *testing.T, b []byte, what string, allowed []string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.dcm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err := dcmdumpWarnings(t, p)
	var bad []string
	for _, l := range lines {
		if !slices.Contains(allowed, l) && !strings.Contains(l, "with VR UN and undefined length, reading a sequence with transfer syntax LittleEndianImplicit (CP-246)") {
			bad = append(bad, l)
		}
	}
	if err != nil || len(bad) > 0 {
		t.Errorf("%s: dcmdump: %v\n%s", what, err, strings.Join(bad, "\n"))
	}
}

// TestRoundTrip reads every corpus file, checks that memory, seekable
// stream and plain stream parses agree, writes it back and checks that the
// result parses to the same data set and that dcmdump reads it cleanly.
// Native files are also transcoded to every other native transfer syntax.
func TestRoundTrip(t *testing.T) {
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
			allowed, _ := dcmdumpWarnings(t, path)
			for name, r := range map[string]io.Reader{"seekable": bytes.NewReader(b), "stream": onlyReader{bytes.NewReader(b)}} {
				g, err := Parse(r, ReadOptions{})
				if err != nil {
					t.Fatalf("Parse %s: %v", name, err)
				}
				if d := diffDatasets(&f.Dataset, &g.Dataset, ""); d != "" {
					t.Errorf("Parse %s differs from ParseBytes: %s", name, d)
				}
				if d := diffDatasets(&f.Meta, &g.Meta, ""); d != "" || g.DatasetOffset != f.DatasetOffset {
					t.Errorf("Parse %s meta differs: %s (offset %d vs %d)", name, d, g.DatasetOffset, f.DatasetOffset)
				}
			}
			var out bytes.Buffer
			if err := f.Write(&out, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			g, err := ParseBytes(out.Bytes(), ReadOptions{})
			if err != nil {
				t.Fatalf("reading what we wrote: %v", err)
			}
			if g.TransferSyntax.UID != f.TransferSyntax.UID {
				t.Errorf("transfer syntax %s, wrote %s", g.TransferSyntax.UID, f.TransferSyntax.UID)
			}
			if d := diffDatasets(&f.Dataset, &g.Dataset, ""); d != "" {
				t.Errorf("round trip: %s", d)
			}
			dcmdumpClean(t, out.Bytes(), "as read", allowed)
			if f.TransferSyntax.Encapsulated {
				return
			}
			for _, uid := range []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian} {
				if uid == f.TransferSyntax.UID {
					continue
				}
				ts, _ := LookupTransferSyntax(uid)
				h := *f
				h.TransferSyntax = ts
				out.Reset()
				if err := h.Write(&out, WriteOptions{}); err != nil {
					t.Fatalf("writing %s: %v", ts.Keyword, err)
				}
				g, err := ParseBytes(out.Bytes(), ReadOptions{})
				if err != nil {
					t.Fatalf("reading %s: %v", ts.Keyword, err)
				}
				if d := diffTranscoded(&f.Dataset, &g.Dataset, "", ts.Implicit); d != "" {
					t.Errorf("%s: %s", ts.Keyword, d)
				}
				dcmdumpClean(t, out.Bytes(), ts.Keyword, allowed)
			}
		})
	}
}

// diffTranscoded compares like diffDatasets but, after an implicit VR
// write, accepts the VRs a reader can only guess (see vrCompatible).
func diffTranscoded(a, b *Dataset, path string, implicit bool) string {
	return diffDS(a, b, path, implicit)
}
