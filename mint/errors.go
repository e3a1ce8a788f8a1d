package mint

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Status codes shared by C-STORE responses (PS3.4 B.2.3) and STOW-RS
// Failure Reason (0008,1197) values (PS3.18 Table 10.5.3-1).
const (
	StatusSuccess          uint16 = 0x0000
	StatusDuplicate        uint16 = 0x0111 // Duplicate SOP Instance
	StatusOutOfResources   uint16 = 0xA700 // Refused: Out of Resources
	StatusDataSetMismatch  uint16 = 0xA900 // Error: Data Set does not match SOP Class
	StatusCannotUnderstand uint16 = 0xC000 // Error: Cannot understand
	// StatusNotAuthorized is PS3.7 C.5's general "Refused: Not
	// authorized": the caller's organisation may not add to the study.
	StatusNotAuthorized uint16 = 0x0124
)

var (
	// ErrNotDICOM reports input that does not parse as a DICOM instance.
	ErrNotDICOM = errors.New("mint: not a DICOM instance")
	// ErrMissingUID reports an instance without SOP Class, SOP Instance,
	// Study Instance or Series Instance UID.
	ErrMissingUID = errors.New("mint: missing UID")
	// ErrMismatch reports an instance whose SOP Class or SOP Instance UID
	// differs from the command's (C-STORE) or its File Meta Information's.
	ErrMismatch = errors.New("mint: SOP class or instance differs from the request")
	// ErrDuplicate reports an instance already stored (policy
	// RejectDuplicates, or IgnoreIdentical with different content).
	ErrDuplicate = errors.New("mint: duplicate SOP instance")
	// ErrHeaderTooLarge reports a header (everything before Pixel Data)
	// longer than Config.MaxHeader.
	ErrHeaderTooLarge = errors.New("mint: header too large")
	// ErrTooLarge reports an instance whose values (all but bulk data)
	// exceed Config.MaxInMemory.
	ErrTooLarge = errors.New("mint: instance values too large to hold")
	// ErrNotFound reports an instance that is not stored.
	ErrNotFound = errors.New("mint: not found")
	// ErrOtherOrganisation reports an instance stored into a study that
	// another organisation stored first. The database refuses it
	// (migration 0205, SQLSTATE MM403) in the transaction that files the
	// instance; use NotAuthorized to recognise it.
	ErrOtherOrganisation = errors.New("mint: the study belongs to another organisation")
)

// sqlStateOtherOrg is raised by the instances_same_org trigger.
const sqlStateOtherOrg = "MM403"

// NotAuthorized reports whether a store failed because the study belongs
// to another organisation.
func NotAuthorized(err error) bool {
	if errors.Is(err, ErrOtherOrganisation) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == sqlStateOtherOrg
}

// Status returns the C-STORE status for the outcome of a store: success
// for nil, a failure code by cause otherwise. Errors that are not the
// instance's fault (storage, database) are Out of Resources, which a
// sender may retry.
func Status(err error) uint16 {
	switch {
	case err == nil:
		return StatusSuccess
	case errors.Is(err, ErrDuplicate):
		return StatusDuplicate
	case errors.Is(err, ErrMismatch):
		return StatusDataSetMismatch
	case errors.Is(err, ErrNotDICOM), errors.Is(err, ErrMissingUID):
		return StatusCannotUnderstand
	case NotAuthorized(err):
		return StatusNotAuthorized
	}
	return StatusOutOfResources
}

// FailureReason returns the STOW-RS Failure Reason (0008,1197) for a
// failed store: as Status, except that missing UIDs are 0xA900 as PS3.18
// 10.5.3 asks (the data set lacks attributes its SOP class requires).
func FailureReason(err error) uint16 {
	if errors.Is(err, ErrMissingUID) {
		return StatusDataSetMismatch
	}
	return Status(err)
}

// Retryable reports whether a failed store may succeed if sent again.
func Retryable(err error) bool { return err != nil && Status(err) == StatusOutOfResources }

func invalid(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
