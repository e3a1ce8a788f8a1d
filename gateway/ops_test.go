package gateway

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/mint"
)

func TestOperations(t *testing.T) {
	e := newEnv(t, Config{BasePath: "/dw/", Version: "9.9.9"}, mint.RejectDuplicates)
	if !strings.HasSuffix(e.url, "/dw") {
		t.Fatalf("base path not honoured: %s", e.url)
	}
	e.stow(t, "/studies", instance(t, "MR_small.dcm", newIDs("", ""))).mustStatus(t, 200)

	t.Run("capabilities", func(t *testing.T) {
		for _, method := range []string{"GET", "OPTIONS"} {
			r := do(t, method, e.url+"/", nil, nil).mustStatus(t, 200)
			var doc Capabilities
			if err := json.Unmarshal(r.body, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.BaseURL != e.url || doc.Version != "9.9.9" {
				t.Errorf("baseURL %q version %q", doc.BaseURL, doc.Version)
			}
			want := map[string][]Resource{
				"STOW-RS": {{"POST", "/studies"}, {"POST", "/studies/{study}"}},
				"QIDO-RS": {{"GET", "/studies"}, {"GET", "/studies/{study}/series/{series}/instances"}},
				"WADO-RS": {{"GET", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}"},
					{"GET", "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}"},
					{"GET", "/studies/{study}/metadata"}},
				"DELETE": {{"DELETE", "/studies/{study}"}},
			}
			for svc, rs := range want {
				i := slices.IndexFunc(doc.Services, func(s ServiceResources) bool { return s.Service == svc })
				if i < 0 {
					t.Errorf("no %s", svc)
					continue
				}
				for _, r := range rs {
					if !slices.Contains(doc.Services[i].Resources, r) {
						t.Errorf("%s lacks %v", svc, r)
					}
				}
			}
			if len(doc.TransferSyntaxes.Stored) < 10 || !slices.Contains(doc.TransferSyntaxes.Transcoded, dicom.ImplicitVRLittleEndian) {
				t.Errorf("transfer syntaxes %+v", doc.TransferSyntaxes)
			}
			if doc.MediaType.Frames[dicom.JPEGBaseline8Bit] != mediaJPEG {
				t.Errorf("frame media types %v", doc.MediaType.Frames)
			}
			if len(doc.Query.DefaultReturn["study"]) == 0 || !doc.Query.FuzzyMatching {
				t.Errorf("query %+v", doc.Query)
			}
		}
	})

	t.Run("request id", func(t *testing.T) {
		r := do(t, "GET", e.url+"/studies", hdr(RequestIDHeader, "client-id-42"), nil).mustStatus(t, 200)
		if got := r.Header.Get(RequestIDHeader); got != "client-id-42" {
			t.Errorf("echoed %q", got)
		}
		r = do(t, "GET", e.url+"/studies", hdr(RequestIDHeader, "bad id with spaces"), nil).mustStatus(t, 200)
		if got := r.Header.Get(RequestIDHeader); !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(got) {
			t.Errorf("generated %q", got)
		}
		r = do(t, "GET", e.url+"/studies/1.2.3/metadata", nil, nil).mustStatus(t, 404)
		if p := r.problem(t); p.RequestID != r.Header.Get(RequestIDHeader) {
			t.Errorf("problem requestId %q, header %q", p.RequestID, r.Header.Get(RequestIDHeader))
		}
	})

	t.Run("metrics", func(t *testing.T) {
		r := do(t, "GET", e.root+"/metrics", nil, nil).mustStatus(t, 200)
		body := string(r.body)
		for _, want := range []string{
			`medimint_http_requests_total{method="GET",route="/dw/studies",status="200"}`,
			`medimint_http_requests_total{method="POST",route="/dw/studies",status="200"} 1`,
			`medimint_http_request_duration_seconds_bucket{route="/dw/studies/:study/metadata",le="+Inf"}`,
			`medimint_stow_instances_total{outcome="stored"} 1`,
			"# TYPE medimint_http_request_duration_seconds histogram",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		}
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			if !strings.HasPrefix(line, "#") && !regexp.MustCompile(`^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$`).MatchString(line) {
				t.Errorf("malformed exposition line %q", line)
			}
		}
	})

	t.Run("unknown route", func(t *testing.T) {
		do(t, "GET", e.url+"/nothing/here", nil, nil).mustStatus(t, 404).problem(t)
	})
}

func TestWithoutPipeline(t *testing.T) {
	base := start(t, New(Config{}, Deps{Logger: quietLogger()}))
	for _, path := range []string{"/dicom-web/studies", "/dicom-web/"} {
		r := do(t, "GET", base+path, nil, nil).mustStatus(t, http.StatusServiceUnavailable)
		r.problem(t)
	}
	do(t, "GET", base+"/healthz", nil, nil).mustStatus(t, 200)
}

func TestParseAccept(t *testing.T) {
	tests := []struct {
		header string
		want   []string // types, best first
	}{
		{"", []string{"*/*"}},
		{`multipart/related; type="application/dicom"; transfer-syntax=*`, []string{"multipart/related"}},
		{`multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1`, []string{"multipart/related"}},
		{`image/png;q=0.5, image/jpeg`, []string{"image/jpeg", "image/png"}},
		{`image/png;q=0, image/jpeg;q=0.1`, []string{"image/jpeg"}},
		{`text/html, garbage, */*;q=0.1`, []string{"text/html", "*/*"}},
	}
	for _, tt := range tests {
		var got []string
		for _, m := range parseAccept(tt.header) {
			got = append(got, m.typ)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("parseAccept(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
	m := parseAccept(`multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1`)[0]
	if m.part() != "application/dicom" || m.transferSyntax() != "1.2.840.10008.1.2.1" {
		t.Errorf("unquoted parameters: %+v", m)
	}
}

func TestTransferSyntaxChoice(t *testing.T) {
	const (
		ele  = dicom.ExplicitVRLittleEndian
		ile  = dicom.ImplicitVRLittleEndian
		jpeg = dicom.JPEGBaseline8Bit
	)
	tests := []struct {
		accept, stored, want string
	}{
		{`multipart/related; type="application/dicom"; transfer-syntax=*`, jpeg, jpeg},
		{`multipart/related; type="application/dicom"`, ile, ele},
		{`multipart/related; type="application/dicom"`, jpeg, jpeg},
		{`multipart/related; type="application/dicom"; transfer-syntax=` + ile, ele, ile},
		{`multipart/related; type="application/dicom"; transfer-syntax=` + ele, jpeg, ""},
		{`multipart/related; type="application/dicom"; transfer-syntax=` + jpeg, ele, ""},
		{`multipart/related; type="application/dicom"; transfer-syntax=` + jpeg + `, multipart/related; type="application/dicom"; transfer-syntax=*;q=0.5`, ele, ele},
		{`*/*`, ile, ile},
		{`multipart/related`, ile, ele},
	}
	for _, tt := range tests {
		c, ok := multipartChoice(parseAccept(tt.accept), mediaDICOM)
		if !ok {
			t.Errorf("%s: no choice", tt.accept)
			continue
		}
		if got := c.pick(tt.stored); got != tt.want {
			t.Errorf("Accept %s, stored %s: %q, want %q", tt.accept, tt.stored, got, tt.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		h      string
		ok     bool
		off, n int64
		err    bool
	}{
		{"bytes=0-9", true, 0, 10, false},
		{"bytes=90-", true, 90, 10, false},
		{"bytes=-5", true, 95, 5, false},
		{"bytes=95-200", true, 95, 5, false},
		{"bytes=100-", false, 0, 0, true},
		{"bytes=0-1,5-6", false, 0, 0, false},
		{"items=0-1", false, 0, 0, false},
		{"bytes=5-1", false, 0, 0, false},
	}
	for _, tt := range tests {
		r, ok, err := parseRange(tt.h, 100)
		if ok != tt.ok || (err != nil) != tt.err || (ok && (r.off != tt.off || r.n != tt.n)) {
			t.Errorf("parseRange(%q) = %+v %v %v", tt.h, r, ok, err)
		}
	}
}

func TestVOIWindow(t *testing.T) {
	tests := []struct {
		w    voiWindow
		x    float64
		want uint8
	}{
		{voiWindow{40, 400, "LINEAR"}, -1000, 0},
		{voiWindow{40, 400, "LINEAR"}, 1000, 255},
		{voiWindow{40, 400, "LINEAR"}, 40, 128},
		{voiWindow{0, 100, "LINEAR_EXACT"}, 0, 128},
		{voiWindow{0, 100, "LINEAR_EXACT"}, -50, 0},
		{voiWindow{0, 100, "SIGMOID"}, 0, 128},
		{voiWindow{0, 100, "SIGMOID"}, 1000, 255},
	}
	for _, tt := range tests {
		if got := tt.w.apply(tt.x); got != tt.want {
			t.Errorf("%+v.apply(%v) = %d, want %d", tt.w, tt.x, got, tt.want)
		}
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, Config{CORSOrigins: []string{"https://viewer.example"}}, mint.RejectDuplicates)
	pre := do(t, "OPTIONS", e.url+"/studies", hdr("Origin", "https://viewer.example", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "accept"), nil)
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "https://viewer.example" {
		t.Errorf("preflight: %d, Allow-Origin %q", pre.StatusCode, pre.Header.Get("Access-Control-Allow-Origin"))
	}
	r := do(t, "GET", e.url+"/studies", hdr("Origin", "https://viewer.example"), nil).mustStatus(t, 200)
	if !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Warning") {
		t.Errorf("Expose-Headers %q", r.Header.Get("Access-Control-Expose-Headers"))
	}
	r = do(t, "GET", e.url+"/studies", hdr("Origin", "https://evil.example"), nil).mustStatus(t, 200)
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("another origin allowed")
	}
	// OPTIONS without a preflight is still the capabilities request.
	do(t, "OPTIONS", e.url+"/", nil, nil).mustStatus(t, 200)
}
