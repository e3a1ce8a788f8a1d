//go:build conformance

package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stow sends files in one STOW-RS request (multipart/related,
// application/dicom parts), streaming them from disk, and returns the
// HTTP status and the response body.
func stow(t testing.TB, base string, insts []Instance) (int, []byte) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, in := range insts {
			part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			f, err := os.Open(in.File())
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			_, err = io.Copy(part, f)
			f.Close()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	req, err := http.NewRequest(http.MethodPost, base+"/studies", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/dicom"; boundary=%s`, mw.Boundary()))
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("STOW-RS: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// stowCorpus stores insts over STOW-RS in requests of 20 instances and
// fails on any failed instance.
func stowCorpus(t testing.TB, base string, insts []Instance) {
	t.Helper()
	for i := 0; i < len(insts); i += 20 {
		batch := insts[i:min(i+20, len(insts))]
		code, body := stow(t, base, batch)
		if code != http.StatusOK {
			t.Fatalf("STOW-RS of %s..: HTTP %d: %s", batch[0].Path, code, body)
		}
		var rsp map[string]json.RawMessage
		if err := json.Unmarshal(body, &rsp); err != nil {
			t.Fatalf("STOW-RS response: %v: %s", err, body)
		}
		if _, failed := rsp["00081198"]; failed {
			t.Fatalf("STOW-RS response has a Failed SOP Sequence: %s", body)
		}
	}
}

// getJSON GETs u with Accept application/dicom+json and decodes the answer.
func getJSON(t testing.TB, u string) []map[string]dicomJSONAttr {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	var out []map[string]dicomJSONAttr
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return out
}

// dicomJSONAttr is one attribute of the DICOM JSON model (PS3.18 F.2).
type dicomJSONAttr struct {
	VR           string            `json:"vr"`
	Value        []json.RawMessage `json:"Value"`
	InlineBinary string            `json:"InlineBinary"`
	BulkDataURI  string            `json:"BulkDataURI"`
}

// str returns the first string value of tag, or for PN its Alphabetic
// group.
func str(ds map[string]dicomJSONAttr, tag string) string {
	a, ok := ds[tag]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) == nil {
		return s
	}
	var pn struct{ Alphabetic, Ideographic, Phonetic string }
	if json.Unmarshal(a.Value[0], &pn) == nil {
		return pn.Alphabetic
	}
	return string(a.Value[0])
}

// retrieveMultipart GETs u asking for every instance as stored and
// returns the parts' bodies.
func retrieveMultipart(t testing.TB, u, accept string) [][]byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		t.Fatalf("GET %s: Content-Type %q, want multipart/related", u, resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("GET %s: multipart: %v", u, err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("GET %s: part: %v", u, err)
		}
		parts = append(parts, b)
	}
}

const acceptAsStored = `multipart/related; type="application/dicom"; transfer-syntax=*`

// wadoCompareStudies retrieves each study from a DICOMweb base as stored
// and compares every instance with the corpus files.
func wadoCompareStudies(t *testing.T, base string, studies []string, want func(testing.TB, Instance) []byte) {
	t.Helper()
	for _, st := range studies {
		seen := map[string]bool{}
		for i, part := range retrieveMultipart(t, base+"/studies/"+st, acceptAsStored) {
			if in, ok := compareRetrieved(t, part, fmt.Sprintf("WADO-RS study %s part %d", st, i), want); ok {
				seen[in.SOP] = true
			}
		}
		checkComplete(t, []string{st}, seen, "WADO-RS")
	}
}

// TestDICOMweb stores the corpus over STOW-RS and reads it back with
// QIDO-RS and WADO-RS (instances byte for byte, metadata, frames).
func TestDICOMweb(t *testing.T) {
	track(t)
	s := startServer(t)
	base := s.DICOMweb()

	t.Run("STOW-RS", func(t *testing.T) {
		track(t)
		stowCorpus(t, base, corpus.Instances)
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("QIDO-RS", func(t *testing.T) {
		track(t)
		all := corpus.Studies()
		slices.Sort(all)
		cases := []struct {
			name  string
			query string
			want  []string
		}{
			{"all", "", all},
			{"PatientID", "PatientID=CONF-A", []string{corpusStudy("A")}},
			{"StudyDateRange", "StudyDate=20230101-20230303", sorted(corpusStudy("A"), corpusStudy("B"), corpusStudy("C"))},
			{"ModalitiesInStudy", "ModalitiesInStudy=US", []string{corpusStudy("G")}},
			{"UTF8Greek", "PatientName=" + url.QueryEscape("Γεωργίου*"), []string{corpusStudy("I")}},
			{"StudyInstanceUID", "StudyInstanceUID=" + corpusStudy("H"), []string{corpusStudy("H")}},
			{"NoMatch", "PatientID=NOBODY", nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				track(t)
				var got []string
				for _, ds := range getJSON(t, base+"/studies?"+c.query) {
					got = append(got, str(ds, "0020000D"))
				}
				slices.Sort(got)
				if !slices.Equal(got, c.want) {
					t.Errorf("QIDO-RS /studies?%s: got %v, want %v", c.query, got, c.want)
				}
			})
		}
		t.Run("InstancesOfStudy", func(t *testing.T) {
			track(t)
			st := corpusStudy("A")
			got := getJSON(t, base+"/studies/"+st+"/instances")
			if len(got) != len(corpus.Study(st)) {
				t.Errorf("QIDO-RS instances of study A: %d, want %d", len(got), len(corpus.Study(st)))
			}
		})
	})

	t.Run("WADO-RS", func(t *testing.T) {
		track(t)
		wadoCompareStudies(t, base, corpus.Studies(), fileDataset)
	})

	t.Run("Metadata", func(t *testing.T) {
		track(t)
		st := corpusStudy("I")
		md := getJSON(t, base+"/studies/"+st+"/metadata")
		if len(md) != len(corpus.Study(st)) {
			t.Fatalf("metadata of study I: %d instances, want %d", len(md), len(corpus.Study(st)))
		}
		for _, ds := range md {
			if got := str(ds, "00100010"); got != "Γεωργίου^Νίκος" {
				t.Errorf("metadata PatientName %q, want Γεωργίου^Νίκος", got)
			}
			if _, ok := corpus.Instance(str(ds, "00080018")); !ok {
				t.Errorf("metadata SOP Instance UID %q not in the corpus", str(ds, "00080018"))
			}
			if px := ds["7FE00010"]; px.InlineBinary != "" {
				t.Errorf("metadata carries Pixel Data inline, want a BulkDataURI")
			}
		}
	})

	t.Run("Frames", func(t *testing.T) {
		track(t)
		// A native multi-frame RGB instance: frame 2 is rows*cols*3 bytes.
		var in Instance
		for _, c := range corpus.Instances {
			if strings.HasPrefix(c.Path, "G/se1/") {
				in = c
				break
			}
		}
		u := fmt.Sprintf("%s/studies/%s/series/%s/instances/%s/frames/2", base, in.Study, in.Series, in.SOP)
		parts := retrieveMultipart(t, u, `multipart/related; type="application/octet-stream"`)
		if len(parts) != 1 || len(parts[0]) != 64*64*3 {
			t.Fatalf("frames/2 of %s: %d parts, first %d bytes; want 1 part of %d", in.Path, len(parts), len(parts[0]), 64*64*3)
		}
		file, err := os.ReadFile(in.File())
		if err != nil {
			t.Fatal(err)
		}
		// Pixel Data is the file's last element: frame 2 is the second
		// rows*cols*3 bytes of its value.
		pixels := file[len(file)-6*64*64*3:]
		if !bytes.Equal(parts[0], pixels[64*64*3:2*64*64*3]) {
			t.Errorf("frames/2 of %s differs from the file's second frame", in.Path)
		}
	})
}

// jstest is the gateway's dicomweb-client harness (gateway/jstest), reused.
const jstest = "../gateway/jstest"

// nodeModules installs the harness's npm dependencies (dicomweb-client,
// xhr2) into the cache, once per lock file, and returns the directory for
// NODE_PATH: the harness directory itself belongs to the gateway.
func nodeModules(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node missing (apt-get install -y nodejs npm): %v", err)
	}
	lock, err := os.ReadFile(filepath.Join(jstest, "package-lock.json"))
	if err != nil {
		t.Fatalf("dicomweb-client harness: %v", err)
	}
	sum := sha256.Sum256(lock)
	dir := filepath.Join(filepath.Dir(logsDir), "jstest-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "dicomweb-client")); err == nil {
		return filepath.Join(dir, "node_modules")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(jstest, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	return filepath.Join(dir, "node_modules")
}

// TestDicomwebClient drives Medimint with dicomweb-client, the library
// OHIF uses: store, search, metadata, instance, frames, bulk data and
// study retrieval, compared with the corpus bytes. Native pixel data is the
// last element of these corpus files, so frames are cut from the file's end.
func TestDicomwebClient(t *testing.T) {
	track(t)
	nodePath := nodeModules(t)
	s := startServer(t)
	cases := []struct {
		name           string
		prefix         string
		frames, frameN int
	}{
		{"SingleFrameCR", "K/se1/", 1, 256 * 256},
		{"MultiFrameUS", "G/se1/", 6, 64 * 64 * 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			track(t)
			dir := t.TempDir()
			type inst struct {
				File      string   `json:"file"`
				Series    string   `json:"series"`
				SOP       string   `json:"sop"`
				Frames    []string `json:"frames"`
				PixelData string   `json:"pixelData"`
			}
			m := struct {
				URL       string `json:"url"`
				PatientID string `json:"patientID"`
				Study     string `json:"study"`
				Instances []inst `json:"instances"`
			}{URL: s.DICOMweb()}
			for _, in := range corpus.Instances {
				if !strings.HasPrefix(in.Path, c.prefix) {
					continue
				}
				m.PatientID, m.Study = in.PatientID, in.Study
				b, err := os.ReadFile(in.File())
				if err != nil {
					t.Fatal(err)
				}
				pixels := b[len(b)-c.frames*c.frameN:]
				it := inst{File: in.File(), Series: in.Series, SOP: in.SOP, PixelData: filepath.Join(dir, in.SOP+".pixels")}
				if err := os.WriteFile(it.PixelData, pixels, 0o644); err != nil {
					t.Fatal(err)
				}
				for k := range c.frames {
					f := filepath.Join(dir, fmt.Sprintf("%s.frame%d", in.SOP, k+1))
					if err := os.WriteFile(f, pixels[k*c.frameN:(k+1)*c.frameN], 0o644); err != nil {
						t.Fatal(err)
					}
					it.Frames = append(it.Frames, f)
				}
				m.Instances = append(m.Instances, it)
			}
			j, _ := json.Marshal(m)
			manifest := filepath.Join(dir, "manifest.json")
			if err := os.WriteFile(manifest, j, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("node", "dicomweb-client.cjs", manifest)
			cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath, "MEDIMINT_API_KEY="+s.APIKey)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("dicomweb-client: %v\n%s", err, out)
			}
			t.Logf("%s", bytes.TrimSpace(out))
		})
	}
}
