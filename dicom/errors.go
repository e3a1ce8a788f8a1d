package dicom

import (
	"errors"
	"fmt"
)

// Sentinel errors of the codec, for errors.Is. A parse failure is a
// *ParseError wrapping one of them.
var (
	// ErrNotDICOM: the input is neither a Part 10 file nor a bare data set.
	ErrNotDICOM = errors.New("dicom: not DICOM data")
	// ErrTruncated: the input ends inside an element header, an item or a
	// sequence.
	ErrTruncated = errors.New("dicom: unexpected end of data")
	// ErrValueTooLong: an element's value length claims more bytes than
	// the input (or the enclosing item or sequence) holds.
	ErrValueTooLong = errors.New("dicom: value length exceeds the data available")
	// ErrUndefinedLength: undefined length on an element that may not have
	// it (only SQ, UN and encapsulated Pixel Data may).
	ErrUndefinedLength = errors.New("dicom: undefined length not allowed for this element")
	// ErrTooDeep: sequences nest deeper than ReadOptions.MaxDepth.
	ErrTooDeep = errors.New("dicom: sequence nesting too deep")
	// ErrTooLarge reports a stream whose values would take more memory
	// than ReadOptions.MaxInMemory allows.
	ErrTooLarge = errors.New("dicom: values exceed the memory allowed for them")
	// ErrMalformed: an item or delimiter where none may be, or other
	// framing the standard does not allow.
	ErrMalformed = errors.New("dicom: malformed encoding")
	// ErrNoBulk: writing an element whose value was not read
	// (ReadOptions.SkipBulk) without WriteOptions.Bulk to supply it.
	ErrNoBulk = errors.New("dicom: bulk value not loaded and no WriteOptions.Bulk")
)

// ParseError locates a parse failure: the byte offset in the source of the
// element (or header) being read, and its tag when known. For a deflated
// data set the offset counts inflated bytes from File.DatasetOffset.
type ParseError struct {
	Offset int64
	Tag    Tag
	Err    error
}

func (e *ParseError) Error() string {
	if e.Tag != 0 {
		return fmt.Sprintf("dicom: parsing %s at offset %d: %v", e.Tag, e.Offset, e.Err)
	}
	return fmt.Sprintf("dicom: parsing at offset %d: %v", e.Offset, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }
