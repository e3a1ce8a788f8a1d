// Command loadgen is the DICOMweb client of the system benchmark
// (scripts/bench-system.sh): the same requests against Medimint and
// Orthanc, timed the same way. Each run prints one JSON object per figure
// on stdout: {"metric": ..., "value": ..., "unit": ...}.
//
//	loadgen stow     -url BASE -corpus DIR [-batch 20] [-api-key KEY]
//	loadgen wado     -url BASE -corpus DIR
//	loadgen qido     -url BASE -corpus DIR [-n 200]
//	loadgen metadata -url BASE -corpus DIR [-n 50]
//
// DIR is a corpus built by /work/shared/corpus/bench-corpus.sh (its
// index.tsv lists path, size, patient, study of each instance).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen stow|wado|qido|metadata -url BASE -corpus DIR")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	base := fs.String("url", "", "DICOMweb base URL, e.g. http://127.0.0.1:8042/dicom-web")
	dir := fs.String("corpus", "", "bench corpus directory")
	batch := fs.Int("batch", 20, "instances per STOW-RS request")
	n := fs.Int("n", 200, "requests (qido, metadata)")
	timeout := fs.Duration("timeout", 10*time.Minute, "bound on the whole run")
	apiKey := fs.String("api-key", "", "X-API-Key sent with every request (Medimint's gate)")
	fs.Parse(os.Args[2:])
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := loadCorpus(*dir)
	if err != nil {
		fail(err)
	}
	g := &gen{base: strings.TrimRight(*base, "/"), corpus: c, client: &http.Client{Transport: keyed{*apiKey}}}
	switch os.Args[1] {
	case "stow":
		err = g.stow(ctx, *batch)
	case "wado":
		err = g.wado(ctx)
	case "qido":
		err = g.qido(ctx, *n)
	case "metadata":
		err = g.metadata(ctx, *n)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

type instance struct {
	path           string
	size           int64
	patient, study string
}

type corpus struct {
	dir       string
	instances []instance
	studies   []string // in corpus order
	patients  []string
}

func loadCorpus(dir string) (*corpus, error) {
	f, err := os.Open(filepath.Join(dir, "index.tsv"))
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	c := &corpus{dir: dir}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v := strings.Split(sc.Text(), "\t")
		if strings.HasPrefix(v[0], "#") || len(v) < 4 {
			continue
		}
		var size int64
		fmt.Sscan(v[1], &size)
		c.instances = append(c.instances, instance{path: filepath.Join(dir, v[0]), size: size, patient: v[2], study: v[3]})
		if !slices.Contains(c.studies, v[3]) {
			c.studies = append(c.studies, v[3])
			c.patients = append(c.patients, v[2])
		}
	}
	if len(c.instances) == 0 {
		return nil, errors.New("corpus: empty index.tsv")
	}
	return c, sc.Err()
}

// keyed adds the API key, if any, to every request.
type keyed struct{ key string }

func (k keyed) RoundTrip(req *http.Request) (*http.Response, error) {
	if k.key != "" {
		req = req.Clone(req.Context())
		req.Header.Set("X-API-Key", k.key)
	}
	return http.DefaultTransport.RoundTrip(req)
}

type gen struct {
	base   string
	corpus *corpus
	client *http.Client
}

func emit(metric string, value float64, unit string) {
	json.NewEncoder(os.Stdout).Encode(map[string]any{"metric": metric, "value": value, "unit": unit})
}

// stow sends the corpus in STOW-RS requests of batch instances, one
// request at a time, each body streamed from disk.
func (g *gen) stow(ctx context.Context, batch int) error {
	var bytes int64
	start := time.Now()
	insts := g.corpus.instances
	for i := 0; i < len(insts); i += batch {
		part := insts[i:min(i+batch, len(insts))]
		if err := g.stowOne(ctx, part); err != nil {
			return err
		}
		for _, in := range part {
			bytes += in.size
		}
	}
	secs := time.Since(start).Seconds()
	emit("stow_inst_per_s", float64(len(insts))/secs, "inst/s")
	emit("stow_mb_per_s", float64(bytes)/secs/1e6, "MB/s")
	return nil
}

func (g *gen) stowOne(ctx context.Context, insts []instance) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, in := range insts {
			w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
			if err == nil {
				var f *os.File
				if f, err = os.Open(in.path); err == nil {
					_, err = io.Copy(w, f)
					f.Close()
				}
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/studies", pr)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("STOW-RS: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("STOW-RS: HTTP %d: %.300s", resp.StatusCode, body)
	}
	return nil
}

// wado retrieves every study, in the default transfer syntax
// (Explicit VR Little Endian, the corpus's own: no transcoding on either
// server), and reports the aggregate rate.
func (g *gen) wado(ctx context.Context) error {
	// One untimed pass first (connection set-up, caches), then
	// wadoPasses timed ones: a single pass over the corpus lasts about a
	// tenth of a second, too short to measure alone.
	var bytes int64
	var start time.Time
	for pass := range wadoPasses + 1 {
		if pass == 1 {
			bytes, start = 0, time.Now()
		}
		for _, st := range g.corpus.studies {
			n, err := g.get(ctx, g.base+"/studies/"+st, `multipart/related; type="application/dicom"`)
			if err != nil {
				return err
			}
			bytes += n
		}
	}
	secs := time.Since(start).Seconds()
	emit("wado_study_mb_per_s", float64(bytes)/secs/1e6, "MB/s")
	return nil
}

// wadoPasses is how many times wado retrieves every study, timed.
const wadoPasses = 3

// get fetches u and returns the body's length.
func (g *gen) get(ctx context.Context, u, accept string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", accept)
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return n, nil
}

// latencies runs n GETs of the URLs next gives and emits p50 and p95.
func (g *gen) latencies(ctx context.Context, metric string, n int, accept string, next func(i int) string) error {
	ds := make([]time.Duration, 0, n)
	// One warm-up request: connection set-up is not what is measured.
	if _, err := g.get(ctx, next(0), accept); err != nil {
		return err
	}
	for i := range n {
		start := time.Now()
		if _, err := g.get(ctx, next(i), accept); err != nil {
			return err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))]) / 1e6 }
	emit(metric+"_p50", q(0.50), "ms")
	emit(metric+"_p95", q(0.95), "ms")
	return nil
}

func (g *gen) qido(ctx context.Context, n int) error {
	c := g.corpus
	if err := g.latencies(ctx, "qido_patientid", n, "application/dicom+json", func(i int) string {
		return g.base + "/studies?PatientID=" + url.QueryEscape(c.patients[i%len(c.patients)])
	}); err != nil {
		return err
	}
	// The bench corpus's study dates are 20240101..20240110.
	return g.latencies(ctx, "qido_studydate_range", n, "application/dicom+json", func(i int) string {
		d := 1 + i%8
		return fmt.Sprintf("%s/studies?StudyDate=202401%02d-202401%02d", g.base, d, d+2)
	})
}

func (g *gen) metadata(ctx context.Context, n int) error {
	c := g.corpus
	return g.latencies(ctx, "metadata", n, "application/dicom+json", func(i int) string {
		return g.base + "/studies/" + c.studies[i%len(c.studies)] + "/metadata"
	})
}
