package dimse

import (
	"fmt"

	"github.com/medimint/medimint/dicom"
)

// Status is the outcome of a DIMSE operation: the Status (0000,0900) of the
// response, with the optional Error Comment (0000,0902) and Offending
// Element (0000,0901).
type Status struct {
	Code              uint16
	ErrorComment      string
	OffendingElements []dicom.Tag
}

// Status codes of PS3.7 Annex C and the service classes of PS3.4.
const (
	StatusSuccess                     = 0x0000
	StatusPending                     = 0xFF00
	StatusPendingWarning              = 0xFF01 // optional keys not supported
	StatusCancel                      = 0xFE00
	StatusAttributeListError          = 0x0107 // warning
	StatusAttributeValueOutOfRange    = 0x0116 // warning
	StatusSOPClassNotSupported        = 0x0122
	StatusNoSuchSOPClass              = 0x0118
	StatusDuplicateInvocation         = 0x0210
	StatusUnrecognizedOperation       = 0x0211
	StatusMistypedArgument            = 0x0212
	StatusOutOfResources              = 0xA700
	StatusOutOfResourcesMatches       = 0xA701 // unable to calculate number of matches
	StatusOutOfResourcesSubOperations = 0xA702 // unable to perform sub-operations
	StatusMoveDestinationUnknown      = 0xA801
	StatusDataSetDoesNotMatchSOPClass = 0xA900 // also: identifier does not match SOP class
	StatusCannotUnderstand            = 0xC000 // C000-CFFF: error, cannot understand
	StatusUnableToProcess             = 0xC001 // C-FIND/MOVE/GET: unable to process
	StatusSubOperationsWarning        = 0xB000 // sub-operations complete, one or more failures
	StatusCoercionOfDataElements      = 0xB000 // C-STORE warning
	StatusElementsDiscarded           = 0xB006
	StatusDataSetDoesNotMatchWarning  = 0xB007
	StatusProcessingFailure           = 0x0110
)

// Success is the Status of a successful operation.
var Success = Status{Code: StatusSuccess}

// IsPending reports whether code is one of the Pending statuses.
func IsPending(code uint16) bool { return code == StatusPending || code == StatusPendingWarning }

// IsWarning reports whether code is a warning (PS3.7 C.3).
func IsWarning(code uint16) bool {
	return code == 0x0001 || code&0xF000 == 0xB000 || code == StatusAttributeListError || code == StatusAttributeValueOutOfRange
}

// IsFailure reports whether code is neither success, pending, cancel nor
// a warning.
func IsFailure(code uint16) bool {
	return code != StatusSuccess && !IsPending(code) && code != StatusCancel && !IsWarning(code)
}

func (s Status) String() string {
	if s.ErrorComment != "" {
		return fmt.Sprintf("0x%04X (%s)", s.Code, s.ErrorComment)
	}
	return fmt.Sprintf("0x%04X", s.Code)
}

// StatusError is returned by Client operations that complete with a
// failure status.
type StatusError struct{ Status Status }

func (e *StatusError) Error() string { return "dimse: failure status " + e.Status.String() }
