package gateway

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/mint"
)

func TestSearch(t *testing.T) {
	e := newEnv(t, Config{}, mint.RejectDuplicates)
	type patient struct {
		name, id, date, modality string
	}
	patients := []patient{
		{"Doe^John", "P-1", "20240105", "CT"},
		{"Doe^Jane", "P-2", "20240210", "MR"},
		{"Γιάννης^Παπαδόπουλος", "P-3", "20231231", "CT"},
		{"Yamada^Tarou=山田^太郎=やまだ^たろう", "P-4", "20240301", "MR"},
	}
	studies := map[string]string{} // patient ID -> study UID
	var seriesOfP1 string
	for i, p := range patients {
		id := newIDs("", "")
		studies[p.id] = id.study
		if i == 0 {
			seriesOfP1 = id.series
		}
		extra := []dicom.Element{
			dicom.NewStrings(tag.SpecificCharacterSet, dicom.CS, "ISO_IR 192"),
			dicom.NewStrings(tag.PatientName, dicom.PN, p.name),
			dicom.NewStrings(tag.PatientID, dicom.LO, p.id),
			dicom.NewStrings(tag.StudyDate, dicom.DA, p.date),
			dicom.NewStrings(tag.Modality, dicom.CS, p.modality),
			dicom.NewStrings(tag.AccessionNumber, dicom.SH, "ACC"+p.id),
		}
		objs := [][]byte{instance(t, "MR_small.dcm", id, extra...)}
		// P-1 has a second instance in the same series.
		if i == 0 {
			objs = append(objs, instance(t, "MR_small.dcm", newIDs(id.study, id.series), extra...))
		}
		e.stow(t, "/studies", objs...).mustStatus(t, http.StatusOK)
	}

	search := func(t *testing.T, path string, q url.Values) response {
		t.Helper()
		u := e.url + path
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		return do(t, "GET", u, hdr("Accept", mediaDICOMJSON), nil)
	}
	patientIDs := func(t *testing.T, r response) []string {
		t.Helper()
		var out []string
		for _, ds := range r.datasets(t) {
			out = append(out, ds.String(tag.PatientID))
		}
		slices.Sort(out)
		return out
	}

	tests := []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"all", nil, []string{"P-1", "P-2", "P-3", "P-4"}},
		{"patient id", url.Values{"PatientID": {"P-2"}}, []string{"P-2"}},
		{"tag instead of keyword", url.Values{"00100020": {"P-2"}}, []string{"P-2"}},
		{"wildcard name", url.Values{"PatientName": {"doe*"}}, []string{"P-1", "P-2"}},
		{"exact name, case-insensitive", url.Values{"PatientName": {"DOE^JANE"}}, []string{"P-2"}},
		{"greek", url.Values{"PatientName": {"Γιάννης^Παπαδόπουλος"}}, []string{"P-3"}},
		{"greek wildcard", url.Values{"PatientName": {"Γιά*"}}, []string{"P-3"}},
		{"fuzzy", url.Values{"PatientName": {"jane"}, "fuzzymatching": {"true"}}, []string{"P-2"}},
		{"date range", url.Values{"StudyDate": {"20240101-20240228"}}, []string{"P-1", "P-2"}},
		{"open date range", url.Values{"StudyDate": {"-20231231"}}, []string{"P-3"}},
		{"modality in study", url.Values{"ModalitiesInStudy": {"MR"}}, []string{"P-2", "P-4"}},
		{"modality list", url.Values{"ModalitiesInStudy": {"MR,CT"}}, []string{"P-1", "P-2", "P-3", "P-4"}},
		{"study UID list", url.Values{"StudyInstanceUID": {studies["P-1"] + "," + studies["P-3"]}}, []string{"P-1", "P-3"}},
		{"accession", url.Values{"AccessionNumber": {"ACCP-4"}}, []string{"P-4"}},
		{"no match", url.Values{"PatientID": {"nobody"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := search(t, "/studies", tt.query).mustStatus(t, 200)
			if got := patientIDs(t, r); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if w := r.Header.Get("Warning"); w != "" {
				t.Errorf("unexpected Warning %q", w)
			}
		})
	}

	t.Run("japanese name, raw percent-encoding", func(t *testing.T) {
		r := do(t, "GET", e.url+"/studies?PatientName="+url.QueryEscape("Yamada^Tarou=山田^太郎=やまだ^たろう"), nil, nil).mustStatus(t, 200)
		ds := r.datasets(t)
		if len(ds) != 1 || ds[0].String(tag.PatientID) != "P-4" {
			t.Fatalf("%d matches", len(ds))
		}
		if !strings.Contains(string(r.body), "山田^太郎") {
			t.Errorf("the name does not come back in UTF-8: %s", r.body)
		}
	})

	t.Run("required return attributes", func(t *testing.T) {
		r := search(t, "/studies", url.Values{"PatientID": {"P-1"}}).mustStatus(t, 200)
		ds := r.datasets(t)[0]
		for _, tg := range []dicom.Tag{tag.StudyInstanceUID, tag.StudyDate, tag.PatientName, tag.ModalitiesInStudy, tag.NumberOfStudyRelatedInstances, tag.NumberOfStudyRelatedSeries, tag.InstanceAvailability} {
			if ds.Get(tg) == nil {
				t.Errorf("study result lacks %s", keyword(tg))
			}
		}
		if got, want := ds.String(tag.RetrieveURL), e.url+"/studies/"+studies["P-1"]; got != want {
			t.Errorf("RetrieveURL %q, want %q", got, want)
		}
		if n := ds.Get(tag.NumberOfStudyRelatedInstances).String(); n != "2" {
			t.Errorf("NumberOfStudyRelatedInstances %q", n)
		}

		r = search(t, "/studies/"+studies["P-1"]+"/series", nil).mustStatus(t, 200)
		sr := r.datasets(t)
		if len(sr) != 1 || sr[0].String(tag.SeriesInstanceUID) != seriesOfP1 || sr[0].String(tag.Modality) != "CT" {
			t.Fatalf("series %+v", sr)
		}
		if !strings.HasSuffix(sr[0].String(tag.RetrieveURL), "/series/"+seriesOfP1) {
			t.Errorf("series RetrieveURL %q", sr[0].String(tag.RetrieveURL))
		}

		for _, path := range []string{
			"/studies/" + studies["P-1"] + "/series/" + seriesOfP1 + "/instances",
			"/studies/" + studies["P-1"] + "/instances",
		} {
			r = search(t, path, nil).mustStatus(t, 200)
			in := r.datasets(t)
			if len(in) != 2 {
				t.Fatalf("%s: %d instances", path, len(in))
			}
			for _, ds := range in {
				for _, tg := range []dicom.Tag{tag.SOPClassUID, tag.SOPInstanceUID, tag.Rows, tag.Columns, tag.BitsAllocated, tag.RetrieveURL, tag.InstanceAvailability} {
					if ds.Get(tg) == nil {
						t.Errorf("instance result lacks %s", keyword(tg))
					}
				}
			}
		}
		r = search(t, "/series", url.Values{"Modality": {"MR"}}).mustStatus(t, 200)
		if n := len(r.datasets(t)); n != 2 {
			t.Errorf("%d MR series", n)
		}
		r = search(t, "/instances", url.Values{"PatientID": {"P-1"}}).mustStatus(t, 200)
		if n := len(r.datasets(t)); n != 2 {
			t.Errorf("%d instances of P-1", n)
		}
	})

	t.Run("includefield", func(t *testing.T) {
		r := search(t, "/studies", url.Values{"PatientID": {"P-1"}, "includefield": {"all"}}).mustStatus(t, 200)
		if ds := r.datasets(t)[0]; ds.Get(tag.IssuerOfPatientID) == nil {
			t.Error("includefield=all lacks IssuerOfPatientID")
		}
		r = search(t, "/series", url.Values{"PatientID": {"P-1"}, "includefield": {"StudyDescription,00100020"}}).mustStatus(t, 200)
		if ds := r.datasets(t)[0]; ds.Get(tag.StudyDescription) == nil {
			t.Error("includefield StudyDescription not returned")
		}
	})

	t.Run("limit and offset", func(t *testing.T) {
		var seen []string
		for off := 0; off < 4; off += 2 {
			r := search(t, "/studies", url.Values{"limit": {"2"}, "offset": {itoa(off)}}).mustStatus(t, 200)
			ds := r.datasets(t)
			if len(ds) != 2 {
				t.Fatalf("offset %d: %d results", off, len(ds))
			}
			if w := r.Header.Get("Warning"); (off == 0) != strings.Contains(w, "Additional results") {
				t.Errorf("offset %d: Warning %q", off, w)
			}
			for _, d := range ds {
				seen = append(seen, d.String(tag.PatientID))
			}
		}
		slices.Sort(seen)
		if !slices.Equal(seen, []string{"P-1", "P-2", "P-3", "P-4"}) {
			t.Errorf("pages gave %v", seen)
		}
	})

	t.Run("warnings", func(t *testing.T) {
		for _, tc := range []struct {
			q    url.Values
			want string
		}{
			{url.Values{"orderby": {"PatientName"}}, "The orderby parameter is not supported"},
			{url.Values{"emptyvalue": {"true"}}, "The emptyvalue parameter is not supported"},
			{url.Values{"PatientAge": {"040Y"}}, "PatientAge is not supported"},
			{url.Values{"includefield": {"PatientAge"}}, "PatientAge is not supported"},
			{url.Values{"00400275.00321060": {"x"}}, "nested attribute"},
		} {
			r := search(t, "/studies", tc.q).mustStatus(t, 200)
			w := r.Header.Get("Warning")
			if !strings.HasPrefix(w, "299 "+e.url+": \"") || !strings.Contains(w, tc.want) {
				t.Errorf("%v: Warning %q, want 299 %s: ...%s...", tc.q, w, e.url, tc.want)
			}
		}
	})

	t.Run("bad queries", func(t *testing.T) {
		for _, q := range []url.Values{
			{"limit": {"-1"}},
			{"limit": {"x"}},
			{"offset": {"1.5"}},
			{"fuzzymatching": {"maybe"}},
			{"StudyDate": {"2024-01-01"}},
			{"StudyInstanceUID": {"1.2.abc"}},
			{"NoSuchKeyword": {"x"}},
			{"includefield": {"NoSuchKeyword"}},
		} {
			search(t, "/studies", q).mustStatus(t, http.StatusBadRequest).problem(t)
		}
		search(t, "/studies/not-a-uid/series", nil).mustStatus(t, http.StatusBadRequest).problem(t)
		do(t, "GET", e.url+"/studies", hdr("Accept", mediaDICOMXML), nil).mustStatus(t, http.StatusNotAcceptable).problem(t)
	})

	t.Run("delete", func(t *testing.T) {
		study := studies["P-2"]
		path := e.url + "/studies/" + study
		do(t, "DELETE", path, nil, nil).mustStatus(t, http.StatusForbidden).problem(t) // no admin key configured
		e2 := newEnv(t, Config{AdminKey: "s3cret"}, mint.RejectDuplicates)
		id := newIDs("", "")
		other := newIDs(id.study, "")
		e2.stow(t, "/studies", instance(t, "MR_small.dcm", id), instance(t, "CT_small.dcm", other)).mustStatus(t, 200)
		sp := e2.url + "/studies/" + id.study
		do(t, "DELETE", sp, nil, nil).mustStatus(t, http.StatusUnauthorized).problem(t)
		do(t, "DELETE", sp, hdr(AdminKeyHeader, "wrong"), nil).mustStatus(t, http.StatusForbidden).problem(t)
		do(t, "DELETE", sp+"/series/"+id.series+"/instances/"+dicom.NewUID(), hdr(AdminKeyHeader, "s3cret"), nil).mustStatus(t, http.StatusNotFound).problem(t)
		r := do(t, "DELETE", sp+"/series/"+id.series, hdr(AdminKeyHeader, "s3cret"), nil).mustStatus(t, 200)
		var res DeleteResult
		if err := json.Unmarshal(r.body, &res); err != nil || res.Deleted != 1 {
			t.Fatalf("delete series: %s", r.body)
		}
		do(t, "GET", sp+"/series/"+id.series+"/metadata", nil, nil).mustStatus(t, http.StatusNotFound)
		do(t, "GET", sp+"/series/"+other.series+"/metadata", nil, nil).mustStatus(t, http.StatusOK)
		r = do(t, "DELETE", sp, hdr(AdminKeyHeader, "s3cret"), nil).mustStatus(t, 200)
		if err := json.Unmarshal(r.body, &res); err != nil || res.Deleted != 1 {
			t.Fatalf("delete study: %s", r.body)
		}
		do(t, "GET", sp+"/metadata", nil, nil).mustStatus(t, http.StatusNotFound)
		var tombs int
		if err := e2.pool.QueryRow(t.Context(), `SELECT count(*) FROM instance_tombstones WHERE study_instance_uid = $1`, id.study).Scan(&tombs); err != nil || tombs != 2 {
			t.Errorf("%d tombstones (%v), want 2", tombs, err)
		}
		if r := search(t, "/studies", url.Values{"PatientID": {"P-2"}}); len(r.datasets(t)) != 1 {
			t.Error("a refused DELETE removed the study")
		}
	})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
