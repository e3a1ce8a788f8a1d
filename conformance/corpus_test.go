//go:build conformance

package conformance

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Instance is one line of the corpus's index.tsv.
type Instance struct {
	Path                string // relative to the corpus directory
	Study, Series, SOP  string
	SOPClass, TS        string
	Modality, PatientID string
	PHI                 bool
	Frames              string
	corpusDir           string
}

// File is the instance's Part-10 file.
func (in Instance) File() string { return filepath.Join(in.corpusDir, in.Path) }

// Corpus is the conformance corpus.
type Corpus struct {
	Dir       string
	Instances []Instance
	bySOP     map[string]Instance
}

// LoadCorpus reads dir/index.tsv.
func LoadCorpus(dir string) (*Corpus, error) {
	f, err := os.Open(filepath.Join(dir, "index.tsv"))
	if err != nil {
		return nil, fmt.Errorf("corpus index: %w", err)
	}
	defer f.Close()
	c := &Corpus{Dir: dir, bySOP: map[string]Instance{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		v := strings.Split(line, "\t")
		if len(v) != 10 {
			return nil, fmt.Errorf("corpus index: bad line %q", line)
		}
		in := Instance{Path: v[0], Study: v[1], Series: v[2], SOP: v[3], SOPClass: v[4], TS: v[5],
			Modality: v[6], PatientID: v[7], PHI: v[8] == "1", Frames: v[9], corpusDir: dir}
		c.Instances = append(c.Instances, in)
		c.bySOP[in.SOP] = in
	}
	return c, sc.Err()
}

// Studies returns the study UIDs in corpus order.
func (c *Corpus) Studies() []string {
	var out []string
	seen := map[string]bool{}
	for _, in := range c.Instances {
		if !seen[in.Study] {
			seen[in.Study] = true
			out = append(out, in.Study)
		}
	}
	return out
}

// Study returns the instances of one study.
func (c *Corpus) Study(uid string) []Instance {
	var out []Instance
	for _, in := range c.Instances {
		if in.Study == uid {
			out = append(out, in)
		}
	}
	return out
}

// Instance returns the corpus instance with SOP Instance UID sop.
func (c *Corpus) Instance(sop string) (Instance, bool) {
	in, ok := c.bySOP[sop]
	return in, ok
}

// Part10 is a Part-10 file split into its File Meta Information and its
// data set. The split is done here, independently of package dicom, so
// that the codec is not its own oracle.
type Part10 struct {
	Meta    map[uint32][]byte // group 0002 values (trailing padding kept)
	Dataset []byte
}

// MetaString returns a File Meta value without trailing NUL/space padding.
func (p Part10) MetaString(tag uint32) string {
	return strings.TrimRight(string(p.Meta[tag]), "\x00 ")
}

// Meta tags used by the suite.
const (
	tagMediaStorageSOPClass    = 0x00020002
	tagMediaStorageSOPInstance = 0x00020003
	tagTransferSyntax          = 0x00020010
)

// ParsePart10 splits b: 128-byte preamble, "DICM", group 0002 in explicit
// VR little endian (PS3.10 7.1), then the data set.
func ParsePart10(b []byte) (Part10, error) {
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		return Part10{}, errors.New("not a Part-10 file (no DICM prefix)")
	}
	p := Part10{Meta: map[uint32][]byte{}}
	off := 132
	for off+8 <= len(b) {
		group := binary.LittleEndian.Uint16(b[off:])
		if group != 0x0002 {
			break
		}
		tag := uint32(group)<<16 | uint32(binary.LittleEndian.Uint16(b[off+2:]))
		vr := string(b[off+4 : off+6])
		var n, hdr int
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV", "SV", "UV":
			if off+12 > len(b) {
				return Part10{}, errors.New("truncated File Meta")
			}
			n, hdr = int(binary.LittleEndian.Uint32(b[off+8:])), 12
		default:
			n, hdr = int(binary.LittleEndian.Uint16(b[off+6:])), 8
		}
		if n < 0 || off+hdr+n > len(b) {
			return Part10{}, fmt.Errorf("File Meta element %08x overruns the file", tag)
		}
		p.Meta[tag] = b[off+hdr : off+hdr+n]
		off += hdr + n
	}
	p.Dataset = b[off:]
	return p, nil
}

// ReadPart10 reads and splits a file.
func ReadPart10(path string) (Part10, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Part10{}, err
	}
	p, err := ParsePart10(b)
	if err != nil {
		return Part10{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// fileDataset is the data set of the corpus file: what a peer that sends
// files unchanged (STOW-RS, Orthanc) delivers.
func fileDataset(t testing.TB, in Instance) []byte {
	t.Helper()
	p, err := ReadPart10(in.File())
	if err != nil {
		t.Fatal(err)
	}
	return p.Dataset
}

// compareRetrieved checks a retrieved Part-10 object against the corpus:
// same SOP Instance UID, SOP class and transfer syntax, and the data set
// bytes sent (want gives them). It returns the corpus instance it matched.
func compareRetrieved(t testing.TB, got []byte, what string, want func(testing.TB, Instance) []byte) (Instance, bool) {
	t.Helper()
	p, err := ParsePart10(got)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return Instance{}, false
	}
	sop := p.MetaString(tagMediaStorageSOPInstance)
	in, ok := corpus.Instance(sop)
	if !ok {
		t.Errorf("%s: SOP Instance UID %q is not in the corpus", what, sop)
		return Instance{}, false
	}
	if ts := p.MetaString(tagTransferSyntax); ts != in.TS {
		t.Errorf("%s (%s): transfer syntax %s, stored as %s", what, in.Path, ts, in.TS)
		return in, false
	}
	if cls := p.MetaString(tagMediaStorageSOPClass); cls != in.SOPClass {
		t.Errorf("%s (%s): SOP class %s, want %s", what, in.Path, cls, in.SOPClass)
	}
	if ds := want(t, in); !bytes.Equal(p.Dataset, ds) {
		t.Errorf("%s (%s): data set differs from what was sent (%d bytes, want %d; first difference at %d)",
			what, in.Path, len(p.Dataset), len(ds), firstDiff(p.Dataset, ds))
		return in, false
	}
	return in, true
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkComplete reports corpus instances of studies that were not seen.
func checkComplete(t testing.TB, studies []string, seen map[string]bool, what string) {
	t.Helper()
	var missing []string
	for _, st := range studies {
		for _, in := range corpus.Study(st) {
			if !seen[in.SOP] {
				missing = append(missing, in.Path)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s: %d instances not retrieved, e.g. %v", what, len(missing), missing[:min(5, len(missing))])
	}
}
