package dicom

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// ErrUnknownCharacterSet reports a Specific Character Set (0008,0005) term
// that is not a defined term of PS3.3 C.12.1.1.2.
var ErrUnknownCharacterSet = errors.New("dicom: unknown specific character set")

// codeKind says how the bytes of a code element map to characters.
type codeKind uint8

const (
	kindASCII    codeKind = iota // G0: ISO 646 (IR 6), also used for JIS X 0201 Romaji (IR 14)
	kindSB96                     // G1: upper half of a single-byte ISO 8859 set
	kindKatakana                 // G1: JIS X 0201 Katakana (IR 13)
	kindJIS0208                  // G0: JIS X 0208 (IR 87), two 7-bit bytes
	kindJIS0212                  // G0: JIS X 0212 (IR 159), two 7-bit bytes
	kindKSX1001                  // G1: KS X 1001 (IR 149), two 8-bit bytes
	kindGB2312                   // G1: GB 2312 (IR 58), two 8-bit bytes
)

// codeElement is one graphic character set that ISO 2022 code extension
// can designate to G0 or G1 (PS3.3 Tables C.12-3 and C.12-4).
type codeElement struct {
	esc  string // escape sequence designating it, without the leading ESC
	g1   bool   // designated to G1 (else G0)
	kind codeKind
	cm   *charmap.Charmap // kindSB96
}

func (c *codeElement) multiByte() bool { return c.kind >= kindJIS0208 }

var (
	ceASCII    = &codeElement{esc: "(B", kind: kindASCII}
	ceRomaji   = &codeElement{esc: "(J", kind: kindASCII}
	ceKatakana = &codeElement{esc: ")I", g1: true, kind: kindKatakana}
	ceJIS0208  = &codeElement{esc: "$B", kind: kindJIS0208}
	ceJIS0212  = &codeElement{esc: "$(D", kind: kindJIS0212}
	ceKSX1001  = &codeElement{esc: "$)C", g1: true, kind: kindKSX1001}
	ceGB2312   = &codeElement{esc: "$)A", g1: true, kind: kindGB2312}
)

func sb96(esc string, cm *charmap.Charmap) *codeElement {
	return &codeElement{esc: esc, g1: true, kind: kindSB96, cm: cm}
}

// isoIR maps the IR number of each defined term to its code elements
// (G0, G1): "ISO_IR n" and "ISO 2022 IR n" name the same repertoire, the
// latter with code extension techniques allowed.
var isoIR = map[string][2]*codeElement{
	"6":   {ceASCII, nil},
	"100": {ceASCII, sb96("-A", charmap.ISO8859_1)},
	"101": {ceASCII, sb96("-B", charmap.ISO8859_2)},
	"109": {ceASCII, sb96("-C", charmap.ISO8859_3)},
	"110": {ceASCII, sb96("-D", charmap.ISO8859_4)},
	"144": {ceASCII, sb96("-L", charmap.ISO8859_5)},
	"127": {ceASCII, sb96("-G", charmap.ISO8859_6)},
	"126": {ceASCII, sb96("-F", charmap.ISO8859_7)},
	"138": {ceASCII, sb96("-H", charmap.ISO8859_8)},
	"148": {ceASCII, sb96("-M", charmap.ISO8859_9)},
	"203": {ceASCII, sb96("-b", charmap.ISO8859_15)},
	// TIS 620-2533; Windows-874 is a superset with the same upper half.
	"166": {ceASCII, sb96("-T", charmap.Windows874)},
	"13":  {ceRomaji, ceKatakana},
	"87":  {nil, ceJIS0208},
	"159": {nil, ceJIS0212},
	"149": {nil, ceKSX1001},
	"58":  {nil, ceGB2312},
}

// allEscapes lists every escape sequence the decoder recognises, whether or
// not the data set declared it: real files often omit a term they use.
var allEscapes = func() []*codeElement {
	out := []*codeElement{ceASCII, ceRomaji, ceKatakana, ceJIS0208, ceJIS0212, ceKSX1001, ceGB2312}
	for _, ir := range []string{"100", "101", "109", "110", "144", "127", "126", "138", "148", "203", "166"} {
		out = append(out, isoIR[ir][1])
	}
	return out
}()

// CharacterSet is the character repertoire of a data set, as declared by
// Specific Character Set (0008,0005) (PS3.3 C.12.1.1.2, PS3.5 6.1). A nil
// *CharacterSet is the default repertoire (ISO 646 / ASCII).
type CharacterSet struct {
	terms []string
	// whole-value encodings without code extensions (ISO_IR 192, GB18030, GBK).
	whole encoding.Encoding
	utf8  bool
	// ISO 2022: the code elements in force at the start of each value and
	// after each delimiter, and every element the data set declared.
	g0, g1     *codeElement
	declared   []*codeElement
	extensions bool // terms are "ISO 2022 ..." so escape sequences may be written
}

// ParseCharacterSet returns the character set the values of Specific
// Character Set (0008,0005) declare. No terms, or a single empty term, is
// the default repertoire (nil). On an unknown term it returns an error
// wrapping ErrUnknownCharacterSet together with a usable set that treats
// that term as the default repertoire, so a lenient caller may go on.
func ParseCharacterSet(terms []string) (*CharacterSet, error) {
	clean := make([]string, 0, len(terms))
	for _, t := range terms {
		clean = append(clean, strings.Trim(t, " \x00"))
	}
	if len(clean) == 0 || (len(clean) == 1 && clean[0] == "") {
		return nil, nil
	}
	cs := &CharacterSet{terms: clean, g0: ceASCII}
	switch clean[0] {
	case "ISO_IR 192":
		cs.utf8 = true
		return cs, nil
	case "GB18030":
		cs.whole = simplifiedchinese.GB18030
		return cs, nil
	case "GBK":
		cs.whole = simplifiedchinese.GBK
		return cs, nil
	}
	var errs []error
	for i, t := range clean {
		var ir string
		switch {
		case t == "":
			ir = "6" // value 1 empty: the default repertoire
		case strings.HasPrefix(t, "ISO 2022 IR "):
			ir = strings.TrimPrefix(t, "ISO 2022 IR ")
			cs.extensions = true
		case strings.HasPrefix(t, "ISO_IR "):
			ir = strings.TrimPrefix(t, "ISO_IR ")
		}
		els, ok := isoIR[ir]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: %q", ErrUnknownCharacterSet, t))
			continue
		}
		for _, ce := range els {
			if ce != nil {
				cs.declared = append(cs.declared, ce)
			}
		}
		if i == 0 {
			// Value 1 is what is in force initially and after delimiters;
			// a multi-byte G0 set cannot be (PS3.3 C.12.1.1.2).
			if els[0] != nil {
				cs.g0 = els[0]
			}
			cs.g1 = els[1]
		}
	}
	if len(clean) > 1 {
		cs.extensions = true
	}
	return cs, errors.Join(errs...)
}

// Terms returns the defined terms the set was parsed from.
func (cs *CharacterSet) Terms() []string {
	if cs == nil {
		return nil
	}
	return append([]string(nil), cs.terms...)
}

// String returns the terms joined with backslashes, as encoded in (0008,0005).
func (cs *CharacterSet) String() string {
	if cs == nil {
		return ""
	}
	return strings.Join(cs.terms, `\`)
}

// affected reports whether values of vr are subject to the Specific
// Character Set; the others use the default repertoire only (PS3.5 6.1.2.3).
func affected(vr VR) bool {
	switch vr {
	case SH, LO, ST, LT, UC, UT, PN:
		return true
	}
	return false
}

// Decode converts a value of vr, as encoded in the data set, to UTF-8.
// Decoding is lenient, as a receiver must be: bytes that do not form a
// character of the set become U+FFFD, and escape sequences to sets that
// were not declared are honoured.
func (cs *CharacterSet) Decode(b []byte, vr VR) (string, error) {
	if isASCII(b) {
		return string(b), nil
	}
	if cs == nil || !affected(vr) {
		// Default repertoire: bytes above 0x7F are not allowed; Latin-1 is
		// what senders that ignore (0008,0005) nearly always mean.
		return latin1(b), nil
	}
	switch {
	case cs.utf8:
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	case cs.whole != nil:
		out, err := cs.whole.NewDecoder().Bytes(b)
		if err != nil {
			return "", fmt.Errorf("dicom: decoding %s value as %s: %w", vr, cs, err)
		}
		return string(out), nil
	}
	return cs.decode2022(b, vr), nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || c == 0x1B {
			return false
		}
	}
	return true
}

func latin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/4)
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// isDelimiter reports whether c returns the decoder to the initial code
// elements (PS3.5 6.1.2.5.3): control characters, the value delimiter,
// and for PN the component group and component delimiters.
func isDelimiter(c byte, vr VR) bool {
	switch {
	case c < 0x20 && c != 0x1B:
		return true
	case c == '\\':
		return !vr.IsText()
	case c == '^' || c == '=':
		return vr == PN
	}
	return false
}

func (cs *CharacterSet) decode2022(b []byte, vr VR) string {
	var sb strings.Builder
	sb.Grow(2 * len(b))
	g0, g1 := cs.g0, cs.g1
	lastG1 := g1
	if lastG1 == nil {
		for _, ce := range cs.declared {
			if ce.g1 {
				lastG1 = ce
				break
			}
		}
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c == 0x1B {
			if ce := matchEscape(b[i+1:]); ce != nil {
				if ce.g1 {
					g1, lastG1 = ce, ce
				} else {
					g0 = ce
				}
				i += 1 + len(ce.esc)
				continue
			}
			sb.WriteRune(utf8.RuneError)
			i++
			continue
		}
		if c < 0x80 {
			if g0.multiByte() && c > 0x20 {
				j := i
				for j+1 < len(b) && b[j] > 0x20 && b[j] < 0x7F && b[j+1] > 0x20 && b[j+1] < 0x7F {
					j += 2
				}
				if j == i {
					sb.WriteRune(utf8.RuneError)
					i++
					continue
				}
				decodeMulti(&sb, g0.kind, b[i:j])
				i = j
				continue
			}
			if isDelimiter(c, vr) {
				g0, g1 = cs.g0, cs.g1
			}
			sb.WriteByte(c)
			i++
			continue
		}
		ce := g1
		if ce == nil {
			ce = lastG1
		}
		switch {
		case ce == nil:
			sb.WriteRune(rune(c))
			i++
		case ce.kind == kindSB96:
			sb.WriteRune(ce.cm.DecodeByte(c))
			i++
		case ce.kind == kindKatakana:
			if c >= 0xA1 && c <= 0xDF {
				sb.WriteRune(rune(c) - 0xA1 + 0xFF61)
			} else {
				sb.WriteRune(utf8.RuneError)
			}
			i++
		default: // two-byte G1 set
			j := i
			for j+1 < len(b) && b[j] >= 0xA1 && b[j] < 0xFF && b[j+1] >= 0xA1 && b[j+1] < 0xFF {
				j += 2
			}
			if j == i {
				sb.WriteRune(utf8.RuneError)
				i++
				continue
			}
			decodeMulti(&sb, ce.kind, b[i:j])
			i = j
		}
	}
	return sb.String()
}

func matchEscape(b []byte) *codeElement {
	for _, ce := range allEscapes {
		if len(b) >= len(ce.esc) && string(b[:len(ce.esc)]) == ce.esc {
			return ce
		}
	}
	return nil
}

// decodeMulti decodes a run of two-byte characters of a multi-byte set by
// mapping them onto the EUC form that x/text decodes.
func decodeMulti(sb *strings.Builder, kind codeKind, run []byte) {
	var enc encoding.Encoding
	buf := make([]byte, 0, len(run)*3/2)
	switch kind {
	case kindJIS0208:
		enc = japanese.EUCJP
		for _, c := range run {
			buf = append(buf, c|0x80)
		}
	case kindJIS0212:
		enc = japanese.EUCJP
		for k := 0; k+1 < len(run); k += 2 {
			buf = append(buf, 0x8F, run[k]|0x80, run[k+1]|0x80)
		}
	case kindKSX1001:
		enc, buf = korean.EUCKR, run
	case kindGB2312:
		enc, buf = simplifiedchinese.GBK, run
	}
	out, err := enc.NewDecoder().Bytes(buf)
	if err != nil {
		sb.WriteRune(utf8.RuneError)
		return
	}
	sb.Write(out)
}

// Encode converts UTF-8 text to the bytes of a value of vr in the set,
// designating code elements with escape sequences where the set allows
// code extensions. It fails if a character cannot be represented.
func (cs *CharacterSet) Encode(s string, vr VR) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("dicom: encoding %s value: invalid UTF-8", vr)
	}
	if isASCII([]byte(s)) {
		return []byte(s), nil
	}
	if cs == nil || !affected(vr) {
		return nil, fmt.Errorf("dicom: encoding %s value %q: not in the default repertoire", vr, s)
	}
	switch {
	case cs.utf8:
		return []byte(s), nil
	case cs.whole != nil:
		out, err := cs.whole.NewEncoder().Bytes([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("dicom: encoding %s value as %s: %w", vr, cs, err)
		}
		return out, nil
	}
	return cs.encode2022(s, vr)
}

func (cs *CharacterSet) encode2022(s string, vr VR) ([]byte, error) {
	out := make([]byte, 0, 2*len(s))
	g0, g1 := cs.g0, cs.g1
	reset := func() {
		if g0 != cs.g0 {
			out = append(out, 0x1B)
			out = append(out, cs.g0.esc...)
		}
		if g1 != cs.g1 && cs.g1 != nil {
			out = append(out, 0x1B)
			out = append(out, cs.g1.esc...)
		}
		g0, g1 = cs.g0, cs.g1
	}
	var tmp [4]byte
	for _, r := range s {
		if r < 0x80 {
			if r < 0x20 || isDelimiter(byte(r), vr) {
				reset()
			} else if g0.multiByte() {
				out = append(out, 0x1B)
				out = append(out, cs.g0.esc...)
				g0 = cs.g0
			}
			out = append(out, byte(r))
			continue
		}
		// Prefer the elements in force, then those declared, in order.
		var done bool
		for _, ce := range append([]*codeElement{g1, g0}, cs.declared...) {
			if ce == nil {
				continue
			}
			enc, ok := encodeRune(ce, r, tmp[:0])
			if !ok {
				continue
			}
			if ce.g1 && ce != g1 || !ce.g1 && ce != g0 {
				if !cs.extensions {
					continue
				}
				out = append(out, 0x1B)
				out = append(out, ce.esc...)
				if ce.g1 {
					g1 = ce
				} else {
					g0 = ce
				}
			}
			out = append(out, enc...)
			done = true
			break
		}
		if !done {
			return nil, fmt.Errorf("dicom: encoding %s value: %q is not in character set %s", vr, r, cs)
		}
	}
	reset()
	return out, nil
}

// encodeRune encodes r in code element ce, appending to dst.
func encodeRune(ce *codeElement, r rune, dst []byte) ([]byte, bool) {
	switch ce.kind {
	case kindSB96:
		b, ok := ce.cm.EncodeRune(r)
		if !ok || b < 0xA0 {
			return nil, false
		}
		return append(dst, b), true
	case kindKatakana:
		if r >= 0xFF61 && r <= 0xFF9F {
			return append(dst, byte(r-0xFF61+0xA1)), true
		}
		return nil, false
	}
	var enc encoding.Encoding
	switch ce.kind {
	case kindJIS0208, kindJIS0212:
		enc = japanese.EUCJP
	case kindKSX1001:
		enc = korean.EUCKR
	case kindGB2312:
		enc = simplifiedchinese.GBK
	default:
		return nil, false
	}
	b, err := enc.NewEncoder().Bytes([]byte(string(r)))
	if err != nil {
		return nil, false
	}
	switch {
	case ce.kind == kindJIS0208 && len(b) == 2 && b[0] >= 0xA1 && b[1] >= 0xA1:
		return append(dst, b[0]&0x7F, b[1]&0x7F), true
	case ce.kind == kindJIS0212 && len(b) == 3 && b[0] == 0x8F:
		return append(dst, b[1]&0x7F, b[2]&0x7F), true
	case (ce.kind == kindKSX1001 || ce.kind == kindGB2312) && len(b) == 2 &&
		b[0] >= 0xA1 && b[0] < 0xFF && b[1] >= 0xA1 && b[1] < 0xFF:
		return append(dst, b...), true
	}
	return nil, false
}

// CharacterSet returns the character set in force for ds: its own Specific
// Character Set (0008,0005) if present, else parent's (a sequence item
// inherits the set of the data set containing it; PS3.5 7.5.3).
func (ds *Dataset) CharacterSet(parent *CharacterSet) (*CharacterSet, error) {
	e := ds.Get(TagSpecificCharacterSet)
	if e == nil {
		return parent, nil
	}
	// The terms are CS values; their leading spaces matter for none.
	var terms []string
	if len(e.Value) > 0 {
		terms = strings.Split(string(e.Value), `\`)
	}
	return ParseCharacterSet(terms)
}
