package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint/envelope"
)

// maxFrameList bounds the frame numbers of one request.
const maxFrameList = 10000

// parseFrameList parses a PS3.18 frame list: 1-based frame numbers,
// comma separated.
func parseFrameList(s string) ([]int, error) {
	fields := strings.Split(s, ",")
	if len(fields) > maxFrameList {
		return nil, problemf(http.StatusBadRequest, "more than %d frame numbers", maxFrameList)
	}
	out := make([]int, 0, len(fields))
	for _, f := range fields {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, problemf(http.StatusBadRequest, "invalid frame number %q: frame numbers are positive integers, comma separated", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// frameSource is an instance's frames, ready to be read.
type frameSource struct {
	fi   index.FrameInfo
	ra   *envelope.ReaderAt
	swap int // bytes per sample to swap (big endian native pixels); 0: none
}

// frameCount is the number of frames the instance's pixel data holds.
func frameCount(fi *index.FrameInfo) int {
	if fi.FrameLength > 0 {
		return max(fi.NumberOfFrames, 1)
	}
	return len(fi.FrameFragments)
}

// frameSize is the length of frame k (0-based) as stored.
func frameSize(fi *index.FrameInfo, k int) (int64, error) {
	spans, err := fi.Frame(k)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, sp := range spans {
		n += sp.Length
	}
	return n, nil
}

// open returns frame k (0-based) of the source, in little endian for
// native pixels.
func (fs *frameSource) open(k int) (io.Reader, error) {
	spans, err := fs.fi.Frame(k)
	if err != nil {
		return nil, err
	}
	rs := make([]io.Reader, len(spans))
	for i, sp := range spans {
		if sp.Offset < 0 || sp.Offset+sp.Length > fs.ra.Size() {
			return nil, fmt.Errorf("gateway: frame %d of %s lies outside the object", k+1, fs.fi.SOPInstanceUID)
		}
		rs[i] = io.NewSectionReader(fs.ra, sp.Offset, sp.Length)
	}
	r := io.MultiReader(rs...)
	if fs.swap > 1 {
		r = newSwapReader(r, fs.swap)
	}
	return r, nil
}

// frameInfo looks up the frames of the instance t names.
func (s *Server) frameInfo(ctx context.Context, t target) (index.FrameInfo, error) {
	fi, err := s.ix.Frames(ctx, t.sopID)
	if err != nil {
		return fi, notFound(err, t.String())
	}
	if fi.StudyInstanceUID != t.study || fi.SeriesInstanceUID != t.series {
		return fi, problemf(http.StatusNotFound, "no %s", t)
	}
	if frameCount(&fi) == 0 {
		if ts, ok := dicom.LookupTransferSyntax(fi.TransferSyntaxUID); ok && ts.Deflated {
			return fi, problemf(http.StatusNotImplemented, "frames of instances stored deflated are not served; retrieve the instance")
		}
		return fi, problemf(http.StatusNotFound, "instance %s has no frames the server can locate", t.sopID)
	}
	return fi, nil
}

// instanceDataset returns the stored metadata of one instance as a data
// set (bulk values absent).
func (s *Server) instanceDataset(ctx context.Context, t target) (*dicom.Dataset, error) {
	var b bytes.Buffer
	if err := s.ix.Metadata(ctx, &b, "", t.study, t.series, t.sopID); err != nil {
		return nil, notFound(err, t.String())
	}
	ds, _, err := dicom.DecodeJSONBytes(b.Bytes(), nil)
	if err != nil || len(ds) != 1 {
		return nil, fmt.Errorf("gateway: stored metadata of %s: %v", t.sopID, err)
	}
	return ds[0], nil
}

// frames is WADO-RS Retrieve Frames (PS3.18 10.4.1.1.3): native frames as
// application/octet-stream, compressed frames as stored (image/jpeg,
// image/jls, image/jp2, ... or application/octet-stream with their
// transfer syntax). A single frame may be asked for as a single part,
// which honours Range.
func (s *Server) frames(c *fiber.Ctx) error {
	t, err := pathTarget(c, index.Instance)
	if err != nil {
		return err
	}
	list, err := parseFrameList(c.Params("frames"))
	if err != nil {
		return err
	}
	fi, err := s.frameInfo(c.UserContext(), t)
	if err != nil {
		return err
	}
	return s.framesOf(c, t, fi, list, c.Get(fiber.HeaderAccept))
}

// framesOf answers with frames list (1-based) of the instance fi,
// negotiated against acceptHeader.
func (s *Server) framesOf(c *fiber.Ctx, t target, fi index.FrameInfo, list []int, acceptHeader string) error {
	ctx := c.UserContext()
	n := frameCount(&fi)
	for _, k := range list {
		if k > n {
			return problemf(http.StatusNotFound, "frame %d of an instance with %d frames", k, n)
		}
	}
	stored := fi.TransferSyntaxUID
	native := fi.FrameLength > 0
	imageType := frameMediaType(stored)
	partTypes := []string{mediaOctetStream}
	if !native && imageType != mediaOctetStream {
		partTypes = []string{imageType, mediaOctetStream}
	}
	accept := parseAccept(acceptHeader)
	choice, multi := multipartChoice(accept, partTypes...)
	single := false
	if !multi {
		if len(list) != 1 {
			return problemf(http.StatusNotAcceptable, "frames are available as multipart/related; type=%q", partTypes[0])
		}
		m, ok := singlePartChoice(accept, partTypes...)
		if !ok {
			return problemf(http.StatusNotAcceptable, "frames are available as multipart/related; type=%q or, one at a time, as %s", partTypes[0], partTypes[0])
		}
		choice, single = m, true
	}
	ts := choice.pick(stored)
	if ts == "" {
		return dicomProblemf(http.StatusNotAcceptable, statusTSNotSupported,
			"frames are stored as %s, which the server cannot convert to the transfer syntaxes accepted (ask for transfer-syntax=*)", stored)
	}
	partType := mediaOctetStream
	if !native && (len(choice.partTypes) > 0 && choice.partTypes[0] == imageType) {
		partType = imageType
	}
	fs := &frameSource{fi: fi}
	if native && stored == dicom.ExplicitVRBigEndian && ts != dicom.ExplicitVRBigEndian {
		ds, err := s.instanceDataset(ctx, t)
		if err != nil {
			return err
		}
		if bits, _ := ds.Uint(tag.BitsAllocated); bits > 8 {
			fs.swap = int(bits / 8)
		}
	}
	var err error
	fs.ra, err = s.pipe.ReaderAt(ctx, fi.InstanceRef)
	if err != nil {
		return err
	}
	listKey := make([]byte, 0, 4*len(list))
	for _, k := range list {
		listKey = strconv.AppendInt(append(listKey, ','), int64(k), 10)
	}
	if notModified(c, etag([]byte(t.sopID), []byte(fi.BlobKey), listKey, []byte(ts), []byte(partType), []byte(strconv.FormatBool(single)))) {
		return nil
	}
	ctype := partType + "; transfer-syntax=" + ts
	if single {
		k := list[0] - 1
		size, err := frameSize(&fi, k)
		if err != nil {
			return notFound(err, "frame")
		}
		return sendRanged(c, ctype, size, func(off, n int64) (io.Reader, io.Closer, error) {
			r, err := fs.open(k)
			if err != nil {
				return nil, nil, err
			}
			if _, err := io.CopyN(io.Discard, r, off); err != nil {
				return nil, nil, err
			}
			return r, nil, nil
		})
	}
	boundary := newBoundary()
	c.Set(fiber.HeaderContentType, fmt.Sprintf("multipart/related; type=%q; boundary=%s", partType, boundary))
	loc := s.baseURL(c) + "/studies/" + t.study + "/series/" + t.series + "/instances/" + t.sopID + "/frames/"
	headers := make([]textproto.MIMEHeader, len(list))
	sizes := make([]int64, len(list))
	for i, k := range list {
		headers[i] = textproto.MIMEHeader{"Content-Type": {ctype}, "Content-Location": {loc + strconv.Itoa(k)}}
		if sizes[i], err = frameSize(&fi, k-1); err != nil {
			return notFound(err, "frame")
		}
	}
	size, err := multipartSize(boundary, headers, sizes)
	if err != nil {
		return err
	}
	s.streamBodySized(c, size, func(ctx context.Context, w io.Writer) error {
		mw := multipart.NewWriter(w)
		if err := mw.SetBoundary(boundary); err != nil {
			return err
		}
		for i, k := range list {
			pw, err := mw.CreatePart(headers[i])
			if err != nil {
				return err
			}
			r, err := fs.open(k - 1)
			if err != nil {
				return err
			}
			if _, err := io.Copy(pw, r); err != nil {
				return fmt.Errorf("gateway: frame %d of %s: %w", k, t.sopID, err)
			}
		}
		return mw.Close()
	})
	return nil
}

// singlePartChoice finds a single-part range for one of types.
func singlePartChoice(accept []mediaRange, types ...string) (tsChoice, bool) {
	for _, m := range accept {
		if m.typ == mediaMultipart {
			continue
		}
		for _, t := range types {
			if !m.matches(t) {
				continue
			}
			c := tsChoice{partTypes: []string{t}}
			switch ts := m.transferSyntax(); {
			case ts == transferSyntaxAny || m.typ == "*/*":
				c.any = true
			case ts == "":
				c.dflt = true
			default:
				c.syntaxes = []string{ts}
			}
			return c, true
		}
	}
	return tsChoice{}, false
}

// bulkPath is an element path as in BulkDataURIs: tags and item indexes.
var bulkPath = regexp.MustCompile(`^[0-9A-Fa-f]{8}(/[0-9]+/[0-9A-Fa-f]{8})*$`)

// bulkdata is WADO-RS Retrieve Bulkdata (PS3.18 10.4.1.1.5) for the
// BulkDataURIs of the metadata: the value's bytes located at ingest, as
// application/octet-stream (one part of a multipart/related body, or a
// single body that honours Range). Encapsulated Pixel Data, which has no
// single value, is served as its frames, one part each.
func (s *Server) bulkdata(c *fiber.Ctx) error {
	t, err := pathTarget(c, index.Instance)
	if err != nil {
		return err
	}
	path := strings.ToUpper(strings.Trim(c.Params("*"), "/"))
	if !bulkPath.MatchString(path) {
		return problemf(http.StatusBadRequest, "invalid bulk data path %q", c.Params("*"))
	}
	ctx := c.UserContext()
	ref, span, err := s.ix.Bulk(ctx, t.sopID, path)
	if errors.Is(err, index.ErrNotFound) && path == "7FE00010" {
		return s.pixelDataFrames(c, t)
	}
	if err != nil {
		return notFound(err, "bulk data "+path+" of "+t.String())
	}
	if ref.StudyInstanceUID != t.study || ref.SeriesInstanceUID != t.series {
		return problemf(http.StatusNotFound, "no %s", t)
	}
	// Values of a big endian object are sent in little endian, the
	// default transfer syntax of bulk data.
	swap := 0
	if ref.TransferSyntaxUID == dicom.ExplicitVRBigEndian {
		ds, err := s.instanceDataset(ctx, t)
		if err != nil {
			return err
		}
		p, err := parsePath(path)
		if err != nil {
			return problemf(http.StatusBadRequest, "invalid bulk data path %q", path)
		}
		if e := ds.Lookup(p); e != nil && e.VR != dicom.UN && e.VR.WordSize() > 1 {
			swap = e.VR.WordSize()
		}
	}
	ra, err := s.pipe.ReaderAt(ctx, ref)
	if err != nil {
		return err
	}
	if span.Offset < 0 || span.Offset+span.Length > ra.Size() {
		return fmt.Errorf("gateway: bulk data %s of %s lies outside the object", path, t.sopID)
	}
	open := func(off, n int64) (io.Reader, io.Closer, error) {
		var r io.Reader = io.NewSectionReader(ra, span.Offset, span.Length)
		if swap > 1 {
			r = newSwapReader(r, swap)
		}
		if _, err := io.CopyN(io.Discard, r, off); err != nil {
			return nil, nil, err
		}
		return r, nil, nil
	}
	accept := parseAccept(c.Get(fiber.HeaderAccept))
	ctype := mediaOctetStream + "; transfer-syntax=" + dicom.ExplicitVRLittleEndian
	if notModified(c, etag([]byte(t.sopID), []byte(ref.BlobKey), []byte(path), []byte(c.Get(fiber.HeaderAccept)))) {
		return nil
	}
	if single, ok := preferSingle(accept, mediaOctetStream); ok && single {
		return sendRanged(c, ctype, span.Length, open)
	} else if !ok {
		return problemf(http.StatusNotAcceptable, "bulk data is available as application/octet-stream")
	}
	boundary := newBoundary()
	c.Set(fiber.HeaderContentType, `multipart/related; type="application/octet-stream"; boundary=`+boundary)
	s.streamBody(c, func(ctx context.Context, w io.Writer) error {
		mw := multipart.NewWriter(w)
		if err := mw.SetBoundary(boundary); err != nil {
			return err
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", ctype)
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		r, _, err := open(0, span.Length)
		if err != nil {
			return err
		}
		if _, err := io.Copy(pw, r); err != nil {
			return err
		}
		return mw.Close()
	})
	return nil
}

// preferSingle reports whether the best range of accept that admits typ
// is a single-part one (the alternative being multipart/related with
// parts of typ); ok is false when neither is admitted. */* is taken as
// multipart, the standard's default.
func preferSingle(accept []mediaRange, typ string) (single, ok bool) {
	for _, m := range accept {
		switch {
		case m.typ == mediaMultipart && (m.part() == "" || m.part() == typ):
			return false, true
		case m.typ == "*/*":
			return false, true
		case m.typ != mediaMultipart && m.matches(typ):
			return true, true
		}
	}
	return false, false
}

// pixelDataFrames serves the Pixel Data bulk data URI of an instance
// whose pixel data is encapsulated: its frames as stored, one part each.
func (s *Server) pixelDataFrames(c *fiber.Ctx, t target) error {
	ctx := c.UserContext()
	fi, err := s.frameInfo(ctx, t)
	if err != nil {
		return err
	}
	list := make([]int, frameCount(&fi))
	for i := range list {
		list[i] = i + 1
	}
	// Answered as /frames/1,...,n with transfer-syntax=*.
	return s.framesOf(c, t, fi, list, `multipart/related; type="application/octet-stream"; transfer-syntax=*`)
}

// parsePath parses a bulk data path into an ElementPath.
func parsePath(s string) (dicom.ElementPath, error) {
	var p dicom.ElementPath
	fields := strings.Split(s, "/")
	for i := 0; i+2 < len(fields); i += 2 {
		t, err := dicom.ParseTag(fields[i])
		if err != nil {
			return p, err
		}
		n, err := strconv.Atoi(fields[i+1])
		if err != nil {
			return p, err
		}
		p.Items = append(p.Items, dicom.PathItem{Sequence: t, Index: n})
	}
	t, err := dicom.ParseTag(fields[len(fields)-1])
	if err != nil {
		return p, err
	}
	p.Tag = t
	return p, nil
}
