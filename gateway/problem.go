package gateway

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

// Problem is an RFC 9457 problem details object, with the DICOM status
// that describes the failure where there is one and the request's ID.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// DICOMStatus is the DICOM status or Failure Reason (PS3.4 Annex C,
	// PS3.18 Table 10.5.3-1) as four hex digits, e.g. "C000".
	DICOMStatus string `json:"dicomStatus,omitempty"`
	RequestID   string `json:"requestId,omitempty"`
}

// ProblemContentType is the media type of every error response.
const ProblemContentType = "application/problem+json"

// httpError is a client-facing failure: status, DICOM reason and a detail
// that is safe to show (it never carries patient data).
type httpError struct {
	status int
	reason uint16 // 0: none
	detail string
}

func (e *httpError) Error() string {
	if e.reason != 0 {
		return fmt.Sprintf("%d %s (DICOM %04X): %s", e.status, http.StatusText(e.status), e.reason, e.detail)
	}
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.detail)
}

// problemf returns an error answered with status and a formatted detail.
func problemf(status int, format string, args ...any) error {
	return &httpError{status: status, detail: fmt.Sprintf(format, args...)}
}

// dicomProblemf is problemf with a DICOM status.
func dicomProblemf(status int, reason uint16, format string, args ...any) error {
	return &httpError{status: status, reason: reason, detail: fmt.Sprintf(format, args...)}
}

// DICOM status codes the gateway reports in problems and Store Instances
// responses (PS3.4 Annex C, PS3.18 Table 10.5.3-1).
const (
	statusProcessingFailure    uint16 = 0x0110
	statusDuplicate            uint16 = 0x0111
	statusSOPClassNotSupported uint16 = 0x0122
	statusOutOfResources       uint16 = 0xA700
	statusDataSetMismatch      uint16 = 0xA900
	statusCannotUnderstand     uint16 = 0xC000
	statusTSNotSupported       uint16 = 0xC122
)

// handleError turns every handler error into a problem response. Errors
// that are neither *httpError nor *fiber.Error are internal: they are
// logged, and the client learns only that something failed, since details
// may name patients.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	p := Problem{Type: "about:blank", Status: http.StatusInternalServerError, RequestID: requestID(c)}
	var he *httpError
	var fe *fiber.Error
	switch {
	case errors.As(err, &he):
		p.Status, p.Detail = he.status, he.detail
		if he.reason != 0 {
			p.DICOMStatus = fmt.Sprintf("%04X", he.reason)
		}
	case errors.As(err, &fe):
		p.Status = fe.Code
		p.Detail = fe.Message
	default:
		s.log.Error("http handler failed", "method", c.Method(), "path", c.Path(), "request_id", p.RequestID, "err", err)
		p.Detail = "internal error"
	}
	p.Title = http.StatusText(p.Status)
	if p.Title == "" {
		p.Title = "Error"
	}
	// A response that was to be streamed is replaced by the problem.
	c.Response().ResetBody()
	return c.Status(p.Status).JSON(p, ProblemContentType)
}
