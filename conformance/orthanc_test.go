//go:build conformance

package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// orthancDicomWebPlugin is where Debian's orthanc-dicomweb puts the plugin.
const orthancDicomWebPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

// Orthanc is one Orthanc started for a test, on loopback ports of its own,
// knowing a Medimint server as DICOM modality "medimint" and as DICOMweb
// server "medimint", and a bit-preserving storescp as modality "wire".
type Orthanc struct {
	HTTP      string
	DICOMPort int
	WireDir   string // what Orthanc sent to modality "wire"
}

func startOrthanc(t *testing.T, mm *Server) *Orthanc {
	t.Helper()
	if _, err := exec.LookPath("Orthanc"); err != nil {
		t.Fatalf("Orthanc missing (apt-get install -y orthanc orthanc-dicomweb; scripts/conformance-deps.sh): %v", err)
	}
	if _, err := os.Stat(orthancDicomWebPlugin); err != nil {
		t.Fatalf("Orthanc DICOMweb plugin missing (apt-get install -y orthanc-dicomweb): %v", err)
	}
	dir := t.TempDir()
	o := &Orthanc{DICOMPort: freePort(t), WireDir: filepath.Join(dir, "wire")}
	httpPort := freePort(t)
	wirePort := freePort(t)
	o.HTTP = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	cfg := map[string]any{
		"Name":                       "conformance",
		"StorageDirectory":           filepath.Join(dir, "storage"),
		"IndexDirectory":             filepath.Join(dir, "index"),
		"HttpPort":                   httpPort,
		"DicomPort":                  o.DICOMPort,
		"DicomAet":                   "ORTHANC",
		"RemoteAccessAllowed":        false,
		"AuthenticationEnabled":      false,
		"DicomAlwaysAllowStore":      false,
		"StorageCompression":         false,
		"SaveJobs":                   false,
		"DicomAssociationCloseDelay": 0,
		// Bounds a stuck DICOMweb request (libcurl's timeout, seconds).
		"HttpTimeout": 30,
		"DicomModalities": map[string]any{
			"medimint": []any{mm.AETitle, "127.0.0.1", mm.DIMSEPort},
			"wire":     []any{"WIRE", "127.0.0.1", wirePort},
		},
		"Plugins": []string{orthancDicomWebPlugin},
		"DicomWeb": map[string]any{
			"Enable": true,
			"Root":   "/dicom-web/",
			"Servers": map[string]any{"medimint": map[string]any{
				"Url":         mm.DICOMweb() + "/",
				"HttpHeaders": map[string]string{"X-API-Key": mm.APIKey},
			}},
		},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgFile := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(cfgFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(o.WireDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command("Orthanc", cfgFile)
	// Orthanc's DICOM server is dcmtk's: without TCP_NODELAY=1 its
	// responses wait on Nagle.
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	cmd.Stdout, cmd.Stderr = &syncWriter{buf: &log}, &syncWriter{buf: &log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wire := exec.Command("storescp", "+B", "+xa", "-aet", "WIRE", "-od", o.WireDir, strconv.Itoa(wirePort))
	wire.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := wire.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		wire.Process.Kill()
		wire.Wait()
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			name := filepath.Join(logsDir, "orthanc-"+filepath.Base(t.Name())+".log")
			os.WriteFile(name, log.Bytes(), 0o644)
			t.Logf("Orthanc log: %s", name)
		}
	})
	if err := waitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
		resp, err := http.Get(o.HTTP + "/system")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("Orthanc did not start: %v", err)
	}
	return o
}

// syncWriter serialises writes of two streams into one buffer.
type syncWriter struct{ buf *bytes.Buffer }

var orthancLogMu = make(chan struct{}, 1)

func (w *syncWriter) Write(p []byte) (int, error) {
	orthancLogMu <- struct{}{}
	defer func() { <-orthancLogMu }()
	return w.buf.Write(p)
}

// call sends a REST request to Orthanc and decodes a JSON answer into out.
func (o *Orthanc) call(t testing.TB, method, path string, body any, out any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, o.HTTP+path, rd)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("Orthanc %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Orthanc %s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("Orthanc %s %s: %v: %s", method, path, err, data)
		}
	}
}

// upload puts every corpus file into Orthanc and returns Orthanc's study
// ids by Study Instance UID.
func (o *Orthanc) upload(t testing.TB, insts []Instance) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, in := range insts {
		b, err := os.ReadFile(in.File())
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			ParentStudy string
			Status      string
		}
		o.call(t, http.MethodPost, "/instances", b, &r)
		ids[in.Study] = r.ParentStudy
	}
	return ids
}

// TestOrthancPushesDIMSE: Orthanc, as a PACS, sends the corpus to
// Medimint with C-STORE (REST /modalities/medimint/store); what Medimint
// serves back over WADO-RS equals, byte for byte, what Orthanc sent (as
// captured by a bit-preserving storescp Orthanc also sends to).
func TestOrthancPushesDIMSE(t *testing.T) {
	track(t)
	s := startServer(t)
	o := startOrthanc(t, s)
	ids := o.upload(t, corpus.Instances)
	var all []string
	for _, st := range corpus.Studies() {
		all = append(all, ids[st])
	}
	for _, modality := range []string{"medimint", "wire"} {
		var r map[string]any
		o.call(t, http.MethodPost, "/modalities/"+modality+"/store", map[string]any{"Resources": all, "Synchronous": true}, &r)
		if fmt.Sprint(r["FailedInstancesCount"]) != "0" || fmt.Sprint(r["InstancesCount"]) != strconv.Itoa(len(corpus.Instances)) {
			t.Fatalf("Orthanc C-STORE to %s: %v", modality, r)
		}
	}
	sent := map[string][]byte{}
	entries, err := os.ReadDir(o.WireDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p, err := ReadPart10(filepath.Join(o.WireDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sent[p.MetaString(tagMediaStorageSOPInstance)] = p.Dataset
	}
	wadoCompareStudies(t, s.DICOMweb(), corpus.Studies(), func(t testing.TB, in Instance) []byte {
		b, ok := sent[in.SOP]
		if !ok {
			t.Fatalf("Orthanc did not send %s to the wire capture", in.Path)
		}
		return b
	})
}

// TestOrthancSTOW: Orthanc's DICOMweb client stores the corpus in
// Medimint with STOW-RS (/dicom-web/servers/medimint/stow); Medimint
// serves back the very files.
func TestOrthancSTOW(t *testing.T) {
	track(t)
	s := startServer(t)
	o := startOrthanc(t, s)
	ids := o.upload(t, corpus.Instances)
	var all []string
	for _, st := range corpus.Studies() {
		all = append(all, ids[st])
	}
	o.call(t, http.MethodPost, "/dicom-web/servers/medimint/stow", map[string]any{"Resources": all, "Synchronous": true}, nil)
	wadoCompareStudies(t, s.DICOMweb(), corpus.Studies(), fileDataset)
}

// TestOrthancRetrievesWADO: the corpus is stored in Medimint over STOW-RS;
// Orthanc's DICOMweb client finds it with QIDO-RS and retrieves every study
// with WADO-RS (/dicom-web/servers/medimint/retrieve); what Orthanc then
// holds equals the corpus files.
func TestOrthancRetrievesWADO(t *testing.T) {
	track(t)
	s := startServer(t)
	stowCorpus(t, s.DICOMweb(), corpus.Instances)
	o := startOrthanc(t, s)

	t.Run("QIDO-RS", func(t *testing.T) {
		track(t)
		var found []map[string]any
		o.call(t, http.MethodPost, "/dicom-web/servers/medimint/qido",
			map[string]any{"Uri": "/studies", "Arguments": map[string]string{"PatientID": "CONF-A"}}, &found)
		if len(found) != 1 {
			t.Fatalf("Orthanc QIDO-RS through Medimint: %d studies for PatientID=CONF-A, want 1: %v", len(found), found)
		}
	})

	t.Run("WADO-RS", func(t *testing.T) {
		track(t)
		var resources []map[string]string
		for _, st := range corpus.Studies() {
			resources = append(resources, map[string]string{"Study": st})
		}
		o.call(t, http.MethodPost, "/dicom-web/servers/medimint/retrieve", map[string]any{"Resources": resources, "Synchronous": true}, nil)
		var instances []string
		o.call(t, http.MethodGet, "/instances", nil, &instances)
		seen := map[string]bool{}
		for _, id := range instances {
			req, _ := http.NewRequest(http.MethodGet, o.HTTP+"/instances/"+id+"/file", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if in, ok := compareRetrieved(t, b, "Orthanc instance "+id, fileDataset); ok {
				seen[in.SOP] = true
			}
		}
		checkComplete(t, corpus.Studies(), seen, "Orthanc WADO-RS retrieve")
	})
}
