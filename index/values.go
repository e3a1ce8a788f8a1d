package index

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/medimint/medimint/dicom"
)

// text returns the value of t converted to UTF-8 from the data set's
// Specific Character Set, its values joined by backslashes, "" when
// absent. An unknown character set decodes as the default repertoire
// (bytes above 0x7F as ISO 8859-1), so indexing never fails on it.
func text(ds *dicom.Dataset, t dicom.Tag) string {
	e := ds.Get(t)
	if e == nil || len(e.Value) == 0 {
		return ""
	}
	cs, _ := ds.CharacterSet(nil) // lenient: a usable set comes back with the error
	s, err := cs.Decode(e.Value, e.VR)
	if err != nil {
		s = toUTF8(string(e.Value))
	}
	e2 := dicom.Element{Tag: e.Tag, VR: e.VR, Value: []byte(s)}
	return toUTF8(strings.Join(e2.Strings(), `\`))
}

// toUTF8 makes s acceptable to Postgres text: no NULs, valid UTF-8 (bytes
// that are not are taken as ISO 8859-1).
func toUTF8(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// integer parses an IS or US/UL value; nil when absent or malformed.
func integer(ds *dicom.Dataset, t dicom.Tag) *int32 {
	e := ds.Get(t)
	if e == nil {
		return nil
	}
	switch e.VR {
	case dicom.US, dicom.UL, dicom.SS, dicom.SL:
		if v, ok := ds.Uint(t); ok && v <= 1<<31-1 {
			n := int32(v)
			return &n
		}
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(e.String()), 10, 32)
	if err != nil {
		return nil
	}
	v := int32(n)
	return &v
}

// personName is a PN value prepared for matching.
type personName struct {
	norm                  string // upper-cased first non-empty component group, trailing '^' trimmed
	family, given, middle string
	// ideo and phon are the ideographic and phonetic groups, normalised
	// like norm, so that any group can match.
	ideo, phon string
}

// normalisePN upper-cases the alphabetic component group of a PN value
// (or the first non-empty group, for names given only ideographically),
// trims spaces around components and drops empty trailing components, so
// that "Doe^John^^^" and "DOE^JOHN" are equal. The ideographic and
// phonetic groups are normalised alike.
func normalisePN(v string) personName {
	if i := strings.IndexByte(v, '\\'); i >= 0 {
		v = v[:i] // first value only
	}
	groups := strings.SplitN(v, "=", 3)
	var first string
	for _, g := range groups {
		if strings.Trim(g, " ^") != "" {
			first = g
			break
		}
	}
	comps := pnComponents(first)
	pn := personName{norm: strings.Join(comps, "^")}
	if len(comps) > 0 {
		pn.family = comps[0]
	}
	if len(comps) > 1 {
		pn.given = comps[1]
	}
	if len(comps) > 2 {
		pn.middle = comps[2]
	}
	if len(groups) > 1 {
		pn.ideo = strings.Join(pnComponents(groups[1]), "^")
	}
	if len(groups) > 2 {
		pn.phon = strings.Join(pnComponents(groups[2]), "^")
	}
	return pn
}

// pnComponents upper-cases a component group and splits it into its
// trimmed components, without empty trailing ones.
func pnComponents(group string) []string {
	comps := strings.Split(strings.ToUpper(group), "^")
	for i := range comps {
		comps[i] = strings.TrimSpace(comps[i])
	}
	for len(comps) > 0 && comps[len(comps)-1] == "" {
		comps = comps[:len(comps)-1]
	}
	return comps
}

// pnQueryNorm normalises a PN query value like normalisePN but keeps
// wildcards, and keeps a trailing '*' component. Of a query with several
// component groups the first non-empty one is matched (against every
// stored group).
func pnQueryNorm(v string) string {
	if strings.Contains(v, "=") {
		groups := strings.Split(v, "=")
		v = ""
		for _, g := range groups {
			if strings.Trim(g, " ^") != "" {
				v = g
				break
			}
		}
	}
	return strings.Join(pnComponents(v), "^")
}

// A date or time bound as Postgres accepts it ("2020-01-31",
// "12:30:00.000000"); "" means unbounded.
type bounds struct{ lo, hi string }

// parseDA parses a DA value, allowing the partial forms YYYY and YYYYMM
// (and the ACR-NEMA YYYY.MM.DD) in queries. lo and hi are the first and
// last day the value covers.
func parseDA(s string) (lo, hi string, err error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ".", "")
	if len(s) != 4 && len(s) != 6 && len(s) != 8 || !digits(s) {
		return "", "", fmt.Errorf("date %q: want YYYYMMDD", s)
	}
	y, _ := strconv.Atoi(s[:4])
	m1, m2, d1, d2 := 1, 12, 1, 31
	if len(s) >= 6 {
		m1, _ = strconv.Atoi(s[4:6])
		m2 = m1
		if m1 < 1 || m1 > 12 {
			return "", "", fmt.Errorf("date %q: month out of range", s)
		}
	}
	d2 = daysIn(y, m2)
	if len(s) == 8 {
		d1, _ = strconv.Atoi(s[6:8])
		d2 = d1
		if d1 < 1 || d1 > daysIn(y, m1) {
			return "", "", fmt.Errorf("date %q: day out of range", s)
		}
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, m1, d1), fmt.Sprintf("%04d-%02d-%02d", y, m2, d2), nil
}

func daysIn(y, m int) int {
	switch m {
	case 4, 6, 9, 11:
		return 30
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 31
}

// parseTM parses a TM value (HH, HHMM, HHMMSS, HHMMSS.F{1,6}, and the
// ACR-NEMA HH:MM:SS); lo and hi are the first and last instants it covers.
func parseTM(s string) (lo, hi string, err error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	whole, frac, hasFrac := strings.Cut(s, ".")
	if len(whole) != 2 && len(whole) != 4 && len(whole) != 6 || !digits(whole) ||
		hasFrac && (len(whole) != 6 || len(frac) > 6 || !digits(frac)) {
		return "", "", fmt.Errorf("time %q: want HHMMSS.FFFFFF", s)
	}
	lim := []int{23, 59, 60}
	loP, hiP := []string{"00", "00", "00"}, []string{"23", "59", "59"}
	for i := 0; i < len(whole)/2; i++ {
		v, _ := strconv.Atoi(whole[2*i : 2*i+2])
		if v > lim[i] {
			return "", "", fmt.Errorf("time %q: out of range", s)
		}
		loP[i], hiP[i] = whole[2*i:2*i+2], whole[2*i:2*i+2]
	}
	if loP[2] == "60" { // leap second: Postgres time accepts up to 24:00:00 only as a whole
		loP[2], hiP[2] = "59", "59"
	}
	loF := frac + strings.Repeat("0", 6-len(frac))
	hiF := frac + strings.Repeat("9", 6-len(frac))
	return loP[0] + ":" + loP[1] + ":" + loP[2] + "." + loF, hiP[0] + ":" + hiP[1] + ":" + hiP[2] + "." + hiF, nil
}

// parseRange parses a DA or TM matching value: a single value or a range
// "a-b", "-b", "a-" (PS3.4 C.2.2.2.5).
func parseRange(s string, parse func(string) (string, string, error)) (bounds, error) {
	a, b, isRange := strings.Cut(s, "-")
	if !isRange {
		lo, hi, err := parse(s)
		return bounds{lo, hi}, err
	}
	if strings.TrimSpace(a) == "" && strings.TrimSpace(b) == "" {
		return bounds{}, fmt.Errorf("range %q has no bounds", s)
	}
	var r bounds
	if strings.TrimSpace(a) != "" {
		lo, _, err := parse(a)
		if err != nil {
			return bounds{}, err
		}
		r.lo = lo
	}
	if strings.TrimSpace(b) != "" {
		_, hi, err := parse(b)
		if err != nil {
			return bounds{}, err
		}
		r.hi = hi
	}
	return r, nil
}

// storedDate returns a stored DA value as a Postgres date, or nil if it
// is not a full valid date.
func storedDate(raw string) *string {
	s := strings.ReplaceAll(strings.TrimSpace(raw), ".", "")
	if len(s) != 8 {
		return nil
	}
	lo, _, err := parseDA(s)
	if err != nil {
		return nil
	}
	return &lo
}

// storedTime returns a stored TM value as a Postgres time, or nil.
func storedTime(raw string) *string {
	lo, _, err := parseTM(raw)
	if err != nil {
		return nil
	}
	return &lo
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// likePattern translates DICOM wildcards (* any run, ? one character)
// into a LIKE pattern, escaping LIKE's own metacharacters, and returns
// the literal prefix before the first wildcard.
func likePattern(v string) (pattern, prefix string) {
	var b strings.Builder
	prefixEnd := -1
	for _, r := range v {
		switch r {
		case '*', '?':
			if prefixEnd < 0 {
				prefixEnd = b.Len()
			}
			if r == '*' {
				b.WriteByte('%')
			} else {
				b.WriteByte('_')
			}
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	pattern = b.String()
	if prefixEnd < 0 {
		prefixEnd = len(pattern)
	}
	prefix = strings.NewReplacer(`\%`, "%", `\_`, "_", `\\`, `\`).Replace(pattern[:prefixEnd])
	return pattern, prefix
}

func hasWildcard(v string) bool { return strings.ContainsAny(v, "*?") }

// prefixUpper returns the least string greater than every string that
// starts with prefix, in byte order (text_pattern_ops), or "" if none can
// be formed simply (empty prefix, or a last byte beyond ASCII).
func prefixUpper(prefix string) string {
	if prefix == "" {
		return ""
	}
	last := prefix[len(prefix)-1]
	if last >= 0x7e {
		return ""
	}
	return prefix[:len(prefix)-1] + string(rune(last+1))
}
