package gateway

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint"
)

// The benchmarks run the whole stack: HTTP over loopback, Fiber, the
// pipeline (AES-GCM envelopes, the FS blob store with fsync) and Postgres.
// Latency benchmarks report p50/p95 in milliseconds alongside ns/op.

// bigCT returns a 512×512 16-bit CT instance (512 KiB of pixels) with the
// given UIDs, as a modality sends them.
func bigCT(t testing.TB, id ids) []byte {
	t.Helper()
	pix := make([]byte, 512*512*2)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	return instance(t, "CT_small.dcm", id,
		dicom.NewUint16s(tag.Rows, 512), dicom.NewUint16s(tag.Columns, 512),
		dicom.Element{Tag: tag.PixelData, VR: dicom.OW, Value: pix})
}

// latencies records durations and reports percentiles.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	pct := func(p float64) float64 {
		return float64(l[min(len(l)-1, int(p*float64(len(l))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
}

func fetch(b *testing.B, client *http.Client, url, accept string) int64 {
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return n
}

// BenchmarkSTOW stores 20 instances of 512 KiB per request, a study per
// iteration.
func BenchmarkSTOW(b *testing.B) {
	e := newEnv(b, Config{}, mint.RejectDuplicates)
	client := &http.Client{}
	const batch = 20
	b.ReportAllocs()
	var lat latencies
	var size int64
	for b.Loop() {
		b.StopTimer()
		study, series := dicom.NewUID(), dicom.NewUID()
		parts := make([][]byte, batch)
		for i := range parts {
			parts[i] = bigCT(b, newIDs(study, series))
		}
		body, ct := multipartBody(b, parts...)
		size = int64(len(body))
		b.StartTimer()
		start := time.Now()
		req, _ := http.NewRequest("POST", e.url+"/studies", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	b.SetBytes(size)
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	b.ReportMetric(float64(batch*len(lat))/total.Seconds(), "inst/s")
	lat.report(b)
}

// seedStudy stores n 512 KiB instances in one series of a new study.
func seedStudy(b *testing.B, e *env, n int) ids {
	b.Helper()
	study, series := dicom.NewUID(), dicom.NewUID()
	for i := 0; i < n; i += 20 {
		parts := make([][]byte, 0, 20)
		for j := i; j < min(n, i+20); j++ {
			parts = append(parts, bigCT(b, newIDs(study, series)))
		}
		e.stow(b, "/studies", parts...).mustStatus(b, 200)
	}
	return ids{study: study, series: series}
}

// BenchmarkWADOStudy retrieves a 24-instance study (12 MiB) as stored.
func BenchmarkWADOStudy(b *testing.B) {
	e := newEnv(b, Config{}, mint.RejectDuplicates)
	id := seedStudy(b, e, 24)
	client := &http.Client{}
	url := e.url + "/studies/" + id.study
	const accept = `multipart/related; type="application/dicom"; transfer-syntax=*`
	b.SetBytes(fetch(b, client, url, accept))
	var lat latencies
	for b.Loop() {
		start := time.Now()
		fetch(b, client, url, accept)
		lat = append(lat, time.Since(start))
	}
	lat.report(b)
}

// BenchmarkQIDO searches studies by Patient ID among 200 studies.
func BenchmarkQIDO(b *testing.B) {
	e := newEnv(b, Config{}, mint.RejectDuplicates)
	seedIndex(b, e, 200, 1)
	client := &http.Client{}
	var lat latencies
	i := 0
	for b.Loop() {
		start := time.Now()
		fetch(b, client, e.url+"/studies?PatientID=PID-"+strconv.Itoa(i%200), mediaDICOMJSON)
		lat = append(lat, time.Since(start))
		i++
	}
	lat.report(b)
}

// BenchmarkMetadataStudy retrieves the metadata of a 24-instance study
// (target: p95 <= 2 ms), cold (every body read from Postgres) and warm
// (bodies served from the ETag-keyed cache after the index is asked for
// the study's instances).
func BenchmarkMetadataStudy(b *testing.B) {
	for _, cache := range []struct {
		name  string
		bytes int64
	}{{"cold", -1}, {"warm", 0}} {
		b.Run(cache.name, func(b *testing.B) {
			e := newEnv(b, Config{MetadataCacheBytes: cache.bytes}, mint.RejectDuplicates)
			id := seedStudy(b, e, 24)
			benchMetadata(b, e, e.url+"/studies/"+id.study+"/metadata")
		})
	}
}

// BenchmarkMetadataSeries1000 retrieves the metadata of a 1,000-instance
// series (target: p95 <= 50 ms), cold and warm. The series is indexed
// directly (as the pipeline would, with real precomputed metadata) rather
// than stored: /metadata never reads instances, and storing 500 MiB would
// only slow the benchmark's setup.
func BenchmarkMetadataSeries1000(b *testing.B) {
	for _, cache := range []struct {
		name  string
		bytes int64
	}{{"cold", -1}, {"warm", 0}} {
		b.Run(cache.name, func(b *testing.B) {
			e := newEnv(b, Config{MetadataCacheBytes: cache.bytes}, mint.RejectDuplicates)
			id := seedIndex(b, e, 1, 1000)
			benchMetadata(b, e, e.url+"/studies/"+id.study+"/series/"+id.series+"/metadata")
		})
	}
}

func benchMetadata(b *testing.B, e *env, url string) {
	client := &http.Client{}
	b.SetBytes(fetch(b, client, url, mediaDICOMJSON))
	var lat latencies
	for b.Loop() {
		start := time.Now()
		fetch(b, client, url, mediaDICOMJSON)
		lat = append(lat, time.Since(start))
	}
	lat.report(b)
}

// seedIndex indexes studies×perSeries instances (one series per study,
// Patient IDs PID-0...) with the metadata the pipeline precomputes, and
// returns the UIDs of the last study and series.
func seedIndex(b *testing.B, e *env, studies, perSeries int) ids {
	b.Helper()
	ctx := b.Context()
	f, err := dicom.ParseBytes(readSample(b, "CT_small.dcm"), dicom.ReadOptions{SkipBulk: true})
	if err != nil {
		b.Fatal(err)
	}
	ix := index.New(e.pool)
	var last ids
	for s := range studies {
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		last = newIDs("", "")
		for i := range perSeries {
			id := newIDs(last.study, last.series)
			ds := f.Dataset
			ds.Elements = slices.Clone(ds.Elements)
			ds.Set(dicom.NewStrings(tag.StudyInstanceUID, dicom.UI, id.study))
			ds.Set(dicom.NewStrings(tag.SeriesInstanceUID, dicom.UI, id.series))
			ds.Set(dicom.NewStrings(tag.SOPInstanceUID, dicom.UI, id.sop))
			ds.Set(dicom.NewStrings(tag.PatientID, dicom.LO, "PID-"+strconv.Itoa(s)))
			ds.Set(dicom.NewStrings(tag.InstanceNumber, dicom.IS, strconv.Itoa(i+1)))
			prefix := index.BaseURIPlaceholder + "/studies/" + id.study + "/series/" + id.series + "/instances/" + id.sop + "/bulkdata/"
			meta, err := dicom.AppendJSON(nil, &ds, &dicom.JSONOptions{BulkDataThreshold: 1024, BulkDataURI: func(p dicom.ElementPath) string { return prefix + p.String() }})
			if err != nil {
				b.Fatal(err)
			}
			err = ix.Insert(ctx, tx, &index.Record{
				Dataset: &ds, TransferSyntaxUID: dicom.ExplicitVRLittleEndian, OrgID: "bench",
				BlobKey: "bench/" + id.sop, BlobSize: 1, Size: 1, CiphertextSHA256: []byte{1},
				Metadata: meta,
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return last
}
