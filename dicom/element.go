package dicom

import (
	"sort"
)

// Element is one data element. Exactly one of Value, Items, Fragments or
// Bulk carries the element's content:
//
//   - Value holds the raw value bytes (little endian, padding included) of
//     every VR but SQ and encapsulated Pixel Data.
//   - Items holds the items of a sequence (VR SQ).
//   - Fragments holds encapsulated pixel data (undefined-length OB Pixel Data).
//   - Bulk records where a value lives in the source when it was not loaded
//     (ReadOptions.SkipBulk); Value is then nil.
type Element struct {
	Tag Tag
	VR  VR

	// UndefinedLength records that the source encoded the element (SQ or
	// encapsulated pixel data) with undefined length, so a writer can keep
	// the encoding.
	UndefinedLength bool

	Value     []byte
	Items     []*Dataset
	Fragments *Fragments
	Bulk      *BulkRef
}

// BulkRef locates a value that was not read into memory.
type BulkRef struct {
	Offset int64 // byte offset of the value in the source stream
	Length int64 // length of the value in bytes
}

// Fragments is encapsulated pixel data (PS3.5 A.4): a Basic Offset Table and
// the fragments that follow it. Fragment data may be left unread, in which
// case only its position is known.
type Fragments struct {
	// BasicOffsetTable holds the offsets from the Basic Offset Table item (the first item),
	// relative to the first byte of the first fragment's item tag.
	BasicOffsetTable []uint32
	// BOTOffset is where the Basic Offset Table item's value starts in the source.
	BOTOffset int64
	Items     []Fragment
}

// Fragment is one pixel data fragment (an item of encapsulated Pixel Data).
type Fragment struct {
	Offset int64  // byte offset of the fragment's value in the source stream
	Length uint32 // value length
	Data   []byte // nil when not loaded
}

// Dataset is an ordered collection of data elements, sorted by tag
// ascending, as PS3.5 7.1 requires of an encoded data set.
type Dataset struct {
	Elements []Element
}

// index returns the position of t in ds.Elements, or where it would be
// inserted, and whether it is present.
func (ds *Dataset) index(t Tag) (int, bool) {
	els := ds.Elements
	// Fast path: appends in ascending order are the common case.
	if n := len(els); n == 0 || els[n-1].Tag < t {
		return n, false
	}
	i := sort.Search(len(els), func(i int) bool { return els[i].Tag >= t })
	return i, i < len(els) && els[i].Tag == t
}

// Get returns the element with tag t, or nil.
func (ds *Dataset) Get(t Tag) *Element {
	if ds == nil {
		return nil
	}
	if i, ok := ds.index(t); ok {
		return &ds.Elements[i]
	}
	return nil
}

// Set inserts e, replacing any element with the same tag, keeping order.
func (ds *Dataset) Set(e Element) {
	i, ok := ds.index(e.Tag)
	if ok {
		ds.Elements[i] = e
		return
	}
	ds.Elements = append(ds.Elements, Element{})
	copy(ds.Elements[i+1:], ds.Elements[i:])
	ds.Elements[i] = e
}

// Delete removes the element with tag t, reporting whether it was present.
func (ds *Dataset) Delete(t Tag) bool {
	i, ok := ds.index(t)
	if ok {
		ds.Elements = append(ds.Elements[:i], ds.Elements[i+1:]...)
	}
	return ok
}

// Len returns the number of top-level elements.
func (ds *Dataset) Len() int {
	if ds == nil {
		return 0
	}
	return len(ds.Elements)
}
