package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// el encodes one explicit VR little endian element (length as given, so
// tests can lie about it).
func el(t Tag, vr VR, length uint32, value []byte) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint16(b, t.Group())
	b = binary.LittleEndian.AppendUint16(b, t.Element())
	if t.Group() == 0xFFFE {
		return append(binary.LittleEndian.AppendUint32(b, length), value...)
	}
	b = append(b, byte(vr>>8), byte(vr))
	if vr.LongLength() {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, length)
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(length))
	}
	return append(b, value...)
}

// part10 returns preamble, DICM and a File Meta Information group for
// transfer syntax uid, followed by body.
func part10(t testing.TB, uid string, body ...[]byte) []byte {
	t.Helper()
	ts, ok := LookupTransferSyntax(uid)
	if !ok {
		t.Fatalf("unknown transfer syntax %s", uid)
	}
	f := &File{Meta: NewFileMeta("1.2.840.10008.5.1.4.1.1.7", "2.25.1", uid), TransferSyntax: ts}
	var buf bytes.Buffer
	if err := f.Write(&buf, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, b := range body {
		buf.Write(b)
	}
	return buf.Bytes()
}

// nestedSQ returns depth undefined-length sequences, one inside another.
func nestedSQ(depth int) []byte {
	var b []byte
	for range depth {
		b = append(b, el(NewTag(0x0040, 0xA730), SQ, undefinedLength, nil)...)
		b = append(b, el(TagItem, 0, undefinedLength, nil)...)
	}
	for range depth {
		b = append(b, el(TagItemDelimitationItem, 0, 0, nil)...)
		b = append(b, el(TagSequenceDelimitationItem, 0, 0, nil)...)
	}
	return b
}

// TestBadInput checks that broken input gives the right typed error at
// the right offset, from memory and from a stream.
func TestBadInput(t *testing.T) {
	name := NewTag(0x0010, 0x0010)
	private := NewTag(0x0009, 0x1001)
	hdr := len(part10(t, ExplicitVRLittleEndian))
	jhdr := len(part10(t, JPEGBaseline8Bit))
	ihdr := len(part10(t, ImplicitVRLittleEndian))
	tests := []struct {
		name    string
		in      []byte
		opts    ReadOptions
		want    error
		offset  int64 // -1: do not check
		tag     Tag
		wantStr error // from a plain stream, when it differs
	}{
		{name: "empty", in: nil, want: ErrNotDICOM, offset: 0},
		{name: "text", in: []byte("this is certainly not a DICOM file, just text"), want: ErrNotDICOM, offset: -1},
		{name: "header cut", in: part10(t, ExplicitVRLittleEndian, el(name, PN, 4, []byte("Doe^"))[:6]), want: ErrTruncated, offset: int64(hdr), tag: name},
		{name: "value past end", in: part10(t, ExplicitVRLittleEndian, el(name, PN, 100, []byte("Doe^John"))), want: ErrValueTooLong, offset: int64(hdr), tag: name},
		{name: "4 GiB claim", in: part10(t, ExplicitVRLittleEndian, el(private, OB, 0xFFFFFFF0, make([]byte, 1024))), want: ErrValueTooLong, offset: int64(hdr), tag: private},
		{name: "4 GiB claim skipped", in: part10(t, ExplicitVRLittleEndian, el(TagPixelData, OB, 0xFFFFFFF0, make([]byte, 1024))), opts: ReadOptions{SkipBulk: true}, want: ErrValueTooLong, offset: int64(hdr), tag: TagPixelData},
		{name: "undefined length OB", in: part10(t, ExplicitVRLittleEndian, el(private, OB, undefinedLength, make([]byte, 16))), want: ErrUndefinedLength, offset: int64(hdr), tag: private},
		{name: "undefined length UT", in: part10(t, ExplicitVRLittleEndian, el(NewTag(0x0008, 0x030E), UT, undefinedLength, make([]byte, 16))), want: ErrUndefinedLength, offset: int64(hdr), tag: NewTag(0x0008, 0x030E)},
		{name: "too deep", in: part10(t, ExplicitVRLittleEndian, nestedSQ(70)), want: ErrTooDeep, offset: int64(hdr + 64*20), tag: NewTag(0x0040, 0xA730)},
		{name: "too deep for MaxDepth 3", in: part10(t, ExplicitVRLittleEndian, nestedSQ(4)), opts: ReadOptions{MaxDepth: 3}, want: ErrTooDeep, offset: int64(hdr + 3*20), tag: NewTag(0x0040, 0xA730)},
		{name: "item at top level", in: part10(t, ExplicitVRLittleEndian, el(TagItem, 0, 0, nil)), want: ErrMalformed, offset: int64(hdr), tag: TagItem},
		{name: "element where an item belongs", in: part10(t, ExplicitVRLittleEndian, el(NewTag(0x0040, 0xA730), SQ, undefinedLength, nil), el(name, PN, 4, []byte("Doe^"))), want: ErrMalformed, offset: int64(hdr + 12), tag: name},
		{name: "sequence never ends", in: part10(t, ExplicitVRLittleEndian, el(NewTag(0x0040, 0xA730), SQ, undefinedLength, nil), el(TagItem, 0, undefinedLength, nil)), want: ErrTruncated, offset: int64(hdr + 20)},
		{name: "item overruns its sequence", in: part10(t, ExplicitVRLittleEndian, el(NewTag(0x0040, 0xA730), SQ, 8, nil), el(TagItem, 0, 12, el(name, PN, 4, []byte("Doe^")))), want: ErrValueTooLong, offset: int64(hdr + 12), tag: TagItem},
		{name: "value overruns its item", in: part10(t, ExplicitVRLittleEndian, el(NewTag(0x0040, 0xA730), SQ, 20, nil), el(TagItem, 0, 12, el(name, PN, 8, []byte("Doe^John")))), want: ErrValueTooLong, offset: int64(hdr + 20), tag: name},
		// A delimiter ends a defined length sequence short of its length:
		// from memory (and a seekable stream) the length is past the end;
		// a plain stream cannot know that and finds the delimiter.
		{name: "delimiter in a sequence longer than the data", in: part10(t, ExplicitVRLittleEndian, el(NewTag(0x0040, 0xA730), SQ, 100, nil), el(TagSequenceDelimitationItem, 0, 0, nil)), want: ErrValueTooLong, offset: -1, wantStr: ErrMalformed},
		{name: "delimiter inside a sequence of defined length", in: part10(t, ExplicitVRLittleEndian, el(NewTag(0x0040, 0xA730), SQ, 20, nil), el(TagSequenceDelimitationItem, 0, 0, nil), el(name, PN, 4, []byte("Doe^"))), want: ErrMalformed, offset: int64(hdr + 12), tag: TagSequenceDelimitationItem},
		// Group 0002 elements in the data set go to the meta, which has
		// no sequences.
		{name: "sequence in group 0002 of the data set", in: part10(t, ImplicitVRLittleEndian, elImplicit(NewTag(0x0002, 0x3030), undefinedLength, nil), elImplicit(TagSequenceDelimitationItem, 0, nil)), want: ErrMalformed, offset: int64(ihdr), tag: NewTag(0x0002, 0x3030)},
		{name: "fragments never end", in: part10(t, JPEGBaseline8Bit, el(TagPixelData, OB, undefinedLength, nil), el(TagItem, 0, 0, nil), el(TagItem, 0, 4, []byte{1, 2, 3, 4})), want: ErrTruncated, offset: int64(jhdr + 12 + 8 + 12)},
		{name: "fragment past end", in: part10(t, JPEGBaseline8Bit, el(TagPixelData, OB, undefinedLength, nil), el(TagItem, 0, 0, nil), el(TagItem, 0, 400, []byte{1, 2, 3, 4})), want: ErrValueTooLong, offset: int64(jhdr + 12 + 8), tag: TagItem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(how string, f *File, err error, want error) {
				t.Helper()
				var pe *ParseError
				if !errors.Is(err, want) || !errors.As(err, &pe) {
					t.Fatalf("%s: got %v (%v), want %v as a *ParseError", how, err, f, want)
				}
				if tt.offset >= 0 && pe.Offset != tt.offset {
					t.Errorf("%s: offset %d, want %d (%v)", how, pe.Offset, tt.offset, err)
				}
				if tt.tag != 0 && pe.Tag != tt.tag {
					t.Errorf("%s: tag %s, want %s", how, pe.Tag, tt.tag)
				}
			}
			f, err := ParseBytes(tt.in, tt.opts)
			check("ParseBytes", f, err, tt.want)
			f, err = Parse(bytes.NewReader(tt.in), tt.opts)
			check("Parse seekable", f, err, tt.want)
			want := tt.want
			if tt.wantStr != nil {
				want = tt.wantStr
			}
			f, err = Parse(onlyReader{bytes.NewReader(tt.in)}, tt.opts)
			check("Parse stream", f, err, want)
		})
	}
}

// TestBrokenSamples: pydicom's deliberately broken files give a clear
// error or a recovery, never a panic.
func TestBrokenSamples(t *testing.T) {
	tests := []struct {
		file   string
		want   error // nil: recovered
		offset int64
		tag    Tag
	}{
		{"MR_truncated.dcm", ErrValueTooLong, 1488, TagPixelData},
		{"rtplan_truncated.dcm", ErrValueTooLong, 1410, NewTag(0x300A, 0x00B0)},
		{"emri_small_jpeg_2k_lossless_too_short.dcm", ErrTruncated, 40316, 0},
		// A stray byte before the first element; dcmtk fails too: "Unknown
		// Tag & Data (0820,0500) larger (173228800) than remaining bytes".
		{"no_meta.dcm", ErrNotDICOM, 0, 0},
		{"badVR.dcm", nil, 0, 0},
		{"bad_sequence.dcm", nil, 0, 0},
		{"meta_missing_tsyntax.dcm", nil, 0, 0},
		{"empty_charset_LEI.dcm", nil, 0, 0},
		{"reportsi_with_empty_number_tags.dcm", nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(pydicomDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for how, parse := range map[string]func() (*File, error){
				"ParseBytes": func() (*File, error) { return ParseBytes(b, ReadOptions{}) },
				"Parse":      func() (*File, error) { return Parse(onlyReader{bytes.NewReader(b)}, ReadOptions{}) },
			} {
				f, err := parse()
				if tt.want == nil {
					if err != nil || f.Dataset.Len() == 0 {
						t.Errorf("%s: %v, want a recovered data set", how, err)
					}
					continue
				}
				var pe *ParseError
				if how == "Parse" && errors.As(err, &pe) && (errors.Is(err, ErrTruncated) || errors.Is(err, ErrValueTooLong)) {
					// Without the stream's size, a length past the end is
					// found where the data runs out, not where it is claimed.
					continue
				}
				if !errors.Is(err, tt.want) || !errors.As(err, &pe) {
					t.Fatalf("%s: %v, want %v", how, err, tt.want)
				}
				if pe.Offset != tt.offset || pe.Tag != tt.tag {
					t.Errorf("%s: at %d %s, want %d %s", how, pe.Offset, pe.Tag, tt.offset, tt.tag)
				}
			}
		})
	}
	// What the recoveries recovered.
	f := mustParseFile(t, filepath.Join(pydicomDir, "meta_missing_tsyntax.dcm"))
	if f.TransferSyntax.UID != ImplicitVRLittleEndian {
		t.Errorf("meta_missing_tsyntax.dcm read as %s, want implicit VR little endian", f.TransferSyntax.Keyword)
	}
	if e := f.Dataset.Get(NewTag(0x0001, 0x0001)); e == nil || e.VR != SQ || len(e.Items) != 1 {
		t.Errorf("meta_missing_tsyntax.dcm: (0001,0001) = %+v, want a sequence of one item", e)
	}
	f = mustParseFile(t, filepath.Join(pydicomDir, "bad_sequence.dcm"))
	if e := f.Dataset.Get(NewTag(0x0018, 0x9346)); e == nil || e.VR != UN || len(e.Value) != 68 {
		t.Errorf("bad_sequence.dcm: (0018,9346) = %+v, want UN of 68 bytes kept as is", e)
	}
}

// TestHugeClaimAllocation: a 4 GiB length on a small stream must fail
// after reading what is there, never allocating anything near the claim.
func TestHugeClaimAllocation(t *testing.T) {
	in := part10(t, ExplicitVRLittleEndian, el(NewTag(0x0009, 0x1001), OB, 0xFFFFFFF0, make([]byte, 1024)))
	for how, parse := range map[string]func() error{
		"ParseBytes": func() error { _, err := ParseBytes(in, ReadOptions{}); return err },
		"Parse":      func() error { _, err := Parse(onlyReader{bytes.NewReader(in)}, ReadOptions{}); return err },
		"ReadDataset": func() error {
			_, err := ReadDataset(bytes.NewReader(in[len(in)-1024-12:]), TransferSyntax{Order: binary.LittleEndian}, ReadOptions{})
			return err
		},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := parse()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrValueTooLong) {
			t.Errorf("%s: %v, want ErrValueTooLong", how, err)
		}
		// bufio's 64 KiB buffer and the first 64 KiB chunk, no more.
		if n := after.TotalAlloc - before.TotalAlloc; n > 512<<10 {
			t.Errorf("%s: allocated %d bytes for a %d-byte input", how, n, len(in))
		}
	}
}

// TestSkipBulk: bulk values are skipped with their offsets recorded, from
// a file (seeking) and from a stream (discarding); writing them back from
// the source gives the same bytes as writing the fully read file.
func TestSkipBulk(t *testing.T) {
	dir := buildCorpus(t)
	for _, name := range []string{"ct.dcm", "ct-bigendian.dcm", "ct-jpegll.dcm", "mr-mf-jpegll-frag.dcm", "allvrs.dcm", "nested-deflated.dcm"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			full, err := ParseBytes(b, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := full.Write(&want, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			opts := ReadOptions{SkipBulk: true, BulkThreshold: 4}
			for how, r := range map[string]io.Reader{"file": fh, "stream": onlyReader{bytes.NewReader(b)}} {
				if _, err := fh.Seek(0, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				f, err := Parse(r, opts)
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				px := f.Dataset.Get(TagPixelData)
				if px != nil && px.Value != nil {
					t.Errorf("%s: pixel data loaded despite SkipBulk", how)
				}
				if px != nil && px.Fragments != nil {
					for i, fr := range px.Fragments.Items {
						if fr.Data != nil || !bytes.Equal(b[fr.Offset:fr.Offset+int64(fr.Length)], full.Dataset.Get(TagPixelData).Fragments.Items[i].Data) {
							t.Fatalf("%s: fragment %d at %d does not locate the data", how, i, fr.Offset)
						}
					}
				}
				if f.TransferSyntax.Deflated {
					// Offsets count inflated bytes: nothing to seek to.
					if d := diffDatasets(&full.Dataset, &f.Dataset, ""); d == "" {
						continue
					}
				}
				bulk := func(e *Element) (io.Reader, error) {
					if e.Fragments != nil {
						var rs []io.Reader
						for _, fr := range e.Fragments.Items {
							rs = append(rs, io.NewSectionReader(bytes.NewReader(b), fr.Offset, int64(fr.Length)))
						}
						return io.MultiReader(rs...), nil
					}
					// Big endian sources hold big endian bytes; the writer
					// wants the little endian value.
					v := append([]byte(nil), b[e.Bulk.Offset:e.Bulk.Offset+e.Bulk.Length]...)
					if f.TransferSyntax.Order == binary.BigEndian && e.VR != UN {
						swapInPlace(v, e.VR.WordSize())
					}
					return bytes.NewReader(v), nil
				}
				var got bytes.Buffer
				if err := f.Write(&got, WriteOptions{Bulk: bulk}); err != nil {
					t.Fatalf("%s: write: %v", how, err)
				}
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Errorf("%s: writing with streamed bulk differs from writing the full parse", how)
				}
				if err := f.Write(io.Discard, WriteOptions{}); !errors.Is(err, ErrNoBulk) && px != nil {
					t.Errorf("%s: write without Bulk: %v, want ErrNoBulk", how, err)
				}
			}
		})
	}
}

// TestZeroCopyAndStop: ParseBytes values alias the input; StopAtTag stops
// before Pixel Data; ReadDataset reads what WriteDataset wrote.
func TestZeroCopyAndStop(t *testing.T) {
	b := benchCT(t)
	f, err := ParseBytes(b, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	px := f.Dataset.Get(TagPixelData)
	if px == nil || len(px.Value) != 512*512*2 {
		t.Fatalf("pixel data %v", px)
	}
	start := len(b) - len(px.Value)
	if &px.Value[0] != &b[start] {
		t.Error("pixel data was copied, want a sub-slice of the input")
	}
	h, err := ParseBytes(b, ReadOptions{StopAtTag: TagPixelData})
	if err != nil {
		t.Fatal(err)
	}
	if h.Dataset.Get(TagPixelData) != nil || h.Dataset.Len() != f.Dataset.Len()-1 {
		t.Errorf("StopAtTag: %d elements, want %d without pixel data", h.Dataset.Len(), f.Dataset.Len()-1)
	}
	for _, uid := range []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian} {
		ts, _ := LookupTransferSyntax(uid)
		var buf bytes.Buffer
		if err := WriteDataset(&buf, &f.Dataset, ts, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		ds, err := ReadDataset(&buf, ts, ReadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", ts.Keyword, err)
		}
		if d := diffTranscoded(&f.Dataset, ds, "", ts.Implicit); d != "" {
			t.Errorf("%s: %s", ts.Keyword, d)
		}
	}
}

// TestRecoverVR: explicit VR data with VR bytes that are not a VR. Bytes
// that are not letters mean the element was encoded implicitly (VR from
// the dictionary, 32-bit length); unknown letters are read as UN with a
// 32-bit length, as dcmtk does.
func TestRecoverVR(t *testing.T) {
	name, id := NewTag(0x0010, 0x0010), NewTag(0x0010, 0x0020)
	implicitName := []byte{0x10, 0x00, 0x10, 0x00, 0x08, 0x00, 0x00, 0x00}
	implicitName = append(implicitName, "Doe^John"...)
	unknown := []byte{0x10, 0x00, 0x10, 0x00, 'Z', 'Z', 0, 0, 0x08, 0x00, 0x00, 0x00}
	unknown = append(unknown, "Doe^John"...)
	for _, tt := range []struct {
		name string
		in   []byte
		vr   VR
	}{
		{"implicit element", implicitName, PN},
		{"unknown VR letters", unknown, UN},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Not first: the first element decides implicit vs explicit
			// for the whole data set.
			in := part10(t, ExplicitVRLittleEndian, el(NewTag(0x0008, 0x0060), CS, 2, []byte("CT")), tt.in, el(id, LO, 4, []byte("ID01")))
			f, err := ParseBytes(in, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if e := f.Dataset.Get(name); e == nil || e.VR != tt.vr || string(e.Value) != "Doe^John" {
				t.Errorf("(0010,0010) = %+v, want %s Doe^John", e, tt.vr)
			}
			if f.Dataset.String(id) != "ID01" {
				t.Errorf("the next element was mis-framed: %+v", f.Dataset.Elements)
			}
		})
	}
}

// TestSequenceDelimiterCounted: a defined length sequence whose length
// counts a trailing sequence delimiter ends there, from memory and from a
// stream alike.
func TestSequenceDelimiterCounted(t *testing.T) {
	sq, name := NewTag(0x0040, 0xA730), NewTag(0x0010, 0x0010)
	item := el(TagItem, 0, 12, el(name, PN, 4, []byte("Doe^")))
	in := part10(t, ExplicitVRLittleEndian, el(sq, SQ, uint32(len(item)+8), nil), item, el(TagSequenceDelimitationItem, 0, 0, nil), el(NewTag(0x0040, 0xA731), LO, 2, []byte("ok")))
	for how, parse := range map[string]func() (*File, error){
		"ParseBytes": func() (*File, error) { return ParseBytes(in, ReadOptions{}) },
		"Parse":      func() (*File, error) { return Parse(onlyReader{bytes.NewReader(in)}, ReadOptions{}) },
	} {
		f, err := parse()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if e := f.Dataset.Get(sq); e == nil || len(e.Items) != 1 || e.Items[0].String(name) != "Doe^" {
			t.Errorf("%s: sequence %+v, want one item", how, e)
		}
		if f.Dataset.String(NewTag(0x0040, 0xA731)) != "ok" {
			t.Errorf("%s: the element after the sequence was mis-framed", how)
		}
	}
}

// TestMaxInMemory: a stream parse keeps at most MaxInMemory bytes of
// values and fails with ErrTooLarge before reading the one that would
// pass it — one huge text value, many values, or a deflated stream that
// inflates far beyond its size — allocating nothing near the values.
// Bulk values SkipBulk leaves unread do not count, and a parse from
// memory (whose values alias the input) is not limited.
func TestMaxInMemory(t *testing.T) {
	const limit = 1 << 20
	text := NewTag(0x0008, 0x030E) // UT
	many := make([][]byte, 20)
	for i := range many {
		many[i] = el(NewTag(0x0009, 0x1000+uint16(i)), UT, 100<<10, bytes.Repeat([]byte{'a'}, 100<<10))
	}
	deflated := func() []byte {
		ts, _ := LookupTransferSyntax(DeflatedExplicitVRLittleEndian)
		f := &File{Meta: NewFileMeta("1.2.840.10008.5.1.4.1.1.7", "2.25.1", DeflatedExplicitVRLittleEndian), TransferSyntax: ts}
		f.Dataset.Set(Element{Tag: text, VR: UT, Value: make([]byte, 64<<20)})
		var b bytes.Buffer
		if err := f.Write(&b, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}()
	tests := []struct {
		name string
		in   []byte
		opts ReadOptions
		want error // nil: parses
	}{
		{"one 2 MiB text value", part10(t, ExplicitVRLittleEndian, el(text, UT, 2<<20, make([]byte, 2<<20))), ReadOptions{}, ErrTooLarge},
		{"twenty 100 KiB values", part10(t, ExplicitVRLittleEndian, many...), ReadOptions{}, ErrTooLarge},
		{"64 MiB inflated from " + strconv.Itoa(len(deflated)) + " bytes", deflated, ReadOptions{}, ErrTooLarge},
		{"2 MiB bulk value skipped", part10(t, ExplicitVRLittleEndian, el(NewTag(0x0009, 0x1001), OB, 2<<20, make([]byte, 2<<20))), ReadOptions{SkipBulk: true}, nil},
		{"under the limit", part10(t, ExplicitVRLittleEndian, many[:9]...), ReadOptions{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.MaxInMemory = limit
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Parse(onlyReader{bytes.NewReader(tt.in)}, opts)
			runtime.ReadMemStats(&after)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Parse: %v, want %v", err, tt.want)
			}
			var pe *ParseError
			if tt.want != nil && !errors.As(err, &pe) {
				t.Errorf("Parse: %T, want a *ParseError naming the element", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 3*limit {
				t.Errorf("allocated %d bytes with MaxInMemory %d", n, limit)
			}
			if _, err := ParseBytes(tt.in, opts); err != nil && !tt.opts.SkipBulk && tt.want != nil && !strings.Contains(tt.name, "inflated") {
				t.Errorf("ParseBytes (values alias the input, nothing to limit): %v", err)
			}
		})
	}
}
