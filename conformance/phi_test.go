//go:build conformance

package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The PHI markers of the corpus's marker study (mkcorpus.sh): every PHI
// string attribute starts with phiMarker, the birth date is phiDate.
var phiMarkers = [][]byte{[]byte("PHIMARK_"), []byte("19070911")}

// containsPHI reports which marker b contains, if any.
func containsPHI(b []byte) (string, bool) {
	for _, m := range phiMarkers {
		if i := bytes.Index(b, m); i >= 0 {
			end := min(len(b), i+40)
			return fmt.Sprintf("%q", b[i:end]), true
		}
	}
	return "", false
}

// TestPHI stores the marker study, checks that it went in (QIDO-RS finds
// it by its PHI, WADO-RS gives the markers back), waits for the study to
// be completed (pinned) and minted, then scans everything at rest, pinned
// or on chain for a marker: the data directory (encrypted blobs, local
// IPFS blocks, devnet state), and every transaction the devnet's Horizon
// API lists, base64 values decoded.
func TestPHI(t *testing.T) {
	track(t)
	s := startServer(t)
	var phi []Instance
	for _, in := range corpus.Instances {
		if in.PHI {
			phi = append(phi, in)
		}
	}
	storeDIMSE(t, s.AETitle, s.DIMSEPort, phi)
	txBefore := len(horizonRecords(t, s.Horizon, "/transactions"))

	t.Run("MarkersWentIn", func(t *testing.T) {
		track(t)
		found := getJSON(t, s.DICOMweb()+"/studies?PatientID=PHIMARK_PatientID")
		if len(found) != 1 {
			t.Fatalf("QIDO-RS PatientID=PHIMARK_PatientID: %d studies, want 1", len(found))
		}
		parts := retrieveMultipart(t, s.DICOMweb()+"/studies/"+phi[0].Study, acceptAsStored)
		if len(parts) != len(phi) {
			t.Fatalf("WADO-RS of the marker study: %d instances, want %d", len(parts), len(phi))
		}
		if _, ok := containsPHI(parts[0]); !ok {
			t.Fatalf("the retrieved marker study holds no marker: the scan below would prove nothing")
		}
	})

	// Completion pins the study after a quiet period (mint.DefaultStableAge,
	// 60s), then the minter submits; both are awaited, bounded.
	pinned := filepath.Join(s.DataDir, "ipfs")
	if err := waitFor(3*time.Minute, time.Second, func() (bool, error) {
		entries, err := os.ReadDir(pinned)
		if err != nil && !os.IsNotExist(err) {
			return false, err
		}
		return len(entries) > 0, nil
	}); err != nil {
		t.Fatalf("nothing pinned under %s within 3 min of the store: %v", pinned, err)
	}
	minted := waitFor(2*time.Minute, time.Second, func() (bool, error) {
		return len(horizonRecords(t, s.Horizon, "/transactions")) > txBefore, nil
	}) == nil

	t.Run("DataDirectory", func(t *testing.T) {
		track(t)
		files := 0
		err := filepath.WalkDir(s.DataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			if m, ok := containsPHI(b); ok {
				t.Errorf("PHI at rest: %s contains %s", path, m)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files == 0 {
			t.Fatal("the data directory is empty")
		}
		t.Logf("%d files scanned", files)
	})

	t.Run("Pinned", func(t *testing.T) {
		track(t)
		entries, err := os.ReadDir(pinned)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(pinned, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := containsPHI(b); ok {
				t.Errorf("PHI pinned to IPFS: %s contains %s", e.Name(), m)
			}
		}
	})

	t.Run("OnChain", func(t *testing.T) {
		track(t)
		if !minted {
			t.Fatalf("no transaction reached the devnet within 2 min of completion: the study was not minted")
		}
		n := 0
		for _, kind := range []string{"/transactions", "/operations", "/effects"} {
			for _, rec := range horizonRecords(t, s.Horizon, kind) {
				n++
				for _, b := range append([][]byte{rec}, decodedStrings(rec)...) {
					if m, ok := containsPHI(b); ok {
						t.Errorf("PHI on chain: a %s record contains %s", strings.TrimPrefix(kind, "/"), m)
					}
				}
			}
		}
		t.Logf("%d Horizon records scanned", n)
	})
}

// horizonRecords pages through a Horizon collection (bounded) and returns
// each record's raw JSON.
func horizonRecords(t testing.TB, horizon, path string) [][]byte {
	t.Helper()
	var out [][]byte
	next := horizon + path + "?limit=200&order=asc"
	for page := 0; page < 1000 && next != ""; page++ {
		resp, err := client.Get(next)
		if err != nil {
			t.Fatalf("Horizon %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Horizon %s: HTTP %d: %s", path, resp.StatusCode, body)
		}
		var p struct {
			Links struct {
				Next struct{ Href string } `json:"next"`
			} `json:"_links"`
			Embedded struct {
				Records []json.RawMessage `json:"records"`
			} `json:"_embedded"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("Horizon %s: %v", path, err)
		}
		if len(p.Embedded.Records) == 0 {
			break
		}
		for _, r := range p.Embedded.Records {
			out = append(out, r)
		}
		next = p.Links.Next.Href
	}
	return out
}

var jsonString = regexp.MustCompile(`"([A-Za-z0-9+/=]{8,})"`)

// decodedStrings returns every JSON string value of rec that decodes as
// base64 (XDR envelopes and metadata, data entry values, memos).
func decodedStrings(rec []byte) [][]byte {
	var out [][]byte
	for _, m := range jsonString.FindAllSubmatch(rec, -1) {
		if b, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil {
			out = append(out, b)
		}
	}
	return out
}
