package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
)

// RequestIDHeader carries the request's ID: taken from the client when it
// sends a sane one, generated otherwise, and always echoed.
const RequestIDHeader = "X-Request-ID"

const localRequestID = "medimint.request_id"

// requestID returns the ID observe gave the request.
func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

// validRequestID accepts IDs of up to 128 visible ASCII characters, so
// that a client's ID cannot forge log lines.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// observe assigns the request ID, counts the request and writes the
// access log line. Paths are logged (they hold UIDs, not patient data);
// query strings are not, since QIDO-RS queries may name patients.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	id := c.Get(RequestIDHeader)
	if !validRequestID(id) {
		id = newRequestID()
	}
	c.Locals(localRequestID, id)
	c.Set(RequestIDHeader, id)
	s.metrics.addInflight(1)
	defer s.metrics.addInflight(-1)

	err := c.Next()
	if err != nil {
		// Answer now, so that the status logged is the status sent.
		if herr := s.handleError(c, err); herr != nil {
			return herr
		}
	}
	status := c.Response().StatusCode()
	route := "unmatched"
	if r := c.Route(); r != nil && r.Path != "/" && r.Path != "" {
		route = r.Path
	}
	d := time.Since(start)
	// Body() would drain a body stream into memory: count only bodies
	// already held.
	n := -1
	if !c.Response().IsBodyStream() {
		n = len(c.Response().Body())
	}
	s.metrics.observe(c.Method(), route, status, d)
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case route == "/healthz" || route == "/readyz" || route == "/metrics":
		level = slog.LevelDebug
	}
	s.log.LogAttrs(c.UserContext(), level, "http request",
		slog.String("request_id", id),
		slog.String("method", c.Method()),
		slog.String("path", c.Path()),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int("bytes", n), // -1: streamed
		slog.Duration("duration", d),
		slog.String("remote", c.IP()))
	return nil
}
