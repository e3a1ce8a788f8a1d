package gateway

import (
	"mime"
	"slices"
	"strconv"
	"strings"

	"github.com/medimint/medimint/dicom"
)

// Media types of PS3.18 Table 8.7.3-2 and the ones the gateway answers with.
const (
	mediaDICOM       = "application/dicom"
	mediaDICOMJSON   = "application/dicom+json"
	mediaDICOMXML    = "application/dicom+xml"
	mediaJSON        = "application/json"
	mediaOctetStream = "application/octet-stream"
	mediaMultipart   = "multipart/related"
	mediaJPEG        = "image/jpeg"
	mediaPNG         = "image/png"
	mediaJLS         = "image/jls"
	mediaJP2         = "image/jp2"
	mediaJPX         = "image/jpx"
	mediaRLE         = "image/dicom-rle"
)

// transferSyntaxAny is the transfer-syntax parameter value asking for
// instances, frames or bulk data as stored (PS3.18 8.7.3.5.2).
const transferSyntaxAny = "*"

// uncompressed lists the transfer syntaxes the gateway transcodes between
// (through the dicom codec): native pixel data in any of them can be
// rewritten in any other without decompression.
var uncompressed = []string{
	dicom.ExplicitVRLittleEndian,
	dicom.ImplicitVRLittleEndian,
	dicom.DeflatedExplicitVRLittleEndian,
	dicom.ExplicitVRBigEndian,
}

func isUncompressed(ts string) bool { return slices.Contains(uncompressed, ts) }

// frameMediaType returns the media type of a compressed frame in transfer
// syntax ts (PS3.18 Table 8.7.3-4); application/octet-stream for native
// pixel data and transfer syntaxes without a registered image type.
func frameMediaType(ts string) string {
	switch {
	case ts == dicom.JPEGBaseline8Bit, ts == dicom.JPEGExtended12Bit, ts == dicom.JPEGLossless, ts == dicom.JPEGLosslessSV1:
		return mediaJPEG
	case ts == dicom.JPEGLSLossless, ts == dicom.JPEGLSNearLossless:
		return mediaJLS
	case ts == dicom.JPEG2000Lossless, ts == dicom.JPEG2000:
		return mediaJP2
	case ts == "1.2.840.10008.1.2.4.92", ts == "1.2.840.10008.1.2.4.93":
		return mediaJPX
	case ts == dicom.RLELossless:
		return mediaRLE
	}
	return mediaOctetStream
}

// mediaRange is one element of an Accept header.
type mediaRange struct {
	typ    string            // lower case, e.g. "multipart/related" or "*/*"
	params map[string]string // lower-case keys; values as given
	q      float64
}

// part returns the media type a multipart/related range asks for in its
// parts ("" when it names none).
func (m mediaRange) part() string { return strings.ToLower(m.params["type"]) }

// transferSyntax returns the transfer-syntax parameter ("" when absent).
func (m mediaRange) transferSyntax() string { return strings.TrimSpace(m.params["transfer-syntax"]) }

// matches reports whether the range admits media type typ.
func (m mediaRange) matches(typ string) bool {
	if m.typ == "*/*" || m.typ == typ {
		return true
	}
	major, _, _ := strings.Cut(typ, "/")
	return m.typ == major+"/*"
}

// parseAccept parses an Accept header into its ranges, best first (by q,
// then in the order given); ranges with q=0 are dropped. An empty header
// is "*/*". Elements that do not parse are ignored, as RFC 9110 allows.
func parseAccept(h string) []mediaRange {
	if strings.TrimSpace(h) == "" {
		return []mediaRange{{typ: "*/*", params: map[string]string{}, q: 1}}
	}
	var out []mediaRange
	for _, el := range splitOutsideQuotes(h, ',') {
		el = strings.TrimSpace(el)
		if el == "" {
			continue
		}
		typ, params, err := mime.ParseMediaType(el)
		if err == nil && !strings.Contains(typ, "/") {
			continue
		}
		if err != nil {
			// Clients send unquoted type=application/dicom, which
			// mime rejects (a "/" in a token); parse leniently.
			typ, params = parseMediaLenient(el)
			if typ == "" {
				continue
			}
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
			delete(params, "q")
		}
		if q == 0 {
			continue
		}
		out = append(out, mediaRange{typ: strings.ToLower(typ), params: params, q: q})
	}
	slices.SortStableFunc(out, func(a, b mediaRange) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	return out
}

// parseMediaLenient splits "type/sub; k=v; k2="v2"" without mime's token
// rules. Keys are lower-cased; quotes around values are removed.
func parseMediaLenient(s string) (string, map[string]string) {
	fields := splitOutsideQuotes(s, ';')
	typ := strings.ToLower(strings.TrimSpace(fields[0]))
	if !strings.Contains(typ, "/") {
		return "", nil
	}
	params := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		params[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return typ, params
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted
// string.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && inQuote:
			i++
		case s[i] == '"':
			inQuote = !inQuote
		case s[i] == sep && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// parseContentType parses a request's Content-Type, leniently as
// parseAccept does.
func parseContentType(h string) (string, map[string]string, error) {
	typ, params, err := mime.ParseMediaType(h)
	if err == nil {
		return strings.ToLower(typ), params, nil
	}
	typ, params = parseMediaLenient(h)
	if typ == "" {
		return "", nil, err
	}
	return typ, params, nil
}

// acceptsAny reports whether some range in accept admits one of types
// (single-part responses).
func acceptsAny(accept []mediaRange, types ...string) (string, bool) {
	for _, m := range accept {
		for _, t := range types {
			if m.matches(t) {
				return t, true
			}
		}
	}
	return "", false
}

// tsChoice is what a client asked for in the parts of a multipart
// response: which part media types and, for each, which transfer
// syntaxes. tsAny: as stored; tsDefault: no transfer-syntax parameter
// (Explicit VR Little Endian where possible, else as stored).
type tsChoice struct {
	any       bool     // transfer-syntax=* (or */* without parameters)
	dflt      bool     // a range without transfer-syntax
	syntaxes  []string // explicit transfer syntaxes, best first
	partTypes []string // acceptable part media types (frames), best first
}

// multipartChoice collects the multipart/related ranges (and */*) of
// accept whose part type is one of partTypes.
func multipartChoice(accept []mediaRange, partTypes ...string) (tsChoice, bool) {
	var c tsChoice
	ok := false
	for _, m := range accept {
		var pt string
		switch {
		case m.typ == "*/*":
			pt = "*"
		case m.typ == mediaMultipart:
			pt = m.part()
			if pt == "" {
				pt = "*"
			}
		default:
			continue
		}
		matched := false
		for _, want := range partTypes {
			if pt == "*" || pt == want || (strings.HasSuffix(pt, "/*") && strings.HasPrefix(want, strings.TrimSuffix(pt, "*"))) {
				matched = true
				if pt != "*" && !slices.Contains(c.partTypes, want) {
					c.partTypes = append(c.partTypes, want)
				}
			}
		}
		if !matched {
			continue
		}
		ok = true
		switch ts := m.transferSyntax(); {
		case ts == transferSyntaxAny:
			c.any = true
		case ts == "" && (pt == "*" || m.typ == "*/*"):
			c.dflt = true
			if pt == "*" && m.typ == "*/*" {
				c.any = true // */* accepts whatever is stored
			}
		case ts == "":
			c.dflt = true
		default:
			c.syntaxes = append(c.syntaxes, ts)
		}
	}
	return c, ok
}

// pick returns the transfer syntax to send an object stored in stored
// as, or "" if the client accepts none that the gateway can produce.
func (c tsChoice) pick(stored string) string {
	if c.any || slices.Contains(c.syntaxes, stored) {
		return stored
	}
	if isUncompressed(stored) {
		for _, ts := range c.syntaxes {
			if isUncompressed(ts) {
				return ts
			}
		}
	}
	if c.dflt {
		if isUncompressed(stored) {
			return dicom.ExplicitVRLittleEndian
		}
		// No transfer syntax asked for and the object is compressed: the
		// gateway does not decompress, so it sends what it has and says
		// so in the part's Content-Type.
		return stored
	}
	return ""
}
