package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/index"
)

// QIDO-RS query parameters the server acts on (PS3.18 8.3.4); any other
// parameter that is not an attribute is answered with a Warning.
const (
	paramIncludeField  = "includefield"
	paramLimit         = "limit"
	paramOffset        = "offset"
	paramFuzzyMatching = "fuzzymatching"
)

// supportedParams lists the query parameters other than attributes, for
// the capabilities document.
var supportedParams = []string{paramIncludeField, paramLimit, paramOffset, paramFuzzyMatching}

// warn adds a Warning header as PS3.18 words them for QIDO-RS:
// 299 {+service}: "text", the warn-agent being the service's base URL.
func warn(c *fiber.Ctx, service, text string) {
	c.Response().Header.Add(fiber.HeaderWarning, "299 "+service+`: "`+strings.ReplaceAll(text, `"`, `'`)+`"`)
}

// search is QIDO-RS Search for studies, series or instances (PS3.18
// 10.6), answered from the index with the matching of PS3.4 C.2.2.2.
// Query values arrive percent-decoded and are matched as UTF-8.
func (s *Server) search(level index.Level) fiber.Handler {
	return func(c *fiber.Ctx) error {
		typ, ok := acceptsAny(parseAccept(c.Get(fiber.HeaderAccept)), mediaDICOMJSON, mediaJSON)
		if !ok {
			return problemf(http.StatusNotAcceptable, "search results are available as %s only", mediaDICOMJSON)
		}
		q := index.Query{Level: level, Filters: map[dicom.Tag][]string{}}
		for _, p := range []struct {
			name string
			t    dicom.Tag
		}{{"study", tag.StudyInstanceUID}, {"series", tag.SeriesInstanceUID}} {
			if v := c.Params(p.name); v != "" {
				if !dicom.ValidUID(v) {
					return problemf(http.StatusBadRequest, "invalid %s in the path", p.t)
				}
				q.Filters[p.t] = []string{v}
			}
		}
		var warnings []string
		var perr error
		c.Context().QueryArgs().VisitAll(func(k, v []byte) {
			if perr != nil {
				return
			}
			w, err := s.queryParam(&q, string(k), string(v))
			if err != nil {
				perr = err
			}
			if w != "" && !slices.Contains(warnings, w) {
				warnings = append(warnings, w)
			}
		})
		if perr != nil {
			return perr
		}
		q.StudyFilter = studyFilter(c)
		res, err := s.ix.Find(c.UserContext(), q)
		if err != nil {
			var qe *index.QueryError
			if errors.As(err, &qe) {
				return problemf(http.StatusBadRequest, "query key %s: %v", keyword(qe.Tag), qe.Err)
			}
			return err
		}
		for _, t := range res.Unsupported {
			warnings = append(warnings, fmt.Sprintf("The attribute %s is not supported for matching or return at the %s level; it was ignored.", keyword(t), strings.ToLower(level.String())))
		}
		if res.Truncated {
			warnings = append(warnings, "The number of results exceeded the maximum supported by the server. Additional results can be requested.")
		}
		s.queried(c, level, len(res.Matches))
		base := s.baseURL(c)
		for _, w := range warnings {
			warn(c, base, w)
		}
		var buf bytes.Buffer
		aw := dicom.NewJSONArrayWriter(&buf, nil)
		for _, ds := range res.Matches {
			addReturnAttributes(ds, level, base)
			if err := aw.Write(ds); err != nil {
				return fmt.Errorf("gateway: encode search result: %w", err)
			}
		}
		if err := aw.Close(); err != nil {
			return fmt.Errorf("gateway: encode search result: %w", err)
		}
		c.Set(fiber.HeaderContentType, typ)
		c.Set(fiber.HeaderCacheControl, "private, no-store")
		return c.Send(buf.Bytes())
	}
}

// queryParam applies one query parameter to q. It returns a warning for
// parameters the server does not support, and an error for malformed ones.
func (s *Server) queryParam(q *index.Query, key, value string) (string, error) {
	switch strings.ToLower(key) {
	case paramIncludeField:
		for _, f := range strings.Split(value, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
			case strings.EqualFold(f, "all"):
				q.IncludeAll = true
			default:
				t, err := dicom.ParseTagOrKeyword(f)
				if err != nil {
					if isAttributePath(f) {
						return fmt.Sprintf("includefield %s: nested attributes are not supported; it was ignored.", f), nil
					}
					return "", problemf(http.StatusBadRequest, "includefield %q is neither a keyword nor a tag", f)
				}
				q.IncludeFields = append(q.IncludeFields, t)
			}
		}
		return "", nil
	case paramLimit, paramOffset:
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return "", problemf(http.StatusBadRequest, "%s must be a non-negative integer, not %q", key, value)
		}
		if strings.EqualFold(key, paramLimit) {
			if n == 0 {
				return "", problemf(http.StatusBadRequest, "limit must be positive")
			}
			q.Limit = n
		} else {
			q.Offset = n
		}
		return "", nil
	case paramFuzzyMatching:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return "", problemf(http.StatusBadRequest, "fuzzymatching must be true or false, not %q", value)
		}
		q.FuzzyMatching = b
		return "", nil
	}
	t, err := dicom.ParseTagOrKeyword(key)
	if err != nil {
		if isAttributePath(key) {
			return fmt.Sprintf("The attribute %s (a nested attribute) is not supported for matching; it was ignored.", key), nil
		}
		if looksLikeParameter(key) {
			return fmt.Sprintf("The %s parameter is not supported; it was ignored.", key), nil
		}
		return "", problemf(http.StatusBadRequest, "query parameter %q is neither a supported parameter nor a DICOM keyword or tag", key)
	}
	if !index.Supported(t) {
		return fmt.Sprintf("The attribute %s is not supported for matching; it was ignored.", keyword(t)), nil
	}
	vals := []string{value}
	if entry, ok := dicom.LookupTag(t); ok && (entry.VR == dicom.UI || entry.VR == dicom.CS) {
		// UID list matching and lists of code strings: comma separated
		// (PS3.18 8.3.4.1); backslashes are accepted too.
		vals = strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == '\\' })
		if len(vals) == 0 {
			vals = []string{""}
		}
	}
	for i, v := range vals {
		if err := validQueryValue(t, v); err != nil {
			return "", err
		}
		vals[i] = strings.TrimSpace(v)
	}
	q.Filters[t] = append(q.Filters[t], vals...)
	return "", nil
}

// validQueryValue rejects values that can never match because they are
// malformed: a UID key with characters no UID has.
func validQueryValue(t dicom.Tag, v string) error {
	entry, ok := dicom.LookupTag(t)
	if !ok || entry.VR != dicom.UI {
		return nil
	}
	v = strings.TrimSpace(v)
	if v == "" || v == "*" {
		return nil
	}
	if !dicom.ValidUID(v) {
		return problemf(http.StatusBadRequest, "%s: %q is not a UID", keyword(t), v)
	}
	return nil
}

// isAttributePath reports whether s is a dotted attribute path
// ("00400275.00321060", "RequestAttributesSequence.Modality").
func isAttributePath(s string) bool {
	if !strings.Contains(s, ".") {
		return false
	}
	for _, p := range strings.Split(s, ".") {
		if _, err := dicom.ParseTagOrKeyword(p); err != nil {
			return false
		}
	}
	return true
}

// looksLikeParameter reports whether key is written like a QIDO-RS
// parameter (lower case letters) rather than an attribute: such keys
// (orderby, emptyvalue, charset, ...) get a warning, not an error.
func looksLikeParameter(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if (r < 'a' || r > 'z') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// keyword names t by its keyword when the dictionary knows it.
func keyword(t dicom.Tag) string {
	if e, ok := dicom.LookupTag(t); ok && e.Keyword != "" {
		return e.Keyword
	}
	return t.String()
}

// addReturnAttributes adds what PS3.18 Tables 10.6.3-3 to -5 require at
// every level and the index does not hold: Retrieve URL and Instance
// Availability.
func addReturnAttributes(ds *dicom.Dataset, level index.Level, base string) {
	url := base + "/studies/" + ds.String(tag.StudyInstanceUID)
	if level >= index.Series {
		url += "/series/" + ds.String(tag.SeriesInstanceUID)
	}
	if level >= index.Instance {
		url += "/instances/" + ds.String(tag.SOPInstanceUID)
	}
	ds.Set(dicom.NewStrings(tag.RetrieveURL, dicom.UR, url))
	ds.Set(dicom.NewStrings(tag.InstanceAvailability, dicom.CS, "ONLINE"))
}
