package dicom

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// jsonBenchCT returns the CT_small sample (a GE CT header with many
// private elements, and 32 KiB of pixels).
func jsonBenchCT(b *testing.B) *Dataset {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(pydicomDir, "CT_small.dcm"))
	if err != nil {
		b.Fatal(err)
	}
	f, err := ParseBytes(raw, ReadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return &f.Dataset
}

// jsonHeader returns ds without Pixel Data.
func jsonHeader(ds *Dataset) *Dataset {
	h := &Dataset{Elements: append([]Element(nil), ds.Elements...)}
	h.Delete(TagPixelData)
	return h
}

// BenchmarkJSONEncodeCTHeader measures the ingest-time precomputation of
// one instance's metadata: a CT header appended into a reused buffer.
func BenchmarkJSONEncodeCTHeader(b *testing.B) {
	ds := jsonHeader(jsonBenchCT(b))
	buf, err := AppendJSON(nil, ds, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = AppendJSON(buf[:0], ds, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONEncodeMetadata1000 measures a WADO-RS /metadata response
// for a 1,000-instance series, encoded on the fly: 1,000 CT data sets
// (distinct SOP Instance UIDs), values over 1 KiB (Pixel Data) as a
// BulkDataURI, streamed to the writer. One op is the whole response; the
// URI callback's string building is the only allocation per instance.
func BenchmarkJSONEncodeMetadata1000(b *testing.B) {
	base := jsonBenchCT(b)
	series := make([]*Dataset, 1000)
	for i := range series {
		ds := &Dataset{Elements: append([]Element(nil), base.Elements...)}
		ds.Set(NewStrings(TagSOPInstanceUID, UI, "1.2.826.0.1.3680043.8.498.1."+strconv.Itoa(i)))
		series[i] = ds
	}
	opts := &JSONOptions{BulkDataThreshold: 1024, BulkDataURI: func(p ElementPath) string {
		return "https://gw.example/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5/bulkdata/" + p.String()
	}}
	cw := &jsonCountingWriter{}
	if err := EncodeJSONArray(cw, series, opts); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(cw.n)
	b.ReportAllocs()
	for b.Loop() {
		if err := EncodeJSONArray(io.Discard, series, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONArrayPrecomputed1000 is the same response assembled from
// metadata precomputed at ingest (JSONArrayWriter.WriteRaw).
func BenchmarkJSONArrayPrecomputed1000(b *testing.B) {
	ds := jsonBenchCT(b)
	opts := &JSONOptions{BulkDataURI: func(p ElementPath) string { return "bulkdata/" + p.String() }}
	obj, err := AppendJSON(nil, ds, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(1000 * (len(obj) + 1)))
	b.ReportAllocs()
	for b.Loop() {
		a := NewJSONArrayWriter(io.Discard, nil)
		for range 1000 {
			if err := a.WriteRaw(obj); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONDecodeCTHeader measures the decoder on a CT header, as
// STOW-RS with JSON metadata parses it.
func BenchmarkJSONDecodeCTHeader(b *testing.B) {
	in, err := AppendJSON(nil, jsonHeader(jsonBenchCT(b)), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeJSONBytes(in, nil); err != nil {
			b.Fatal(err)
		}
	}
}

type jsonCountingWriter struct{ n int64 }

func (w *jsonCountingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
