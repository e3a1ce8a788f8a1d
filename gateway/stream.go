package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// streamBufSize bounds what a producer may have written ahead of the
// connection.
const streamBufSize = 1 << 20

// streamBody makes the response body whatever produce writes, streamed:
// produce runs in its own goroutine while fasthttp copies to the
// connection, with at most streamBufSize bytes between them. produce's
// context ends when the client goes away or the copy fails; an error from
// produce cuts the response short (the client sees a truncated body, not a
// valid one) and is logged. Status and headers must be set before calling
// streamBody.
func (s *Server) streamBody(c *fiber.Ctx, produce func(ctx context.Context, w io.Writer) error) {
	s.streamBodySized(c, -1, produce)
}

// streamBodySized is streamBody for a body whose length is known in
// advance (size >= 0): it is sent with a Content-Length, which also lets
// fasthttp copy it in large writes rather than 4 KiB chunks.
func (s *Server) streamBodySized(c *fiber.Ctx, size int64, produce func(ctx context.Context, w io.Writer) error) {
	id := requestID(c)
	path := c.Path()
	ctx, cancel := context.WithCancel(context.Background())
	p := newBufPipe(streamBufSize, cancel)
	sv := servingOf(c)
	if sv != nil {
		sv.streamed = true
	}
	go func() {
		defer cancel()
		cw := &countingWriter{w: p}
		err := produce(ctx, cw)
		if err != nil && !errors.Is(err, io.ErrClosedPipe) && ctx.Err() == nil {
			s.log.Warn("http response cut short", "request_id", id, "path", path, "err", err)
		}
		p.closeWrite(err)
		if sv != nil {
			sv.done(cw.n.Load(), err == nil)
		}
	}()
	c.Response().SetBodyStream(p, int(size))
}

// multipartSize returns the length of the multipart body with boundary
// whose parts have headers and body sizes: the framing is counted by
// writing it, bodies left out, through a multipart.Writer.
func multipartSize(boundary string, headers []textproto.MIMEHeader, sizes []int64) (int64, error) {
	var n countWriter
	mw := multipart.NewWriter(&n)
	if err := mw.SetBoundary(boundary); err != nil {
		return 0, err
	}
	total := int64(0)
	for i, h := range headers {
		if _, err := mw.CreatePart(h); err != nil {
			return 0, err
		}
		total += sizes[i]
	}
	if err := mw.Close(); err != nil {
		return 0, err
	}
	return total + int64(n), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// bufPipe is an in-memory pipe with a buffer: fasthttp reads a chunked
// body 4 KiB at a time, and an unbuffered io.Pipe would cost a goroutine
// hand-off for each of those reads. Closing it (fasthttp does, when the
// response is sent or fails) stops the producer.
type bufPipe struct {
	mu   sync.Mutex
	cond sync.Cond
	buf  []byte
	off  int // read position in buf
	max  int
	// WriteTo takes buf whole and writes it out while the producer fills
	// spare, so the socket write needs no copy and no lock.
	spare   []byte
	werr    error // set when the writer is done: io.EOF or its error
	rclosed bool
	cancel  context.CancelFunc
}

// pipeBufs recycles the buffers of bufPipes of streamBufSize.
var pipeBufs = sync.Pool{New: func() any { b := make([]byte, 0, streamBufSize); return &b }}

func newBufPipe(max int, cancel context.CancelFunc) *bufPipe {
	var buf []byte
	if max == streamBufSize {
		buf = (*pipeBufs.Get().(*[]byte))[:0]
	}
	p := &bufPipe{max: max, cancel: cancel, buf: buf}
	p.cond.L = &p.mu
	return p
}

func (p *bufPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		for len(p.buf)-p.off >= p.max && !p.rclosed {
			p.cond.Wait()
		}
		if p.rclosed {
			return n, io.ErrClosedPipe
		}
		if p.off > 0 && p.off == len(p.buf) {
			p.buf, p.off = p.buf[:0], 0
		}
		k := min(len(b), p.max-(len(p.buf)-p.off))
		p.buf = append(p.buf, b[:k]...)
		b, n = b[k:], n+k
		p.cond.Broadcast()
	}
	return n, nil
}

func (p *bufPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.off == len(p.buf) && p.werr == nil {
		p.cond.Wait()
	}
	if p.off == len(p.buf) {
		return 0, p.werr
	}
	n := copy(b, p.buf[p.off:])
	p.off += n
	if p.off == len(p.buf) {
		p.buf, p.off = p.buf[:0], 0
	} else if p.off > p.max {
		// Keep the buffer from growing: move the unread tail down.
		k := copy(p.buf, p.buf[p.off:])
		p.buf, p.off = p.buf[:k], 0
	}
	p.cond.Broadcast()
	return n, nil
}

// WriteTo copies the stream to w, handing w whole buffers of up to max
// bytes: fasthttp copies a body through a 4 KiB buffer otherwise, and
// the connection gets that buffer's worth per write.
func (p *bufPipe) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		p.mu.Lock()
		for p.off == len(p.buf) && p.werr == nil && !p.rclosed {
			p.cond.Wait()
		}
		if p.rclosed {
			p.mu.Unlock()
			return total, io.ErrClosedPipe
		}
		if p.off == len(p.buf) {
			err := p.werr
			p.mu.Unlock()
			if err == io.EOF {
				err = nil
			}
			return total, err
		}
		if p.spare == nil && p.max == streamBufSize {
			p.spare = (*pipeBufs.Get().(*[]byte))[:0] // the second buffer, taken on first use
		}
		chunk := p.buf[p.off:]
		full := p.buf[:0]
		p.buf, p.off, p.spare = p.spare[:0], 0, nil
		p.cond.Broadcast()
		p.mu.Unlock()

		n, err := w.Write(chunk)
		total += int64(n)

		p.mu.Lock()
		p.spare = full
		p.mu.Unlock()
		if err != nil {
			return total, err
		}
	}
}

// closeWrite ends the stream: readers get err after the buffered bytes
// (io.EOF for nil).
func (p *bufPipe) closeWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	if p.werr == nil {
		p.werr = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Close is the reader's: the producer's next Write fails.
func (p *bufPipe) Close() error {
	p.cancel()
	p.mu.Lock()
	p.rclosed = true
	for _, b := range [][]byte{p.buf, p.spare} {
		if cap(b) == streamBufSize {
			b = b[:0]
			pipeBufs.Put(&b)
		}
	}
	p.buf, p.off, p.spare = nil, 0, nil
	p.cond.Broadcast()
	p.mu.Unlock()
	return nil
}

// readerBody is a single-part body of known length from r; rc, if
// non-nil, is closed with it.
type readerBody struct {
	r  io.Reader
	rc io.Closer
}

func (b readerBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b readerBody) Close() error {
	if b.rc != nil {
		return b.rc.Close()
	}
	return nil
}

// newBoundary returns a multipart boundary that cannot occur in DICOM
// data by chance.
func newBoundary() string {
	var b [16]byte
	rand.Read(b[:])
	return "medimint-" + hex.EncodeToString(b[:])
}

// etag returns a strong entity tag over parts.
func etag(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		for i, l := 0, len(p); i < 8; i, l = i+1, l>>8 {
			n[i] = byte(l)
		}
		h.Write(n[:])
		h.Write(p)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// notModified sets ETag and Cache-Control and reports whether the
// request's If-None-Match already names tag, in which case it has answered
// 304.
func notModified(c *fiber.Ctx, tag string) bool {
	c.Set(fiber.HeaderETag, tag)
	// Medical data: caches must be private and revalidate every time.
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	inm := c.Get(fiber.HeaderIfNoneMatch)
	if inm == "" {
		return false
	}
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			c.Status(http.StatusNotModified)
			return true
		}
	}
	return false
}

// byteRange is a satisfiable single range of a representation.
type byteRange struct{ off, n int64 }

// parseRange interprets a Range header against size. ok=false means the
// header is absent or not one the gateway honours (several ranges, other
// units): the whole representation is sent. An unsatisfiable range is an
// error answered 416.
func parseRange(h string, size int64) (byteRange, bool, error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return byteRange{}, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return byteRange{}, false, nil
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	unsatisfiable := &httpError{status: http.StatusRequestedRangeNotSatisfiable, detail: "range not satisfiable"}
	if first == "" { // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return byteRange{}, false, unsatisfiable
		}
		n = min(n, size)
		return byteRange{size - n, n}, true, nil
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return byteRange{}, false, nil
	}
	if a >= size {
		return byteRange{}, false, unsatisfiable
	}
	b := size - 1
	if last != "" {
		b, err = strconv.ParseInt(last, 10, 64)
		if err != nil || b < a {
			return byteRange{}, false, nil
		}
		b = min(b, size-1)
	}
	return byteRange{a, b - a + 1}, true, nil
}

// sendRanged answers with the representation of size bytes that open
// returns a section of, honouring Range: 200 with the whole, or 206 with
// one range. Headers other than the body's must be set already.
func sendRanged(c *fiber.Ctx, contentType string, size int64, open func(off, n int64) (io.Reader, io.Closer, error)) error {
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	c.Set(fiber.HeaderContentType, contentType)
	off, n := int64(0), size
	if h := c.Get(fiber.HeaderRange); h != "" && ifRangeHolds(c) {
		r, ok, err := parseRange(h, size)
		if err != nil {
			c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", size))
			return err
		}
		if ok {
			off, n = r.off, r.n
			c.Status(http.StatusPartialContent)
			c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
		}
	}
	r, closer, err := open(off, n)
	if err != nil {
		return err
	}
	body := readerBody{io.LimitReader(r, n), closer}
	if sv := servingOf(c); sv != nil {
		sv.streamed = true
		c.Response().SetBodyStream(&auditedBody{readerBody: body, sv: sv, want: n}, int(n))
		return nil
	}
	c.Response().SetBodyStream(body, int(n))
	return nil
}

// ifRangeHolds evaluates If-Range against the ETag already set.
func ifRangeHolds(c *fiber.Ctx) bool {
	ir := c.Get(fiber.HeaderIfRange)
	return ir == "" || ir == string(c.Response().Header.Peek(fiber.HeaderETag))
}

// baseURL is the absolute URL of the DICOMweb base path as the client
// sees it.
func (s *Server) baseURL(c *fiber.Ctx) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	return c.BaseURL() + s.cfg.BasePath
}
