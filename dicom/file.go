package dicom

import (
	"fmt"
	"io"
	"strings"
)

// File is a DICOM Part 10 file (PS3.10 7): preamble, File Meta
// Information and the data set.
type File struct {
	Preamble       []byte  // 128 bytes; nil if the source had none
	Meta           Dataset // group 0002, always Explicit VR Little Endian
	TransferSyntax TransferSyntax
	Dataset        Dataset
	// DatasetOffset is where the data set starts in the source, after the
	// File Meta Information.
	DatasetOffset int64
}

const (
	preambleLen = 128
	magic       = "DICM"
)

// ParseBytes parses a Part 10 file held in memory. Values alias b (no
// copies) except where they must be converted: big endian values, and
// every value of a deflated data set. Files without preamble or File Meta
// Information are accepted, their encoding detected from the data, as
// is that of a transfer syntax we do not know.
func ParseBytes(b []byte, opts ReadOptions) (*File, error) {
	return newMemDecoder(b, opts).parseFile()
}

// Parse parses a Part 10 file from a stream. Values are copied; with
// SkipBulk, bulk values are skipped (seeked past if r is an io.Seeker)
// and never buffered. Offsets are counted from where r was positioned.
func Parse(r io.Reader, opts ReadOptions) (*File, error) {
	d := newStreamDecoder(r, opts)
	defer d.release()
	return d.parseFile()
}

func (d *decoder) parseFile() (*File, error) {
	f := &File{}
	head := d.peek(preambleLen + len(magic))
	switch {
	case len(head) == preambleLen+len(magic) && string(head[preambleLen:]) == magic:
		f.Preamble = head[:preambleLen:preambleLen]
		if d.br != nil {
			f.Preamble = append([]byte(nil), f.Preamble...)
		}
		d.skip(preambleLen + int64(len(magic)))
	case len(head) >= len(magic) && string(head[:len(magic)]) == magic:
		d.skip(int64(len(magic)))
	}
	explicitLE := dsEncoding{}
	if b := d.peek(4); len(b) == 4 && explicitLE.tag(b).Group() == 0x0002 {
		if err := d.readMeta(&f.Meta); err != nil {
			return nil, err
		}
	}
	uid := strings.TrimRight(string(f.Meta.Get(TagTransferSyntaxUID).valueBytes()), " \x00")
	ts, ok := LookupTransferSyntax(uid)
	if !ok {
		detected, ok := d.detect(f.Meta.Len() > 0 || f.Preamble != nil)
		if !ok {
			if f.Meta.Len() == 0 && f.Preamble == nil {
				return nil, &ParseError{Offset: d.off, Err: ErrNotDICOM}
			}
			if d.atEOF() {
				// Meta only: nothing to detect from.
				detected, _ = LookupTransferSyntax(ExplicitVRLittleEndian)
			} else {
				return nil, &ParseError{Offset: d.off, Err: fmt.Errorf("%w: cannot tell the data set's encoding", ErrNotDICOM)}
			}
		}
		if uid != "" {
			// A transfer syntax we do not know (private): keep its UID,
			// read it as detected; pixel data with undefined length will
			// be taken as encapsulated.
			detected = TransferSyntax{UID: uid, Name: uid, Implicit: detected.Implicit, Order: detected.Order, Encapsulated: true}
		}
		ts = detected
	} else if !ts.Deflated && ts.Order == le && (ts.Implicit || !ts.Encapsulated) {
		// The meta can lie about implicit/explicit; the data tells, but
		// only against a declared encoding the data contradicts, never
		// against one it reads cleanly in (dcmtk always trusts the meta).
		// Explicit data read as implicit has a first "length" of at least
		// 64 KiB (the VR and the real length), past the window of any
		// file of some size: there, a first value the window cannot hold
		// counts as a contradiction too.
		b, eof := d.window()
		declared := trialRead(b, eof, encodingOf(ts))
		other := trialRead(b, eof, dsEncoding{implicit: !ts.Implicit})
		unconfirmed := ts.Implicit && declared.elements == 0
		if other.ok && other.elements > 0 && (!declared.ok || unconfirmed) {
			if ts.Implicit {
				ts, _ = LookupTransferSyntax(ExplicitVRLittleEndian)
			} else {
				ts, _ = LookupTransferSyntax(ImplicitVRLittleEndian)
			}
		}
	}
	f.TransferSyntax = ts
	f.DatasetOffset = d.off
	if ts.Deflated {
		d.inflate()
	}
	noHeader := f.Meta.Len() == 0 && f.Preamble == nil
	err := d.readDataset(&f.Dataset, frame{en: encodingOf(ts), end: -1, top: true, stopAt: d.opts.StopAtTag, part10: true})
	if err != nil {
		if noHeader && f.Dataset.Len() == 0 {
			return nil, fmt.Errorf("%w: %w", ErrNotDICOM, err)
		}
		return nil, err
	}
	// File meta elements inside the data set belong to the meta group (they
	// sort first); dcmtk moves them there too.
	n := 0
	for n < len(f.Dataset.Elements) && f.Dataset.Elements[n].Tag.Group() == 0x0002 {
		if f.Meta.Get(f.Dataset.Elements[n].Tag) == nil {
			f.Meta.Set(f.Dataset.Elements[n])
		}
		n++
	}
	f.Dataset.Elements = f.Dataset.Elements[n:]
	return f, nil
}

// valueBytes returns the element's value, or nil for a nil element.
func (e *Element) valueBytes() []byte {
	if e == nil {
		return nil
	}
	return e.Value
}

// readMeta reads the File Meta Information: group 0002 elements, Explicit
// VR Little Endian. The group length says where the group ends, but is
// only trusted as far as the tags agree.
func (d *decoder) readMeta(meta *Dataset) error {
	metaEnd := int64(-1)
	en := dsEncoding{}
	for {
		b := d.peek(8)
		if len(b) < 4 || en.tag(b).Group() != 0x0002 {
			return nil
		}
		if metaEnd >= 0 && d.off >= metaEnd {
			// Past the declared length: only go on if the next element is
			// certainly a meta element (a VR follows its tag).
			if len(b) < 8 || !VR(uint16(b[4])<<8|uint16(b[5])).Valid() {
				return nil
			}
		}
		h, err := d.readHeader(en, 0)
		if err != nil {
			return err
		}
		if h.length == undefinedLength {
			return d.errAt(h.offset, h.tag, ErrUndefinedLength)
		}
		e := Element{Tag: h.tag, VR: h.vr}
		if h.vr == SQ {
			return d.errAt(h.offset, h.tag, fmt.Errorf("%w: sequence in File Meta Information", ErrMalformed))
		}
		v, err := d.value(int64(h.length))
		if err != nil {
			return d.errAt(h.offset, h.tag, err)
		}
		e.Value = v
		if h.tag == TagFileMetaInformationGroupLength && len(v) == 4 {
			metaEnd = d.off + int64(le.Uint32(v))
		}
		meta.Set(e)
	}
}

// detectWindow is how much of the data set detection looks at: all of
// it up to this size, in memory as from a stream (bufio's buffer), so the
// two parsers always decide alike.
const detectWindow = 64 << 10

// trialElements bounds how many elements a trial reading checks.
const trialElements = 32

// detectEncodings are the data set encodings detection tries, in order:
// Explicit VR Little Endian first, the encoding of every encapsulated
// transfer syntax (PS3.5 A.4) and the one File.Write uses for a transfer
// syntax it does not know, so that what we write is read back as written.
var detectEncodings = [...]struct {
	en  dsEncoding
	uid string
}{
	{dsEncoding{}, ExplicitVRLittleEndian},
	{dsEncoding{implicit: true}, ImplicitVRLittleEndian},
	{dsEncoding{big: true}, ExplicitVRBigEndian},
}

// window returns the start of the rest of the source, at most
// detectWindow bytes, and whether that is all there is.
func (d *decoder) window() ([]byte, bool) {
	b := d.peek(detectWindow)
	return b, len(b) < detectWindow
}

// detect guesses the encoding of the data set at the current offset, for
// a file whose meta does not name a transfer syntax we know: the first
// encoding in which the data set reads without contradiction (see
// trialRead). For bare input (no preamble or meta: known is false), the
// first tag's group must also be a plausible one, or it is not DICOM.
// If no encoding reads cleanly, the first element alone decides, as dcmtk
// does: the byte order from the tag group, explicit VR if a valid VR
// follows; the parse then recovers what it can.
func (d *decoder) detect(known bool) (TransferSyntax, bool) {
	b, eof := d.window()
	if len(b) < 8 {
		return TransferSyntax{}, false
	}
	// Group 0000 is only plausible in a file known to be DICOM.
	plausible := func(g uint16) bool { return (g != 0 || known) && g <= 0x0FFF || g == 0xFFFE }
	for _, c := range detectEncodings {
		if (known || plausible(c.en.tag(b).Group())) && trialRead(b, eof, c.en).ok {
			ts, _ := LookupTransferSyntax(c.uid)
			return ts, true
		}
	}
	gLE := uint16(b[0]) | uint16(b[1])<<8
	gBE := uint16(b[0])<<8 | uint16(b[1])
	explicit := VR(uint16(b[4])<<8 | uint16(b[5])).Valid()
	switch {
	case plausible(gLE) && (gLE <= gBE || !plausible(gBE)):
		if explicit {
			ts, _ := LookupTransferSyntax(ExplicitVRLittleEndian)
			return ts, true
		}
		// Implicit: the 32-bit length must fit what is left (as far as
		// the window tells).
		if n := le.Uint32(b[4:]); eof && n != undefinedLength && int64(n) > int64(len(b)-8) {
			return TransferSyntax{}, false
		}
		ts, _ := LookupTransferSyntax(ImplicitVRLittleEndian)
		return ts, true
	case plausible(gBE) && explicit:
		ts, _ := LookupTransferSyntax(ExplicitVRBigEndian)
		return ts, true
	}
	return TransferSyntax{}, false
}

// trial is the outcome of trialRead.
type trial struct {
	ok       bool // no contradiction
	elements int  // elements read: whole, or up to an undefined length
}

// trialRead reads the top-level element headers at the start of b (all
// that is left of the source if eof) in encoding en, skipping values,
// for up to trialElements elements, and reports whether they read without
// a contradiction: an explicit VR that is not a VR, tags that do not
// ascend, an item at the top level, a value or header that runs past the
// end of the source. It stops at the first undefined length (a sequence
// it would have to parse) and where the window ends. A data set our
// writer wrote always reads cleanly in its own encoding.
func trialRead(b []byte, eof bool, en dsEncoding) trial {
	var t trial
	var prev Tag
	for off := 0; t.elements < trialElements && off < len(b); t.elements++ {
		rest := b[off:]
		if len(rest) < 8 {
			t.ok = !eof
			return t
		}
		tag := en.tag(rest)
		if tag == TagItem || t.elements > 0 && tag <= prev {
			return t
		}
		prev = tag
		hdr, length := 8, uint32(0)
		switch {
		case en.implicit || tag.Group() == 0xFFFE:
			length = en.u32(rest[4:])
		default:
			vr := VR(rest[4])<<8 | VR(rest[5])
			switch {
			case !vr.Valid():
				return t
			case vr.LongLength():
				if len(rest) < 12 {
					t.ok = !eof
					return t
				}
				hdr, length = 12, en.u32(rest[8:])
			default:
				length = uint32(en.u16(rest[6:]))
			}
		}
		if length == undefinedLength {
			t.elements++
			break
		}
		if int64(length) > int64(len(rest)-hdr) {
			t.ok = !eof
			return t
		}
		off += hdr + int(length)
	}
	t.ok = true
	return t
}

// NewFileMeta returns File Meta Information for an instance: version,
// SOP class and instance, transfer syntax and Medimint's implementation
// identification (the group length is computed when written).
func NewFileMeta(sopClassUID, sopInstanceUID, transferSyntaxUID string) Dataset {
	var m Dataset
	m.Set(Element{Tag: NewTag(0x0002, 0x0001), VR: OB, Value: []byte{0x00, 0x01}})
	m.Set(NewStrings(TagMediaStorageSOPClassUID, UI, sopClassUID))
	m.Set(NewStrings(TagMediaStorageSOPInstanceUID, UI, sopInstanceUID))
	m.Set(NewStrings(TagTransferSyntaxUID, UI, transferSyntaxUID))
	m.Set(NewStrings(NewTag(0x0002, 0x0012), UI, ImplementationClassUID))
	m.Set(NewStrings(NewTag(0x0002, 0x0013), SH, ImplementationVersionName))
	return m
}
