package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// streamBufSize is the write buffer between a producer and the
// connection: large enough that pipe hand-offs are rare.
const streamBufSize = 256 << 10

// streamBody makes the response body whatever produce writes, streamed:
// produce runs in its own goroutine once the handler returns control to
// fasthttp, which copies from a pipe to the connection. Nothing is
// buffered beyond streamBufSize. produce's context ends when the client
// goes away or the copy fails; an error from produce cuts the response
// short (the client sees a truncated body, not a valid one) and is
// logged. Status and headers must be set before calling streamBody.
func (s *Server) streamBody(c *fiber.Ctx, produce func(ctx context.Context, w io.Writer) error) {
	id := requestID(c)
	path := c.Path()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		bw := bufio.NewWriterSize(pw, streamBufSize)
		err := produce(ctx, bw)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil && !errors.Is(err, io.ErrClosedPipe) && ctx.Err() == nil {
			s.log.Warn("http response cut short", "request_id", id, "path", path, "err", err)
		}
		pw.CloseWithError(err)
	}()
	c.Response().SetBodyStream(&pipeBody{pr: pr, cancel: cancel}, -1)
}

// pipeBody is the response body stream: closing it (fasthttp does, when
// the response is sent or fails) stops the producer.
type pipeBody struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
	once   sync.Once
}

func (b *pipeBody) Read(p []byte) (int, error) { return b.pr.Read(p) }

func (b *pipeBody) Close() error {
	b.once.Do(func() {
		b.cancel()
		b.pr.Close()
	})
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
	c.Response().SetBodyStream(readerBody{io.LimitReader(r, n), closer}, int(n))
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
