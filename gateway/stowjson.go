package gateway

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/envelope"
)

// stowJSON stores the instances of a multipart/related;
// type="application/dicom+json" request (PS3.18 10.5.1.2): a first part
// holding a DICOM JSON array whose binary values are BulkDataURIs, then
// one part per bulk value, named by its Content-Location. The bulk parts
// come after the metadata that refers to them, in any order, so they are
// spooled before any instance is built: to unlinked temporary files,
// encrypted under a key that exists only in memory for this request, since
// plaintext may never rest on disk. Each instance is then written as
// Explicit VR Little Endian Part 10 and stored like any other.
func (s *Server) stowJSON(c *fiber.Ctx, mr *multipart.Reader, body *bodyReader, target string) ([]stowResult, error) {
	p, err := mr.NextRawPart()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, s.brokenBody(nil, body, err)
	}
	if ct := p.Header.Get(fiber.HeaderContentType); ct != "" {
		typ, _, err := parseContentType(ct)
		if err != nil || (typ != mediaDICOMJSON && typ != mediaJSON) {
			return nil, problemf(http.StatusBadRequest, "the first part of an application/dicom+json request must be application/dicom+json, not %q", ct)
		}
	}
	pr := &partReader{r: p}
	datasets, bulks, err := dicom.DecodeJSON(pr, &dicom.JSONDecodeOptions{MaxBytes: s.cfg.MaxJSONBytes})
	if pr.err != nil || body.err != nil {
		return nil, s.brokenBody(nil, body, cmpErr(pr.err, body.err))
	}
	if err != nil {
		return nil, dicomProblemf(http.StatusBadRequest, statusCannotUnderstand, "invalid DICOM JSON: %v", err)
	}
	if _, err := io.Copy(io.Discard, pr); err != nil {
		return nil, s.brokenBody(nil, body, err)
	}

	sp, err := newSpool()
	if err != nil {
		return nil, err
	}
	defer sp.close()
	for parts := 1; ; parts++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.brokenBody(nil, body, err)
		}
		if parts >= s.cfg.MaxParts {
			return nil, problemf(http.StatusRequestEntityTooLarge, "more than %d parts in one request", s.cfg.MaxParts)
		}
		loc := strings.TrimSpace(p.Header.Get("Content-Location"))
		if loc == "" {
			return nil, problemf(http.StatusBadRequest, "bulk data part %d has no Content-Location", parts+1)
		}
		pr := &partReader{r: p}
		err = sp.add(loc, p.Header.Get(fiber.HeaderContentType), pr)
		if pr.err != nil || body.err != nil {
			return nil, s.brokenBody(nil, body, cmpErr(pr.err, body.err))
		}
		if err != nil {
			return nil, err
		}
	}

	byInstance := map[int][]dicom.JSONBulkData{}
	for _, b := range bulks {
		byInstance[b.Instance] = append(byInstance[b.Instance], b)
	}
	src := mint.Source{OrgID: s.storeOrg(c), Transport: "stow", Peer: c.IP()}
	results := make([]stowResult, 0, len(datasets))
	for i, ds := range datasets {
		res := s.storeJSONInstance(c, src, ds, byInstance[i], sp, target)
		s.metrics.storedInstance(outcomeLabel(res), 0)
		results = append(results, res)
	}
	return results, nil
}

func (s *Server) storeJSONInstance(c *fiber.Ctx, src mint.Source, ds *dicom.Dataset, bulks []dicom.JSONBulkData, sp *spool, target string) stowResult {
	res := stowResult{
		sopClass:    ds.String(tag.SOPClassUID),
		sopInstance: ds.String(tag.SOPInstanceUID),
		study:       ds.String(tag.StudyInstanceUID),
		series:      ds.String(tag.SeriesInstanceUID),
	}
	if r, d := checkUIDs(res, target); r != 0 {
		res.reason, res.detail = r, d
		return res
	}
	// File Meta Information is ours to write.
	for ds.Len() > 0 && ds.Elements[0].Tag.Group() == 0x0002 {
		ds.Delete(ds.Elements[0].Tag)
	}
	sources := map[*dicom.BulkRef]*spooled{}
	for _, b := range bulks {
		f := sp.get(b.URI)
		if f == nil {
			res.reason, res.detail = statusDataSetMismatch, "no part supplies BulkDataURI "+b.URI
			return res
		}
		if f.typ != mediaOctetStream {
			res.reason, res.detail = statusTSNotSupported, "bulk data of type "+f.typ+" (only application/octet-stream: native, uncompressed values)"
			return res
		}
		e := ds.Lookup(b.Path)
		if e == nil {
			res.reason, res.detail = statusCannotUnderstand, "BulkDataURI at an element that is not there"
			return res
		}
		e.Bulk = &dicom.BulkRef{Length: f.size}
		sources[e.Bulk] = f
	}
	ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
	file := &dicom.File{Meta: dicom.NewFileMeta(res.sopClass, res.sopInstance, ts.UID), TransferSyntax: ts, Dataset: *ds}
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := file.Write(pw, dicom.WriteOptions{Bulk: func(e *dicom.Element) (io.Reader, error) {
			f := sources[e.Bulk]
			if f == nil {
				return nil, fmt.Errorf("no bulk data for %s", e.Tag)
			}
			return f.open()
		}})
		pw.CloseWithError(err)
		werr <- err
	}()
	st, err := s.pipe.StorePart10(c.UserContext(), src, pr)
	pr.CloseWithError(errors.New("store ended")) // a store that gave up early must not leave the writer blocked
	if wErr := <-werr; err == nil && wErr != nil {
		err = wErr
	}
	if err != nil {
		res.reason, res.detail = mint.FailureReason(err), err.Error()
		s.notAuthorized(c.UserContext(), src, &res)
		return res
	}
	res.study, res.series = st.StudyInstanceUID, st.SeriesInstanceUID
	return res
}

// spool holds the bulk data parts of one request, encrypted.
type spool struct {
	dek   []byte
	files map[string]*spooled
}

type spooled struct {
	f      *os.File
	dek    []byte
	aad    []byte
	ctSize int64
	size   int64  // plaintext bytes
	typ    string // media type of the part
}

func newSpool() (*spool, error) {
	dek := make([]byte, envelope.KeySize)
	rand.Read(dek)
	return &spool{dek: dek, files: map[string]*spooled{}}, nil
}

func (sp *spool) add(uri, contentType string, r io.Reader) error {
	typ := mediaOctetStream
	if contentType != "" {
		t, _, err := parseContentType(contentType)
		if err != nil {
			return problemf(http.StatusBadRequest, "bulk data part %s: bad Content-Type", uri)
		}
		typ = t
	}
	if _, dup := sp.files[uri]; dup {
		return problemf(http.StatusBadRequest, "two bulk data parts with Content-Location %s", uri)
	}
	f, err := os.CreateTemp("", "medimint-stow-*")
	if err != nil {
		return fmt.Errorf("gateway: spool bulk data: %w", err)
	}
	// Unlinked at once: the data lives only as long as the open file.
	os.Remove(f.Name())
	sf := &spooled{f: f, dek: sp.dek, aad: []byte(uri), typ: typ}
	sp.files[uri] = sf
	w, err := envelope.NewWriter(f, sp.dek, sf.aad)
	if err != nil {
		return fmt.Errorf("gateway: spool bulk data: %w", err)
	}
	n, err := io.Copy(w, r)
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return fmt.Errorf("gateway: spool bulk data: %w", err)
	}
	sf.size = n
	sf.ctSize, err = f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("gateway: spool bulk data: %w", err)
	}
	return nil
}

// get finds the part for a BulkDataURI: by exact Content-Location, or by
// the URI's path when one is absolute and the other is not.
func (sp *spool) get(uri string) *spooled {
	if f := sp.files[uri]; f != nil {
		return f
	}
	for loc, f := range sp.files {
		if strings.HasSuffix(uri, loc) || strings.HasSuffix(loc, uri) {
			return f
		}
	}
	return nil
}

func (f *spooled) open() (io.Reader, error) {
	return envelope.NewReader(io.NewSectionReader(f.f, 0, f.ctSize), f.dek, f.aad)
}

func (sp *spool) close() {
	for _, f := range sp.files {
		f.f.Close()
	}
	clear(sp.dek)
}
