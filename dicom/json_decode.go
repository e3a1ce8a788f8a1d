package dicom

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the DICOM JSON Model decoder (PS3.18 Annex F.2): a strict
// parser written for the model rather than a generic JSON tree, so that
// hostile input is bounded (size, nesting, element count) and every error
// says where it is.

// JSONDecodeOptions bounds and adjusts DecodeJSON. Zero fields take the
// defaults.
type JSONDecodeOptions struct {
	// MaxBytes is the largest input accepted (default 64 MiB).
	MaxBytes int64
	// MaxDepth is the deepest sequence nesting accepted (default 32).
	MaxDepth int
	// MaxElements is the most data elements plus sequence items accepted
	// over the whole input (default 4 Mi).
	MaxElements int
	// Encapsulated says the data sets use an encapsulated transfer
	// syntax, so that an InlineBinary Pixel Data value that starts with an
	// item tag holds an encapsulated value (items, PS3.5 A.4), as
	// JSONOptions.InlineEncapsulated writes it, rather than native pixels.
	Encapsulated bool
}

// Default limits of JSONDecodeOptions.
const (
	DefaultJSONMaxBytes    = 64 << 20
	DefaultJSONMaxDepth    = 32
	DefaultJSONMaxElements = 4 << 20
)

// JSONBulkData is a value given by "BulkDataURI": the decoder leaves the
// element at Path of data set Instance (0 for a lone object) with a nil
// Value for the caller to resolve, as STOW-RS with separate bulk data
// parts needs.
type JSONBulkData struct {
	Instance int
	Path     ElementPath
	URI      string
}

// DecodeJSON reads a DICOM JSON object, or an array of them, from r.
// JSON text is UTF-8. When a data set has non-ASCII text, its strings are
// encoded in the character set its Specific Character Set (0008,0005)
// declares, if every one can be; otherwise they stay UTF-8 and (0008,0005)
// of the data set (and of any item that has its own) is set to ISO_IR 192.
// String values are padded to even length.
func DecodeJSON(r io.Reader, opts *JSONDecodeOptions) ([]*Dataset, []JSONBulkData, error) {
	max := int64(DefaultJSONMaxBytes)
	if opts != nil && opts.MaxBytes > 0 {
		max = opts.MaxBytes
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, nil, fmt.Errorf("dicom: reading JSON: %w", err)
	}
	if int64(len(data)) > max {
		return nil, nil, fmt.Errorf("dicom: JSON input larger than %d bytes", max)
	}
	return DecodeJSONBytes(data, opts)
}

// DecodeJSONBytes is DecodeJSON on a byte slice, which it does not retain.
func DecodeJSONBytes(data []byte, opts *JSONDecodeOptions) ([]*Dataset, []JSONBulkData, error) {
	d := jsonDecoder{data: data}
	if opts != nil {
		d.opts = *opts
	}
	if d.opts.MaxBytes <= 0 {
		d.opts.MaxBytes = DefaultJSONMaxBytes
	}
	if d.opts.MaxDepth <= 0 {
		d.opts.MaxDepth = DefaultJSONMaxDepth
	}
	if d.opts.MaxElements <= 0 {
		d.opts.MaxElements = DefaultJSONMaxElements
	}
	if int64(len(data)) > d.opts.MaxBytes {
		return nil, nil, fmt.Errorf("dicom: JSON input larger than %d bytes", d.opts.MaxBytes)
	}
	var out []*Dataset
	d.ws()
	switch d.peek() {
	case '{':
		ds, err := d.instance()
		if err != nil {
			return nil, nil, err
		}
		out = append(out, ds)
	case '[':
		d.pos++
		d.ws()
		if d.peek() == ']' {
			d.pos++
			break
		}
		for {
			d.ws()
			if d.peek() != '{' {
				return nil, nil, d.errorf("expected a DICOM JSON object in the array")
			}
			ds, err := d.instance()
			if err != nil {
				return nil, nil, err
			}
			out = append(out, ds)
			d.instanceNo++
			if done, err := d.next(']'); err != nil {
				return nil, nil, err
			} else if done {
				break
			}
		}
	default:
		return nil, nil, d.errorf("expected a DICOM JSON object or an array of them")
	}
	d.ws()
	if d.pos != len(d.data) {
		return nil, nil, d.errorf("unexpected data after the JSON value")
	}
	return out, d.bulk, nil
}

type jsonDecoder struct {
	data       []byte
	pos        int
	opts       JSONDecodeOptions
	elements   int
	instanceNo int
	path       []PathItem
	tag        Tag // element being decoded, for errors
	inElement  bool
	nonASCII   bool
	bulk       []JSONBulkData
	scratch    []byte // value being built
	escBuf     []byte // unescaped string
}

func (d *jsonDecoder) errorf(format string, args ...any) error {
	where := ""
	if d.inElement {
		where = " in " + ElementPath{Items: d.path, Tag: d.tag}.String()
	}
	if d.instanceNo > 0 {
		where += fmt.Sprintf(" of object %d", d.instanceNo)
	}
	return fmt.Errorf("dicom: JSON at offset %d%s: %s", d.pos, where, fmt.Sprintf(format, args...))
}

func (d *jsonDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jsonDecoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

func (d *jsonDecoder) expect(c byte) error {
	d.ws()
	if d.peek() != c {
		if d.pos >= len(d.data) {
			return d.errorf("unexpected end of input, expected %q", c)
		}
		return d.errorf("expected %q, found %q", c, d.data[d.pos])
	}
	d.pos++
	return nil
}

// next consumes the separator after a member or element: ',' (more to
// come) or the closing byte (done).
func (d *jsonDecoder) next(closing byte) (done bool, err error) {
	d.ws()
	switch d.peek() {
	case ',':
		d.pos++
		return false, nil
	case closing:
		d.pos++
		return true, nil
	}
	if d.pos >= len(d.data) {
		return false, d.errorf("unexpected end of input")
	}
	return false, d.errorf("expected ',' or %q, found %q", closing, d.data[d.pos])
}

// instance decodes one top-level object and sets its character set.
func (d *jsonDecoder) instance() (*Dataset, error) {
	d.nonASCII = false
	ds, err := d.dataset(0)
	if err != nil {
		return nil, err
	}
	if d.nonASCII && !jsonTranscodeDeclared(ds) {
		jsonSetUTF8(ds, true)
	}
	return ds, nil
}

// jsonTranscodeDeclared encodes the strings of ds, decoded as UTF-8, in
// the character set the data set declares (as a JSON producer that keeps
// the source's Specific Character Set writes), item by item. If the data
// set declares none, or UTF-8, or a value cannot be represented, it
// changes nothing and reports false.
func jsonTranscodeDeclared(ds *Dataset) bool {
	var edits []jsonEdit
	if !jsonCollectTranscodes(ds, nil, &edits) {
		return false
	}
	for _, ed := range edits {
		ed.e.Value = ed.value
	}
	return true
}

type jsonEdit struct {
	e     *Element
	value []byte
}

func jsonCollectTranscodes(ds *Dataset, parent *CharacterSet, edits *[]jsonEdit) bool {
	cs, err := ds.CharacterSet(parent)
	if err != nil || cs == nil {
		return false
	}
	if t := cs.Terms(); len(t) == 1 && t[0] == "ISO_IR 192" {
		return false
	}
	for i := range ds.Elements {
		e := &ds.Elements[i]
		for _, item := range e.Items {
			if !jsonCollectTranscodes(item, cs, edits) {
				return false
			}
		}
		if !e.VR.IsString() || !affected(e.VR) || jsonIsPlainASCII(e.Value) {
			// Values of the VRs the character set does not affect are
			// already stored as the encoder reads them (Latin-1).
			continue
		}
		b, err := cs.Encode(string(jsonTrimTrailing(e.Value)), e.VR)
		if err != nil {
			return false
		}
		if len(b)%2 == 1 {
			b = append(b, e.VR.PaddingByte())
		}
		*edits = append(*edits, jsonEdit{e, b})
	}
	return true
}

// jsonSetUTF8 declares ISO_IR 192 on ds (if top, or if ds declares its own
// character set) and on every item that declares its own.
func jsonSetUTF8(ds *Dataset, top bool) {
	if top || ds.Get(TagSpecificCharacterSet) != nil {
		ds.Set(NewStrings(TagSpecificCharacterSet, CS, "ISO_IR 192"))
	}
	for i := range ds.Elements {
		for _, item := range ds.Elements[i].Items {
			jsonSetUTF8(item, false)
		}
	}
}

func (d *jsonDecoder) dataset(depth int) (*Dataset, error) {
	if err := d.expect('{'); err != nil {
		return nil, err
	}
	ds := &Dataset{}
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return ds, nil
	}
	sorted := true
	for {
		d.ws()
		keyPos := d.pos
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		t, ok := parseJSONTag(key)
		if !ok {
			d.pos = keyPos
			return nil, d.errorf("invalid attribute tag %q: want 8 hexadecimal digits", key)
		}
		if err := d.expect(':'); err != nil {
			return nil, err
		}
		d.elements++
		if d.elements > d.opts.MaxElements {
			return nil, d.errorf("more than %d data elements", d.opts.MaxElements)
		}
		e, err := d.element(t, depth)
		if err != nil {
			return nil, err
		}
		if n := len(ds.Elements); n > 0 && ds.Elements[n-1].Tag >= t {
			sorted = false
		}
		ds.Elements = append(ds.Elements, e)
		done, err := d.next('}')
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
	}
	if !sorted {
		slices.SortStableFunc(ds.Elements, func(a, b Element) int { return cmp.Compare(a.Tag, b.Tag) })
	}
	for i := 1; i < len(ds.Elements); i++ {
		if ds.Elements[i].Tag == ds.Elements[i-1].Tag {
			return nil, d.errorf("attribute %s appears twice", ds.Elements[i].Tag.Hex())
		}
	}
	return ds, nil
}

func parseJSONTag(b []byte) (Tag, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var t uint32
	for _, c := range b {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return 0, false
		}
		t = t<<4 | uint32(v)
	}
	return Tag(t), true
}

// element decodes an attribute object. Its members may come in any order,
// so a "Value" seen before "vr" is skipped and decoded afterwards.
func (d *jsonDecoder) element(t Tag, depth int) (Element, error) {
	saveTag, saveIn := d.tag, d.inElement
	d.tag, d.inElement = t, true
	defer func() { d.tag, d.inElement = saveTag, saveIn }()

	e := Element{Tag: t}
	if err := d.expect('{'); err != nil {
		return e, err
	}
	var (
		haveVR          bool
		valuePos        = -1
		inline          []byte
		uri             []byte
		haveInl, haveBD bool
	)
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return e, d.errorf("attribute has no \"vr\"")
	}
	for {
		d.ws()
		name, err := d.str()
		if err != nil {
			return e, err
		}
		if err := d.expect(':'); err != nil {
			return e, err
		}
		d.ws()
		switch string(name) {
		case "vr":
			if haveVR {
				return e, d.errorf("\"vr\" appears twice")
			}
			s, err := d.str()
			if err != nil {
				return e, err
			}
			vr, ok := ParseVR(string(s))
			if !ok {
				return e, d.errorf("unknown VR %q", s)
			}
			e.VR, haveVR = vr, true
		case "Value":
			if valuePos >= 0 {
				return e, d.errorf("\"Value\" appears twice")
			}
			valuePos = d.pos
			if haveVR {
				if err := d.value(&e, depth); err != nil {
					return e, err
				}
			} else if err := d.skip(4 * depth); err != nil {
				return e, err
			}
		case "InlineBinary":
			if haveInl {
				return e, d.errorf("\"InlineBinary\" appears twice")
			}
			if inline, err = d.str(); err != nil {
				return e, err
			}
			inline = bytes.Clone(inline)
			haveInl = true
		case "BulkDataURI":
			if haveBD {
				return e, d.errorf("\"BulkDataURI\" appears twice")
			}
			if uri, err = d.str(); err != nil {
				return e, err
			}
			uri = bytes.Clone(uri)
			haveBD = true
		default:
			return e, d.errorf("unknown member %q in attribute object", name)
		}
		done, err := d.next('}')
		if err != nil {
			return e, err
		}
		if done {
			break
		}
	}
	if !haveVR {
		return e, d.errorf("attribute has no \"vr\"")
	}
	n := 0
	for _, b := range []bool{valuePos >= 0, haveInl, haveBD} {
		if b {
			n++
		}
	}
	if n > 1 {
		return e, d.errorf("attribute has more than one of \"Value\", \"InlineBinary\" and \"BulkDataURI\"")
	}
	switch {
	case valuePos >= 0 && e.Value == nil && e.Items == nil:
		// "Value" came before "vr": decode it now.
		end := d.pos
		d.pos = valuePos
		if err := d.value(&e, depth); err != nil {
			return e, err
		}
		d.pos = end
	case haveInl:
		if err := d.inlineBinary(&e, inline); err != nil {
			return e, err
		}
	case haveBD:
		if e.VR == SQ {
			return e, d.errorf("a sequence cannot have a BulkDataURI")
		}
		if len(uri) == 0 {
			return e, d.errorf("empty BulkDataURI")
		}
		d.bulk = append(d.bulk, JSONBulkData{
			Instance: d.instanceNo,
			Path:     ElementPath{Items: slices.Clone(d.path), Tag: t},
			URI:      string(uri),
		})
	}
	return e, nil
}

func (d *jsonDecoder) inlineBinary(e *Element, text []byte) error {
	if !e.VR.IsBulk() {
		return d.errorf("InlineBinary is not allowed for VR %s", e.VR)
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(b, text)
	if err != nil {
		return d.errorf("InlineBinary is not valid base64: %v", err)
	}
	b = b[:n]
	// Under an encapsulated transfer syntax, Pixel Data is encapsulated,
	// except possibly an icon's (PS3.5 A.4 allows native icon pixels): an
	// encapsulated value starts with an item tag.
	if e.Tag == TagPixelData && d.opts.Encapsulated && bytes.HasPrefix(b, []byte{0xFE, 0xFF, 0x00, 0xE0}) {
		f, err := jsonParseEncapsulated(b)
		if err != nil {
			return d.errorf("encapsulated pixel data: %v", err)
		}
		e.Fragments, e.UndefinedLength = f, true
		return nil
	}
	if size := e.VR.WordSize(); len(b)%size != 0 {
		return d.errorf("%s value of %d bytes is not a multiple of %d", e.VR, len(b), size)
	}
	// An odd-length OB or UN value is kept as given; the Part 10 writer
	// pads it (PS3.5 7.1.1), and the JSON round trip stays exact.
	e.Value = b
	return nil
}

// jsonParseEncapsulated splits an encapsulated value into its Basic Offset
// Table and fragments; a trailing Sequence Delimitation Item is optional.
func jsonParseEncapsulated(b []byte) (*Fragments, error) {
	f := &Fragments{}
	first := true
	for pos := 0; pos < len(b); {
		if len(b)-pos < 8 {
			return nil, errors.New("truncated item header")
		}
		t := NewTag(binary.LittleEndian.Uint16(b[pos:]), binary.LittleEndian.Uint16(b[pos+2:]))
		n := int64(binary.LittleEndian.Uint32(b[pos+4:]))
		pos += 8
		if t == TagSequenceDelimitationItem {
			if pos != len(b) {
				return nil, errors.New("data after the sequence delimitation item")
			}
			break
		}
		if t != TagItem {
			return nil, fmt.Errorf("expected an item, found %s", t)
		}
		if n > int64(len(b)-pos) {
			return nil, fmt.Errorf("item of %d bytes overruns the value", n)
		}
		v := b[pos : pos+int(n)]
		if first {
			if n%4 != 0 {
				return nil, errors.New("basic offset table length is not a multiple of 4")
			}
			for i := 0; i < len(v); i += 4 {
				f.BasicOffsetTable = append(f.BasicOffsetTable, binary.LittleEndian.Uint32(v[i:]))
			}
			f.BOTOffset = int64(pos)
			first = false
		} else {
			f.Items = append(f.Items, Fragment{Offset: int64(pos), Length: uint32(n), Data: v})
		}
		pos += int(n)
	}
	if first {
		return nil, errors.New("no basic offset table item")
	}
	return f, nil
}

// value decodes the "Value" array of e, whose VR is known.
func (d *jsonDecoder) value(e *Element, depth int) error {
	if err := d.expect('['); err != nil {
		return err
	}
	d.ws()
	if d.peek() == ']' {
		d.pos++
		return nil // an empty array is an empty value
	}
	switch {
	case e.VR == SQ:
		return d.items(e, depth)
	case e.VR.IsBulk():
		return d.errorf("VR %s takes InlineBinary or BulkDataURI, not Value", e.VR)
	case e.VR.IsString():
		return d.stringValues(e)
	}
	return d.binaryValues(e)
}

func (d *jsonDecoder) items(e *Element, depth int) error {
	if depth+1 > d.opts.MaxDepth {
		return d.errorf("sequences nested deeper than %d", d.opts.MaxDepth)
	}
	e.Items = []*Dataset{}
	for i := 0; ; i++ {
		d.ws()
		if d.peek() != '{' {
			return d.errorf("a sequence item must be an object")
		}
		d.elements++
		if d.elements > d.opts.MaxElements {
			return d.errorf("more than %d data elements", d.opts.MaxElements)
		}
		d.path = append(d.path, PathItem{Sequence: e.Tag, Index: i})
		saveTag, saveIn := d.tag, d.inElement
		d.inElement = false
		item, err := d.dataset(depth + 1)
		d.tag, d.inElement = saveTag, saveIn
		d.path = d.path[:len(d.path)-1]
		if err != nil {
			return err
		}
		e.Items = append(e.Items, item)
		done, err := d.next(']')
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// stringValues decodes the values of a string VR and joins them with
// backslashes into the element's value.
func (d *jsonDecoder) stringValues(e *Element) error {
	out := d.scratch[:0]
	for n := 0; ; n++ {
		if n > 0 {
			if e.VR.IsText() {
				return d.errorf("VR %s has one value", e.VR)
			}
			out = append(out, '\\')
		}
		d.ws()
		var err error
		switch {
		case d.literal("null"):
		case e.VR == PN:
			out, err = d.personName(out)
		case e.VR == DS || e.VR == IS:
			out, err = d.numberString(out, e.VR)
		default:
			out, err = d.stringValue(out, e.VR)
		}
		if err != nil {
			return err
		}
		done, err := d.next(']')
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	if len(out)%2 == 1 {
		out = append(out, e.VR.PaddingByte())
	}
	e.Value = bytes.Clone(out)
	d.scratch = out[:0]
	return nil
}

func (d *jsonDecoder) stringValue(out []byte, vr VR) ([]byte, error) {
	if d.peek() != '"' {
		return out, d.errorf("VR %s values must be strings", vr)
	}
	s, err := d.str()
	if err != nil {
		return out, err
	}
	if !vr.IsText() && bytes.IndexByte(s, '\\') >= 0 {
		return out, d.errorf("a %s value cannot contain a backslash, the value delimiter", vr)
	}
	if !affected(vr) {
		// The Specific Character Set does not apply to this VR (PS3.5
		// 6.1.2.3): its bytes are the default repertoire, which the
		// encoder (CharacterSet.Decode) reads as Latin-1 when a sender
		// strays above 0x7F. Store the inverse, so a value survives a
		// JSON round trip whatever (0008,0005) says; a character Latin-1
		// lacks could not have come from our encoder, nor be stored.
		b, ok := jsonAppendLatin1(out, s)
		if !ok {
			return out, d.errorf("a %s value is limited to the default character repertoire, not %q", vr, s)
		}
		return b, nil
	}
	d.noteText(s)
	return append(out, s...), nil
}

// jsonAppendLatin1 appends UTF-8 text s as ISO 8859-1 bytes; false if a
// character is above U+00FF.
func jsonAppendLatin1(out, s []byte) ([]byte, bool) {
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r > 0xFF {
			return out, false
		}
		out = append(out, byte(r))
		s = s[n:]
	}
	return out, true
}

func (d *jsonDecoder) noteText(s []byte) {
	if !d.nonASCII {
		for _, c := range s {
			if c >= utf8.RuneSelf {
				d.nonASCII = true
				return
			}
		}
	}
}

var jsonPnGroupNames = [3]string{"Alphabetic", "Ideographic", "Phonetic"}

func (d *jsonDecoder) personName(out []byte) ([]byte, error) {
	if d.peek() != '{' {
		return out, d.errorf("PN values must be objects")
	}
	d.pos++
	var groups [3][]byte
	var seen [3]bool
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return out, nil
	}
	for {
		d.ws()
		name, err := d.str()
		if err != nil {
			return out, err
		}
		g := slices.Index(jsonPnGroupNames[:], string(name))
		if g < 0 {
			return out, d.errorf("unknown person name component group %q", name)
		}
		if seen[g] {
			return out, d.errorf("component group %q appears twice", name)
		}
		seen[g] = true
		if err := d.expect(':'); err != nil {
			return out, err
		}
		d.ws()
		if !d.literal("null") {
			if d.peek() != '"' {
				return out, d.errorf("component group %q must be a string", name)
			}
			s, err := d.str()
			if err != nil {
				return out, err
			}
			if bytes.ContainsAny(s, `\=`) {
				return out, d.errorf("component group %q cannot contain '\\' or '='", name)
			}
			d.noteText(s)
			groups[g] = bytes.Clone(s)
		}
		done, err := d.next('}')
		if err != nil {
			return out, err
		}
		if done {
			break
		}
	}
	last := -1
	for g := range groups {
		if len(groups[g]) > 0 {
			last = g
		}
	}
	for g := 0; g <= last; g++ {
		if g > 0 {
			out = append(out, '=')
		}
		out = append(out, groups[g]...)
	}
	return out, nil
}

// numberString decodes a DS or IS value given as a JSON number or string.
// Spellings are kept where they are valid for the VR; a DS longer than its
// 16 characters is rewritten to the nearest value that fits, and an IS
// given as an integral non-integer spelling ("1.0", "1e3") is rewritten
// as an integer.
func (d *jsonDecoder) numberString(out []byte, vr VR) ([]byte, error) {
	var lit []byte
	if d.peek() == '"' {
		s, err := d.str()
		if err != nil {
			return out, err
		}
		lit = jsonTrimBoth(s)
	} else {
		n, err := d.number()
		if err != nil {
			return out, err
		}
		lit = n
	}
	if vr == IS {
		if jsonValidIS(lit) {
			return append(out, lit...), nil
		}
		f, err := strconv.ParseFloat(string(lit), 64)
		if err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
			return out, d.errorf("invalid IS value %q", lit)
		}
		return strconv.AppendInt(out, int64(f), 10), nil
	}
	if !jsonValidDSChars(lit) {
		return out, d.errorf("invalid DS value %q", lit)
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return out, d.errorf("invalid DS value %q", lit)
	}
	if len(lit) <= 16 {
		return append(out, lit...), nil
	}
	var buf [32]byte
	for prec := 16; prec > 0; prec-- {
		s := strconv.AppendFloat(buf[:0], f, 'g', prec, 64)
		if len(s) <= 16 {
			return append(out, s...), nil
		}
	}
	return out, d.errorf("DS value %q does not fit 16 characters", lit)
}

// jsonValidIS reports whether b is an IS value: an optionally signed decimal
// integer of at most 12 characters in the range of a 32-bit signed integer.
func jsonValidIS(b []byte) bool {
	if len(b) == 0 || len(b) > 12 {
		return false
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return err == nil && v >= math.MinInt32 && v <= math.MaxInt32
}

func jsonValidDSChars(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9', c == '+', c == '-', c == '.', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return true
}

// binaryValues decodes the values of the binary numeric VRs and AT.
func (d *jsonDecoder) binaryValues(e *Element) error {
	out := d.scratch[:0]
	for {
		d.ws()
		var err error
		out, err = d.binaryValue(out, e.VR)
		if err != nil {
			return err
		}
		done, err := d.next(']')
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	e.Value = bytes.Clone(out)
	d.scratch = out[:0]
	return nil
}

func (d *jsonDecoder) binaryValue(out []byte, vr VR) ([]byte, error) {
	if d.peek() == 'n' {
		return out, d.errorf("VR %s values cannot be null", vr)
	}
	switch vr {
	case AT:
		if d.peek() != '"' {
			return out, d.errorf("AT values must be strings")
		}
		s, err := d.str()
		if err != nil {
			return out, err
		}
		t, ok := parseJSONTag(s)
		if !ok {
			return out, d.errorf("invalid AT value %q: want 8 hexadecimal digits", s)
		}
		out = binary.LittleEndian.AppendUint16(out, t.Group())
		return binary.LittleEndian.AppendUint16(out, t.Element()), nil
	case FL, FD:
		var f float64
		if d.peek() == '"' {
			s, err := d.str()
			if err != nil {
				return out, err
			}
			switch string(s) {
			case "NaN":
				f = math.NaN()
			case "Infinity":
				f = math.Inf(1)
			case "-Infinity":
				f = math.Inf(-1)
			default:
				return out, d.errorf("%s values must be numbers (or \"NaN\", \"Infinity\", \"-Infinity\"), not %q", vr, s)
			}
		} else {
			lit, err := d.number()
			if err != nil {
				return out, err
			}
			bits := 64
			if vr == FL {
				bits = 32
			}
			f, err = strconv.ParseFloat(string(lit), bits)
			if err != nil {
				return out, d.errorf("%s value %s out of range", vr, lit)
			}
		}
		if vr == FL {
			return binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(f))), nil
		}
		return binary.LittleEndian.AppendUint64(out, math.Float64bits(f)), nil
	}
	var lit []byte
	if d.peek() == '"' && (vr == SV || vr == UV) {
		s, err := d.str()
		if err != nil {
			return out, err
		}
		lit = s
	} else {
		n, err := d.number()
		if err != nil {
			return out, err
		}
		lit = n
	}
	switch vr {
	case US, UL, UV:
		bits := 8 * vr.WordSize()
		v, err := strconv.ParseUint(string(lit), 10, bits)
		if err != nil {
			return out, d.errorf("invalid %s value %s", vr, lit)
		}
		switch vr {
		case US:
			return binary.LittleEndian.AppendUint16(out, uint16(v)), nil
		case UL:
			return binary.LittleEndian.AppendUint32(out, uint32(v)), nil
		}
		return binary.LittleEndian.AppendUint64(out, v), nil
	case SS, SL, SV:
		bits := 8 * vr.WordSize()
		v, err := strconv.ParseInt(string(lit), 10, bits)
		if err != nil {
			return out, d.errorf("invalid %s value %s", vr, lit)
		}
		switch vr {
		case SS:
			return binary.LittleEndian.AppendUint16(out, uint16(v)), nil
		case SL:
			return binary.LittleEndian.AppendUint32(out, uint32(v)), nil
		}
		return binary.LittleEndian.AppendUint64(out, uint64(v)), nil
	}
	return out, d.errorf("VR %s cannot have a Value", vr)
}

// literal consumes the JSON literal lit if it is next.
func (d *jsonDecoder) literal(lit string) bool {
	if bytes.HasPrefix(d.data[d.pos:], []byte(lit)) {
		d.pos += len(lit)
		return true
	}
	return false
}

// number scans a JSON number and returns its text.
func (d *jsonDecoder) number() ([]byte, error) {
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.pos++
			continue
		}
		break
	}
	lit := d.data[start:d.pos]
	if !jsonValidJSONNumber(lit) {
		d.pos = start
		if len(lit) == 0 {
			if d.pos >= len(d.data) {
				return nil, d.errorf("unexpected end of input, expected a number")
			}
			return nil, d.errorf("expected a number, found %q", d.data[d.pos])
		}
		return nil, d.errorf("invalid number %q", lit)
	}
	return lit, nil
}

// str scans a JSON string and returns its UTF-8 content. The result
// aliases the input when the string has no escapes, else d's buffer: it
// is only valid until the next call.
func (d *jsonDecoder) str() ([]byte, error) {
	if d.peek() != '"' {
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input, expected a string")
		}
		return nil, d.errorf("expected a string, found %q", d.data[d.pos])
	}
	d.pos++
	start := d.pos
	ascii := true
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			s := d.data[start:d.pos]
			d.pos++
			if !ascii && !utf8.Valid(s) {
				d.pos = start
				return nil, d.errorf("string is not valid UTF-8")
			}
			return s, nil
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			return nil, d.errorf("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.pos++
	}
	return nil, d.errorf("unterminated string")
}

func (d *jsonDecoder) strEscaped(start int) ([]byte, error) {
	out := append(d.escBuf[:0], d.data[start:d.pos]...)
	defer func() { d.escBuf = out[:0] }()
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			if !utf8.Valid(out) {
				return nil, d.errorf("string is not valid UTF-8")
			}
			return out, nil
		case c < 0x20:
			return nil, d.errorf("control character in string")
		case c != '\\':
			out = append(out, c)
			d.pos++
			continue
		}
		if d.pos+1 >= len(d.data) {
			return nil, d.errorf("unterminated string")
		}
		esc := d.data[d.pos+1]
		d.pos += 2
		switch esc {
		case '"', '\\', '/':
			out = append(out, esc)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := d.hex4()
			if err != nil {
				return nil, err
			}
			if utf16.IsSurrogate(r) {
				if !d.literal(`\u`) {
					return nil, d.errorf("unpaired surrogate in \\u escape")
				}
				r2, err := d.hex4()
				if err != nil {
					return nil, err
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return nil, d.errorf("invalid surrogate pair in \\u escape")
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			d.pos -= 2
			return nil, d.errorf("invalid escape \\%c", esc)
		}
	}
	return nil, d.errorf("unterminated string")
}

func (d *jsonDecoder) hex4() (rune, error) {
	if len(d.data)-d.pos < 4 {
		return 0, d.errorf("truncated \\u escape")
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, d.errorf("invalid \\u escape")
		}
		r = r<<4 | rune(v)
	}
	d.pos += 4
	return r, nil
}

// skip passes over any JSON value, bounded by the nesting limit.
func (d *jsonDecoder) skip(depth int) error {
	d.ws()
	switch d.peek() {
	case '"':
		_, err := d.str()
		return err
	case '{', '[':
		// Each sequence level is about four JSON levels (array, item
		// object, attribute object, Value array).
		if depth+1 > 4*d.opts.MaxDepth+4 {
			return d.errorf("JSON nested too deep")
		}
		closing := byte('}')
		if d.peek() == '[' {
			closing = ']'
		}
		d.pos++
		d.ws()
		if d.peek() == closing {
			d.pos++
			return nil
		}
		for {
			if closing == '}' {
				d.ws()
				if _, err := d.str(); err != nil {
					return err
				}
				if err := d.expect(':'); err != nil {
					return err
				}
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			done, err := d.next(closing)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		}
	case 't':
		if d.literal("true") {
			return nil
		}
	case 'f':
		if d.literal("false") {
			return nil
		}
	case 'n':
		if d.literal("null") {
			return nil
		}
	default:
		_, err := d.number()
		return err
	}
	return d.errorf("invalid JSON value")
}
