package dimse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// DirIndex serves C-FIND, C-MOVE and C-GET over a directory tree of
// Part-10 files. It re-reads the headers of new or changed files on every
// request, so instances a DirStore writes into the same directory are
// found at once. It suits tests and small archives; the gateway's index
// lives in Postgres.
type DirIndex struct {
	Dir string

	mu      sync.Mutex
	entries map[string]*indexEntry // by path
}

// NewDirIndex returns an index over dir.
func NewDirIndex(dir string) *DirIndex {
	return &DirIndex{Dir: dir, entries: map[string]*indexEntry{}}
}

type indexEntry struct {
	path          string
	mod           time.Time
	size          int64
	ts            dicom.TransferSyntax
	header        *dicom.Dataset // top-level elements before Pixel Data
	datasetOffset int64
	class, inst   string
}

// refresh rescans the directory and returns the entries sorted by path.
func (x *DirIndex) refresh() ([]*indexEntry, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := map[string]bool{}
	err := filepath.WalkDir(x.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // vanished meanwhile
		}
		seen[path] = true
		if e := x.entries[path]; e != nil && e.mod.Equal(info.ModTime()) && e.size == info.Size() {
			return nil
		}
		e, err := readIndexEntry(path, info)
		if err != nil {
			delete(x.entries, path) // not DICOM, or broken: not indexed
			return nil
		}
		x.entries[path] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dimse: scanning %s: %w", x.Dir, err)
	}
	out := make([]*indexEntry, 0, len(seen))
	for p, e := range x.entries {
		if !seen[p] {
			delete(x.entries, p)
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

func readIndexEntry(path string, info fs.FileInfo) (*indexEntry, error) {
	f, err := readFileHeader(path)
	if err != nil {
		return nil, err
	}
	class, inst := f.Dataset.String(dicom.TagSOPClassUID), f.Dataset.String(dicom.TagSOPInstanceUID)
	if class == "" || inst == "" || f.Meta.Len() == 0 {
		return nil, fmt.Errorf("dimse: %s: not a Part-10 file with SOP class and instance UIDs", path)
	}
	return &indexEntry{
		path: path, mod: info.ModTime(), size: info.Size(),
		ts: f.TransferSyntax, header: &f.Dataset, datasetOffset: f.DatasetOffset,
		class: class, inst: inst,
	}, nil
}

// Query/Retrieve levels and their unique keys (PS3.4 C.6).
var levelKeys = map[string]dicom.Tag{
	"PATIENT": tag.PatientID,
	"STUDY":   tag.StudyInstanceUID,
	"SERIES":  tag.SeriesInstanceUID,
	"IMAGE":   tag.SOPInstanceUID,
}

var levelOrder = []string{"PATIENT", "STUDY", "SERIES", "IMAGE"}

func levelIndex(l string) int {
	for i, x := range levelOrder {
		if x == l {
			return i
		}
	}
	return -1
}

func isPatientRoot(model string) bool {
	switch model {
	case dicom.PatientRootQueryRetrieveFind, dicom.PatientRootQueryRetrieveMove, dicom.PatientRootQueryRetrieveGet:
		return true
	}
	return false
}

// checkLevel validates the Query/Retrieve Level against the model.
func checkLevel(model, level string) *Status {
	li := levelIndex(level)
	if li < 0 || (li == 0 && !isPatientRoot(model)) {
		return &Status{Code: StatusDataSetDoesNotMatchSOPClass, ErrorComment: "invalid Query/Retrieve Level " + level, OffendingElements: []dicom.Tag{tag.QueryRetrieveLevel}}
	}
	return nil
}

// Attributes computed per group rather than read from an instance.
var computedKeys = map[dicom.Tag]bool{
	tag.NumberOfPatientRelatedStudies:   true,
	tag.NumberOfPatientRelatedSeries:    true,
	tag.NumberOfPatientRelatedInstances: true,
	tag.NumberOfStudyRelatedSeries:      true,
	tag.NumberOfStudyRelatedInstances:   true,
	tag.NumberOfSeriesRelatedInstances:  true,
	tag.ModalitiesInStudy:               true,
	tag.SOPClassesInStudy:               true,
}

// Find implements FindHandler.
func (x *DirIndex) Find(ctx context.Context, req FindRequest, emit func(*dicom.Dataset) error) Status {
	if st := checkLevel(req.SOPClassUID, req.Level); st != nil {
		return *st
	}
	entries, err := x.refresh()
	if err != nil {
		return Status{Code: StatusOutOfResourcesMatches, ErrorComment: "index unavailable"}
	}
	groups := groupMatches(entries, req.Identifier, req.Level)
	for _, g := range groups {
		if ctx.Err() != nil {
			return Status{Code: StatusCancel}
		}
		if err := emit(g.response(req.Identifier, req.Level)); err != nil {
			return Status{Code: StatusCancel}
		}
	}
	return Success
}

// group is the set of matching instances sharing the unique key of the
// query level.
type group struct {
	entries []*indexEntry
}

func groupMatches(entries []*indexEntry, ident *dicom.Dataset, level string) []*group {
	key := levelKeys[level]
	var order []string
	byKey := map[string]*group{}
	// Counts (Number of ... Related ...) cover every instance of the group,
	// so group first, then match on the group's representative plus the
	// set-valued keys.
	for _, e := range entries {
		k := e.header.String(key)
		g := byKey[k]
		if g == nil {
			g = &group{}
			byKey[k] = g
			order = append(order, k)
		}
		g.entries = append(g.entries, e)
	}
	var out []*group
	for _, k := range order {
		g := byKey[k]
		// A group matches if some instance of it matches every key: keys
		// below the level (e.g. Modality at STUDY level) vary inside it.
		var matching []*indexEntry
		for _, e := range g.entries {
			if matchesIdentifier(e.header, ident, level, g) {
				matching = append(matching, e)
			}
		}
		if len(matching) > 0 {
			// Keep all entries for counts but put a matching one first.
			out = append(out, &group{entries: append(matching[:1:1], g.entries...)})
		}
	}
	return out
}

// skipKeys are never matched.
var skipKeys = map[dicom.Tag]bool{
	tag.QueryRetrieveLevel:    true,
	tag.SpecificCharacterSet:  true,
	tag.TimezoneOffsetFromUTC: true,
}

func matchesIdentifier(hdr, ident *dicom.Dataset, level string, g *group) bool {
	for i := range ident.Elements {
		k := &ident.Elements[i]
		if skipKeys[k.Tag] || k.Tag.IsGroupLength() || k.VR == dicom.SQ || len(k.Value) == 0 {
			continue // universal matching, or not supported as a matching key
		}
		if k.Tag == tag.ModalitiesInStudy {
			if !g.anyModality(k.Strings()) {
				return false
			}
			continue
		}
		if computedKeys[k.Tag] {
			continue
		}
		if !matchValue(k, hdr.Get(k.Tag)) {
			return false
		}
	}
	return true
}

func (g *group) anyModality(want []string) bool {
	for _, e := range g.entries {
		m := e.header.String(tag.Modality)
		for _, w := range want {
			if wildcardMatch(w, m, false) {
				return true
			}
		}
	}
	return false
}

// matchValue applies PS3.4 C.2.2.2 matching of key k against attribute a.
func matchValue(k, a *dicom.Element) bool {
	if a == nil {
		return false
	}
	have := a.Strings()
	if len(have) == 0 {
		return false
	}
	switch k.VR {
	case dicom.UI:
		// List of UID matching.
		for _, w := range k.Strings() {
			for _, h := range have {
				if w == h {
					return true
				}
			}
		}
		return false
	case dicom.DA, dicom.TM, dicom.DT:
		w := k.String()
		for _, h := range have {
			if rangeMatch(w, h, k.VR) {
				return true
			}
		}
		return false
	}
	if !k.VR.IsString() {
		return bytes.Equal(k.Value, a.Value)
	}
	fold := k.VR == dicom.PN
	wants := k.Strings()
	if k.VR.IsText() {
		wants = []string{k.String()}
	}
	for _, w := range wants {
		for _, h := range have {
			if wildcardMatch(w, h, fold) {
				return true
			}
		}
	}
	return false
}

// rangeMatch matches a DA/TM/DT value against a single value or a range
// "a-b", "-b", "a-".
func rangeMatch(w, h string, vr dicom.VR) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		if vr == dicom.TM {
			s = strings.ReplaceAll(s, ":", "")
		}
		return s
	}
	h = norm(h)
	// The first '-' separates a range: a DT key with a negative UTC
	// offset is not supported.
	lo, hi, isRange := strings.Cut(w, "-")
	if !isRange {
		w = norm(w)
		return h == w || (vr == dicom.TM && strings.HasPrefix(h, w))
	}
	lo, hi = norm(lo), norm(hi)
	if lo != "" && cmpPrefix(h, lo) < 0 {
		return false
	}
	if hi != "" && cmpPrefix(h, hi) > 0 {
		return false
	}
	return true
}

// cmpPrefix compares h with bound b on b's precision (a time bound "10"
// covers 10:00:00-10:59:59).
func cmpPrefix(h, b string) int {
	if len(h) > len(b) {
		h = h[:len(b)]
	}
	return strings.Compare(h, b)
}

// wildcardMatch matches value h against pattern w with * and ?.
func wildcardMatch(w, h string, fold bool) bool {
	if fold {
		w, h = strings.ToUpper(w), strings.ToUpper(h)
	}
	if !strings.ContainsAny(w, "*?") {
		return w == h
	}
	// Iterative glob with backtracking over the last star.
	pw, ph, star, mark := 0, 0, -1, 0
	for ph < len(h) {
		switch {
		case pw < len(w) && (w[pw] == '?' || w[pw] == h[ph]):
			pw++
			ph++
		case pw < len(w) && w[pw] == '*':
			star, mark = pw, ph
			pw++
		case star >= 0:
			pw = star + 1
			mark++
			ph = mark
		default:
			return false
		}
	}
	for pw < len(w) && w[pw] == '*' {
		pw++
	}
	return pw == len(w)
}

// response builds the C-FIND response identifier for a group: every key
// asked for, with the group's values.
func (g *group) response(ident *dicom.Dataset, level string) *dicom.Dataset {
	rep := g.entries[0].header
	all := g.entries[1:]
	out := &dicom.Dataset{}
	if cs := rep.Get(tag.SpecificCharacterSet); cs != nil {
		out.Set(*cs)
	}
	out.Set(dicom.NewStrings(tag.QueryRetrieveLevel, dicom.CS, level))
	for i := range ident.Elements {
		k := ident.Elements[i]
		if skipKeys[k.Tag] || k.Tag.IsGroupLength() {
			continue
		}
		if computedKeys[k.Tag] {
			out.Set(computed(k.Tag, all))
			continue
		}
		if a := rep.Get(k.Tag); a != nil {
			out.Set(*a)
		} else {
			out.Set(dicom.Element{Tag: k.Tag, VR: k.VR})
		}
	}
	if a := rep.Get(levelKeys[level]); a != nil {
		out.Set(*a)
	}
	return out
}

func computed(t dicom.Tag, entries []*indexEntry) dicom.Element {
	count := func(key dicom.Tag) string {
		seen := map[string]bool{}
		for _, e := range entries {
			seen[e.header.String(key)] = true
		}
		return strconv.Itoa(len(seen))
	}
	set := func(key dicom.Tag) []string {
		seen := map[string]bool{}
		var out []string
		for _, e := range entries {
			if v := e.header.String(key); v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
		sort.Strings(out)
		return out
	}
	switch t {
	case tag.NumberOfPatientRelatedStudies:
		return dicom.NewStrings(t, dicom.IS, count(tag.StudyInstanceUID))
	case tag.NumberOfPatientRelatedSeries, tag.NumberOfStudyRelatedSeries:
		return dicom.NewStrings(t, dicom.IS, count(tag.SeriesInstanceUID))
	case tag.ModalitiesInStudy:
		return dicom.NewStrings(t, dicom.CS, set(tag.Modality)...)
	case tag.SOPClassesInStudy:
		return dicom.NewStrings(t, dicom.UI, set(dicom.TagSOPClassUID)...)
	default: // Number of ... Related Instances
		return dicom.NewStrings(t, dicom.IS, strconv.Itoa(len(entries)))
	}
}

// Retrieve implements RetrieveHandler: the identifier's unique keys, at
// the level and above, select the instances.
func (x *DirIndex) Retrieve(ctx context.Context, req RetrieveRequest) ([]Instance, Status) {
	if st := checkLevel(req.SOPClassUID, req.Level); st != nil {
		return nil, *st
	}
	li := levelIndex(req.Level)
	if !isPatientRoot(req.SOPClassUID) && li == 0 {
		return nil, Status{Code: StatusDataSetDoesNotMatchSOPClass}
	}
	key := req.Identifier.Get(levelKeys[req.Level])
	if key == nil || len(key.Strings()) == 0 || key.String() == "" {
		return nil, Status{Code: StatusDataSetDoesNotMatchSOPClass, ErrorComment: "no unique key for level " + req.Level, OffendingElements: []dicom.Tag{levelKeys[req.Level]}}
	}
	entries, err := x.refresh()
	if err != nil {
		return nil, Status{Code: StatusOutOfResources, ErrorComment: "index unavailable"}
	}
	var out []Instance
	for _, e := range entries {
		ok := true
		for l := 0; l <= li && ok; l++ {
			k := req.Identifier.Get(levelKeys[levelOrder[l]])
			if k == nil || len(k.Value) == 0 {
				continue
			}
			want := k.Strings()
			ok = contains(want, e.header.String(levelKeys[levelOrder[l]]))
		}
		if ok {
			out = append(out, e.instance())
		}
	}
	return out, Success
}

func (e *indexEntry) instance() Instance {
	path, off := e.path, e.datasetOffset
	return Instance{
		SOPClassUID:    e.class,
		SOPInstanceUID: e.inst,
		TransferSyntax: e.ts,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		},
	}
}
