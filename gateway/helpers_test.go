package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/internal/proctest"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
)

// samples holds real DICOM files (pydicom's test data), shared read-only.
const samples = "../../shared/dicom-samples/pydicom"

// env is a gateway serving a real pipeline (Postgres, a blob store in a
// temporary directory, a local KEK) on a loopback listener.
type env struct {
	srv     *Server
	root    string // http://127.0.0.1:port
	url     string // root + base path
	pipe    *mint.Pipeline
	pool    *pgxpool.Pool
	blobDir string
}

func newEnv(t testing.TB, cfg Config, dup mint.DuplicatePolicy) *env {
	t.Helper()
	pool := dbtest.New(t)
	dir := t.TempDir()
	blobs, err := blobstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, 32)
	rand.Read(kek)
	keys, err := envelope.NewLocalKEK(kek)
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := mint.New(mint.Config{Pool: pool, Blobs: blobs, Keys: keys, Duplicates: dup, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(cfg, Deps{DB: pool, Pipeline: pipe, Logger: quietLogger()})
	root := start(t, srv)
	return &env{srv: srv, root: root, url: root + srv.cfg.BasePath, pipe: pipe, pool: pool, blobDir: dir}
}

// counts returns the instance rows and blob files stored.
func (e *env) counts(t testing.TB) (rows, blobs int) {
	t.Helper()
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM instances`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(e.blobDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			blobs++
		}
		return nil
	})
	return rows, blobs
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samples, name))
	if err != nil {
		if os.IsNotExist(err) {
			t.Fatalf("sample %s missing: the shared DICOM samples must be at %s", name, samples)
		}
		t.Fatal(err)
	}
	return b
}

// ids names an instance.
type ids struct{ study, series, sop string }

func newIDs(study, series string) ids {
	if study == "" {
		study = dicom.NewUID()
	}
	if series == "" {
		series = dicom.NewUID()
	}
	return ids{study, series, dicom.NewUID()}
}

// instance returns sample file name rewritten with the given UIDs (and
// any extra elements), in its own transfer syntax.
func instance(t testing.TB, name string, id ids, extra ...dicom.Element) []byte {
	t.Helper()
	f, err := dicom.ParseBytes(readSample(t, name), dicom.ReadOptions{})
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	f.Dataset.Set(dicom.NewStrings(tag.StudyInstanceUID, dicom.UI, id.study))
	f.Dataset.Set(dicom.NewStrings(tag.SeriesInstanceUID, dicom.UI, id.series))
	f.Dataset.Set(dicom.NewStrings(tag.SOPInstanceUID, dicom.UI, id.sop))
	for _, e := range extra {
		f.Dataset.Set(e)
	}
	f.Meta.Set(dicom.NewStrings(dicom.TagMediaStorageSOPInstanceUID, dicom.UI, id.sop))
	var b bytes.Buffer
	if err := f.Write(&b, dicom.WriteOptions{}); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return b.Bytes()
}

// testBoundary is the boundary of every multipartBody, so that bodies and
// Content-Types made apart agree.
const testBoundary = "medimint-test-boundary-0123456789"

// multipartBody encodes parts as multipart/related; type=application/dicom.
func multipartBody(t testing.TB, parts ...[]byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(testBoundary); err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/dicom")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p)
	}
	mw.Close()
	return b.Bytes(), `multipart/related; type="application/dicom"; boundary=` + mw.Boundary()
}

type response struct {
	*http.Response
	body []byte
}

func do(t testing.TB, method, url string, header map[string]string, body []byte) response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, b := proctest.Do(t, req)
	return response{resp, b}
}

func (e *env) stow(t testing.TB, path string, parts ...[]byte) response {
	t.Helper()
	body, ct := multipartBody(t, parts...)
	return do(t, "POST", e.url+path, map[string]string{"Content-Type": ct, "Accept": mediaDICOMJSON}, body)
}

// mustStatus fails unless r has status want.
func (r response) mustStatus(t testing.TB, want int) response {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body: %.600s", r.Request.Method, r.Request.URL, r.StatusCode, want, r.body)
	}
	return r
}

// problem decodes a problem+json body.
func (r response) problem(t testing.TB) Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, ProblemContentType) {
		t.Fatalf("%s %s: Content-Type %q, want %s; body %.300s", r.Request.Method, r.Request.URL, ct, ProblemContentType, r.body)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if p.Status != r.StatusCode || p.Title == "" || p.RequestID == "" {
		t.Fatalf("incomplete problem %+v for status %d", p, r.StatusCode)
	}
	return p
}

// datasets decodes a DICOM JSON body.
func (r response) datasets(t testing.TB) []*dicom.Dataset {
	t.Helper()
	body := bytes.TrimSpace(r.body)
	if len(body) > 0 && body[0] == '{' {
		body = append(append([]byte("["), body...), ']')
	}
	ds, _, err := dicom.DecodeJSONBytes(body, nil)
	if err != nil {
		t.Fatalf("DICOM JSON body %.300s: %v", r.body, err)
	}
	return ds
}

// part is one part of a multipart response.
type part struct {
	header textproto.MIMEHeader
	body   []byte
}

// parts decodes a multipart/related body.
func (r response) parts(t testing.TB) []part {
	t.Helper()
	typ, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || typ != "multipart/related" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q is not multipart/related with a boundary (%v); body %.300s", r.Header.Get("Content-Type"), err, r.body)
	}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	var out []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("multipart part: %v", err)
		}
		out = append(out, part{p.Header, b})
	}
}

// pixelData returns the (native) Pixel Data value of a Part 10 object.
func pixelData(t testing.TB, obj []byte) []byte {
	t.Helper()
	f, err := dicom.ParseBytes(obj, dicom.ReadOptions{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e := f.Dataset.Get(tag.PixelData)
	if e == nil {
		t.Fatal("no Pixel Data")
		return nil
	}
	if e.Fragments != nil {
		var b []byte
		for _, fr := range e.Fragments.Items {
			b = append(b, fr.Data...)
		}
		return b
	}
	return e.Value
}

func transferSyntaxOf(t testing.TB, obj []byte) string {
	t.Helper()
	f, err := dicom.ParseBytes(obj, dicom.ReadOptions{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return f.TransferSyntax.UID
}

func hdr(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
