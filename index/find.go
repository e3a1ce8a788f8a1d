package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// Query is a C-FIND identifier or a QIDO-RS request in index terms.
type Query struct {
	Level Level
	// Filters maps an attribute to its matching values; several values
	// match if any does (a UID list, or a QIDO value list). An empty value,
	// or "*", is universal matching: the attribute is only returned.
	// Filters on levels below Level select the entities that have at least
	// one such child (e.g. studies with a CT series).
	Filters map[dicom.Tag][]string
	// IncludeFields are returned in addition to the defaults (or instead of
	// them with OnlyRequested). IncludeAll returns every attribute the
	// index holds at Level and above (QIDO includefield=all).
	IncludeFields []dicom.Tag
	IncludeAll    bool
	// OnlyRequested returns only the filter keys, IncludeFields and the
	// unique keys of Level and the levels above it, as C-FIND requires.
	OnlyRequested bool
	// FuzzyMatching matches each component of a person name query as a
	// case-insensitive prefix of any name component (QIDO fuzzymatching).
	FuzzyMatching bool
	// Limit caps the results (0: the index's MaxResults); Offset skips.
	Limit, Offset int
	// StudyFilter, if set, restricts the matches to studies (or patients,
	// series and instances of studies) for which the condition it returns
	// holds: an SQL condition on the studies table under the alias it is
	// given, with placeholders from $next on and their arguments. Access
	// control (access.Filter.SQL) uses it so that QIDO-RS and C-FIND
	// filter in the database.
	StudyFilter func(studies string, next int) (cond string, args []any)
}

// Result is the answer to a Query.
type Result struct {
	// Matches holds one data set per matching entity, in a stable order.
	Matches []*dicom.Dataset
	// Truncated reports that more entities matched than were returned.
	Truncated bool
	// Unsupported lists filter keys and include fields the index does not
	// hold, which it ignored (QIDO-RS answers them with a Warning 299).
	Unsupported []dicom.Tag
}

// QueryError reports a query the index cannot evaluate, such as a
// malformed date: the caller's fault (QIDO 400, C-FIND A900/C000).
type QueryError struct {
	Tag dicom.Tag
	Err error
}

func (e *QueryError) Error() string { return fmt.Sprintf("index: query key %s: %v", e.Tag, e.Err) }
func (e *QueryError) Unwrap() error { return e.Err }

// FromIdentifier turns a C-FIND request identifier into a Query: keys with
// a value are filters, empty keys are return keys (PS3.4 C.4.1.1.3).
func FromIdentifier(id *dicom.Dataset) (Query, error) {
	lv, err := ParseLevel(id.String(tag.QueryRetrieveLevel))
	if err != nil {
		return Query{}, err
	}
	q := Query{Level: lv, Filters: map[dicom.Tag][]string{}, OnlyRequested: true}
	for i := range id.Elements {
		e := &id.Elements[i]
		if e.Tag == tag.QueryRetrieveLevel || e.Tag == tag.SpecificCharacterSet || e.Tag.Group() <= 2 || e.Tag.IsPrivate() {
			continue
		}
		var vals []string
		for v := range strings.SplitSeq(text(id, e.Tag), `\`) {
			if v != "" {
				vals = append(vals, v)
			}
		}
		if e.VR == dicom.SQ || len(vals) == 0 {
			q.IncludeFields = append(q.IncludeFields, e.Tag)
			continue
		}
		q.Filters[e.Tag] = vals
	}
	return q, nil
}

// sqlBuilder accumulates positional arguments.
type sqlBuilder struct{ args []any }

func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

// Find evaluates q.
func (ix *Index) Find(ctx context.Context, q Query) (Result, error) {
	if q.Level < Patient || q.Level > Instance {
		return Result{}, fmt.Errorf("index: invalid level %d", q.Level)
	}
	var res Result
	var b sqlBuilder

	// Conditions grouped by the level they apply to.
	conds := map[Level][]string{}
	filterTags := make([]dicom.Tag, 0, len(q.Filters))
	for t := range q.Filters {
		filterTags = append(filterTags, t)
	}
	slices.Sort(filterTags) // stable SQL text, so prepared statements are reused
	for _, t := range filterTags {
		a := attrByTag[t]
		if a == nil || a.kind == kCount || (q.Level == Patient && a.level > Study) {
			res.Unsupported = append(res.Unsupported, t)
			continue
		}
		c, err := b.cond(a, q.Level, q.Filters[t], q.FuzzyMatching)
		if err != nil {
			return Result{}, &QueryError{Tag: t, Err: err}
		}
		if c != "" {
			conds[a.level] = append(conds[a.level], c)
		}
	}

	// Returned attributes: at Level and above only.
	var ret []*attr
	seen := map[dicom.Tag]bool{}
	add := func(t dicom.Tag) {
		a := attrByTag[t]
		if a == nil {
			if !seen[t] {
				seen[t] = true
				res.Unsupported = append(res.Unsupported, t)
			}
			return
		}
		if seen[t] || a.level > q.Level || (q.Level != Patient && a.level == Patient && a.kind == kCount) {
			return
		}
		seen[t] = true
		ret = append(ret, a)
	}
	// Unique keys of the level and the levels above.
	switch q.Level {
	case Patient:
		add(tag.PatientID)
	case Instance:
		add(tag.SOPInstanceUID)
		fallthrough
	case Series:
		add(tag.SeriesInstanceUID)
		fallthrough
	case Study:
		add(tag.StudyInstanceUID)
	}
	if !q.OnlyRequested {
		for _, t := range defaultFields[q.Level] {
			add(t)
		}
	}
	if q.IncludeAll {
		for i := range attrs {
			if attrs[i].tag != tag.TransferSyntaxUID {
				add(attrs[i].tag)
			}
		}
	}
	for _, t := range filterTags {
		if a := attrByTag[t]; a != nil {
			add(t)
		}
	}
	for _, t := range q.IncludeFields {
		add(t)
	}

	var sql strings.Builder
	sql.WriteString("SELECT ")
	for i, a := range ret {
		if i > 0 {
			sql.WriteString(", ")
		}
		sql.WriteString(a.selectExpr(q.Level))
	}
	switch q.Level {
	case Patient:
		sql.WriteString(" FROM patients p")
	case Study:
		sql.WriteString(" FROM studies s")
	case Series:
		sql.WriteString(" FROM series se JOIN studies s ON s.pk = se.study_pk")
	case Instance:
		sql.WriteString(" FROM instances i JOIN series se ON se.pk = i.series_pk JOIN studies s ON s.pk = i.study_pk")
	}
	var where []string
	for lv := Patient; lv <= Instance; lv++ {
		cs := conds[lv]
		if len(cs) == 0 {
			continue
		}
		if lv <= q.Level || (lv == Patient) {
			where = append(where, cs...)
			continue
		}
		where = append(where, existsClause(q.Level, lv, strings.Join(cs, " AND ")))
	}
	if q.StudyFilter != nil {
		cond, args := q.StudyFilter("s", len(b.args)+1)
		b.args = append(b.args, args...)
		if q.Level == Patient {
			// A patient is found through the studies the filter lets through.
			cond = existsClause(Patient, Study, cond)
		}
		where = append(where, cond)
	}
	if len(where) > 0 {
		sql.WriteString(" WHERE ")
		sql.WriteString(strings.Join(where, " AND "))
	}
	limit := q.Limit
	if limit <= 0 || limit > ix.MaxResults {
		limit = ix.MaxResults
	}
	fmt.Fprintf(&sql, " ORDER BY %s.pk LIMIT %d OFFSET %d", alias(q.Level, q.Level), limit+1, max(q.Offset, 0))

	rows, err := ix.pool.Query(ctx, sql.String(), b.args...)
	if err != nil {
		return Result{}, fmt.Errorf("index: find %s: %w", q.Level, err)
	}
	defer rows.Close()
	vals := make([]*string, len(ret))
	dest := make([]any, len(ret))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if len(res.Matches) == limit {
			res.Truncated = true
			break
		}
		if err := rows.Scan(dest...); err != nil {
			return Result{}, fmt.Errorf("index: find %s: %w", q.Level, err)
		}
		ds := &dicom.Dataset{}
		nonASCII := false
		for i, a := range ret {
			v := ""
			if vals[i] != nil {
				v = *vals[i]
			}
			ds.Set(element(a, v))
			nonASCII = nonASCII || !isASCII(v)
		}
		if nonASCII {
			ds.Set(dicom.NewStrings(tag.SpecificCharacterSet, dicom.CS, "ISO_IR 192"))
		}
		res.Matches = append(res.Matches, ds)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Result{}, fmt.Errorf("index: find %s: %w", q.Level, err)
	}
	return res, nil
}

// existsClause restricts the rows of level q to those with a child at
// level lv satisfying cond.
func existsClause(q, lv Level, cond string) string {
	switch {
	case q == Patient: // lv == Study
		return "EXISTS (SELECT 1 FROM studies s WHERE s.patient_pk = p.pk AND " + cond + ")"
	case q == Study && lv == Series:
		return "EXISTS (SELECT 1 FROM series se WHERE se.study_pk = s.pk AND " + cond + ")"
	case q == Study && lv == Instance:
		return "EXISTS (SELECT 1 FROM instances i WHERE i.study_pk = s.pk AND " + cond + ")"
	default: // Series, Instance
		return "EXISTS (SELECT 1 FROM instances i WHERE i.series_pk = se.pk AND " + cond + ")"
	}
}

func element(a *attr, v string) dicom.Element {
	if v == "" {
		return dicom.Element{Tag: a.tag, VR: a.vr}
	}
	if a.vr == dicom.US {
		if n, err := strconv.ParseUint(v, 10, 16); err == nil {
			return dicom.NewUint16s(a.tag, uint16(n))
		}
	}
	return dicom.NewStrings(a.tag, a.vr, v)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// cond returns the SQL condition for values of a, "" for universal
// matching.
func (b *sqlBuilder) cond(a *attr, q Level, values []string, fuzzy bool) (string, error) {
	col := alias(a.level, q) + "." + a.col
	typed := alias(a.level, q) + "." + a.typed
	var ors []string
	var list []string // UIDs or modalities: one ANY/&& condition
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" || strings.Trim(v, "*") == "" {
			return "", nil // universal matching: any value matches
		}
		switch a.kind {
		case kUID:
			for u := range strings.SplitSeq(v, `\`) {
				if u = strings.TrimSpace(u); u != "" {
					list = append(list, u)
				}
			}
		case kModalities:
			list = append(list, v)
		case kString:
			if hasWildcard(v) {
				p, _ := likePattern(v)
				ors = append(ors, col+" LIKE "+b.arg(p))
			} else {
				ors = append(ors, col+" = "+b.arg(v))
			}
		case kPN:
			ors = append(ors, b.pnCond(a, typed, v, fuzzy))
		case kDate, kTime:
			parse, cast := parseDA, "::date"
			if a.kind == kTime {
				parse, cast = parseTM, "::time"
			}
			r, err := parseRange(v, parse)
			if err != nil {
				return "", err
			}
			switch {
			case r.lo != "" && r.hi != "":
				ors = append(ors, typed+" BETWEEN "+b.arg(r.lo)+cast+" AND "+b.arg(r.hi)+cast)
			case r.lo != "":
				ors = append(ors, typed+" >= "+b.arg(r.lo)+cast)
			default:
				ors = append(ors, typed+" <= "+b.arg(r.hi)+cast)
			}
		case kInt:
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return "", errors.New("want an integer")
			}
			ors = append(ors, col+" = "+b.arg(int32(n)))
		}
	}
	switch a.kind {
	case kUID:
		if len(list) == 1 {
			return col + " = " + b.arg(list[0]), nil
		}
		return col + " = ANY(" + b.arg(list) + "::text[])", nil
	case kModalities:
		return col + " && " + b.arg(list) + "::text[]", nil
	}
	if len(ors) == 1 {
		return ors[0], nil
	}
	return "(" + strings.Join(ors, " OR ") + ")", nil
}

// pnCond matches a person name case-insensitively: exactly, by wildcard,
// or (fuzzy) each query word as the prefix of some name component, in any
// of its component groups (alphabetic, ideographic, phonetic).
func (b *sqlBuilder) pnCond(a *attr, typed, v string, fuzzy bool) string {
	groups := []string{typed + "_norm", typed + "_ideo", typed + "_phon"}
	if !fuzzy {
		qv := pnQueryNorm(v)
		var ors []string
		for _, g := range groups {
			if !hasWildcard(qv) {
				ors = append(ors, g+" = "+b.arg(qv))
			} else {
				ors = append(ors, b.likeWithPrefix(g, qv))
			}
		}
		return "(" + strings.Join(ors, " OR ") + ")"
	}
	var words []string
	for w := range strings.FieldsFuncSeq(strings.ToUpper(v), func(r rune) bool { return r == '^' || r == ' ' || r == '=' || r == ',' }) {
		if w = strings.TrimRight(w, "*"); w != "" {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		return "TRUE"
	}
	var ands []string
	for _, w := range words {
		var ors []string
		p, _ := likePattern(w)
		for i, g := range groups {
			if i == 0 && a.tag == tag.PatientName {
				for _, c := range []string{"_family", "_given", "_middle"} {
					ors = append(ors, b.likeWithPrefix(typed+c, w+"*"))
				}
				continue
			}
			// No component columns: match component starts.
			ors = append(ors, g+" LIKE "+b.arg(p+"%"), g+" LIKE "+b.arg("%^"+p+"%"), g+" LIKE "+b.arg("% "+p+"%"))
		}
		ands = append(ands, "("+strings.Join(ors, " OR ")+")")
	}
	return "(" + strings.Join(ands, " AND ") + ")"
}

// likeWithPrefix is col LIKE pattern(v), with the literal prefix also
// given as a text_pattern_ops range so that the index serves it even
// under a generic plan.
func (b *sqlBuilder) likeWithPrefix(col, v string) string {
	p, prefix := likePattern(v)
	c := col + " LIKE " + b.arg(p)
	if hi := prefixUpper(prefix); hi != "" {
		c = "(" + col + " ~>=~ " + b.arg(prefix) + " AND " + col + " ~<~ " + b.arg(hi) + " AND " + c + ")"
	}
	return c
}
