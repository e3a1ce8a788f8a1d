package gateway

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/index"
)

// serving records what one allowed WADO-RS request serves, so that
// exactly one audit row says what left: set up by may, given its instance
// count by the handler, and closed either when the handler returns (a
// body in memory) or when a streamed body ends (streamBody, sendRanged).
type serving struct {
	az        *access.Authorizer
	ctx       context.Context // the request's values, never cancelled
	sub       access.Subject
	study     string
	level     index.Level
	what      string
	instances int
	streamed  bool
	once      sync.Once
}

type servingKey struct{}

// servingOf returns the record may put in c, or nil (ungated, not a read).
func servingOf(c *fiber.Ctx) *serving {
	sv, _ := c.Locals(servingKey{}).(*serving)
	return sv
}

// setInstances tells the record how many instances the response holds.
func setInstances(c *fiber.Ctx, n int) {
	if sv := servingOf(c); sv != nil {
		sv.instances = n
	}
}

// servedWhat names what a WADO-RS route serves.
func servedWhat(act access.Action, route string) string {
	switch {
	case act == access.MetadataOnly:
		return "metadata"
	case strings.Contains(route, "/bulkdata/"):
		return "bulkdata"
	case strings.HasSuffix(route, "/rendered"):
		return "rendered"
	case strings.HasSuffix(route, "/thumbnail"):
		return "thumbnail"
	case strings.Contains(route, "/frames/"):
		return "frames"
	}
	return "instances"
}

// done appends the audit row, once.
func (sv *serving) done(bytes int64, complete bool) {
	sv.once.Do(func() {
		n := sv.instances
		if n == 0 && sv.level == index.Instance {
			n = 1
		}
		level := strings.ToLower(sv.level.String())
		if sv.level == index.Instance {
			level = "instance" // PS3.18's word; IMAGE is PS3.4's
		}
		sv.az.Retrieved(sv.ctx, sv.sub, access.Resource{StudyInstanceUID: sv.study}, access.Retrieval{
			Service: "wado-rs", Level: level, What: sv.what,
			Instances: n, Bytes: bytes, Complete: complete})
	})
}

// auditServed runs the rest of the chain for an allowed read and audits
// what it served: a 2xx answer in memory now, a streamed one when its
// stream ends. Errors, 304 and other non-2xx answers served nothing.
func (s *Server) auditServed(c *fiber.Ctx, sub access.Subject, act access.Action, study string, level index.Level) error {
	sv := &serving{az: s.deps.Access, ctx: context.WithoutCancel(c.UserContext()), sub: sub, study: study, level: level,
		what: servedWhat(act, c.Route().Path)}
	c.Locals(servingKey{}, sv)
	if err := c.Next(); err != nil {
		return err
	}
	if st := c.Response().StatusCode(); st < 200 || st > 299 || sv.streamed {
		return nil
	}
	// Not a stream (streamed was not set), so Body does not read one.
	sv.done(int64(len(c.Response().Body())), true)
	return nil
}

// countingWriter counts what passes through to w.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n.Add(int64(n))
	return n, err
}

// auditedBody is a ranged body that audits when fasthttp closes it.
type auditedBody struct {
	readerBody
	sv   *serving
	want int64
	n    int64
}

func (b *auditedBody) Read(p []byte) (int, error) {
	n, err := b.readerBody.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *auditedBody) Close() error {
	b.sv.done(b.n, b.n == b.want)
	return b.readerBody.Close()
}
