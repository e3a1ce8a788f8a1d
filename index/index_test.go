package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// ds builds a data set from keyword → value.
func ds(t testing.TB, kv map[string]string) *dicom.Dataset {
	t.Helper()
	d := &dicom.Dataset{}
	for k, v := range kv {
		e, ok := dicom.LookupKeyword(k)
		if !ok {
			t.Fatalf("unknown keyword %s", k)
		}
		vr := e.VR
		if vr == dicom.US {
			var n uint16
			fmt.Sscan(v, &n)
			d.Set(dicom.NewUint16s(e.Tag, n))
			continue
		}
		d.Set(dicom.NewStrings(e.Tag, vr, v))
	}
	return d
}

type inst struct {
	study, series, sop string
	attrs              map[string]string
}

// fixture: four studies of four patients.
var fixture = []inst{
	{"1.1", "1.1.1", "1.1.1.1", map[string]string{"PatientName": "Doe^John", "PatientID": "P1", "PatientBirthDate": "19700101", "PatientSex": "M",
		"StudyDate": "20200115", "StudyTime": "101500", "AccessionNumber": "ACC1", "ReferringPhysicianName": "Smith^Anna", "StudyID": "S1",
		"StudyDescription": "CT HEAD", "Modality": "CT", "SeriesNumber": "1", "InstanceNumber": "1", "Rows": "512", "Columns": "512", "BitsAllocated": "16"}},
	{"1.1", "1.1.1", "1.1.1.2", map[string]string{"PatientName": "Doe^John", "PatientID": "P1", "StudyDate": "20200115", "StudyTime": "101500",
		"Modality": "CT", "SeriesNumber": "1", "InstanceNumber": "2", "Rows": "512", "Columns": "512", "BitsAllocated": "16"}},
	{"1.1", "1.1.2", "1.1.2.1", map[string]string{"PatientName": "Doe^John", "PatientID": "P1", "StudyDate": "20200115",
		"Modality": "SR", "SeriesNumber": "2", "InstanceNumber": "1", "SeriesDescription": "Report"}},
	{"1.2", "1.2.1", "1.2.1.1", map[string]string{"PatientName": "DOE^JANE^^^", "PatientID": "P2", "PatientBirthDate": "19800202", "PatientSex": "F",
		"StudyDate": "20201231", "StudyTime": "2330", "AccessionNumber": "ACC2", "StudyDescription": "MR KNEE", "Modality": "MR",
		"SeriesNumber": "1", "InstanceNumber": "1", "NumberOfFrames": "3", "PerformedProcedureStepStartDate": "20201231"}},
	{"1.3", "1.3.1", "1.3.1.1", map[string]string{"PatientName": "Müller^Hans", "PatientID": "P3", "StudyDate": "20210601",
		"AccessionNumber": "ACC3", "StudyDescription": "100% a_b", "Modality": "CT", "SeriesNumber": "1", "InstanceNumber": "1",
		"SpecificCharacterSet": "ISO_IR 192"}},
	{"1.4", "1.4.1", "1.4.1.1", map[string]string{"PatientName": "O'Brien^Pat^Q", "PatientID": "X9", "StudyDate": "20220301",
		"AccessionNumber": "ACC4", "StudyDescription": "100x axb", "Modality": "US", "SeriesNumber": "7", "InstanceNumber": "3"}},
}

func record(t testing.TB, in inst) *Record {
	kv := map[string]string{"StudyInstanceUID": in.study, "SeriesInstanceUID": in.series, "SOPInstanceUID": in.sop,
		"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}
	for k, v := range in.attrs {
		kv[k] = v
	}
	return &Record{
		Dataset: ds(t, kv), TransferSyntaxUID: dicom.ExplicitVRLittleEndian, OrgID: "org1",
		BlobKey: "i/" + in.sop, BlobSize: 100, Size: 80, CiphertextSHA256: []byte{1},
		Metadata: []byte(`{"00080018":{"vr":"UI","Value":["` + in.sop + `"]},"7FE00010":{"vr":"OW","BulkDataURI":"` + BaseURIPlaceholder + `/studies/` + in.study + `"}}`),
		Frames:   Frames{PixelOffset: 1000, FrameLength: 512 * 512 * 2},
		Bulk:     map[string]Span{"7FE00010": {1000, 3 * 512 * 512 * 2}, "00540016/0/00181072": {500, 2048}},
	}
}

func insert(t testing.TB, ix *Index, r *Record) error {
	return pgx.BeginFunc(context.Background(), ix.pool, func(tx pgx.Tx) error { return ix.Insert(context.Background(), tx, r) })
}

func newFixture(t *testing.T) *Index {
	ix := New(dbtest.New(t))
	for _, in := range fixture {
		if err := insert(t, ix, record(t, in)); err != nil {
			t.Fatalf("insert %s: %v", in.sop, err)
		}
	}
	return ix
}

// uids returns the values of key in each match.
func uids(res Result, key dicom.Tag) []string {
	var out []string
	for _, m := range res.Matches {
		out = append(out, m.String(key))
	}
	slices.Sort(out)
	return out
}

func TestFind(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	f := func(k dicom.Tag, v ...string) map[dicom.Tag][]string { return map[dicom.Tag][]string{k: v} }
	tests := []struct {
		name    string
		q       Query
		key     dicom.Tag
		want    []string
		wantErr bool
	}{
		{"patient id exact", Query{Level: Study, Filters: f(tag.PatientID, "P1")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"patient id wildcard *", Query{Level: Study, Filters: f(tag.PatientID, "P*")}, tag.StudyInstanceUID, []string{"1.1", "1.2", "1.3"}, false},
		{"patient id wildcard ?", Query{Level: Study, Filters: f(tag.PatientID, "?9")}, tag.StudyInstanceUID, []string{"1.4"}, false},
		{"patient id is case-sensitive", Query{Level: Study, Filters: f(tag.PatientID, "p1")}, tag.StudyInstanceUID, nil, false},
		{"universal matching", Query{Level: Study, Filters: f(tag.PatientID, "")}, tag.StudyInstanceUID, []string{"1.1", "1.2", "1.3", "1.4"}, false},
		{"universal star", Query{Level: Study, Filters: f(tag.PatientName, "*")}, tag.StudyInstanceUID, []string{"1.1", "1.2", "1.3", "1.4"}, false},
		{"pn case-insensitive", Query{Level: Study, Filters: f(tag.PatientName, "doe^john")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"pn trailing carets", Query{Level: Study, Filters: f(tag.PatientName, "Doe^Jane")}, tag.StudyInstanceUID, []string{"1.2"}, false},
		{"pn query trailing carets", Query{Level: Study, Filters: f(tag.PatientName, "DOE^JOHN^^")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"pn prefix", Query{Level: Study, Filters: f(tag.PatientName, "DOE*")}, tag.StudyInstanceUID, []string{"1.1", "1.2"}, false},
		{"pn prefix given", Query{Level: Study, Filters: f(tag.PatientName, "doe^ja*")}, tag.StudyInstanceUID, []string{"1.2"}, false},
		{"pn unicode", Query{Level: Study, Filters: f(tag.PatientName, "müller^hans")}, tag.StudyInstanceUID, []string{"1.3"}, false},
		{"pn apostrophe", Query{Level: Study, Filters: f(tag.PatientName, "o'brien*")}, tag.StudyInstanceUID, []string{"1.4"}, false},
		{"pn not fuzzy: given alone", Query{Level: Study, Filters: f(tag.PatientName, "john")}, tag.StudyInstanceUID, nil, false},
		{"pn fuzzy given", Query{Level: Study, Filters: f(tag.PatientName, "john"), FuzzyMatching: true}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"pn fuzzy prefix", Query{Level: Study, Filters: f(tag.PatientName, "jo"), FuzzyMatching: true}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"pn fuzzy two words", Query{Level: Study, Filters: f(tag.PatientName, "ja do"), FuzzyMatching: true}, tag.StudyInstanceUID, []string{"1.2"}, false},
		{"pn fuzzy middle", Query{Level: Study, Filters: f(tag.PatientName, "q"), FuzzyMatching: true}, tag.StudyInstanceUID, []string{"1.4"}, false},
		{"referring fuzzy", Query{Level: Study, Filters: f(tag.ReferringPhysicianName, "ann"), FuzzyMatching: true}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"referring exact", Query{Level: Study, Filters: f(tag.ReferringPhysicianName, "SMITH^ANNA")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"date exact", Query{Level: Study, Filters: f(tag.StudyDate, "20200115")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"date range", Query{Level: Study, Filters: f(tag.StudyDate, "20200101-20201231")}, tag.StudyInstanceUID, []string{"1.1", "1.2"}, false},
		{"date open start", Query{Level: Study, Filters: f(tag.StudyDate, "-20200630")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"date open end", Query{Level: Study, Filters: f(tag.StudyDate, "20210101-")}, tag.StudyInstanceUID, []string{"1.3", "1.4"}, false},
		{"date year", Query{Level: Study, Filters: f(tag.StudyDate, "2020")}, tag.StudyInstanceUID, []string{"1.1", "1.2"}, false},
		{"date year open end", Query{Level: Study, Filters: f(tag.StudyDate, "2021-")}, tag.StudyInstanceUID, []string{"1.3", "1.4"}, false},
		{"date year open start", Query{Level: Study, Filters: f(tag.StudyDate, "-2020")}, tag.StudyInstanceUID, []string{"1.1", "1.2"}, false},
		{"date list", Query{Level: Study, Filters: f(tag.StudyDate, "20200115", "20220301")}, tag.StudyInstanceUID, []string{"1.1", "1.4"}, false},
		{"date malformed", Query{Level: Study, Filters: f(tag.StudyDate, "2020x")}, 0, nil, true},
		{"date bad day", Query{Level: Study, Filters: f(tag.StudyDate, "20210230")}, 0, nil, true},
		{"time range", Query{Level: Study, Filters: f(tag.StudyTime, "1000-1100")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"time partial upper", Query{Level: Study, Filters: f(tag.StudyTime, "-10")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"time single partial", Query{Level: Study, Filters: f(tag.StudyTime, "23")}, tag.StudyInstanceUID, []string{"1.2"}, false},
		{"birth date", Query{Level: Study, Filters: f(tag.PatientBirthDate, "19750101-")}, tag.StudyInstanceUID, []string{"1.2"}, false},
		{"modalities in study", Query{Level: Study, Filters: f(tag.ModalitiesInStudy, "SR")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"modalities list", Query{Level: Study, Filters: f(tag.ModalitiesInStudy, "MR", "SR")}, tag.StudyInstanceUID, []string{"1.1", "1.2"}, false},
		{"uid list", Query{Level: Study, Filters: f(tag.StudyInstanceUID, `1.1\1.3`)}, tag.StudyInstanceUID, []string{"1.1", "1.3"}, false},
		{"uid list values", Query{Level: Study, Filters: f(tag.StudyInstanceUID, "1.2", "1.4")}, tag.StudyInstanceUID, []string{"1.2", "1.4"}, false},
		{"uid no wildcard", Query{Level: Study, Filters: f(tag.StudyInstanceUID, "1.?")}, tag.StudyInstanceUID, nil, false},
		{"accession", Query{Level: Study, Filters: f(tag.AccessionNumber, "ACC2")}, tag.StudyInstanceUID, []string{"1.2"}, false},
		{"like escaping %", Query{Level: Study, Filters: f(tag.StudyDescription, "100%*")}, tag.StudyInstanceUID, []string{"1.3"}, false},
		{"like escaping _", Query{Level: Study, Filters: f(tag.StudyDescription, "*a_b")}, tag.StudyInstanceUID, []string{"1.3"}, false},
		{"combined", Query{Level: Study, Filters: map[dicom.Tag][]string{tag.PatientName: {"DOE*"}, tag.StudyDate: {"20201201-"}}}, tag.StudyInstanceUID, []string{"1.2"}, false},
		{"series key at study level", Query{Level: Study, Filters: f(tag.Modality, "MR")}, tag.StudyInstanceUID, []string{"1.2"}, false},
		{"instance key at study level", Query{Level: Study, Filters: f(tag.SOPInstanceUID, "1.1.2.1")}, tag.StudyInstanceUID, []string{"1.1"}, false},
		{"study key at patient level", Query{Level: Patient, Filters: f(tag.StudyDate, "2020")}, tag.PatientID, []string{"P1", "P2"}, false},
		{"patient level name", Query{Level: Patient, Filters: f(tag.PatientName, "DOE*")}, tag.PatientID, []string{"P1", "P2"}, false},
		{"series in study", Query{Level: Series, Filters: f(tag.StudyInstanceUID, "1.1")}, tag.SeriesInstanceUID, []string{"1.1.1", "1.1.2"}, false},
		{"series modality", Query{Level: Series, Filters: f(tag.Modality, "CT")}, tag.SeriesInstanceUID, []string{"1.1.1", "1.3.1"}, false},
		{"series number", Query{Level: Series, Filters: f(tag.SeriesNumber, "7")}, tag.SeriesInstanceUID, []string{"1.4.1"}, false},
		{"series number malformed", Query{Level: Series, Filters: f(tag.SeriesNumber, "x")}, 0, nil, true},
		{"series pps date", Query{Level: Series, Filters: f(tag.PerformedProcedureStepStartDate, "20201231")}, tag.SeriesInstanceUID, []string{"1.2.1"}, false},
		{"series by patient", Query{Level: Series, Filters: f(tag.PatientID, "P1")}, tag.SeriesInstanceUID, []string{"1.1.1", "1.1.2"}, false},
		{"instances of series", Query{Level: Instance, Filters: f(tag.SeriesInstanceUID, "1.1.1")}, tag.SOPInstanceUID, []string{"1.1.1.1", "1.1.1.2"}, false},
		{"instance number", Query{Level: Instance, Filters: map[dicom.Tag][]string{tag.StudyInstanceUID: {"1.1"}, tag.InstanceNumber: {"1"}}}, tag.SOPInstanceUID, []string{"1.1.1.1", "1.1.2.1"}, false},
		{"instance rows", Query{Level: Instance, Filters: f(tag.Rows, "512")}, tag.SOPInstanceUID, []string{"1.1.1.1", "1.1.1.2"}, false},
		{"instance sop class", Query{Level: Instance, Filters: f(tag.SOPClassUID, "1.2.840.10008.5.1.4.1.1.2")}, tag.SOPInstanceUID, []string{"1.1.1.1", "1.1.1.2", "1.1.2.1", "1.2.1.1", "1.3.1.1", "1.4.1.1"}, false},
		{"instance transfer syntax", Query{Level: Instance, Filters: f(tag.AvailableTransferSyntaxUID, dicom.ImplicitVRLittleEndian)}, tag.SOPInstanceUID, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ix.Find(ctx, tc.q)
			if tc.wantErr {
				var qe *QueryError
				if !errors.As(err, &qe) {
					t.Fatalf("err = %v, want a QueryError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(res, tc.key); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if len(res.Unsupported) != 0 || res.Truncated {
				t.Errorf("unsupported %v truncated %v", res.Unsupported, res.Truncated)
			}
		})
	}
}

func TestFindReturnedAttributes(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	res, err := ix.Find(ctx, Query{Level: Study, Filters: map[dicom.Tag][]string{tag.StudyInstanceUID: {"1.1"}, tag.PatientAge: {"040Y"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matches) != 1 {
		t.Fatalf("%d matches", len(res.Matches))
	}
	if !slices.Equal(res.Unsupported, []dicom.Tag{tag.PatientAge}) {
		t.Errorf("unsupported = %v", res.Unsupported)
	}
	m := res.Matches[0]
	want := map[dicom.Tag]string{
		tag.PatientName: "Doe^John", tag.PatientID: "P1", tag.PatientBirthDate: "19700101", tag.PatientSex: "M",
		tag.StudyDate: "20200115", tag.StudyTime: "101500", tag.AccessionNumber: "ACC1", tag.ReferringPhysicianName: "Smith^Anna",
		tag.StudyID: "S1", tag.StudyDescription: "CT HEAD", tag.NumberOfStudyRelatedSeries: "2", tag.NumberOfStudyRelatedInstances: "3",
	}
	for k, v := range want {
		if got := m.String(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got := strings.Join(m.Get(tag.ModalitiesInStudy).Strings(), `\`); got != `CT\SR` {
		t.Errorf("ModalitiesInStudy = %q", got)
	}
	if m.Get(tag.PatientAge) != nil {
		t.Error("unsupported key returned")
	}

	// Instance level: US attributes as US, parents' UIDs present.
	res, err = ix.Find(ctx, Query{Level: Instance, Filters: map[dicom.Tag][]string{tag.SOPInstanceUID: {"1.1.1.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	m = res.Matches[0]
	if r, _ := m.Uint(tag.Rows); r != 512 || m.Get(tag.Rows).VR != dicom.US {
		t.Errorf("Rows = %d (%s)", r, m.Get(tag.Rows).VR)
	}
	if m.String(tag.StudyInstanceUID) != "1.1" || m.String(tag.SeriesInstanceUID) != "1.1.1" || m.String(tag.AvailableTransferSyntaxUID) != dicom.ExplicitVRLittleEndian {
		t.Errorf("instance match: %+v", m.Elements)
	}
	if e := m.Get(tag.NumberOfFrames); e == nil || len(e.Value) != 0 {
		t.Errorf("NumberOfFrames should be present and empty: %+v", e)
	}

	// OnlyRequested (C-FIND): filter keys, include fields and unique keys only.
	res, err = ix.Find(ctx, Query{Level: Series, Filters: map[dicom.Tag][]string{tag.Modality: {"SR"}}, IncludeFields: []dicom.Tag{tag.SeriesDescription}, OnlyRequested: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []dicom.Tag
	for _, e := range res.Matches[0].Elements {
		got = append(got, e.Tag)
	}
	if want := []dicom.Tag{tag.Modality, tag.SeriesDescription, tag.StudyInstanceUID, tag.SeriesInstanceUID}; !slices.Equal(got, want) {
		t.Errorf("returned %v, want %v", got, want)
	}

	// Non-ASCII values announce UTF-8.
	res, err = ix.Find(ctx, Query{Level: Study, Filters: map[dicom.Tag][]string{tag.PatientID: {"P3"}}})
	if err != nil {
		t.Fatal(err)
	}
	if cs := res.Matches[0].String(tag.SpecificCharacterSet); cs != "ISO_IR 192" {
		t.Errorf("SpecificCharacterSet = %q", cs)
	}

	// Patient level counts studies.
	res, err = ix.Find(ctx, Query{Level: Patient, Filters: map[dicom.Tag][]string{tag.PatientID: {"P1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Matches[0].String(tag.NumberOfPatientRelatedStudies); n != "1" {
		t.Errorf("NumberOfPatientRelatedStudies = %q", n)
	}
}

func TestFindLimit(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	var all []string
	for off := 0; ; off += 3 {
		res, err := ix.Find(ctx, Query{Level: Instance, Limit: 3, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Matches {
			all = append(all, m.String(tag.SOPInstanceUID))
		}
		if !res.Truncated {
			break
		}
		if len(res.Matches) != 3 {
			t.Fatalf("truncated page of %d", len(res.Matches))
		}
	}
	slices.Sort(all)
	if len(all) != len(fixture) || len(slices.Compact(all)) != len(fixture) {
		t.Errorf("paged through %v", all)
	}
	ix.MaxResults = 2
	res, err := ix.Find(ctx, Query{Level: Instance, Limit: 100})
	if err != nil || len(res.Matches) != 2 || !res.Truncated {
		t.Errorf("MaxResults: %d matches, truncated %v, %v", len(res.Matches), res.Truncated, err)
	}
}

func TestFromIdentifier(t *testing.T) {
	id := ds(t, map[string]string{"QueryRetrieveLevel": "STUDY", "PatientName": "DOE*", "StudyInstanceUID": "", "StudyDate": "2020"})
	id.Set(dicom.Element{Tag: tag.ModalitiesInStudy, VR: dicom.CS})
	q, err := FromIdentifier(id)
	if err != nil {
		t.Fatal(err)
	}
	if q.Level != Study || !q.OnlyRequested || len(q.Filters) != 2 || q.Filters[tag.PatientName][0] != "DOE*" {
		t.Errorf("query = %+v", q)
	}
	if !slices.Equal(q.IncludeFields, []dicom.Tag{tag.ModalitiesInStudy, tag.StudyInstanceUID}) {
		t.Errorf("include = %v", q.IncludeFields)
	}
	ix := newFixture(t)
	res, err := ix.Find(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if got := uids(res, tag.StudyInstanceUID); !slices.Equal(got, []string{"1.1", "1.2"}) {
		t.Errorf("got %v", got)
	}
	if _, err := FromIdentifier(ds(t, map[string]string{"QueryRetrieveLevel": "FRAME"})); err == nil {
		t.Error("FRAME level accepted")
	}
}

func TestCharacterSet(t *testing.T) {
	ix := New(dbtest.New(t))
	r := record(t, inst{"4.1", "4.1.1", "4.1.1.1", map[string]string{"SpecificCharacterSet": "ISO_IR 100", "PatientID": "L1"}})
	r.Dataset.Set(dicom.Element{Tag: tag.PatientName, VR: dicom.PN, Value: []byte("M\xfcller^J\xfcrgen")})
	if err := insert(t, ix, r); err != nil {
		t.Fatal(err)
	}
	// A C-FIND identifier in Latin-1 too.
	id := ds(t, map[string]string{"QueryRetrieveLevel": "STUDY", "SpecificCharacterSet": "ISO_IR 100"})
	id.Set(dicom.Element{Tag: tag.PatientName, VR: dicom.PN, Value: []byte("m\xfcller*")})
	q, err := FromIdentifier(id)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ix.Find(context.Background(), q)
	if err != nil || len(res.Matches) != 1 {
		t.Fatalf("%d matches, %v", len(res.Matches), err)
	}
	if got := res.Matches[0].String(tag.PatientName); got != "Müller^Jürgen" {
		t.Errorf("PatientName = %q", got)
	}
}

func TestInsertErrors(t *testing.T) {
	ix := newFixture(t)
	dup := record(t, fixture[0])
	dup.BlobKey = "i/other"
	if err := insert(t, ix, dup); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate: %v", err)
	}
	moved := record(t, inst{"1.2", "1.1.1", "9.9", fixture[0].attrs})
	if err := insert(t, ix, moved); !errors.Is(err, ErrConflict) {
		t.Errorf("series in another study: %v", err)
	}
	r := record(t, inst{"1.9", "1.9.1", "1.9.1.1", nil})
	r.Dataset.Delete(tag.SOPClassUID)
	if err := insert(t, ix, r); !errors.Is(err, ErrMissingUID) {
		t.Errorf("missing SOP class: %v", err)
	}
	// Failed inserts left nothing behind.
	res, err := ix.Find(context.Background(), Query{Level: Study, Filters: map[dicom.Tag][]string{tag.StudyInstanceUID: {"1.9"}}})
	if err != nil || len(res.Matches) != 0 {
		t.Errorf("failed insert visible: %v %v", res.Matches, err)
	}
	res, err = ix.Find(context.Background(), Query{Level: Study, Filters: map[dicom.Tag][]string{tag.StudyInstanceUID: {"1.1"}}})
	if err != nil || res.Matches[0].String(tag.NumberOfStudyRelatedInstances) != "3" {
		t.Errorf("counts changed by a failed insert: %v", err)
	}
}

func TestDelete(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	del := func(sop string) (InstanceRef, error) {
		var ref InstanceRef
		err := pgx.BeginFunc(ctx, ix.pool, func(tx pgx.Tx) (err error) {
			ref, err = ix.Delete(ctx, tx, sop, "test")
			return err
		})
		return ref, err
	}
	ref, err := del("1.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if ref.BlobKey != "i/1.1.2.1" || ref.StudyInstanceUID != "1.1" {
		t.Errorf("ref = %+v", ref)
	}
	res, _ := ix.Find(ctx, Query{Level: Study, Filters: map[dicom.Tag][]string{tag.StudyInstanceUID: {"1.1"}}})
	m := res.Matches[0]
	if m.String(tag.ModalitiesInStudy) != "CT" || m.String(tag.NumberOfStudyRelatedSeries) != "1" || m.String(tag.NumberOfStudyRelatedInstances) != "2" {
		t.Errorf("after delete: modalities %q series %q instances %q", m.String(tag.ModalitiesInStudy), m.String(tag.NumberOfStudyRelatedSeries), m.String(tag.NumberOfStudyRelatedInstances))
	}
	if _, err := del("1.1.2.1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	for _, sop := range []string{"1.1.1.1", "1.1.1.2"} {
		if _, err := del(sop); err != nil {
			t.Fatal(err)
		}
	}
	res, _ = ix.Find(ctx, Query{Level: Study, Filters: map[dicom.Tag][]string{tag.StudyInstanceUID: {"1.1"}}})
	if len(res.Matches) != 0 {
		t.Error("empty study still listed")
	}
	var n int
	if err := ix.pool.QueryRow(ctx, `SELECT count(*) FROM instance_tombstones WHERE study_instance_uid = '1.1'`).Scan(&n); err != nil || n != 3 {
		t.Errorf("tombstones: %d, %v", n, err)
	}
	// The SOP instance can be stored again.
	if err := insert(t, ix, record(t, fixture[0])); err != nil {
		t.Errorf("re-insert after delete: %v", err)
	}
}

func TestConcurrentInsertSameStudy(t *testing.T) {
	ix := New(dbtest.New(t))
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			series := fmt.Sprintf("2.1.%d", k%4)
			errs <- insert(t, ix, record(t, inst{"2.1", series, fmt.Sprintf("%s.%d", series, k), map[string]string{
				"PatientID": "C1", "PatientName": "Con^Current", "Modality": []string{"CT", "MR"}[k%2]}}))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := ix.Find(context.Background(), Query{Level: Study})
	if err != nil || len(res.Matches) != 1 {
		t.Fatalf("%d studies, %v", len(res.Matches), err)
	}
	m := res.Matches[0]
	if m.String(tag.NumberOfStudyRelatedInstances) != "16" || m.String(tag.NumberOfStudyRelatedSeries) != "4" {
		t.Errorf("counts: %q instances, %q series", m.String(tag.NumberOfStudyRelatedInstances), m.String(tag.NumberOfStudyRelatedSeries))
	}
	mods := m.Get(tag.ModalitiesInStudy).Strings()
	slices.Sort(mods)
	if !slices.Equal(mods, []string{"CT", "MR"}) {
		t.Errorf("modalities %v", mods)
	}
}

func TestMetadata(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	var buf bytes.Buffer
	if err := ix.Metadata(ctx, &buf, "https://h/dicom-web", "1.1", "", ""); err != nil {
		t.Fatal(err)
	}
	var got []map[string]struct {
		VR          string
		Value       []string
		BulkDataURI string
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if len(got) != 3 || got[0]["00080018"].Value[0] != "1.1.1.1" || got[2]["00080018"].Value[0] != "1.1.2.1" {
		t.Errorf("metadata order/content: %s", buf.Bytes())
	}
	if u := got[0]["7FE00010"].BulkDataURI; u != "https://h/dicom-web/studies/1.1" {
		t.Errorf("BulkDataURI = %q", u)
	}
	buf.Reset()
	if err := ix.Metadata(ctx, &buf, "", "1.1", "1.1.1", "1.1.1.2"); err != nil || strings.Count(buf.String(), "00080018") != 1 {
		t.Errorf("one instance: %v %s", err, buf.Bytes())
	}
	buf.Reset()
	if err := ix.Metadata(ctx, &buf, "", "1.1", "1.2.1", ""); !errors.Is(err, ErrNotFound) || buf.Len() != 0 {
		t.Errorf("series of another study: %v %q", err, buf.Bytes())
	}
}

// Study and series metadata come from a per-series document that is
// built on first use, reused while the series is unchanged, and rebuilt
// (or bypassed, if rebuilt a moment ago) once instances come and go.
func TestMetadataSeriesDocument(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	sops := func(study, series string) []string {
		t.Helper()
		var buf bytes.Buffer
		if err := ix.Metadata(ctx, &buf, "https://h", study, series, ""); err != nil {
			t.Fatal(err)
		}
		var got []map[string]struct{ Value []string }
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("%v: %s", err, buf.Bytes())
		}
		var out []string
		for _, o := range got {
			out = append(out, o["00080018"].Value[0])
		}
		return out
	}
	docs := func() (n int, version int64) {
		t.Helper()
		if err := ix.pool.QueryRow(ctx, `SELECT count(*), COALESCE(max(sm.version), -1) FROM series_metadata sm
JOIN series se ON se.pk = sm.series_pk WHERE se.series_instance_uid = '1.1.1'`).Scan(&n, &version); err != nil {
			t.Fatal(err)
		}
		return n, version
	}
	if n, _ := docs(); n != 0 {
		t.Fatalf("%d documents before any request", n)
	}
	want := []string{"1.1.1.1", "1.1.1.2", "1.1.2.1"}
	if got := sops("1.1", ""); !slices.Equal(got, want) {
		t.Fatalf("study: %q, want %q", got, want)
	}
	n, v := docs()
	if n != 1 {
		t.Fatalf("%d documents for series 1.1.1 after a request", n)
	}
	// Reused: a document altered behind the index's back is what is served.
	if _, err := ix.pool.Exec(ctx, `UPDATE series_metadata SET doc = convert_to(replace(convert_from(doc, 'UTF8'), '"1.1.1.2"', '"marker"'), 'UTF8')
WHERE series_pk = (SELECT pk FROM series WHERE series_instance_uid = '1.1.1')`); err != nil {
		t.Fatal(err)
	}
	if got := sops("1.1", "1.1.1"); !slices.Equal(got, []string{"1.1.1.1", "marker"}) {
		t.Fatalf("series from its document: %q", got)
	}
	// A new instance makes the document stale; it was built a moment ago,
	// so the instances are read one by one instead, and are current.
	in := fixture[1]
	in.sop, in.attrs = "1.1.1.3", map[string]string{"PatientName": "Doe^John", "PatientID": "P1", "InstanceNumber": "3"}
	if err := insert(t, ix, record(t, in)); err != nil {
		t.Fatal(err)
	}
	if got := sops("1.1", "1.1.1"); !slices.Equal(got, []string{"1.1.1.1", "1.1.1.2", "1.1.1.3"}) {
		t.Fatalf("after an insert: %q", got)
	}
	if _, v2 := docs(); v2 != v {
		t.Fatalf("document rebuilt within rebuildEvery (version %d -> %d)", v, v2)
	}
	// Once rebuildEvery has passed, the next request rebuilds it.
	if _, err := ix.pool.Exec(ctx, `UPDATE series_metadata SET built_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	if got := sops("1.1", "1.1.1"); !slices.Equal(got, []string{"1.1.1.1", "1.1.1.2", "1.1.1.3"}) {
		t.Fatalf("rebuilt: %q", got)
	}
	if _, v2 := docs(); v2 <= v {
		t.Fatalf("document not rebuilt (version %d -> %d)", v, v2)
	}
	// A delete makes it stale too.
	if _, err := ix.pool.Exec(ctx, `UPDATE series_metadata SET built_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, ix.pool, func(tx pgx.Tx) error { _, err := ix.Delete(ctx, tx, "1.1.1.2", "test"); return err }); err != nil {
		t.Fatal(err)
	}
	if got := sops("1.1", ""); !slices.Equal(got, []string{"1.1.1.1", "1.1.1.3", "1.1.2.1"}) {
		t.Fatalf("after a delete: %q", got)
	}
}

// RefreshSeriesMetadata builds a missing or stale series document ahead
// of any request, and leaves a current one alone.
func TestRefreshSeriesMetadata(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	doc := func() (version int64, builtAt time.Time) {
		t.Helper()
		err := ix.pool.QueryRow(ctx, `SELECT COALESCE(max(sm.version), -1), COALESCE(max(sm.built_at), 'epoch') FROM series_metadata sm
JOIN series se ON se.pk = sm.series_pk WHERE se.series_instance_uid = '1.1.1'`).Scan(&version, &builtAt)
		if err != nil {
			t.Fatal(err)
		}
		return version, builtAt
	}
	current := func() int64 {
		t.Helper()
		var v int64
		if err := ix.pool.QueryRow(ctx, `SELECT metadata_version FROM series WHERE series_instance_uid = '1.1.1'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v, _ := doc(); v != -1 {
		t.Fatalf("a document (version %d) before any refresh", v)
	}
	if err := ix.RefreshSeriesMetadata(ctx, "1.1.1"); err != nil {
		t.Fatal(err)
	}
	v, built := doc()
	if v != current() {
		t.Fatalf("refresh built version %d, series is at %d", v, current())
	}
	// Current: nothing is rewritten.
	if err := ix.RefreshSeriesMetadata(ctx, "1.1.1"); err != nil {
		t.Fatal(err)
	}
	if _, again := doc(); !again.Equal(built) {
		t.Fatalf("a current document was rebuilt (%v -> %v)", built, again)
	}
	// Stale after an insert: rebuilt, with the new instance in it.
	in := fixture[1]
	in.sop, in.attrs = "1.1.1.3", map[string]string{"PatientName": "Doe^John", "PatientID": "P1", "InstanceNumber": "3"}
	if err := insert(t, ix, record(t, in)); err != nil {
		t.Fatal(err)
	}
	if err := ix.RefreshSeriesMetadata(ctx, "1.1.1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc(); v != current() {
		t.Fatalf("after an insert: document version %d, series at %d", v, current())
	}
	var hasNew bool
	if err := ix.pool.QueryRow(ctx, `SELECT position('1.1.1.3'::bytea IN sm.doc) > 0 FROM series_metadata sm
JOIN series se ON se.pk = sm.series_pk WHERE se.series_instance_uid = '1.1.1'`).Scan(&hasNew); err != nil || !hasNew {
		t.Fatalf("the rebuilt document lacks the new instance (%v)", err)
	}
	// A series that does not exist is not an error.
	if err := ix.RefreshSeriesMetadata(ctx, "9.9.9"); err != nil {
		t.Fatalf("unknown series: %v", err)
	}
}

func TestInstancesAndFrames(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		level Level
		uids  []string
		want  int
	}{
		{Study, []string{"1.1"}, 3}, {Study, []string{"1.1", "1.2"}, 4}, {Series, []string{"1.1.1"}, 2},
		{Instance, []string{"1.4.1.1"}, 1}, {Patient, []string{"P1"}, 3}, {Study, []string{"nope"}, 0},
		// One UID is matched with "=", several with "= ANY".
		{Instance, []string{"1.1.1.1", "1.4.1.1"}, 2}, {Series, []string{"1.1.1", "nope"}, 2}, {Study, nil, 0},
	}
	for _, tc := range tests {
		refs, err := ix.Instances(ctx, tc.level, tc.uids)
		if err != nil || len(refs) != tc.want {
			t.Errorf("%s %v: %d refs, %v", tc.level, tc.uids, len(refs), err)
		}
	}
	refs, _ := ix.Instances(ctx, Study, []string{"1.1"})
	if refs[0].SOPInstanceUID != "1.1.1.1" || refs[0].BlobKey != "i/1.1.1.1" || refs[0].Size != 80 {
		t.Errorf("ref = %+v", refs[0])
	}

	// Native: frame k at a fixed stride.
	fi, err := ix.Frames(ctx, "1.2.1.1")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := fi.Frame(2)
	if err != nil || sp[0].Offset != 1000+2*512*512*2 {
		t.Errorf("frame 3: %v %v", sp, err)
	}
	if _, err := fi.Frame(3); !errors.Is(err, ErrNotFound) {
		t.Errorf("frame 4 of 3: %v", err)
	}

	// Encapsulated: fragments grouped by frame.
	r := record(t, inst{"3.1", "3.1.1", "3.1.1.1", map[string]string{"NumberOfFrames": "2"}})
	r.Frames = Frames{Fragments: []Span{{100, 10}, {118, 20}, {146, 30}}, FrameFragments: []int32{0, 2}}
	if err := insert(t, ix, r); err != nil {
		t.Fatal(err)
	}
	fi, err = ix.Frames(ctx, "3.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	if sp, _ := fi.Frame(0); !slices.Equal(sp, []Span{{100, 10}, {118, 20}}) {
		t.Errorf("frame 1 = %v", sp)
	}
	if sp, _ := fi.Frame(1); !slices.Equal(sp, []Span{{146, 30}}) {
		t.Errorf("frame 2 = %v", sp)
	}
	if _, err := ix.Frames(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}

	// Bulk data by element path.
	ref, sp2, err := ix.Bulk(ctx, "1.2.1.1", "00540016/0/00181072")
	if err != nil || sp2 != (Span{500, 2048}) || ref.SOPInstanceUID != "1.2.1.1" {
		t.Errorf("bulk: %+v %v %v", ref, sp2, err)
	}
	if _, _, err := ix.Bulk(ctx, "1.2.1.1", "00280010"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bulk of a non-bulk path: %v", err)
	}
}

// StudyFilter restricts every level to the studies its condition lets
// through, with placeholders numbered after the query's own.
func TestFindStudyFilter(t *testing.T) {
	ix := newFixture(t)
	ctx := context.Background()
	only := func(uids ...string) func(string, int) (string, []any) {
		return func(s string, next int) (string, []any) {
			return fmt.Sprintf("%s.study_instance_uid = ANY($%d)", s, next), []any{uids}
		}
	}
	none := func(string, int) (string, []any) { return "false", nil }
	tests := []struct {
		name string
		q    Query
		key  dicom.Tag
		want []string
	}{
		{"studies", Query{Level: Study, StudyFilter: only("1.1", "1.3")}, tag.StudyInstanceUID, []string{"1.1", "1.3"}},
		{"studies and a filter", Query{Level: Study, Filters: map[dicom.Tag][]string{tag.PatientName: {"DOE*"}}, StudyFilter: only("1.1", "1.3")}, tag.StudyInstanceUID, []string{"1.1"}},
		{"nothing", Query{Level: Study, StudyFilter: none}, tag.StudyInstanceUID, nil},
		{"patients", Query{Level: Patient, StudyFilter: only("1.2")}, tag.PatientID, []string{"P2"}},
		{"series", Query{Level: Series, Filters: map[dicom.Tag][]string{tag.Modality: {"CT"}}, StudyFilter: only("1.3")}, tag.SeriesInstanceUID, []string{"1.3.1"}},
		{"instances", Query{Level: Instance, StudyFilter: only("1.1")}, tag.SOPInstanceUID, []string{"1.1.1.1", "1.1.1.2", "1.1.2.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ix.Find(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(res, tc.key); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// Person names match on any component group: a Japanese name in its
// alphabetic, ideographic and phonetic forms is found by each of them.
func TestFindPersonNameGroups(t *testing.T) {
	ix := New(dbtest.New(t))
	ctx := context.Background()
	for _, in := range []inst{
		{"2.1", "2.1.1", "2.1.1.1", map[string]string{"SpecificCharacterSet": "ISO_IR 192", "PatientID": "J1",
			"PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう", "ReferringPhysicianName": "Sato^Ichiro=佐藤^一郎=さとう^いちろう"}},
		{"2.2", "2.2.1", "2.2.1.1", map[string]string{"SpecificCharacterSet": "ISO_IR 192", "PatientID": "J2",
			"PatientName": "Suzuki^Hanako=鈴木^花子=すずき^はなこ"}},
		{"2.3", "2.3.1", "2.3.1.1", map[string]string{"SpecificCharacterSet": "ISO_IR 192", "PatientID": "J3",
			"PatientName": "=山田^花子"}},
	} {
		if err := insert(t, ix, record(t, in)); err != nil {
			t.Fatalf("insert %s: %v", in.sop, err)
		}
	}
	f := func(k dicom.Tag, v string) map[dicom.Tag][]string { return map[dicom.Tag][]string{k: {v}} }
	tests := []struct {
		name string
		q    Query
		key  dicom.Tag
		want []string
	}{
		{"ideographic exact", Query{Level: Study, Filters: f(tag.PatientName, "山田^太郎")}, tag.StudyInstanceUID, []string{"2.1"}},
		{"ideographic prefix", Query{Level: Study, Filters: f(tag.PatientName, "山田*")}, tag.StudyInstanceUID, []string{"2.1", "2.3"}},
		{"ideographic group in query", Query{Level: Study, Filters: f(tag.PatientName, "=山田^太郎")}, tag.StudyInstanceUID, []string{"2.1"}},
		{"phonetic exact", Query{Level: Study, Filters: f(tag.PatientName, "やまだ^たろう")}, tag.StudyInstanceUID, []string{"2.1"}},
		{"phonetic prefix", Query{Level: Study, Filters: f(tag.PatientName, "すず*")}, tag.StudyInstanceUID, []string{"2.2"}},
		{"alphabetic still", Query{Level: Study, Filters: f(tag.PatientName, "yamada^tarou")}, tag.StudyInstanceUID, []string{"2.1"}},
		{"alphabetic prefix", Query{Level: Study, Filters: f(tag.PatientName, "YAMA*")}, tag.StudyInstanceUID, []string{"2.1"}},
		{"all groups in query", Query{Level: Study, Filters: f(tag.PatientName, "Yamada^Tarou=山田^太郎=やまだ^たろう")}, tag.StudyInstanceUID, []string{"2.1"}},
		{"no mixing of groups", Query{Level: Study, Filters: f(tag.PatientName, "山田^たろう")}, tag.StudyInstanceUID, nil},
		{"fuzzy ideographic given", Query{Level: Study, Filters: f(tag.PatientName, "太郎"), FuzzyMatching: true}, tag.StudyInstanceUID, []string{"2.1"}},
		{"fuzzy phonetic family", Query{Level: Study, Filters: f(tag.PatientName, "やま"), FuzzyMatching: true}, tag.StudyInstanceUID, []string{"2.1"}},
		{"referring ideographic", Query{Level: Study, Filters: f(tag.ReferringPhysicianName, "佐藤*")}, tag.StudyInstanceUID, []string{"2.1"}},
		{"referring phonetic", Query{Level: Study, Filters: f(tag.ReferringPhysicianName, "さとう^いちろう")}, tag.StudyInstanceUID, []string{"2.1"}},
		{"patient level", Query{Level: Patient, Filters: f(tag.PatientName, "山田*")}, tag.PatientID, []string{"J1", "J3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ix.Find(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(res, tc.key); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// What is returned is the name as stored, all groups.
	res, err := ix.Find(ctx, Query{Level: Study, Filters: f(tag.PatientName, "山田^太郎")})
	if err != nil || len(res.Matches) != 1 {
		t.Fatalf("%v %v", res.Matches, err)
	}
	if got := res.Matches[0].String(tag.PatientName); got != "Yamada^Tarou=山田^太郎=やまだ^たろう" {
		t.Errorf("PatientName = %q", got)
	}
}
