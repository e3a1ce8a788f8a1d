package index

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// seed fills the index with n instances in n/100 studies of 4 series of
// 25 instances, 2 studies per patient, with SQL alone, so that a million
// rows take seconds rather than an ingest's hours.
func seed(b *testing.B, pool *pgxpool.Pool, n int) {
	b.Helper()
	ctx := context.Background()
	studies := max(n/100, 1)
	stmts := []string{
		`INSERT INTO patients (pk, org_id, patient_id, patient_name, patient_name_norm, patient_name_family,
    patient_name_given, patient_birth_date_raw, patient_birth_date, patient_sex)
SELECT g, 'org', 'PID' || g, f || '^' || gv, f || '^' || gv, f, gv,
    to_char(date '1930-01-01' + (g * 37 % 30000), 'YYYYMMDD'), date '1930-01-01' + (g * 37 % 30000),
    CASE WHEN g % 2 = 0 THEN 'F' ELSE 'M' END
FROM generate_series(1, $1::int) g,
    LATERAL (SELECT upper(translate(substr(md5('f' || g), 1, 7), '0123456789', 'ghijklmnop')) AS f,
                    upper(translate(substr(md5('g' || g), 1, 5), '0123456789', 'ghijklmnop')) AS gv) x`,
		`INSERT INTO studies (pk, study_instance_uid, patient_pk, org_id, patient_id, patient_name, patient_name_norm,
    patient_name_family, patient_name_given, patient_birth_date_raw, patient_birth_date, patient_sex,
    study_date_raw, study_date, study_time_raw, study_time, accession_number, study_id, study_description,
    modalities_in_study, number_of_series, number_of_instances)
SELECT g, '1.2.826.0.1.3680043.10.1.' || g, p.pk, 'org', p.patient_id, p.patient_name, p.patient_name_norm,
    p.patient_name_family, p.patient_name_given, p.patient_birth_date_raw, p.patient_birth_date, p.patient_sex,
    to_char(d, 'YYYYMMDD'), d, '101500', '10:15:00', 'ACC' || g, 'S' || g, 'STUDY ' || g,
    CASE g % 5 WHEN 0 THEN '{CT}'::text[] WHEN 1 THEN '{MR}' WHEN 2 THEN '{CT,SR}' WHEN 3 THEN '{US}' ELSE '{CR}' END,
    4, 100
FROM generate_series(1, $1::int) g
JOIN patients p ON p.pk = (g + 1) / 2,
LATERAL (SELECT date '2000-01-01' + (g * 7 % 9000) AS d) x`,
		`INSERT INTO series (pk, series_instance_uid, study_pk, modality, series_number, number_of_instances)
SELECT (s.pk - 1) * 4 + k, s.study_instance_uid || '.' || k, s.pk, s.modalities_in_study[1 + (k - 1) % cardinality(s.modalities_in_study)], k, 25
FROM studies s, generate_series(1, 4) k`,
		`INSERT INTO instances (pk, sop_instance_uid, series_pk, study_pk, org_id, sop_class_uid, instance_number,
    rows, columns, bits_allocated, transfer_syntax_uid, blob_key, blob_size, size, ciphertext_sha256)
SELECT (se.pk - 1) * 25 + k, se.series_instance_uid || '.' || k, se.pk, se.study_pk, 'org', '1.2.840.10008.5.1.4.1.1.2', k,
    512, 512, 16, '1.2.840.10008.1.2.1', 'i/' || ((se.pk - 1) * 25 + k), 530000, 525000, '\x00'
FROM series se, generate_series(1, 25) k`,
		`INSERT INTO instance_data (instance_pk, metadata, pixel_offset, frame_length)
SELECT pk, '{}'::bytea, 1000, 524288 FROM instances`,
		`SELECT setval('patients_pk_seq', (SELECT max(pk) FROM patients)), setval('studies_pk_seq', (SELECT max(pk) FROM studies)),
    setval('series_pk_seq', (SELECT max(pk) FROM series)), setval('instances_pk_seq', (SELECT max(pk) FROM instances))`,
		`ANALYZE`,
	}
	start := time.Now()
	for i, s := range stmts {
		var args []any
		switch i {
		case 0:
			args = []any{(studies + 1) / 2}
		case 1:
			args = []any{studies}
		}
		if _, err := pool.Exec(ctx, s, args...); err != nil {
			b.Fatalf("seed step %d: %v", i, err)
		}
	}
	b.Logf("seeded %d instances in %d studies in %v", studies*100, studies, time.Since(start))
}

// BenchmarkFind measures typical QIDO-RS/C-FIND queries over a seeded
// index: 20k instances, or 1M with MEDIMINT_BENCH_1M set (make bench).
// It reports p50 and p95 latency per query.
func BenchmarkFind(b *testing.B) {
	n := 20_000
	if os.Getenv("MEDIMINT_BENCH_1M") != "" {
		n = 1_000_000
	}
	pool := dbtest.New(b)
	seed(b, pool, n)
	ix := New(pool)
	ix.MaxResults = 100
	studies := n / 100
	f := func(k dicom.Tag, v ...string) map[dicom.Tag][]string { return map[dicom.Tag][]string{k: v} }
	queries := []struct {
		name string
		q    func(i int) Query
	}{
		{"PatientID", func(i int) Query {
			return Query{Level: Study, Filters: f(tag.PatientID, fmt.Sprintf("PID%d", i%(studies/2)+1))}
		}},
		{"PatientNamePrefix", func(i int) Query {
			return Query{Level: Study, Filters: f(tag.PatientName, string(rune('G'+i%10))+string(rune('H'+i%7))+"*")}
		}},
		{"PatientNameFuzzy", func(i int) Query {
			return Query{Level: Study, Filters: f(tag.PatientName, string(rune('G'+i%10))+string(rune('H'+i%7))+"I"), FuzzyMatching: true}
		}},
		{"StudyDateRange", func(i int) Query {
			d := time.Date(2000+i%24, time.Month(1+i%12), 1, 0, 0, 0, 0, time.UTC)
			return Query{Level: Study, Filters: f(tag.StudyDate, d.Format("20060102")+"-"+d.AddDate(0, 1, -1).Format("20060102"))}
		}},
		{"ModalitiesInStudy", func(i int) Query {
			return Query{Level: Study, Filters: f(tag.ModalitiesInStudy, []string{"CT", "MR", "SR", "US", "CR"}[i%5])}
		}},
		{"DateAndModality", func(i int) Query {
			return Query{Level: Study, Filters: map[dicom.Tag][]string{tag.StudyDate: {fmt.Sprintf("%d", 2000+i%24)}, tag.ModalitiesInStudy: {"MR"}}}
		}},
		{"StudyInstanceUID", func(i int) Query {
			return Query{Level: Study, Filters: f(tag.StudyInstanceUID, fmt.Sprintf("1.2.826.0.1.3680043.10.1.%d", i%studies+1))}
		}},
		{"SeriesOfStudy", func(i int) Query {
			return Query{Level: Series, Filters: f(tag.StudyInstanceUID, fmt.Sprintf("1.2.826.0.1.3680043.10.1.%d", i%studies+1))}
		}},
		{"InstancesOfStudy", func(i int) Query {
			return Query{Level: Instance, Filters: f(tag.StudyInstanceUID, fmt.Sprintf("1.2.826.0.1.3680043.10.1.%d", i%studies+1))}
		}},
	}
	ctx := context.Background()
	for _, qc := range queries {
		b.Run(qc.name, func(b *testing.B) {
			var lat []time.Duration
			i := 0
			for b.Loop() {
				t0 := time.Now()
				if _, err := ix.Find(ctx, qc.q(i)); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}

// BenchmarkMetadata measures WADO-RS Retrieve Metadata straight from the
// index (no HTTP, no cache): a 24-instance study (target p95 <= 2 ms
// through the gateway) and a 1,000-instance series (p95 <= 50 ms), each
// instance with the metadata the pipeline precomputes for CT_small.dcm.
func BenchmarkMetadata(b *testing.B) {
	pool := dbtest.New(b)
	ix := New(pool)
	src, err := os.ReadFile("../../shared/dicom-samples/pydicom/CT_small.dcm")
	if err != nil {
		b.Fatal(err)
	}
	f, err := dicom.ParseBytes(src, dicom.ReadOptions{SkipBulk: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	seedSeries := func(study, series string, n int) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for i := range n {
			sop := fmt.Sprintf("%s.%d", series, i+1)
			d := f.Dataset
			d.Elements = slices.Clone(d.Elements)
			d.Set(dicom.NewStrings(tag.StudyInstanceUID, dicom.UI, study))
			d.Set(dicom.NewStrings(tag.SeriesInstanceUID, dicom.UI, series))
			d.Set(dicom.NewStrings(tag.SOPInstanceUID, dicom.UI, sop))
			d.Set(dicom.NewStrings(tag.InstanceNumber, dicom.IS, fmt.Sprint(i+1)))
			prefix := BaseURIPlaceholder + "/studies/" + study + "/series/" + series + "/instances/" + sop + "/bulkdata/"
			meta, err := dicom.AppendJSON(nil, &d, &dicom.JSONOptions{BulkDataThreshold: 1024,
				BulkDataURI: func(p dicom.ElementPath) string { return prefix + p.String() }})
			if err != nil {
				b.Fatal(err)
			}
			if err := ix.Insert(ctx, tx, &Record{Dataset: &d, TransferSyntaxUID: dicom.ExplicitVRLittleEndian, OrgID: "bench",
				BlobKey: "bench/" + sop, BlobSize: 1, Size: 1, CiphertextSHA256: []byte{1},
				Metadata: meta}); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	seedSeries("1.2.826.0.1.3680043.10.7.1", "1.2.826.0.1.3680043.10.7.1.1", 24)
	seedSeries("1.2.826.0.1.3680043.10.7.2", "1.2.826.0.1.3680043.10.7.2.1", 1000)
	for _, c := range []struct{ name, study, series string }{
		{"study24", "1.2.826.0.1.3680043.10.7.1", ""},
		{"series1000", "1.2.826.0.1.3680043.10.7.2", "1.2.826.0.1.3680043.10.7.2.1"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var lat []time.Duration
			var n int64
			for b.Loop() {
				cw := &countWriter{}
				t0 := time.Now()
				if err := ix.Metadata(ctx, cw, "http://127.0.0.1/dicom-web", c.study, c.series, ""); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				n = cw.n
			}
			b.SetBytes(n)
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkInsert measures indexing one instance (CT_small.dcm's
// attributes and metadata) in a transaction of its own, and in groups of
// 8 sent as one batch (as the pipeline's group commit does).
func BenchmarkInsert(b *testing.B) {
	pool := dbtest.New(b)
	ix := New(pool)
	src, err := os.ReadFile("../../shared/dicom-samples/pydicom/CT_small.dcm")
	if err != nil {
		b.Fatal(err)
	}
	f, err := dicom.ParseBytes(src, dicom.ReadOptions{SkipBulk: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	n := 0
	record := func(study, series string) *Record {
		n++
		sop := fmt.Sprintf("%s.%d", series, n)
		d := f.Dataset
		d.Elements = slices.Clone(d.Elements)
		d.Set(dicom.NewStrings(tag.StudyInstanceUID, dicom.UI, study))
		d.Set(dicom.NewStrings(tag.SeriesInstanceUID, dicom.UI, series))
		d.Set(dicom.NewStrings(tag.SOPInstanceUID, dicom.UI, sop))
		meta, err := dicom.AppendJSON(nil, &d, &dicom.JSONOptions{BulkDataThreshold: 1024,
			BulkDataURI: func(p dicom.ElementPath) string { return BaseURIPlaceholder + "/x/" + p.String() }})
		if err != nil {
			b.Fatal(err)
		}
		return &Record{Dataset: &d, TransferSyntaxUID: dicom.ExplicitVRLittleEndian, OrgID: "bench",
			BlobKey: "bench/" + sop, BlobSize: 1, Size: 1, CiphertextSHA256: make([]byte, 32),
			Metadata: meta, Frames: Frames{PixelOffset: 1000, FrameLength: 512 * 512 * 2},
			Bulk: map[string]Span{"7FE00010": {1000, 512 * 512 * 2}}}
	}
	for _, group := range []int{1, 8} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			study := fmt.Sprintf("1.2.826.0.1.3680043.10.8.%d", group)
			series := study + ".1"
			recs := make([]*Record, group)
			for b.Loop() {
				for i := range recs {
					recs[i] = record(study, series)
				}
				var batch pgx.Batch
				batch.BeginTx(pgx.TxOptions{})
				for _, r := range recs {
					if err := ix.QueueInsert(&batch, r); err != nil {
						b.Fatal(err)
					}
				}
				br := pool.SendBatch(ctx, &batch)
				tx := br.Tx()
				if err := br.Close(); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*group), "µs/instance")
		})
	}
}
