package gateway

import (
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// ProblemContentType is the media type of every error response.
const ProblemContentType = "application/problem+json"

// handleError turns every handler error into a problem response. Errors
// that are not *fiber.Error are internal: they are logged, and the client
// learns only that something failed, since details may name patients.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	p := Problem{Type: "about:blank", Status: http.StatusInternalServerError}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		p.Status = fe.Code
		p.Detail = fe.Message
	} else {
		s.log.Error("http handler failed", "method", c.Method(), "path", c.Path(), "err", err)
		p.Detail = "internal error"
	}
	p.Title = http.StatusText(p.Status)
	if p.Title == "" {
		p.Title = "Error"
	}
	return c.Status(p.Status).JSON(p, ProblemContentType)
}
