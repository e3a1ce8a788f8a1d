package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/mint"
)

// tagAfterUIDs stops the peek at a part's header once SOP Class, SOP
// Instance, Study Instance and Series Instance UIDs have passed.
var tagAfterUIDs = dicom.NewTag(0x0020, 0x000F)

// stowResult is the outcome for one part.
type stowResult struct {
	sopClass, sopInstance, study, series string
	reason                               uint16 // Failure Reason; 0: stored
	notDICOM                             bool   // the part was not recognisable as a DICOM instance
	detail                               string // for the log and problem details; no patient data
}

// bodyReader wraps the request body: it counts bytes and remembers the
// first read error that is not io.EOF, so that a failure caused by a
// broken request (truncated, disconnected) is told apart from a failure
// caused by an instance. Its io.EOF is sticky: fasthttp's stream of a
// chunked body (v1.51) has no end state, and a Read after the last chunk
// waits on the socket for another chunk header that never comes — which
// held STOW-RS answers to Orthanc's chunked uploads until the client gave
// up (fasthttp fixed it upstream in #2379).
type bodyReader struct {
	r   io.Reader
	n   int64
	err error
	eof bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil && b.err == nil:
		b.err = err
	}
	return n, err
}

// partReader wraps one part and remembers its read errors likewise
// (mime/multipart reports a body cut short inside a part as
// io.ErrUnexpectedEOF from the part).
type partReader struct {
	r   io.Reader
	n   int64
	err error
}

func (p *partReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err != nil && err != io.EOF && p.err == nil {
		p.err = err
	}
	return n, err
}

// recorder keeps what is read through it, up to max bytes, so that a
// header peeked at can be replayed in front of the rest of the stream.
type recorder struct {
	r   io.Reader
	max int64
	buf bytes.Buffer
	hit bool // max reached
}

func (r *recorder) Read(p []byte) (int, error) {
	room := r.max - int64(r.buf.Len())
	if room <= 0 {
		r.hit = true
		return 0, errHeaderCap
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := r.r.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

var errHeaderCap = errors.New("header cap reached")

// maxDrain bounds what is read and discarded of a request body the
// server has already answered.
const maxDrain = 8 << 20

// drainOrClose reads and discards what is left of a request body the
// server has already answered, up to maxDrain, so that a client still
// sending gets to read the answer (closing a socket with unread data makes
// the kernel send RST, which can destroy the answer in flight); a longer
// or broken body closes the connection instead, as it cannot carry
// another request.
func drainOrClose(c *fiber.Ctx, body *bodyReader) {
	if n, _ := io.Copy(io.Discard, io.LimitReader(body, maxDrain)); n >= maxDrain || body.err != nil {
		c.Context().SetConnectionClose()
	}
}

// stow is STOW-RS: POST {base}/studies[/{study}] (PS3.18 10.5).
func (s *Server) stow(c *fiber.Ctx) (err error) {
	// Whatever goes wrong before the body is read to its end, the rest of
	// it is read (up to maxDrain) so that the client, still sending, gets
	// to read the answer; beyond that the connection is closed, as it
	// cannot carry another request.
	c.Locals(bodyTaken{}, true)
	drained := false
	var body *bodyReader
	defer func() {
		if drained {
			return
		}
		if body == nil {
			var raw io.Reader = c.Context().RequestBodyStream()
			if raw == nil {
				return
			}
			body = &bodyReader{r: raw}
		}
		drainOrClose(c, body)
	}()

	target := c.Params("study")
	if target != "" && !dicom.ValidUID(target) {
		return problemf(http.StatusBadRequest, "invalid Study Instance UID in the path")
	}
	if _, ok := acceptsAny(parseAccept(c.Get(fiber.HeaderAccept)), mediaDICOMJSON, mediaJSON); !ok {
		return problemf(http.StatusNotAcceptable, "the Store Instances Response is available as %s only", mediaDICOMJSON)
	}
	ct := c.Get(fiber.HeaderContentType)
	if ct == "" {
		return problemf(http.StatusUnsupportedMediaType, "missing Content-Type: STOW-RS takes multipart/related; type=\"application/dicom\" or \"application/dicom+json\"")
	}
	typ, params, perr := parseContentType(ct)
	if perr != nil || typ != mediaMultipart {
		return problemf(http.StatusUnsupportedMediaType, "Content-Type %q: STOW-RS takes multipart/related; type=\"application/dicom\" or \"application/dicom+json\"", typ)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return problemf(http.StatusBadRequest, "multipart/related body without a boundary parameter")
	}
	partType := strings.ToLower(params["type"])
	if partType == "" {
		partType = mediaDICOM
	}
	if partType != mediaDICOM && partType != mediaDICOMJSON {
		return problemf(http.StatusUnsupportedMediaType, "multipart/related type %q: STOW-RS takes application/dicom or application/dicom+json", partType)
	}

	var raw io.Reader = c.Context().RequestBodyStream()
	if raw == nil {
		raw = bytes.NewReader(c.Body())
	}
	body = &bodyReader{r: raw}
	mr := multipart.NewReader(body, boundary)

	var results []stowResult
	if partType == mediaDICOM {
		results, err = s.stowParts(c, mr, body, target)
	} else {
		results, err = s.stowJSON(c, mr, body, target)
	}
	if err != nil {
		return err
	}
	// The epilogue after the close delimiter, if any, must go too before
	// the connection can be reused.
	if n, _ := io.Copy(io.Discard, io.LimitReader(body, 64<<10)); n < 64<<10 && body.err == nil {
		drained = true
	}
	if len(results) == 0 {
		return problemf(http.StatusBadRequest, "the multipart body has no parts")
	}
	return s.storeResponse(c, target, results)
}

// stowParts stores each application/dicom part as it arrives. A part
// whose bytes are all read goes on to durability and indexing while the
// next is read (up to stowWindow of them); the response waits for all.
func (s *Server) stowParts(c *fiber.Ctx, mr *multipart.Reader, body *bodyReader, target string) ([]stowResult, error) {
	var slots []*stowSlot
	ctx := c.UserContext()
	src := mint.Source{OrgID: s.storeOrg(c), Transport: "stow", Peer: c.IP()}
	waited := 0 // slots[:waited] have their outcome
	settle := func(upTo int) {
		for ; waited < upTo; waited++ {
			slots[waited].settle(ctx, s)
		}
	}
	// all waits for every part and returns their outcomes.
	all := func() []stowResult {
		settle(len(slots))
		out := make([]stowResult, len(slots))
		for i, sl := range slots {
			out[i] = sl.res
		}
		return out
	}
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return all(), nil
		}
		if err != nil {
			return nil, s.brokenBody(all(), body, err)
		}
		if len(slots) == s.cfg.MaxParts {
			p.Close()
			return nil, problemf(http.StatusRequestEntityTooLarge,
				"more than %d parts in one request (%d stored before the limit was reached); send them in several requests",
				s.cfg.MaxParts, countStored(all()))
		}
		pr := &partReader{r: p}
		// A part repeating an earlier part's SOP Instance UID is stored
		// after it, so the duplicate policy sees them in request order.
		before := func(sop string) {
			for i := waited; i < len(slots); i++ {
				if slots[i].res.sopInstance == sop {
					settle(i + 1)
				}
			}
		}
		sl := s.storePart(ctx, src, p.Header.Get(fiber.HeaderContentType), pr, target, before)
		if sl.feed != nil {
			// The store runs on its own goroutine: this one hands it the
			// part's bytes and goes on to the next part, so that two
			// parts are encrypted at once on two cores.
			if _, err := io.Copy(sl.feed, pr); err != nil && pr.err == nil && !errors.Is(err, io.ErrClosedPipe) {
				pr.err = err
			}
			sl.feed.closeWrite(cmpErr(pr.err, body.err)) // nil: the part is whole
		}
		// Whatever the store left unread of the part is discarded, so
		// that the next part can be found.
		if _, derr := io.Copy(io.Discard, pr); derr != nil && pr.err == nil {
			pr.err = derr
		}
		p.Close()
		if pr.err != nil || body.err != nil {
			// The request broke inside this part: the instance was not
			// stored (mint stores only complete instances).
			if sl.wait != nil {
				sl.wait() // a complete instance read before the break still finishes
			}
			return nil, s.brokenBody(all(), body, cmpErr(pr.err, body.err))
		}
		sl.n = pr.n
		slots = append(slots, sl)
		if len(slots)-waited > stowWindow {
			settle(waited + 1)
		}
	}
}

// stowWindow bounds the parts of one request that may be on their way to
// durability while the next is read.
const stowWindow = 8

// stowSlot is a part's outcome, known at once or once its store is done.
type stowSlot struct {
	res stowResult
	// feed takes the rest of the part for the store; wait returns the
	// store's outcome (both nil: res is final).
	feed    *bufPipe
	wait    func() (mint.Stored, error)
	src     mint.Source
	n       int64 // bytes in the part
	settled bool
}

// settle waits for the part's store and counts it in the metrics.
func (sl *stowSlot) settle(ctx context.Context, s *Server) {
	if sl.settled {
		return
	}
	sl.settled = true
	if sl.wait != nil {
		st, err := sl.wait()
		if err != nil {
			sl.res.reason = mint.FailureReason(err)
			sl.res.detail = err.Error()
			s.notAuthorized(ctx, sl.src, &sl.res)
			if sl.res.reason == statusOutOfResources {
				s.log.Warn("stow: store failed", "sop", sl.res.sopInstance, "err", err)
			}
		} else {
			sl.res.study, sl.res.series = st.StudyInstanceUID, st.SeriesInstanceUID
		}
	}
	s.metrics.storedInstance(outcomeLabel(sl.res), sl.n)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// brokenBody is the answer to a request whose multipart body cannot be
// read to its end: truncated, malformed framing, or the client gone.
func (s *Server) brokenBody(results []stowResult, body *bodyReader, err error) error {
	stored := countStored(results)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(body.err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return problemf(http.StatusBadRequest, "truncated multipart body after %d bytes (%d complete instances stored; the cut instance was not)", body.n, stored)
	}
	return problemf(http.StatusBadRequest, "malformed multipart body after %d bytes: %v (%d complete instances stored)", body.n, err, stored)
}

func countStored(results []stowResult) int {
	n := 0
	for _, r := range results {
		if r.reason == 0 {
			n++
		}
	}
	return n
}

func outcomeLabel(r stowResult) string {
	switch {
	case r.reason == 0:
		return "stored"
	case r.notDICOM:
		return "not_dicom"
	}
	return fmt.Sprintf("failed_%04x", r.reason)
}

// storePart stores one application/dicom part. It peeks at the header for
// the UIDs (to check the target study and to name the instance should it
// fail) and then hands the stream to the pipeline on a goroutine of its
// own, fed through the slot's feed. before runs first, with the SOP
// Instance UID.
func (s *Server) storePart(ctx context.Context, src mint.Source, contentType string, part io.Reader, target string, before func(sop string)) *stowSlot {
	if contentType != "" {
		typ, params, err := parseContentType(contentType)
		if err != nil || typ != mediaDICOM {
			return &stowSlot{res: stowResult{reason: statusCannotUnderstand, notDICOM: true, detail: fmt.Sprintf("part of type %q in a request of type application/dicom", contentType)}}
		}
		if ts := params["transfer-syntax"]; ts != "" {
			if _, ok := dicom.LookupTransferSyntax(ts); !ok {
				return &stowSlot{res: stowResult{reason: statusTSNotSupported, detail: fmt.Sprintf("transfer syntax %s not supported", ts)}}
			}
		}
	}
	rec := &recorder{r: part, max: s.cfg.MaxHeader}
	f, err := dicom.Parse(rec, dicom.ReadOptions{StopAtTag: tagAfterUIDs, SkipBulk: true})
	if err != nil {
		if rec.hit {
			return &stowSlot{res: stowResult{reason: statusOutOfResources, detail: fmt.Sprintf("more than %d bytes before the instance's UIDs", s.cfg.MaxHeader)}}
		}
		return &stowSlot{res: stowResult{reason: statusCannotUnderstand, notDICOM: true, detail: "not a DICOM instance: " + err.Error()}}
	}
	ds := &f.Dataset
	res := stowResult{
		sopClass:    ds.String(tag.SOPClassUID),
		sopInstance: ds.String(tag.SOPInstanceUID),
		study:       ds.String(tag.StudyInstanceUID),
		series:      ds.String(tag.SeriesInstanceUID),
	}
	if res.sopClass == "" {
		res.sopClass = f.Meta.String(dicom.TagMediaStorageSOPClassUID)
	}
	if res.sopInstance == "" {
		res.sopInstance = f.Meta.String(dicom.TagMediaStorageSOPInstanceUID)
	}
	if r, d := checkUIDs(res, target); r != 0 {
		res.reason, res.detail = r, d
		return &stowSlot{res: res}
	}
	before(res.sopInstance)
	sl := &stowSlot{res: res, src: src, feed: newBufPipe(streamBufSize, func() {})}
	var (
		st   mint.Stored
		err2 error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		st, err2 = s.pipe.StorePart10(ctx, src, io.MultiReader(bytes.NewReader(rec.buf.Bytes()), sl.feed))
		sl.feed.Close() // the store has read what it will: the rest is discarded
	}()
	sl.wait = func() (mint.Stored, error) {
		<-done
		return st, err2
	}
	return sl
}

// notAuthorized words and audits a store refused because the study
// belongs to another organisation (mint.StatusNotAuthorized); the
// database's message is not for clients.
func (s *Server) notAuthorized(ctx context.Context, src mint.Source, res *stowResult) {
	if res.reason != mint.StatusNotAuthorized {
		return
	}
	res.detail = "Study " + res.study + " belongs to another organisation; " + src.OrgID + " may not add instances to it"
	if s.gated() {
		sub, _ := auth.SubjectFrom(ctx)
		s.deps.Access.Record(ctx, accessSubject(sub, ""), "store", false, res.study, "the study belongs to another organisation")
	}
}

// checkUIDs validates the identifying UIDs of an instance and, for
// POST /studies/{study}, that it belongs to that study (PS3.18 10.5.1:
// an instance of another study fails with 0xA900).
func checkUIDs(r stowResult, target string) (uint16, string) {
	for _, u := range []struct{ name, v string }{
		{"SOP Class UID", r.sopClass}, {"SOP Instance UID", r.sopInstance},
		{"Study Instance UID", r.study}, {"Series Instance UID", r.series},
	} {
		if u.v == "" {
			return statusDataSetMismatch, "missing " + u.name
		}
		if !dicom.ValidUID(u.v) {
			return statusDataSetMismatch, "invalid " + u.name
		}
	}
	if target != "" && r.study != target {
		return statusDataSetMismatch, "Study Instance UID differs from the study in the request path"
	}
	// Unregistered (private) SOP classes are accepted; registered ones
	// must be storage classes.
	if _, ok := dicom.LookupUID(r.sopClass); ok && !dicom.IsStorageSOPClass(r.sopClass) {
		return statusSOPClassNotSupported, "SOP Class " + r.sopClass + " is not a storage SOP class"
	}
	return 0, ""
}

// storeResponse answers with the Store Instances Response Module (PS3.18
// 10.5.3): 200 when every instance was stored, 409 when none was, 202
// otherwise. A request none of whose parts was a DICOM instance is a bad
// request rather than a conflict.
func (s *Server) storeResponse(c *fiber.Ctx, target string, results []stowResult) error {
	base := s.baseURL(c)
	var refs, failed []*dicom.Dataset
	notDICOM := 0
	studies := map[string]bool{}
	var details []string
	var refused string // the detail of a store refused as not authorised
	for _, r := range results {
		if r.reason == mint.StatusNotAuthorized && refused == "" {
			refused = r.detail
		}
		item := &dicom.Dataset{}
		item.Set(dicom.NewStrings(tag.ReferencedSOPClassUID, dicom.UI, r.sopClass))
		item.Set(dicom.NewStrings(tag.ReferencedSOPInstanceUID, dicom.UI, r.sopInstance))
		if r.reason != 0 {
			item.Set(dicom.NewUint16s(tag.FailureReason, r.reason))
			failed = append(failed, item)
			if r.notDICOM {
				notDICOM++
			}
			if len(details) < 5 {
				details = append(details, r.detail)
			}
			continue
		}
		item.Set(dicom.NewStrings(tag.RetrieveURL, dicom.UR,
			base+"/studies/"+r.study+"/series/"+r.series+"/instances/"+r.sopInstance))
		refs = append(refs, item)
		studies[r.study] = true
	}
	if notDICOM == len(results) {
		return dicomProblemf(http.StatusBadRequest, statusCannotUnderstand,
			"no part of the request is a DICOM instance (%d parts): %s", len(results), strings.Join(details, "; "))
	}
	resp := &dicom.Dataset{}
	switch {
	case target != "":
		resp.Set(dicom.NewStrings(tag.RetrieveURL, dicom.UR, base+"/studies/"+target))
	case len(studies) == 1:
		for st := range studies {
			resp.Set(dicom.NewStrings(tag.RetrieveURL, dicom.UR, base+"/studies/"+st))
		}
	}
	if len(refs) > 0 {
		resp.Set(dicom.NewSequence(tag.ReferencedSOPSequence, refs...))
	}
	if len(failed) > 0 {
		resp.Set(dicom.NewSequence(tag.FailedSOPSequence, failed...))
	}
	status := http.StatusOK
	switch {
	case len(refs) == 0:
		status = http.StatusConflict
	case len(failed) > 0:
		status = http.StatusAccepted
	}
	if len(failed) > 0 {
		s.log.Info("stow: instances failed", "request_id", requestID(c), "stored", len(refs), "failed", len(failed), "first", details[0])
	}
	js, err := dicom.AppendJSON(nil, resp, nil)
	if err != nil {
		return fmt.Errorf("gateway: encode store response: %w", err)
	}
	c.Set(fiber.HeaderContentType, mediaDICOMJSON)
	if refused != "" {
		// The Store Instances Response has no field for words; PS3.18
		// 8.3.5.1 carries them in a Warning header (code 299).
		c.Set("Warning", "299 "+c.Hostname()+": "+strconv.Quote(refused))
	}
	return c.Status(status).Send(js)
}
