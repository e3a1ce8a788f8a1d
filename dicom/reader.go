package dicom

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ReadOptions controls parsing.
type ReadOptions struct {
	// SkipBulk leaves bulk values unread: Pixel Data (also Float and Double
	// Float Pixel Data), and OB/OD/OF/OL/OV/OW/UN values longer than
	// BulkThreshold. Element.Bulk (or Fragment.Offset/Length) records
	// where they are instead.
	SkipBulk bool
	//
	// Offsets count from the start of the source and locate the value as
	// stored: big endian for Explicit VR Big Endian (swap it by the VR's
	// word size before handing it to WriteOptions.Bulk, which wants the
	// little endian value), and in the inflated stream for a deflated data
	// set (nothing to seek to: read deflated files without SkipBulk).
	//
	// BulkThreshold is the length above which a binary value is bulk;
	// 1024 when zero.
	BulkThreshold int64
	// StopAtTag, if non-zero, stops the parse before the first top-level
	// element whose tag is >= StopAtTag (TagPixelData for a header parse).
	StopAtTag Tag
	// MaxDepth limits sequence nesting; 64 when zero.
	MaxDepth int
	// MaxInMemory bounds the total length of the values a parse of a
	// stream reads into memory (bulk values SkipBulk leaves unread do not
	// count; a parse of a byte slice allocates none); 0: no limit. Beyond
	// it the parse fails with ErrTooLarge before reading the value, so
	// that a huge text value, or a deflated stream that inflates without
	// end, cannot exhaust memory.
	MaxInMemory int64
}

const (
	defaultBulkThreshold = 1024
	defaultMaxDepth      = 64
	undefinedLength      = 0xFFFFFFFF
	// firstChunk bounds the first allocation for a value read from a
	// stream, so a forged length cannot make us allocate more than the
	// stream actually delivers (times two).
	firstChunk = 64 << 10
)

// dsEncoding is how a data set (or nested part of one) is encoded.
type dsEncoding struct {
	implicit bool
	big      bool
}

func encodingOf(ts TransferSyntax) dsEncoding {
	return dsEncoding{implicit: ts.Implicit, big: ts.Order == binary.BigEndian}
}

func (en dsEncoding) u16(b []byte) uint16 {
	if en.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (en dsEncoding) u32(b []byte) uint32 {
	if en.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (en dsEncoding) tag(b []byte) Tag { return NewTag(en.u16(b), en.u16(b[2:])) }

// decoder reads from memory (mem, values alias it) or from a stream (br;
// values are copied in bounded chunks, skipped values are discarded or
// seeked past).
type decoder struct {
	opts ReadOptions
	mem  []byte
	br   *bufio.Reader
	rs   io.ReadSeeker // the stream under br when it can seek
	size int64         // total length of the source, -1 if unknown
	off  int64         // source offset of the next byte
	kept int64         // bytes of values read into memory (streams)
	hdr  [12]byte
	bufs []*bufio.Reader // from readBufs, back there on release
}

// readBufs recycles the read-ahead buffers of stream parses: a parse of
// every stored instance would otherwise allocate 64 KiB or more.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readAhead) }}

const readAhead = 64 << 10

// buffered returns a pooled reader over r, released with the decoder.
func (d *decoder) buffered(r io.Reader) *bufio.Reader {
	br := readBufs.Get().(*bufio.Reader)
	br.Reset(r)
	d.bufs = append(d.bufs, br)
	return br
}

// release returns the decoder's buffers; it must not be used after.
func (d *decoder) release() {
	for _, br := range d.bufs {
		br.Reset(nil)
		readBufs.Put(br)
	}
	d.bufs, d.br = nil, nil
}

func newMemDecoder(b []byte, opts ReadOptions) *decoder {
	return &decoder{opts: opts.withDefaults(), mem: b, size: int64(len(b))}
}

func newStreamDecoder(r io.Reader, opts ReadOptions) *decoder {
	d := &decoder{opts: opts.withDefaults(), size: -1}
	if rs, ok := r.(io.ReadSeeker); ok {
		if cur, err := rs.Seek(0, io.SeekCurrent); err == nil {
			if end, err := rs.Seek(0, io.SeekEnd); err == nil {
				if _, err := rs.Seek(cur, io.SeekStart); err == nil {
					d.rs, d.size = rs, end-cur
				}
			}
		}
	}
	d.br = d.buffered(r)
	return d
}

// inflate switches the decoder to reading the raw deflate stream that
// follows the current offset (Deflated Explicit VR Little Endian).
func (d *decoder) inflate() {
	var src io.Reader
	if d.br == nil {
		src = &sliceReader{b: d.mem[d.off:]}
	} else {
		src = d.br
	}
	d.mem, d.rs, d.size = nil, nil, -1
	d.br = d.buffered(flate.NewReader(src))
}

// sliceReader feeds flate from memory; it is an io.ByteReader, so flate
// reads exactly the compressed bytes.
type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

func (s *sliceReader) ReadByte() (byte, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c, nil
}

func (o ReadOptions) withDefaults() ReadOptions {
	if o.BulkThreshold <= 0 {
		o.BulkThreshold = defaultBulkThreshold
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = defaultMaxDepth
	}
	return o
}

// remaining returns the bytes left in the source, or -1 if unknown.
func (d *decoder) remaining() int64 {
	if d.size < 0 {
		return -1
	}
	return d.size - d.off
}

// peek returns up to n upcoming bytes without consuming them.
func (d *decoder) peek(n int) []byte {
	if d.br == nil {
		end := min(d.off+int64(n), int64(len(d.mem)))
		return d.mem[d.off:end]
	}
	b, _ := d.br.Peek(n)
	return b
}

func (d *decoder) atEOF() bool { return len(d.peek(1)) == 0 }

// read consumes n (<= 12) header bytes.
func (d *decoder) read(n int) ([]byte, bool) {
	if d.br == nil {
		if int64(len(d.mem))-d.off < int64(n) {
			return nil, false
		}
		b := d.mem[d.off : d.off+int64(n)]
		d.off += int64(n)
		return b, true
	}
	k, err := io.ReadFull(d.br, d.hdr[:n])
	d.off += int64(k)
	return d.hdr[:n], err == nil
}

// value consumes a value of n bytes: a sub-slice of the input in memory,
// a fresh buffer filled in bounded chunks from a stream.
func (d *decoder) value(n int64) ([]byte, error) {
	if rem := d.remaining(); rem >= 0 && n > rem {
		return nil, ErrValueTooLong
	}
	if d.br == nil {
		b := d.mem[d.off : d.off+n : d.off+n]
		d.off += n
		return b, nil
	}
	if max := d.opts.MaxInMemory; max > 0 {
		if d.kept+n > max {
			return nil, fmt.Errorf("%w: %d bytes of values after %d, limit %d", ErrTooLarge, n, d.kept, max)
		}
		d.kept += n
	}
	size := min(n, firstChunk)
	buf := make([]byte, size)
	for {
		k, err := io.ReadFull(d.br, buf[len(buf)-int(size):])
		d.off += int64(k)
		if err != nil {
			return nil, ErrValueTooLong
		}
		if int64(len(buf)) == n {
			return buf, nil
		}
		size = min(n-int64(len(buf)), int64(len(buf)))
		buf = append(buf, make([]byte, size)...)
	}
}

// skip consumes n bytes without keeping them.
func (d *decoder) skip(n int64) error {
	if rem := d.remaining(); rem >= 0 && n > rem {
		return ErrValueTooLong
	}
	if d.br == nil {
		d.off += n
		return nil
	}
	if d.rs != nil {
		if buffered := int64(d.br.Buffered()); n > buffered {
			if _, err := d.br.Discard(int(buffered)); err != nil {
				return err
			}
			if _, err := d.rs.Seek(n-buffered, io.SeekCurrent); err != nil {
				return fmt.Errorf("dicom: seeking past bulk value: %w", err)
			}
			d.br.Reset(d.rs)
			d.off += n
			return nil
		}
	}
	k, err := d.br.Discard(int(min(n, 1<<62)))
	d.off += int64(k)
	if err != nil {
		return ErrValueTooLong
	}
	return nil
}

// header is a decoded element (or item) header.
type header struct {
	tag    Tag
	vr     VR
	length uint32
	offset int64 // of the tag
}

func (d *decoder) errAt(off int64, t Tag, err error) error {
	var pe *ParseError
	if errors.As(err, &pe) {
		return err
	}
	return &ParseError{Offset: off, Tag: t, Err: err}
}

// readHeader reads a tag and, for data elements, VR and length.
// pixelRep resolves US/SS in implicit VR.
func (d *decoder) readHeader(en dsEncoding, pixelRep uint16) (header, error) {
	h := header{offset: d.off}
	b, ok := d.read(4)
	if !ok {
		return h, d.errAt(h.offset, 0, ErrTruncated)
	}
	h.tag = en.tag(b)
	if h.tag.Group() == 0xFFFE || en.implicit {
		// Items and delimiters have no VR in any encoding (PS3.5 7.5).
		b, ok := d.read(4)
		if !ok {
			return h, d.errAt(h.offset, h.tag, ErrTruncated)
		}
		h.length = en.u32(b)
		if h.tag.Group() != 0xFFFE {
			h.vr = ResolveVR(h.tag, pixelRep)
		}
		return h, nil
	}
	b, ok = d.read(4)
	if !ok {
		return h, d.errAt(h.offset, h.tag, ErrTruncated)
	}
	vr := VR(b[0])<<8 | VR(b[1])
	switch {
	case vr.Valid():
		h.vr = vr
	case isUpper(b[0]) && isUpper(b[1]):
		// An unknown but well-formed VR: read it as UN with a 32-bit
		// length, as dcmtk does.
		h.vr = UN
	default:
		// Not a VR at all: the element is implicitly encoded inside an
		// explicit VR data set; dcmtk recovers the same way.
		h.vr = ResolveVR(h.tag, pixelRep)
		h.length = en.u32(b)
		return h, nil
	}
	if h.vr.LongLength() || vr != h.vr {
		b, ok = d.read(4)
		if !ok {
			return h, d.errAt(h.offset, h.tag, ErrTruncated)
		}
		h.length = en.u32(b)
	} else {
		h.length = uint32(en.u16(b[2:]))
	}
	return h, nil
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// frame carries the state of one level of data set being parsed.
type frame struct {
	en       dsEncoding
	end      int64 // offset where a defined-length item ends; -1 if undefined
	undefItm bool  // an undefined-length item: ends at an item delimiter
	top      bool  // the top-level data set: ends at end of input
	depth    int
	pixelRep uint16
	stopAt   Tag // top level only: stop before a tag >= stopAt
	// part10: the top-level data set of a Part 10 file, whose group 0002
	// elements belong to the File Meta Information.
	part10 bool
}

// readDataset reads data elements into ds until the frame ends.
func (d *decoder) readDataset(ds *Dataset, f frame) error {
	if ds.Elements == nil {
		// Growing the slice element by element costs more than the parse
		// itself; most images carry 50-200 top-level elements.
		n := 8
		if f.top {
			n = 128
		}
		ds.Elements = make([]Element, 0, n)
	}
	for {
		if f.end >= 0 {
			if d.off == f.end {
				return nil
			}
			if d.off > f.end {
				return d.errAt(d.off, 0, fmt.Errorf("%w: element overruns its item", ErrValueTooLong))
			}
		} else if f.top && d.atEOF() {
			return nil
		}
		if f.stopAt != 0 {
			if b := d.peek(4); len(b) == 4 && f.en.tag(b) >= f.stopAt {
				return nil
			}
		}
		h, err := d.readHeader(f.en, f.pixelRep)
		if err != nil {
			return err
		}
		switch h.tag {
		case TagItemDelimitationItem:
			if f.undefItm {
				return nil
			}
			// A stray delimiter: dcmtk skips it; so do we.
			continue
		case TagSequenceDelimitationItem:
			if f.undefItm {
				return d.errAt(h.offset, h.tag, fmt.Errorf("%w: sequence delimiter inside an item", ErrMalformed))
			}
			continue
		case TagItem:
			return d.errAt(h.offset, h.tag, fmt.Errorf("%w: item outside a sequence", ErrMalformed))
		}
		if f.part10 && h.tag.Group() == 0x0002 && (h.vr == SQ || h.length == undefinedLength) {
			// parseFile moves it to the meta, which holds no sequences
			// (readMeta refuses one there too).
			return d.errAt(h.offset, h.tag, fmt.Errorf("%w: sequence in the File Meta Information group", ErrMalformed))
		}
		e := Element{Tag: h.tag, VR: h.vr}
		if err := d.readValue(&e, h, f); err != nil {
			return err
		}
		if e.Tag == TagPixelRepresentation && len(e.Value) >= 2 {
			f.pixelRep = binary.LittleEndian.Uint16(e.Value)
		}
		if n := len(ds.Elements); n == 0 || ds.Elements[n-1].Tag < e.Tag {
			ds.Elements = append(ds.Elements, e)
		} else {
			ds.Set(e) // out of order in the source: keep ours sorted
		}
	}
}

// isPixelData reports whether t is one of the Pixel Data tags, which are
// always bulk and may be encapsulated.
func isPixelData(t Tag) bool {
	return t == TagPixelData || t == TagFloatPixelData || t == TagDoubleFloatPixelData
}

func (d *decoder) readValue(e *Element, h header, f frame) error {
	if h.length == undefinedLength {
		e.UndefinedLength = true
		switch {
		case h.tag == TagPixelData:
			e.VR = OB // encapsulated pixel data is OB whatever the source said (PS3.5 A.4)
			return d.readFragments(e, f)
		case h.vr == SQ:
			return d.readSequence(e, f.en, -1, f, h.offset)
		case h.vr == UN || f.en.implicit:
			// PS3.5 6.2.2: an undefined-length UN is a sequence encoded in
			// Implicit VR Little Endian. In an implicit data set, any
			// undefined length element can only be a sequence.
			e.VR = SQ
			return d.readSequence(e, dsEncoding{implicit: true}, -1, f, h.offset)
		}
		return d.errAt(h.offset, h.tag, ErrUndefinedLength)
	}
	n := int64(h.length)
	if h.vr == SQ {
		if rem := d.remaining(); rem >= 0 && n > rem {
			return d.errAt(h.offset, h.tag, ErrValueTooLong)
		}
		return d.readSequence(e, f.en, n, f, h.offset)
	}
	if f.end >= 0 && d.off+n > f.end {
		return d.errAt(h.offset, h.tag, fmt.Errorf("%w: value overruns its item", ErrValueTooLong))
	}
	if d.opts.SkipBulk && (isPixelData(h.tag) || h.vr.IsBulk() && n > d.opts.BulkThreshold) {
		e.Bulk = &BulkRef{Offset: d.off, Length: n}
		if err := d.skip(n); err != nil {
			return d.errAt(h.offset, h.tag, err)
		}
		return nil
	}
	v, err := d.value(n)
	if err != nil {
		return d.errAt(h.offset, h.tag, err)
	}
	if f.en.big && h.vr != UN {
		v = swapCopy(v, h.vr.WordSize())
	}
	e.Value = v
	return nil
}

// readSequence reads the items of a sequence of the given length (-1:
// undefined, ends at a sequence delimiter); offset is the element's.
func (d *decoder) readSequence(e *Element, en dsEncoding, length int64, parent frame, offset int64) error {
	e.VR = SQ
	if parent.depth+1 > d.opts.MaxDepth {
		return d.errAt(offset, e.Tag, ErrTooDeep)
	}
	end := int64(-1)
	if length >= 0 {
		end = d.off + length
	}
	for {
		if end >= 0 && d.off >= end {
			if d.off > end {
				return d.errAt(d.off, e.Tag, fmt.Errorf("%w: item overruns its sequence", ErrValueTooLong))
			}
			return nil
		}
		h, err := d.readHeader(dsEncoding{big: en.big, implicit: true}, 0)
		if err != nil {
			return err
		}
		switch h.tag {
		case TagSequenceDelimitationItem:
			// A defined length sequence ends at its length; a delimiter
			// before that would cut it short of what the length claims,
			// a claim only the source's size (unknown to a stream) could
			// check: malformed, or the stream and memory parsers would
			// disagree. A delimiter counted in the length ends it exactly
			// (some writers add one); that is harmless.
			if end >= 0 && d.off != end {
				return d.errAt(h.offset, h.tag, fmt.Errorf("%w: sequence delimiter inside a sequence of defined length", ErrMalformed))
			}
			return nil
		case TagItem:
		default:
			return d.errAt(h.offset, h.tag, fmt.Errorf("%w: %s in sequence %s where an item belongs", ErrMalformed, h.tag, e.Tag))
		}
		item := &Dataset{}
		f := frame{en: en, end: -1, depth: parent.depth + 1, pixelRep: parent.pixelRep}
		if h.length == undefinedLength {
			f.undefItm = true
		} else {
			if rem := d.remaining(); rem >= 0 && int64(h.length) > rem {
				return d.errAt(h.offset, h.tag, ErrValueTooLong)
			}
			f.end = d.off + int64(h.length)
			if end >= 0 && f.end > end {
				return d.errAt(h.offset, h.tag, fmt.Errorf("%w: item overruns its sequence", ErrValueTooLong))
			}
		}
		if err := d.readDataset(item, f); err != nil {
			return err
		}
		e.Items = append(e.Items, item)
	}
}

// readFragments reads encapsulated pixel data (PS3.5 A.4): the Basic
// Offset Table item, then one item per fragment, then a sequence delimiter.
func (d *decoder) readFragments(e *Element, f frame) error {
	fr := &Fragments{}
	e.Fragments = fr
	en := dsEncoding{big: f.en.big, implicit: true}
	for first := true; ; first = false {
		h, err := d.readHeader(en, 0)
		if err != nil {
			return err
		}
		switch h.tag {
		case TagSequenceDelimitationItem:
			return nil
		case TagItem:
		default:
			return d.errAt(h.offset, h.tag, fmt.Errorf("%w: %s in encapsulated pixel data", ErrMalformed, h.tag))
		}
		if h.length == undefinedLength {
			return d.errAt(h.offset, h.tag, fmt.Errorf("%w: pixel data fragment", ErrUndefinedLength))
		}
		n := int64(h.length)
		if first {
			fr.BOTOffset = d.off
			v, err := d.value(n)
			if err != nil {
				return d.errAt(h.offset, h.tag, err)
			}
			fr.BasicOffsetTable = make([]uint32, len(v)/4)
			for i := range fr.BasicOffsetTable {
				fr.BasicOffsetTable[i] = en.u32(v[4*i:])
			}
			continue
		}
		frag := Fragment{Offset: d.off, Length: h.length}
		if d.opts.SkipBulk {
			err = d.skip(n)
		} else {
			frag.Data, err = d.value(n)
		}
		if err != nil {
			return d.errAt(h.offset, h.tag, err)
		}
		fr.Items = append(fr.Items, frag)
	}
}

// swapCopy returns a copy of v with each word of size bytes reversed
// (big to little endian); v itself is never modified, it may alias input.
func swapCopy(v []byte, size int) []byte {
	if size <= 1 || len(v) < size {
		return v
	}
	out := make([]byte, len(v))
	copy(out, v)
	swapInPlace(out, size)
	return out
}

func swapInPlace(b []byte, size int) {
	n := len(b) - len(b)%size
	switch size {
	case 2:
		for i := 0; i < n; i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	case 4:
		for i := 0; i < n; i += 4 {
			binary.LittleEndian.PutUint32(b[i:], binary.BigEndian.Uint32(b[i:]))
		}
	case 8:
		for i := 0; i < n; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.BigEndian.Uint64(b[i:]))
		}
	}
}

// ReadDataset reads a bare data set (no preamble or File Meta Information,
// as DIMSE carries it) encoded in ts, up to the end of r.
func ReadDataset(r io.Reader, ts TransferSyntax, opts ReadOptions) (*Dataset, error) {
	d := newStreamDecoder(r, opts)
	defer d.release()
	if ts.Deflated {
		d.inflate()
	}
	ds := &Dataset{}
	if err := d.readDataset(ds, frame{en: encodingOf(ts), end: -1, top: true, pixelRep: 0, stopAt: d.opts.StopAtTag}); err != nil {
		return nil, err
	}
	return ds, nil
}
