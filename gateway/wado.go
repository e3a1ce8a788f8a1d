package gateway

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/index"
)

// retrieve is WADO-RS Retrieve Study, Series or Instance (PS3.18 10.4):
// multipart/related; type="application/dicom", one part per instance,
// streamed from the blob store through decryption. The transfer syntax of
// each part is negotiated from the Accept header: as stored for
// transfer-syntax=* or a match, otherwise transcoded between uncompressed
// syntaxes by the dicom codec; a request that can only be met by
// decompressing is 406. A single instance may also be asked for as a
// single application/dicom body, which honours Range.
func (s *Server) retrieve(level index.Level) fiber.Handler {
	return func(c *fiber.Ctx) error {
		t, err := pathTarget(c, level)
		if err != nil {
			return err
		}
		ctx := c.UserContext()
		refs, err := s.instances(ctx, t)
		if err != nil {
			return err
		}
		setInstances(c, len(refs))
		accept := parseAccept(c.Get(fiber.HeaderAccept))
		choice, ok := multipartChoice(accept, mediaDICOM)
		if !ok {
			if level == index.Instance {
				if ts, ok := singleDICOMChoice(accept); ok {
					return s.retrieveSingle(c, refs[0], ts)
				}
			}
			return problemf(http.StatusNotAcceptable, "this resource is available as multipart/related; type=\"application/dicom\"")
		}
		plans := make([]string, len(refs))
		tagParts := make([][]byte, 0, 3*len(refs))
		for i, r := range refs {
			plans[i] = choice.pick(r.TransferSyntaxUID)
			if plans[i] == "" {
				return dicomProblemf(http.StatusNotAcceptable, statusTSNotSupported,
					"instance %s is stored as %s, which cannot be converted to the transfer syntaxes accepted (the gateway does not decompress; ask for transfer-syntax=*)",
					r.SOPInstanceUID, r.TransferSyntaxUID)
			}
			tagParts = append(tagParts, []byte(r.SOPInstanceUID), []byte(r.BlobKey), []byte(plans[i]))
		}
		if notModified(c, etag(tagParts...)) {
			return nil
		}
		base := s.baseURL(c)
		boundary := newBoundary()
		headers := make([]textproto.MIMEHeader, len(refs))
		sizes := make([]int64, len(refs))
		size := int64(0) // -1 once a part is transcoded: its length is not known before
		for i, r := range refs {
			h := textproto.MIMEHeader{}
			h.Set("Content-Type", "application/dicom; transfer-syntax="+plans[i])
			h.Set("Content-Location", instanceURL(base, r))
			headers[i], sizes[i] = h, r.Size
			if plans[i] != r.TransferSyntaxUID {
				size = -1
			}
		}
		if size == 0 {
			if size, err = multipartSize(boundary, headers, sizes); err != nil {
				return err
			}
		}
		c.Set(fiber.HeaderContentType, `multipart/related; type="application/dicom"; boundary=`+boundary)
		s.streamBodySized(c, size, func(ctx context.Context, w io.Writer) error {
			mw := multipart.NewWriter(w)
			if err := mw.SetBoundary(boundary); err != nil {
				return err
			}
			for i, r := range refs {
				pw, err := mw.CreatePart(headers[i])
				if err != nil {
					return err
				}
				if err := s.writeInstance(ctx, pw, r, plans[i]); err != nil {
					return err
				}
			}
			return mw.Close()
		})
		return nil
	}
}

func instanceURL(base string, r index.InstanceRef) string {
	return base + "/studies/" + r.StudyInstanceUID + "/series/" + r.SeriesInstanceUID + "/instances/" + r.SOPInstanceUID
}

// singleDICOMChoice reports whether accept asks for a single-part
// application/dicom body and with which transfer-syntax parameter.
func singleDICOMChoice(accept []mediaRange) (tsChoice, bool) {
	for _, m := range accept {
		if m.typ != mediaDICOM {
			continue
		}
		var c tsChoice
		switch ts := m.transferSyntax(); ts {
		case transferSyntaxAny:
			c.any = true
		case "":
			c.dflt = true
		default:
			c.syntaxes = []string{ts}
		}
		return c, true
	}
	return tsChoice{}, false
}

// retrieveSingle answers with one instance as a single application/dicom
// body; as stored it has a length and honours Range.
func (s *Server) retrieveSingle(c *fiber.Ctx, r index.InstanceRef, choice tsChoice) error {
	ts := choice.pick(r.TransferSyntaxUID)
	if ts == "" {
		return dicomProblemf(http.StatusNotAcceptable, statusTSNotSupported,
			"instance %s is stored as %s, which cannot be converted to the transfer syntax accepted", r.SOPInstanceUID, r.TransferSyntaxUID)
	}
	if notModified(c, etag([]byte(r.SOPInstanceUID), []byte(r.BlobKey), []byte(ts), []byte("single"))) {
		return nil
	}
	ctype := "application/dicom; transfer-syntax=" + ts
	ctx := c.UserContext()
	if ts != r.TransferSyntaxUID {
		c.Set(fiber.HeaderContentType, ctype)
		s.streamBody(c, func(ctx context.Context, w io.Writer) error { return s.transcode(ctx, w, r, ts) })
		return nil
	}
	return sendRanged(c, ctype, r.Size, func(off, n int64) (io.Reader, io.Closer, error) {
		if off == 0 && n == r.Size {
			rc, err := s.pipe.OpenRef(ctx, r)
			if err != nil {
				return nil, nil, err
			}
			return rc, rc, nil
		}
		ra, err := s.pipe.ReaderAt(ctx, r)
		if err != nil {
			return nil, nil, err
		}
		return io.NewSectionReader(ra, off, n), nil, nil
	})
}

// writeInstance writes instance r in transfer syntax ts to w.
func (s *Server) writeInstance(ctx context.Context, w io.Writer, r index.InstanceRef, ts string) error {
	if ts != r.TransferSyntaxUID {
		return s.transcode(ctx, w, r, ts)
	}
	rc, err := s.pipe.OpenRef(ctx, r)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return fmt.Errorf("gateway: send %s: %w", r.SOPInstanceUID, err)
	}
	if n != r.Size {
		return fmt.Errorf("gateway: send %s: %d bytes, the index says %d", r.SOPInstanceUID, n, r.Size)
	}
	return nil
}

// transcode rewrites instance r, stored in an uncompressed transfer
// syntax, in another one, streaming from the decrypted object through
// dicom.TranscodeFile (only one element at a time is held in memory).
func (s *Server) transcode(ctx context.Context, w io.Writer, r index.InstanceRef, ts string) error {
	src, ok1 := dicom.LookupTransferSyntax(r.TransferSyntaxUID)
	dst, ok2 := dicom.LookupTransferSyntax(ts)
	if !ok1 || !ok2 || !dicom.CanTranscode(src, dst) {
		return fmt.Errorf("gateway: cannot transcode %s from %s to %s", r.SOPInstanceUID, r.TransferSyntaxUID, ts)
	}
	rc, err := s.pipe.OpenRef(ctx, r)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := dicom.TranscodeFile(w, rc, dst); err != nil {
		return fmt.Errorf("gateway: transcode %s: %w", r.SOPInstanceUID, err)
	}
	return nil
}

// swapReader reverses the bytes of each size-byte word read through it
// (big endian values to the little endian the codec expects).
type swapReader struct {
	r       io.Reader
	size    int
	buf     []byte
	pending []byte
	err     error
}

func newSwapReader(r io.Reader, size int) *swapReader {
	return &swapReader{r: r, size: size, buf: make([]byte, 64<<10)}
}

func (s *swapReader) Read(p []byte) (int, error) {
	if len(s.pending) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		n, err := io.ReadFull(s.r, s.buf)
		switch err {
		case nil:
		case io.ErrUnexpectedEOF:
			s.err = io.EOF
		default:
			s.err = err
		}
		if n == 0 {
			return 0, s.err
		}
		swapWords(s.buf[:n-n%s.size], s.size)
		s.pending = s.buf[:n]
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func swapWords(b []byte, size int) {
	for i := 0; i+size <= len(b); i += size {
		w := b[i : i+size]
		for j, k := 0, size-1; j < k; j, k = j+1, k-1 {
			w[j], w[k] = w[k], w[j]
		}
	}
}

// metadata is WADO-RS Retrieve Metadata at study, series or instance
// level (PS3.18 10.4.1.1.2): the DICOM JSON precomputed at ingest,
// streamed from the database with BulkDataURIs rebased on this server.
// Instances are never read or parsed for it.
func (s *Server) metadata(c *fiber.Ctx) error {
	level := index.Study
	switch {
	case c.Params("instance") != "":
		level = index.Instance
	case c.Params("series") != "":
		level = index.Series
	}
	t, err := pathTarget(c, level)
	if err != nil {
		return err
	}
	typ, ok := acceptsAny(parseAccept(c.Get(fiber.HeaderAccept)), mediaDICOMJSON, mediaJSON)
	if !ok {
		return problemf(http.StatusNotAcceptable, "metadata is available as %s only", mediaDICOMJSON)
	}
	ctx := c.UserContext()
	refs, err := s.instances(ctx, t)
	if err != nil {
		return err
	}
	setInstances(c, len(refs))
	base := s.baseURL(c)
	parts := make([][]byte, 0, 2*len(refs)+1)
	parts = append(parts, []byte(base))
	for _, r := range refs {
		parts = append(parts, []byte(r.SOPInstanceUID), []byte(r.BlobKey))
	}
	tag := etag(parts...)
	if notModified(c, tag) {
		return nil
	}
	c.Set(fiber.HeaderContentType, typ)
	if body, ok := s.metaCache.get(tag); ok {
		return c.Send(body)
	}
	s.streamBody(c, func(ctx context.Context, w io.Writer) error {
		if s.metaCache == nil {
			return s.ix.Metadata(ctx, w, base, t.study, t.series, t.sopID)
		}
		cp := &capture{max: s.metaCache.maxEntry}
		if err := s.ix.Metadata(ctx, io.MultiWriter(w, cp), base, t.study, t.series, t.sopID); err != nil {
			return err
		}
		if !cp.over {
			s.metaCache.put(tag, cp.buf)
		}
		return nil
	})
	return nil
}
