package gateway

import (
	"bytes"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/mint"
)

// TestStoreRetrieve stores instances in several transfer syntaxes over
// STOW-RS and retrieves them every way WADO-RS allows, comparing with
// the bytes sent.
func TestStoreRetrieve(t *testing.T) {
	e := newEnv(t, Config{}, mint.RejectDuplicates)
	study, series := dicom.NewUID(), dicom.NewUID()
	ct := newIDs(study, series)
	impl := newIDs(study, series)
	j2k := newIDs(study, dicom.NewUID())
	be := newIDs(study, dicom.NewUID())
	rgb := newIDs(study, dicom.NewUID())
	objs := map[string][]byte{
		ct.sop:   instance(t, "CT_small.dcm", ct),
		impl.sop: instance(t, "MR_small_implicit.dcm", impl),
		j2k.sop:  instance(t, "JPEG2000.dcm", j2k),
		be.sop:   instance(t, "MR_small_bigendian.dcm", be),
		rgb.sop:  instance(t, "SC_rgb_2frame.dcm", rgb),
	}
	r := e.stow(t, "/studies/"+study, objs[ct.sop], objs[impl.sop], objs[j2k.sop], objs[be.sop], objs[rgb.sop]).mustStatus(t, http.StatusOK)
	resp := r.datasets(t)[0]
	if got := resp.String(tag.RetrieveURL); got != e.url+"/studies/"+study {
		t.Errorf("RetrieveURL %q", got)
	}
	refs := resp.Get(tag.ReferencedSOPSequence)
	if refs == nil || len(refs.Items) != 5 || resp.Get(tag.FailedSOPSequence) != nil {
		t.Fatalf("store response: %+v", resp)
	}
	for _, it := range refs.Items {
		sop := it.String(tag.ReferencedSOPInstanceUID)
		if objs[sop] == nil || !strings.HasSuffix(it.String(tag.RetrieveURL), "/instances/"+sop) || it.String(tag.ReferencedSOPClassUID) == "" {
			t.Errorf("referenced SOP item %+v", it)
		}
	}
	mrLE := pixelData(t, readSample(t, "MR_small.dcm"))

	t.Run("study as stored", func(t *testing.T) {
		r := do(t, "GET", e.url+"/studies/"+study, hdr("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`), nil).mustStatus(t, 200)
		parts := r.parts(t)
		if len(parts) != 5 {
			t.Fatalf("%d parts", len(parts))
		}
		for _, p := range parts {
			loc := p.header.Get("Content-Location")
			sop := loc[strings.LastIndex(loc, "/")+1:]
			if !bytes.Equal(p.body, objs[sop]) {
				t.Errorf("instance %s differs from what was stored (%d vs %d bytes)", sop, len(p.body), len(objs[sop]))
			}
			if want := "transfer-syntax=" + transferSyntaxOf(t, objs[sop]); !strings.Contains(p.header.Get("Content-Type"), want) {
				t.Errorf("part Content-Type %q, want %s", p.header.Get("Content-Type"), want)
			}
		}
		if r.Header.Get("ETag") == "" || !strings.Contains(r.Header.Get("Cache-Control"), "private") {
			t.Errorf("ETag %q Cache-Control %q", r.Header.Get("ETag"), r.Header.Get("Cache-Control"))
		}
		again := do(t, "GET", e.url+"/studies/"+study, hdr("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`, "If-None-Match", r.Header.Get("ETag")), nil)
		again.mustStatus(t, http.StatusNotModified)
		// HEAD starts the stream and must end it without a body.
		head := do(t, "HEAD", e.url+"/studies/"+study, hdr("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`), nil).mustStatus(t, 200)
		if len(head.body) != 0 || head.Header.Get("ETag") != r.Header.Get("ETag") {
			t.Errorf("HEAD: %d bytes, ETag %q", len(head.body), head.Header.Get("ETag"))
		}
	})

	t.Run("default transfer syntax", func(t *testing.T) {
		// No transfer-syntax: Explicit VR Little Endian where the codec
		// can transcode, as stored (and said so) where it cannot.
		r := do(t, "GET", e.url+"/studies/"+study, hdr("Accept", `multipart/related; type="application/dicom"`), nil).mustStatus(t, 200)
		for _, p := range r.parts(t) {
			loc := p.header.Get("Content-Location")
			sop := loc[strings.LastIndex(loc, "/")+1:]
			ts := transferSyntaxOf(t, p.body)
			switch sop {
			case j2k.sop:
				if ts != dicom.JPEG2000Lossless && ts != dicom.JPEG2000 || !bytes.Equal(p.body, objs[sop]) {
					t.Errorf("JPEG 2000 instance came back as %s", ts)
				}
			case be.sop:
				if ts != dicom.ExplicitVRLittleEndian || !bytes.Equal(pixelData(t, p.body), mrLE) {
					t.Errorf("big endian instance: %s, pixel data not the little endian image", ts)
				}
			case ct.sop:
				if !bytes.Equal(p.body, objs[sop]) {
					t.Error("explicit little endian instance changed")
				}
			default:
				if ts != dicom.ExplicitVRLittleEndian || !bytes.Equal(pixelData(t, p.body), pixelData(t, objs[sop])) {
					t.Errorf("%s: %s or pixel data changed", sop, ts)
				}
			}
			if !strings.Contains(p.header.Get("Content-Type"), "transfer-syntax="+ts) {
				t.Errorf("part Content-Type %q for %s", p.header.Get("Content-Type"), ts)
			}
		}
	})

	t.Run("transcode", func(t *testing.T) {
		for _, want := range []string{dicom.ImplicitVRLittleEndian, dicom.ExplicitVRBigEndian, dicom.DeflatedExplicitVRLittleEndian, dicom.ExplicitVRLittleEndian} {
			r := do(t, "GET", e.url+"/studies/"+study+"/series/"+series, hdr("Accept", `multipart/related; type="application/dicom"; transfer-syntax=`+want), nil).mustStatus(t, 200)
			parts := r.parts(t)
			if len(parts) != 2 {
				t.Fatalf("%d parts", len(parts))
			}
			for _, p := range parts {
				if ts := transferSyntaxOf(t, p.body); ts != want {
					t.Errorf("asked for %s, got %s", want, ts)
				}
			}
			if !bytes.Equal(pixelData(t, parts[0].body), pixelData(t, objs[ct.sop])) && !bytes.Equal(pixelData(t, parts[1].body), pixelData(t, objs[ct.sop])) {
				t.Errorf("%s: CT pixel data changed", want)
			}
		}
		// The big endian instance, as implicit little endian.
		r := do(t, "GET", e.url+"/studies/"+study+"/series/"+be.series+"/instances/"+be.sop, hdr("Accept", `multipart/related; type="application/dicom"; transfer-syntax=`+dicom.ImplicitVRLittleEndian), nil).mustStatus(t, 200)
		if p := r.parts(t); len(p) != 1 || !bytes.Equal(pixelData(t, p[0].body), mrLE) {
			t.Error("big endian to implicit little endian: pixel data differs from the little endian image")
		}
	})

	t.Run("not acceptable", func(t *testing.T) {
		for _, accept := range []string{
			`multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`, // the study holds JPEG 2000
			`application/dicom+xml`,
			`multipart/related; type="application/octet-stream"`,
		} {
			r := do(t, "GET", e.url+"/studies/"+study, hdr("Accept", accept), nil).mustStatus(t, http.StatusNotAcceptable)
			r.problem(t)
		}
	})

	t.Run("single part instance with range", func(t *testing.T) {
		url := e.url + "/studies/" + study + "/series/" + series + "/instances/" + ct.sop
		whole := do(t, "GET", url, hdr("Accept", "application/dicom; transfer-syntax=*"), nil).mustStatus(t, 200)
		if !bytes.Equal(whole.body, objs[ct.sop]) || whole.Header.Get("Accept-Ranges") != "bytes" {
			t.Fatalf("single part: %d bytes, Accept-Ranges %q", len(whole.body), whole.Header.Get("Accept-Ranges"))
		}
		r := do(t, "GET", url, hdr("Accept", "application/dicom; transfer-syntax=*", "Range", "bytes=128-131"), nil).mustStatus(t, http.StatusPartialContent)
		if string(r.body) != "DICM" || r.Header.Get("Content-Range") != sprintf("bytes 128-131/%d", len(objs[ct.sop])) {
			t.Errorf("range: %q, Content-Range %q", r.body, r.Header.Get("Content-Range"))
		}
		r = do(t, "GET", url, hdr("Accept", "application/dicom; transfer-syntax=*", "Range", "bytes=-10"), nil).mustStatus(t, http.StatusPartialContent)
		if !bytes.Equal(r.body, objs[ct.sop][len(objs[ct.sop])-10:]) {
			t.Error("suffix range")
		}
		do(t, "GET", url, hdr("Accept", "application/dicom; transfer-syntax=*", "Range", "bytes=999999-"), nil).mustStatus(t, http.StatusRequestedRangeNotSatisfiable)
	})

	t.Run("metadata", func(t *testing.T) {
		r := do(t, "GET", e.url+"/studies/"+study+"/metadata", hdr("Accept", mediaDICOMJSON), nil).mustStatus(t, 200)
		if !strings.HasPrefix(r.Header.Get("Content-Type"), mediaDICOMJSON) {
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		}
		if !bytes.Contains(r.body, []byte(`"BulkDataURI":"`+e.url+"/studies/"+study+"/series/")) {
			t.Errorf("metadata has no BulkDataURI rebased on %s: %.300s", e.url, r.body)
		}
		if ds := r.datasets(t); len(ds) != 5 {
			t.Errorf("%d instances in study metadata", len(ds))
		}
		sr := do(t, "GET", e.url+"/studies/"+study+"/series/"+series+"/metadata", nil, nil).mustStatus(t, 200)
		if ds := sr.datasets(t); len(ds) != 2 {
			t.Errorf("%d instances in series metadata", len(ds))
		}
		inst := do(t, "GET", e.url+"/studies/"+study+"/series/"+rgb.series+"/instances/"+rgb.sop+"/metadata", nil, nil).mustStatus(t, 200)
		ds := inst.datasets(t)
		if len(ds) != 1 || ds[0].String(tag.SOPInstanceUID) != rgb.sop || ds[0].String(tag.NumberOfFrames) != "2" {
			t.Errorf("instance metadata %+v", ds)
		}
		do(t, "GET", e.url+"/studies/"+study+"/metadata", hdr("If-None-Match", r.Header.Get("ETag")), nil).mustStatus(t, http.StatusNotModified)
		do(t, "GET", e.url+"/studies/"+study+"/metadata", hdr("Accept", mediaDICOMXML), nil).mustStatus(t, http.StatusNotAcceptable).problem(t)
		do(t, "GET", e.url+"/studies/1.2.3.4.5/metadata", nil, nil).mustStatus(t, http.StatusNotFound).problem(t)
		// A series filed under another study is not found under this one.
		do(t, "GET", e.url+"/studies/1.2.3.4.5/series/"+series+"/metadata", nil, nil).mustStatus(t, http.StatusNotFound).problem(t)
		do(t, "GET", e.url+"/studies/1.2.abc/metadata", nil, nil).mustStatus(t, http.StatusBadRequest).problem(t)
	})

	t.Run("frames", func(t *testing.T) {
		base := e.url + "/studies/" + study + "/series/" + rgb.series + "/instances/" + rgb.sop + "/frames/"
		pix := pixelData(t, objs[rgb.sop])
		half := len(pix) / 2
		r := do(t, "GET", base+"2,1", hdr("Accept", `multipart/related; type="application/octet-stream"; transfer-syntax=*`), nil).mustStatus(t, 200)
		parts := r.parts(t)
		if len(parts) != 2 || !bytes.Equal(parts[0].body, pix[half:]) || !bytes.Equal(parts[1].body, pix[:half]) {
			t.Fatalf("frames 2,1: %d parts", len(parts))
		}
		if ct := parts[0].header.Get("Content-Type"); !strings.HasPrefix(ct, "application/octet-stream") {
			t.Errorf("frame Content-Type %q", ct)
		}
		// dicomweb-client's default Accept.
		r = do(t, "GET", base+"1", hdr("Accept", `multipart/related; type="application/octet-stream"`), nil).mustStatus(t, 200)
		if p := r.parts(t); len(p) != 1 || !bytes.Equal(p[0].body, pix[:half]) {
			t.Error("frame 1 with the default transfer syntax")
		}
		// Single part, with Range.
		r = do(t, "GET", base+"2", hdr("Accept", "application/octet-stream", "Range", "bytes=10-19"), nil).mustStatus(t, http.StatusPartialContent)
		if !bytes.Equal(r.body, pix[half+10:half+20]) {
			t.Error("frame 2 bytes 10-19")
		}
		do(t, "GET", base+"3", nil, nil).mustStatus(t, http.StatusNotFound).problem(t)
		for _, bad := range []string{"0", "a", "1,,2", "-1"} {
			do(t, "GET", base+bad, nil, nil).mustStatus(t, http.StatusBadRequest).problem(t)
		}
		do(t, "GET", base+"1,2", hdr("Accept", "application/octet-stream"), nil).mustStatus(t, http.StatusNotAcceptable).problem(t)

		// Big endian native frames come out little endian.
		r = do(t, "GET", e.url+"/studies/"+study+"/series/"+be.series+"/instances/"+be.sop+"/frames/1", hdr("Accept", `multipart/related; type="application/octet-stream"`), nil).mustStatus(t, 200)
		if p := r.parts(t); len(p) != 1 || !bytes.Equal(p[0].body, mrLE) {
			t.Error("big endian frame not swapped to little endian")
		}

		// Compressed frames, as stored.
		jbase := e.url + "/studies/" + study + "/series/" + j2k.series + "/instances/" + j2k.sop + "/frames/1"
		jpix := pixelData(t, objs[j2k.sop])
		for _, accept := range []string{
			`multipart/related; type="application/octet-stream"; transfer-syntax=*`,
			`multipart/related; type="image/jp2"`,
		} {
			r = do(t, "GET", jbase, hdr("Accept", accept), nil).mustStatus(t, 200)
			p := r.parts(t)
			if len(p) != 1 || !bytes.Equal(p[0].body, jpix) {
				t.Errorf("%s: JPEG 2000 frame differs from its fragments", accept)
			}
		}
		if p := r.parts(t); !strings.HasPrefix(p[0].header.Get("Content-Type"), "image/jp2") {
			t.Errorf("JPEG 2000 frame as %q", p[0].header.Get("Content-Type"))
		}
		do(t, "GET", jbase, hdr("Accept", `multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1`), nil).mustStatus(t, http.StatusNotAcceptable)
	})

	t.Run("bulkdata", func(t *testing.T) {
		meta := do(t, "GET", e.url+"/studies/"+study+"/series/"+series+"/instances/"+ct.sop+"/metadata", nil, nil).mustStatus(t, 200)
		ds := meta.datasets(t)[0]
		_ = ds
		uri := e.url + "/studies/" + study + "/series/" + series + "/instances/" + ct.sop + "/bulkdata/7FE00010"
		if !bytes.Contains(meta.body, []byte(uri)) {
			t.Fatalf("metadata lacks %s", uri)
		}
		pix := pixelData(t, objs[ct.sop])
		r := do(t, "GET", uri, hdr("Accept", `multipart/related; type="application/octet-stream"`), nil).mustStatus(t, 200)
		if p := r.parts(t); len(p) != 1 || !bytes.Equal(p[0].body, pix) {
			t.Error("bulk data differs from the pixel data")
		}
		r = do(t, "GET", uri, hdr("Accept", "application/octet-stream", "Range", "bytes=100-199"), nil).mustStatus(t, http.StatusPartialContent)
		if !bytes.Equal(r.body, pix[100:200]) {
			t.Error("bulk data range")
		}
		// Encapsulated pixel data: its frames.
		juri := e.url + "/studies/" + study + "/series/" + j2k.series + "/instances/" + j2k.sop + "/bulkdata/7FE00010"
		r = do(t, "GET", juri, nil, nil).mustStatus(t, 200)
		if p := r.parts(t); len(p) != 1 || !bytes.Equal(p[0].body, pixelData(t, objs[j2k.sop])) {
			t.Error("encapsulated pixel data bulk")
		}
		do(t, "GET", strings.Replace(uri, "7FE00010", "00100010", 1), nil, nil).mustStatus(t, http.StatusNotFound).problem(t)
		do(t, "GET", strings.Replace(uri, "7FE00010", "zz", 1), nil, nil).mustStatus(t, http.StatusBadRequest).problem(t)
	})

	t.Run("rendered", func(t *testing.T) {
		inst := e.url + "/studies/" + study + "/series/" + series + "/instances/" + ct.sop
		for _, tc := range []struct {
			path, accept, query string
			format              string
			w, h                int
		}{
			{"/rendered", "image/jpeg", "", "jpeg", 128, 128},
			{"/rendered", "image/png", "?window=40,400,linear", "png", 128, 128},
			{"/rendered", "", "?viewport=64,32", "jpeg", 32, 32},
			{"/thumbnail", "", "", "jpeg", 128, 128},
			{"/frames/1/rendered", "image/png", "?window=0,100,sigmoid&quality=50", "png", 128, 128},
		} {
			r := do(t, "GET", inst+tc.path+tc.query, hdr("Accept", tc.accept), nil).mustStatus(t, 200)
			img, format, err := image.Decode(bytes.NewReader(r.body))
			if err != nil || format != tc.format || img.Bounds().Dx() != tc.w || img.Bounds().Dy() != tc.h {
				t.Errorf("%s%s: %v %s %v", tc.path, tc.query, err, format, img.Bounds())
			}
		}
		// RGB, series thumbnail (the middle instance), study thumbnail.
		for _, u := range []string{
			e.url + "/studies/" + study + "/series/" + rgb.series + "/instances/" + rgb.sop + "/frames/2/rendered",
			e.url + "/studies/" + study + "/series/" + series + "/thumbnail",
			e.url + "/studies/" + study + "/thumbnail?viewport=16,16",
		} {
			r := do(t, "GET", u, nil, nil)
			if r.StatusCode == http.StatusNotAcceptable {
				continue // the study's middle instance may be compressed
			}
			r.mustStatus(t, 200)
			if _, _, err := image.Decode(bytes.NewReader(r.body)); err != nil {
				t.Errorf("%s: %v", u, err)
			}
		}
		do(t, "GET", inst+"/rendered?window=1", nil, nil).mustStatus(t, http.StatusBadRequest).problem(t)
		do(t, "GET", inst+"/rendered?viewport=0,10", nil, nil).mustStatus(t, http.StatusBadRequest).problem(t)
		do(t, "GET", inst+"/rendered", hdr("Accept", "image/gif"), nil).mustStatus(t, http.StatusNotAcceptable).problem(t)
		do(t, "GET", e.url+"/studies/"+study+"/series/"+j2k.series+"/instances/"+j2k.sop+"/rendered", nil, nil).mustStatus(t, http.StatusNotAcceptable).problem(t)
		r := do(t, "GET", inst+"/rendered?annotation=patient", nil, nil).mustStatus(t, 200)
		if !strings.Contains(r.Header.Get("Warning"), "annotation") {
			t.Errorf("unsupported annotation parameter: Warning %q", r.Header.Get("Warning"))
		}
	})
}

// The metadata cache is keyed by what the index says now: a body served
// earlier is never served once an instance is added, replaced or deleted.
func TestMetadataNeverStale(t *testing.T) {
	e := newEnv(t, Config{AdminKey: "k"}, mint.OverwriteDuplicates)
	a := newIDs("", "")
	e.stow(t, "/studies", instance(t, "MR_small.dcm", a)).mustStatus(t, 200)
	url := e.url + "/studies/" + a.study + "/series/" + a.series + "/metadata"
	count := func() int {
		t.Helper()
		return len(do(t, "GET", url, nil, nil).mustStatus(t, 200).datasets(t))
	}
	if n := count(); n != 1 {
		t.Fatalf("%d", n)
	}
	count() // now cached
	b := newIDs(a.study, a.series)
	e.stow(t, "/studies", instance(t, "CT_small.dcm", b)).mustStatus(t, 200)
	if n := count(); n != 2 {
		t.Errorf("after a store: %d instances", n)
	}
	// Overwrite a with other content: same UIDs, new digest.
	e.stow(t, "/studies", instance(t, "MR_small.dcm", a, dicom.NewStrings(tag.PatientID, dicom.LO, "CHANGED"))).mustStatus(t, 200)
	r := do(t, "GET", url, nil, nil).mustStatus(t, 200)
	if !bytes.Contains(r.body, []byte("CHANGED")) {
		t.Error("after an overwrite: stale metadata")
	}
	do(t, "DELETE", e.url+"/studies/"+a.study+"/series/"+a.series+"/instances/"+b.sop, hdr(AdminKeyHeader, "k"), nil).mustStatus(t, 200)
	if n := count(); n != 1 {
		t.Errorf("after a delete: %d instances", n)
	}
}

// A blob altered at rest is never served as a complete response: the
// decryption fails in mid-stream and the response is cut short.
func TestTamperedBlobCutsResponse(t *testing.T) {
	e := newEnv(t, Config{}, mint.RejectDuplicates)
	id := newIDs("", "")
	e.stow(t, "/studies", bigCT(t, id)).mustStatus(t, 200)
	var blobKey string
	if err := e.pool.QueryRow(t.Context(), `SELECT blob_key FROM instances WHERE sop_instance_uid = $1`, id.sop).Scan(&blobKey); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.blobDir, filepath.FromSlash(blobKey))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("blob at %s: %v", path, err)
	}
	b[len(b)/2] ^= 0xFF
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, accept := range []string{
		`multipart/related; type="application/dicom"; transfer-syntax=*`,
		`multipart/related; type="application/dicom"; transfer-syntax=` + dicom.ImplicitVRLittleEndian,
	} {
		req, _ := http.NewRequest("GET", e.url+"/studies/"+id.study, nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // refused outright: fine
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s: a tampered instance was served as a complete %d response", accept, resp.StatusCode)
		}
	}
}
