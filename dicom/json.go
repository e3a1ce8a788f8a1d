package dicom

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// This file is the DICOM JSON Model encoder (PS3.18 Annex F.2). It appends
// straight into a byte buffer that is flushed to the writer at element
// boundaries (and inside long InlineBinary values), so a data set is never
// turned into an intermediate tree and a large value is never base64-encoded
// in one piece.

// JSONOptions controls how a data set is written in the DICOM JSON Model.
// The zero value writes every binary value as InlineBinary and refuses
// encapsulated Pixel Data and values that were not loaded (Element.Bulk).
type JSONOptions struct {
	// BulkDataURI, when set, is asked for the "BulkDataURI" of each binary
	// value (VR OB, OD, OF, OL, OV, OW, UN) longer than BulkDataThreshold
	// bytes, of encapsulated Pixel Data and of every value that was not
	// loaded. Returning "" writes the value as InlineBinary instead. The
	// path, and the slice inside it, is only valid during the call.
	BulkDataURI func(path ElementPath) string
	// BulkDataThreshold is the longest binary value, in bytes, written as
	// InlineBinary when BulkDataURI is set.
	BulkDataThreshold int
	// InlineEncapsulated writes encapsulated Pixel Data that gets no
	// BulkDataURI as InlineBinary of its encapsulated value: the Basic
	// Offset Table item, the fragment items and the Sequence Delimitation
	// Item, as PS3.5 A.4 encodes them. Without it, such Pixel Data is an error.
	InlineEncapsulated bool
}

// ElementPath locates a data element inside a data set: the enclosing
// sequence items, outermost first, then the element's tag.
type ElementPath struct {
	Items []PathItem
	Tag   Tag
}

// PathItem is one step into a sequence: its tag and the item's index
// (from 0).
type PathItem struct {
	Sequence Tag
	Index    int
}

// AppendText appends the path as "ssssssss/i/.../tttttttt", the tags in
// upper-case hex, the form used in bulk data URIs.
func (p ElementPath) AppendText(b []byte) []byte {
	for _, it := range p.Items {
		b = jsonAppendTagHex(b, it.Sequence)
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(it.Index), 10)
		b = append(b, '/')
	}
	return jsonAppendTagHex(b, p.Tag)
}

// String returns the path as AppendText formats it.
func (p ElementPath) String() string {
	return string(p.AppendText(make([]byte, 0, 8+len(p.Items)*16)))
}

// Lookup returns the element at path p, or nil. The pointer is valid until
// the data set is modified.
func (ds *Dataset) Lookup(p ElementPath) *Element {
	for _, it := range p.Items {
		sq := ds.Get(it.Sequence)
		if sq == nil || it.Index < 0 || it.Index >= len(sq.Items) {
			return nil
		}
		ds = sq.Items[it.Index]
	}
	return ds.Get(p.Tag)
}

// AppendJSON appends the DICOM JSON object for ds to dst. It is the
// low-allocation path for precomputing metadata: with a dst of sufficient
// capacity it allocates only for values that need character set conversion.
func AppendJSON(dst []byte, ds *Dataset, opts *JSONOptions) ([]byte, error) {
	s := newJSONEncodeState(nil, dst, opts)
	err := s.top(ds)
	return s.buf, err
}

// JSONEncoder writes DICOM JSON objects to a stream.
type JSONEncoder struct {
	s *jsonEncodeState
}

// NewJSONEncoder returns an encoder that writes to w.
func NewJSONEncoder(w io.Writer, opts *JSONOptions) *JSONEncoder {
	return &JSONEncoder{s: newJSONEncodeState(w, make([]byte, 0, jsonFlushSize+jsonFlushSize/4), opts)}
}

// Encode writes ds as one DICOM JSON object.
func (e *JSONEncoder) Encode(ds *Dataset) error {
	if err := e.s.top(ds); err != nil {
		e.s.buf = e.s.buf[:0]
		return err
	}
	return e.s.flush()
}

// JSONArrayWriter writes a JSON array of DICOM JSON objects, the body of
// QIDO-RS and WADO-RS metadata responses, one data set at a time.
type JSONArrayWriter struct {
	s      *jsonEncodeState
	n      int
	closed bool
}

// NewJSONArrayWriter returns a writer of a JSON array to w. Nothing is
// written before the first Write or Close.
func NewJSONArrayWriter(w io.Writer, opts *JSONOptions) *JSONArrayWriter {
	return &JSONArrayWriter{s: newJSONEncodeState(w, make([]byte, 0, jsonFlushSize+jsonFlushSize/4), opts)}
}

func (a *JSONArrayWriter) sep() error {
	if a.closed {
		return errors.New("dicom: JSON array writer is closed")
	}
	if a.n == 0 {
		a.s.buf = append(a.s.buf, '[')
	} else {
		a.s.buf = append(a.s.buf, ',')
	}
	a.n++
	return nil
}

// Write appends ds to the array.
func (a *JSONArrayWriter) Write(ds *Dataset) error {
	if err := a.sep(); err != nil {
		return err
	}
	if err := a.s.top(ds); err != nil {
		return err
	}
	return a.s.flushIfFull()
}

// WriteRaw appends an object that was encoded earlier (AppendJSON), as
// the gateway does with metadata precomputed at ingest. obj is not checked.
func (a *JSONArrayWriter) WriteRaw(obj []byte) error {
	if err := a.sep(); err != nil {
		return err
	}
	if len(obj) >= jsonFlushSize {
		if err := a.s.flush(); err != nil {
			return err
		}
		if _, err := a.s.w.Write(obj); err != nil {
			return fmt.Errorf("dicom: writing JSON: %w", err)
		}
		return nil
	}
	a.s.buf = append(a.s.buf, obj...)
	return a.s.flushIfFull()
}

// Close ends the array ("[]" if nothing was written) and flushes it. It
// does not close the underlying writer.
func (a *JSONArrayWriter) Close() error {
	if a.closed {
		return nil
	}
	if a.n == 0 {
		a.s.buf = append(a.s.buf, '[')
	}
	a.s.buf = append(a.s.buf, ']')
	a.closed = true
	return a.s.flush()
}

// EncodeJSONArray writes datasets as a JSON array to w.
func EncodeJSONArray(w io.Writer, datasets []*Dataset, opts *JSONOptions) error {
	a := NewJSONArrayWriter(w, opts)
	for _, ds := range datasets {
		if err := a.Write(ds); err != nil {
			return err
		}
	}
	return a.Close()
}

// jsonTagTrailingPadding is Data Set Trailing Padding (FFFC,FFFC).
const jsonTagTrailingPadding Tag = 0xFFFCFFFC

// jsonFlushSize is the buffered output at which a streaming encoder writes.
const jsonFlushSize = 32 << 10

type jsonEncodeState struct {
	opts   JSONOptions
	w      io.Writer // nil when appending to a caller's buffer
	buf    []byte
	path   []PathItem  // items enclosing the element being encoded
	scopes []jsonScope // data sets enclosing it, the top first
	// Room for the usual nesting, so AppendJSON allocates only the state.
	pathBuf  [4]PathItem
	scopeBuf [5]jsonScope
}

func newJSONEncodeState(w io.Writer, buf []byte, opts *JSONOptions) *jsonEncodeState {
	s := &jsonEncodeState{w: w, buf: buf}
	if opts != nil {
		s.opts = *opts
	}
	s.path, s.scopes = s.pathBuf[:0], s.scopeBuf[:0]
	return s
}

func (s *jsonEncodeState) flush() error {
	if s.w == nil || len(s.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	if err != nil {
		return fmt.Errorf("dicom: writing JSON: %w", err)
	}
	return nil
}

func (s *jsonEncodeState) flushIfFull() error {
	if s.w != nil && len(s.buf) >= jsonFlushSize {
		return s.flush()
	}
	return nil
}

func (s *jsonEncodeState) pathTo(t Tag) ElementPath {
	return ElementPath{Items: s.path, Tag: t}
}

// errorf wraps err with the element's path, so an error deep inside a
// sequence names where it happened.
func (s *jsonEncodeState) errorf(t Tag, format string, args ...any) error {
	return fmt.Errorf("dicom: JSON encoding %s: %w", s.pathTo(t), fmt.Errorf(format, args...))
}

// jsonScope is a data set being encoded, whose character set is resolved
// only when a value needs it: most values are plain ASCII.
type jsonScope struct {
	ds   *Dataset
	cs   *CharacterSet
	done bool
}

// charset returns the character set of the data set at nesting level
// (0 the top), which inherits from level-1.
func (s *jsonEncodeState) charset(level int) *CharacterSet {
	if !s.scopes[level].done {
		var parent *CharacterSet
		if level > 0 {
			parent = s.charset(level - 1)
		}
		sc := &s.scopes[level]
		// An unknown term still yields a usable set (treating it as the
		// default repertoire); the encoder goes on, as a receiver must.
		sc.cs, _ = sc.ds.CharacterSet(parent)
		sc.done = true
	}
	return s.scopes[level].cs
}

// top encodes ds as a top-level object.
func (s *jsonEncodeState) top(ds *Dataset) error {
	s.scopes, s.path = s.scopes[:0], s.path[:0]
	return s.dataset(ds)
}

func (s *jsonEncodeState) dataset(ds *Dataset) error {
	s.scopes = append(s.scopes, jsonScope{ds: ds})
	cs := len(s.scopes) - 1
	s.buf = append(s.buf, '{')
	first := true
	if ds != nil {
		for i := range ds.Elements {
			e := &ds.Elements[i]
			// PS3.18 F.2: group lengths are not part of the JSON model;
			// item/delimitation tags and Data Set Trailing Padding
			// (FFFC,FFFC) are encoding artefacts.
			if e.Tag.IsGroupLength() || e.Tag.Group() == 0xFFFE || e.Tag == jsonTagTrailingPadding {
				continue
			}
			if !first {
				s.buf = append(s.buf, ',')
			}
			first = false
			if err := s.element(e, cs); err != nil {
				return err
			}
			if err := s.flushIfFull(); err != nil {
				return err
			}
		}
	}
	s.buf = append(s.buf, '}')
	s.scopes = s.scopes[:cs]
	return nil
}

func (s *jsonEncodeState) element(e *Element, cs int) error {
	vr := e.VR
	if e.Items != nil {
		// A UN element of undefined length is read as a sequence (CP-246).
		vr = SQ
	}
	if !vr.Valid() {
		return s.errorf(e.Tag, "invalid VR %q", vr.String())
	}
	s.buf = append(s.buf, '"')
	s.buf = jsonAppendTagHex(s.buf, e.Tag)
	s.buf = append(s.buf, `":{"vr":"`...)
	s.buf = append(s.buf, byte(vr>>8), byte(vr))
	s.buf = append(s.buf, '"')
	var err error
	switch {
	case vr == SQ:
		err = s.sequence(e, cs)
	case e.Fragments != nil:
		err = s.encapsulated(e)
	case e.Value == nil && e.Bulk != nil:
		err = s.bulkURIRequired(e)
	case e.Tag == TagSpecificCharacterSet && vr == CS:
		// The JSON is UTF-8 whatever the source was, so it says so, as
		// dcm2json does (even for an empty value, the default repertoire).
		s.buf = append(s.buf, `,"Value":["ISO_IR 192"]`...)
	case len(e.Value) == 0:
		// Empty value: no "Value" member (PS3.18 F.2.5).
	case vr.IsBulk():
		err = s.binary(e)
	case vr == PN:
		err = s.personNames(e, cs)
	case vr == DS || vr == IS:
		err = s.numberStrings(e)
	case vr.IsString():
		err = s.strings(e, cs)
	default:
		err = s.binaryNumbers(e, vr)
	}
	if err != nil {
		return err
	}
	s.buf = append(s.buf, '}')
	return nil
}

func (s *jsonEncodeState) sequence(e *Element, cs int) error {
	if len(e.Items) == 0 {
		return nil
	}
	s.buf = append(s.buf, `,"Value":[`...)
	for i, item := range e.Items {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		s.path = append(s.path, PathItem{Sequence: e.Tag, Index: i})
		err := s.dataset(item)
		s.path = s.path[:len(s.path)-1]
		if err != nil {
			return err
		}
	}
	s.buf = append(s.buf, ']')
	return nil
}

// bulkURI asks the caller for a BulkDataURI and writes it, reporting
// whether it did.
func (s *jsonEncodeState) bulkURI(t Tag) bool {
	if s.opts.BulkDataURI == nil {
		return false
	}
	uri := s.opts.BulkDataURI(s.pathTo(t))
	if uri == "" {
		return false
	}
	s.buf = append(s.buf, `,"BulkDataURI":`...)
	s.buf = appendJSONString(s.buf, uri)
	return true
}

func (s *jsonEncodeState) bulkURIRequired(e *Element) error {
	if !s.bulkURI(e.Tag) {
		return s.errorf(e.Tag, "value was not loaded and no BulkDataURI was given for it")
	}
	return nil
}

func (s *jsonEncodeState) binary(e *Element) error {
	if len(e.Value) > s.opts.BulkDataThreshold && s.bulkURI(e.Tag) {
		return nil
	}
	s.buf = append(s.buf, `,"InlineBinary":"`...)
	if err := s.base64(e.Value); err != nil {
		return err
	}
	s.buf = append(s.buf, '"')
	return nil
}

// jsonBase64Chunk is the input size encoded between flushes: a multiple of 3,
// so that chunks concatenate without inner padding.
const jsonBase64Chunk = 3 * 8 << 10

func (s *jsonEncodeState) base64(b []byte) error {
	if s.w == nil {
		s.buf = base64.StdEncoding.AppendEncode(s.buf, b)
		return nil
	}
	for len(b) > 0 {
		n := min(len(b), jsonBase64Chunk)
		s.buf = base64.StdEncoding.AppendEncode(s.buf, b[:n])
		b = b[n:]
		if err := s.flushIfFull(); err != nil {
			return err
		}
	}
	return nil
}

func (s *jsonEncodeState) encapsulated(e *Element) error {
	if s.bulkURI(e.Tag) {
		return nil
	}
	if !s.opts.InlineEncapsulated {
		return s.errorf(e.Tag, "encapsulated pixel data needs a BulkDataURI (or JSONOptions.InlineEncapsulated)")
	}
	f := e.Fragments
	for _, fr := range f.Items {
		if fr.Data == nil && fr.Length > 0 {
			return s.errorf(e.Tag, "encapsulated pixel data fragments were not loaded")
		}
	}
	// Encode item by item: the item headers are 8 bytes, so keep a 3-byte
	// aligned carry between pieces to avoid padding inside the stream.
	var carry [2]byte
	nc := 0
	put := func(b []byte) error {
		if nc > 0 {
			need := 3 - nc
			if len(b) < need {
				nc += copy(carry[nc:], b)
				return nil
			}
			var tri [3]byte
			copy(tri[:], carry[:nc])
			copy(tri[nc:], b[:need])
			s.buf = base64.StdEncoding.AppendEncode(s.buf, tri[:])
			b = b[need:]
			nc = 0
		}
		whole := len(b) - len(b)%3
		if err := s.base64(b[:whole]); err != nil {
			return err
		}
		nc = copy(carry[:], b[whole:])
		return nil
	}
	var hdr [8]byte
	item := func(t Tag, length uint32) error {
		binary.LittleEndian.PutUint16(hdr[0:], t.Group())
		binary.LittleEndian.PutUint16(hdr[2:], t.Element())
		binary.LittleEndian.PutUint32(hdr[4:], length)
		return put(hdr[:])
	}
	s.buf = append(s.buf, `,"InlineBinary":"`...)
	if err := item(TagItem, uint32(4*len(f.BasicOffsetTable))); err != nil {
		return err
	}
	var w [4]byte
	for _, off := range f.BasicOffsetTable {
		binary.LittleEndian.PutUint32(w[:], off)
		if err := put(w[:]); err != nil {
			return err
		}
	}
	for _, fr := range f.Items {
		if err := item(TagItem, uint32(len(fr.Data))); err != nil {
			return err
		}
		if err := put(fr.Data); err != nil {
			return err
		}
	}
	if err := item(TagSequenceDelimitationItem, 0); err != nil {
		return err
	}
	s.buf = base64.StdEncoding.AppendEncode(s.buf, carry[:nc])
	s.buf = append(s.buf, '"')
	return nil
}

// jsonMaxSafeInteger is the largest integer every JSON reader holds exactly
// (an IEEE double's 53-bit mantissa); SV and UV values beyond it are
// written as strings (PS3.18 Table F.2.3-1 note), as dcm2json does.
const jsonMaxSafeInteger = 1<<53 - 1

func (s *jsonEncodeState) binaryNumbers(e *Element, vr VR) error {
	size := vr.WordSize()
	if vr == AT {
		size = 4
	}
	b := e.Value
	if len(b)%size != 0 {
		return s.errorf(e.Tag, "%s value length %d is not a multiple of %d", vr, len(b), size)
	}
	s.buf = append(s.buf, `,"Value":[`...)
	for i := 0; i < len(b); i += size {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		switch vr {
		case US:
			s.buf = strconv.AppendUint(s.buf, uint64(binary.LittleEndian.Uint16(b[i:])), 10)
		case SS:
			s.buf = strconv.AppendInt(s.buf, int64(int16(binary.LittleEndian.Uint16(b[i:]))), 10)
		case UL:
			s.buf = strconv.AppendUint(s.buf, uint64(binary.LittleEndian.Uint32(b[i:])), 10)
		case SL:
			s.buf = strconv.AppendInt(s.buf, int64(int32(binary.LittleEndian.Uint32(b[i:]))), 10)
		case UV:
			v := binary.LittleEndian.Uint64(b[i:])
			if v > jsonMaxSafeInteger {
				s.buf = append(s.buf, '"')
				s.buf = strconv.AppendUint(s.buf, v, 10)
				s.buf = append(s.buf, '"')
			} else {
				s.buf = strconv.AppendUint(s.buf, v, 10)
			}
		case SV:
			v := int64(binary.LittleEndian.Uint64(b[i:]))
			if v > jsonMaxSafeInteger || v < -jsonMaxSafeInteger {
				s.buf = append(s.buf, '"')
				s.buf = strconv.AppendInt(s.buf, v, 10)
				s.buf = append(s.buf, '"')
			} else {
				s.buf = strconv.AppendInt(s.buf, v, 10)
			}
		case FL:
			s.buf = jsonAppendJSONFloat(s.buf, float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))), 32)
		case FD:
			s.buf = jsonAppendJSONFloat(s.buf, math.Float64frombits(binary.LittleEndian.Uint64(b[i:])), 64)
		case AT:
			t := NewTag(binary.LittleEndian.Uint16(b[i:]), binary.LittleEndian.Uint16(b[i+2:]))
			s.buf = append(s.buf, '"')
			s.buf = jsonAppendTagHex(s.buf, t)
			s.buf = append(s.buf, '"')
		default:
			return s.errorf(e.Tag, "VR %s has no JSON encoding", vr)
		}
	}
	s.buf = append(s.buf, ']')
	return nil
}

// jsonAppendJSONFloat writes f in its shortest round-tripping form. JSON has
// no NaN or infinities; they are written as the strings "NaN", "Infinity"
// and "-Infinity" (the ECMAScript spellings), which the decoder accepts.
func jsonAppendJSONFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// numberStrings writes DS and IS values as JSON numbers. A value that is
// not a valid JSON number as it stands ("+1", ".5", "5.", "007") is
// written as a JSON string, which PS3.18 Table F.2.3-1 permits "to
// preserve the original format", so the round trip keeps every spelling.
func (s *jsonEncodeState) numberStrings(e *Element) error {
	v := jsonTrimTrailing(e.Value)
	if len(jsonTrimBoth(v)) == 0 && !jsonHasBackslash(v) {
		return nil // only padding: an empty value
	}
	s.valueArray(v, func(part []byte) {
		part = jsonTrimBoth(part)
		switch {
		case len(part) == 0:
			s.buf = append(s.buf, "null"...)
		case jsonValidJSONNumber(part):
			s.buf = append(s.buf, part...)
		default:
			s.buf = appendJSONBytes(s.buf, part)
		}
	})
	return nil
}

// valueArray writes `,"Value":[...]` for a backslash-separated value,
// calling each to write one value and putting the commas between them.
func (s *jsonEncodeState) valueArray(v []byte, each func(part []byte)) {
	s.buf = append(s.buf, `,"Value":[`...)
	for first := true; ; first = false {
		part, rest, more := jsonCutBackslash(v)
		if !first {
			s.buf = append(s.buf, ',')
		}
		each(part)
		if !more {
			break
		}
		v = rest
	}
	s.buf = append(s.buf, ']')
}

// strings writes the values of a string VR other than PN, DS and IS.
func (s *jsonEncodeState) strings(e *Element, cs int) error {
	v, err := s.text(e, cs)
	if err != nil {
		return err
	}
	v = jsonTrimTrailing(v)
	if e.VR.IsText() {
		// LT, ST, UT and UR hold one value; a backslash is a character.
		if len(v) == 0 {
			return nil
		}
		s.buf = append(s.buf, `,"Value":[`...)
		s.buf = appendJSONBytes(s.buf, v)
		s.buf = append(s.buf, ']')
		return nil
	}
	if len(jsonTrimValueBytes(e.VR, v)) == 0 && !jsonHasBackslash(v) {
		return nil // only padding: an empty value
	}
	s.valueArray(v, func(part []byte) {
		part = jsonTrimValueBytes(e.VR, part)
		if len(part) == 0 {
			s.buf = append(s.buf, "null"...)
		} else {
			s.buf = appendJSONBytes(s.buf, part)
		}
	})
	return nil
}

// jsonPnGroups names the PN component groups in their order (PS3.18 F.2.2).
var jsonPnGroups = [3]string{`"Alphabetic":`, `"Ideographic":`, `"Phonetic":`}

func (s *jsonEncodeState) personNames(e *Element, cs int) error {
	v, err := s.text(e, cs)
	if err != nil {
		return err
	}
	v = jsonTrimTrailing(v)
	if jsonPNEmpty(v) {
		return nil
	}
	s.valueArray(v, func(name []byte) {
		if jsonPNEmpty(name) {
			s.buf = append(s.buf, "null"...)
		} else {
			s.buf = append(s.buf, '{')
			n := 0
			for g := 0; g < 3 && name != nil; g++ {
				var group []byte
				if g < 2 {
					group, name = jsonCutByte(name, '=')
				} else {
					// A fourth group is malformed; keep it in Phonetic
					// rather than lose it.
					group, name = name, nil
				}
				// Trailing empty components are insignificant (PS3.5
				// 6.2.1.1): "Smith^^^" is "Smith", as dcm2json writes it.
				group = jsonTrimCarets(group)
				if len(group) == 0 {
					continue
				}
				if n > 0 {
					s.buf = append(s.buf, ',')
				}
				n++
				s.buf = append(s.buf, jsonPnGroups[g]...)
				s.buf = appendJSONBytes(s.buf, group)
			}
			s.buf = append(s.buf, '}')
		}
	})
	return nil
}

// text returns the element's value as UTF-8: the value itself when it is
// plain ASCII (the common case, no allocation), else decoded from the data
// set's character set.
func (s *jsonEncodeState) text(e *Element, cs int) ([]byte, error) {
	if jsonIsPlainASCII(e.Value) {
		return e.Value, nil
	}
	str, err := s.charset(cs).Decode(e.Value, e.VR)
	if err != nil {
		return nil, s.errorf(e.Tag, "%w", err)
	}
	return []byte(str), nil
}

// jsonIsPlainASCII reports whether b decodes to itself in every DICOM
// character set: 7-bit and free of ISO 2022 escape sequences.
func jsonIsPlainASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || c == 0x1B {
			return false
		}
	}
	return true
}

// jsonPNEmpty reports whether a person name value (or several) has no
// characters but delimiters and padding.
func jsonPNEmpty(b []byte) bool {
	for _, c := range b {
		switch c {
		case '=', '^', ' ', 0:
		default:
			return false
		}
	}
	return true
}

// jsonTrimCarets drops trailing component delimiters and padding from a
// component group.
func jsonTrimCarets(b []byte) []byte {
	n := len(b)
	for n > 0 && (b[n-1] == '^' || b[n-1] == ' ' || b[n-1] == 0) {
		n--
	}
	return b[:n]
}

func jsonHasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// jsonCutBackslash splits b at the first backslash, reporting whether one was
// found.
func jsonCutBackslash(b []byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == '\\' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// jsonCutByte splits b at the first c; after is nil when there is none.
func jsonCutByte(b []byte, c byte) (before, after []byte) {
	for i, x := range b {
		if x == c {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// jsonTrimTrailing drops the padding PS3.5 allows at the end of a value:
// spaces and NULs (UI is NUL padded; some writers pad others with NUL too).
func jsonTrimTrailing(b []byte) []byte {
	n := len(b)
	for n > 0 && (b[n-1] == ' ' || b[n-1] == 0) {
		n--
	}
	return b[:n]
}

func jsonTrimBoth(b []byte) []byte {
	b = jsonTrimTrailing(b)
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	return b[i:]
}

// jsonTrimValueBytes trims one value as Element.Strings does: leading spaces
// too for the VRs where PS3.5 Table 6.2-1 calls them insignificant.
func jsonTrimValueBytes(vr VR, b []byte) []byte {
	switch vr {
	case DS, IS, AE, CS, DA, TM, DT, AS, SH, LO:
		return jsonTrimBoth(b)
	}
	return jsonTrimTrailing(b)
}

// jsonValidJSONNumber reports whether b is a number in the JSON grammar
// (RFC 8259 section 6): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonValidJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(b)
}

const jsonHexDigits = "0123456789ABCDEF"

func jsonAppendTagHex(b []byte, t Tag) []byte {
	return append(b,
		jsonHexDigits[t>>28&0xF], jsonHexDigits[t>>24&0xF], jsonHexDigits[t>>20&0xF], jsonHexDigits[t>>16&0xF],
		jsonHexDigits[t>>12&0xF], jsonHexDigits[t>>8&0xF], jsonHexDigits[t>>4&0xF], jsonHexDigits[t&0xF])
}

// jsonSafe marks the ASCII bytes written unescaped inside a JSON string.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || !jsonSafe[c] {
			return appendJSONBytes(b, []byte(s))
		}
	}
	// The common case (URIs): nothing to escape, nothing to convert.
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONBytes writes s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// U+2028 and U+2029 are escaped, as encoding/json does, for JavaScript.
func appendJSONBytes(b []byte, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', jsonHexDigits[c>>4], jsonHexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			start = i + size
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', jsonHexDigits[r&0xF])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
