package dimse

// A small data set codec for what DIMSE needs of identifiers and Part-10
// headers (little and big endian, implicit and explicit VR, nested
// sequences; no encapsulated pixel data). It stands in until the dicom
// package's codec (dicom.ReadDataset / WriteDataset) lands, then goes.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/medimint/medimint/dicom"
)

const undefinedLength = 0xFFFFFFFF

var errTruncated = errors.New("dimse: data set truncated")

const maxSequenceDepth = 32

type dsReader struct {
	b        []byte
	off      int
	implicit bool
	order    binary.ByteOrder
	stopAt   dicom.Tag
	pixelRep uint16
}

// readDataset decodes the data set in b encoded in ts. Parsing stops before
// the first top-level element whose tag is >= stopAt (if non-zero); the
// offset reached is returned. Values alias b.
func readDataset(b []byte, ts dicom.TransferSyntax, stopAt dicom.Tag) (*dicom.Dataset, int, error) {
	if ts.Deflated {
		return nil, 0, fmt.Errorf("dimse: deflated data set must be inflated first")
	}
	order := ts.Order
	if order == nil {
		order = binary.LittleEndian
	}
	r := &dsReader{b: b, implicit: ts.Implicit, order: order, stopAt: stopAt}
	ds, err := r.dataset(len(b), 0, false)
	return ds, r.off, err
}

func (r *dsReader) u16(i int) uint16 { return r.order.Uint16(r.b[i:]) }
func (r *dsReader) u32(i int) uint32 { return r.order.Uint32(r.b[i:]) }

func (r *dsReader) tagAt(i int) dicom.Tag { return dicom.NewTag(r.u16(i), r.u16(i+2)) }

// dataset reads elements up to end (or an item delimiter when undefined).
func (r *dsReader) dataset(end, depth int, inItem bool) (*dicom.Dataset, error) {
	if depth > maxSequenceDepth {
		return nil, fmt.Errorf("dimse: data set nested deeper than %d", maxSequenceDepth)
	}
	ds := &dicom.Dataset{}
	for r.off < end {
		if end-r.off < 8 {
			return nil, fmt.Errorf("%w at offset %d", errTruncated, r.off)
		}
		t := r.tagAt(r.off)
		if t == dicom.TagItemDelimitationItem {
			if !inItem {
				return nil, fmt.Errorf("dimse: item delimiter outside an item at offset %d", r.off)
			}
			r.off += 8
			return ds, nil
		}
		if depth == 0 && r.stopAt != 0 && t >= r.stopAt {
			return ds, nil
		}
		e, err := r.element(end, depth)
		if err != nil {
			return nil, err
		}
		if len(ds.Elements) > 0 && ds.Elements[len(ds.Elements)-1].Tag >= e.Tag {
			// Out of order: keep the data but let Set place it.
			ds.Set(e)
		} else {
			ds.Elements = append(ds.Elements, e)
		}
	}
	if inItem && end == len(r.b) {
		return nil, fmt.Errorf("%w: undefined-length item without delimiter", errTruncated)
	}
	return ds, nil
}

func (r *dsReader) element(end, depth int) (dicom.Element, error) {
	start := r.off
	t := r.tagAt(r.off)
	var vr dicom.VR
	var n uint32
	if r.implicit || t.Group() == 0xFFFE {
		n = r.u32(r.off + 4)
		r.off += 8
		vr = dicom.ResolveVR(t, r.pixelRep)
		if t.IsPrivate() && !t.IsPrivateCreator() {
			vr = dicom.UN
		}
	} else {
		vr = dicom.VR(r.b[r.off+4])<<8 | dicom.VR(r.b[r.off+5])
		if !vr.Valid() {
			return dicom.Element{}, fmt.Errorf("dimse: %s: invalid VR %q at offset %d", t, r.b[r.off+4:r.off+6], start)
		}
		if vr.LongLength() {
			if end-r.off < 12 {
				return dicom.Element{}, fmt.Errorf("%w at offset %d", errTruncated, start)
			}
			n = r.u32(r.off + 8)
			r.off += 12
		} else {
			n = uint32(r.u16(r.off + 6))
			r.off += 8
		}
	}
	e := dicom.Element{Tag: t, VR: vr}
	if n == undefinedLength {
		if vr != dicom.SQ && vr != dicom.UN {
			return e, fmt.Errorf("dimse: %s: undefined length on VR %s is not supported here", t, vr)
		}
		// UN of undefined length holds an implicit VR sequence (PS3.5 6.2.2).
		e.VR, e.UndefinedLength = dicom.SQ, true
		if vr == dicom.UN {
			saved := r.implicit
			r.implicit = true
			defer func() { r.implicit = saved }()
		}
		items, err := r.items(end, depth, true)
		e.Items = items
		return e, err
	}
	if uint64(n) > uint64(end-r.off) {
		return e, fmt.Errorf("%w: %s length %d exceeds the %d bytes left", errTruncated, t, n, end-r.off)
	}
	if vr == dicom.SQ {
		items, err := r.items(r.off+int(n), depth, false)
		e.Items = items
		return e, err
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	if ws := vr.WordSize(); ws > 1 && r.order == binary.BigEndian {
		v = swapped(v, ws)
	}
	e.Value = v
	if t == dicom.TagPixelRepresentation && len(v) == 2 {
		r.pixelRep = binary.LittleEndian.Uint16(v)
	}
	return e, nil
}

func swapped(v []byte, ws int) []byte {
	out := make([]byte, len(v))
	for i := 0; i+ws <= len(v); i += ws {
		for j := 0; j < ws; j++ {
			out[i+j] = v[i+ws-1-j]
		}
	}
	return out
}

// items reads the items of a sequence ending at end (defined length) or at
// a sequence delimiter (undefined).
func (r *dsReader) items(end, depth int, undefined bool) ([]*dicom.Dataset, error) {
	var items []*dicom.Dataset
	limit := end
	for {
		if !undefined && r.off == end {
			return items, nil
		}
		if limit-r.off < 8 {
			return nil, fmt.Errorf("%w in sequence at offset %d", errTruncated, r.off)
		}
		t := r.tagAt(r.off)
		n := r.u32(r.off + 4)
		r.off += 8
		switch t {
		case dicom.TagSequenceDelimitationItem:
			if !undefined {
				return nil, fmt.Errorf("dimse: sequence delimiter in a defined-length sequence at offset %d", r.off-8)
			}
			return items, nil
		case dicom.TagItem:
		default:
			return nil, fmt.Errorf("dimse: %s inside a sequence at offset %d", t, r.off-8)
		}
		var item *dicom.Dataset
		var err error
		if n == undefinedLength {
			item, err = r.dataset(limit, depth+1, true)
		} else {
			if uint64(n) > uint64(limit-r.off) {
				return nil, fmt.Errorf("%w: item length %d exceeds the %d bytes left", errTruncated, n, limit-r.off)
			}
			item, err = r.dataset(r.off+int(n), depth+1, false)
		}
		if err != nil {
			return nil, err
		}
		items = append(items, item)
	}
}

// appendDataset encodes ds in little endian, implicit or explicit VR.
// Sequences and items are written with undefined length so no lengths need
// computing ahead.
func appendDataset(dst []byte, ds *dicom.Dataset, implicit bool) []byte {
	for _, e := range ds.Elements {
		dst = appendElement(dst, &e, implicit)
	}
	return dst
}

func appendElement(dst []byte, e *dicom.Element, implicit bool) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint16(dst, e.Tag.Group())
	dst = le.AppendUint16(dst, e.Tag.Element())
	vr := e.VR
	if !vr.Valid() {
		vr = dicom.ResolveVR(e.Tag, 0)
	}
	if vr == dicom.SQ || e.Items != nil {
		if implicit {
			dst = le.AppendUint32(dst, undefinedLength)
		} else {
			dst = append(dst, 'S', 'Q', 0, 0)
			dst = le.AppendUint32(dst, undefinedLength)
		}
		for _, it := range e.Items {
			dst = le.AppendUint32(dst, uint32(dicom.TagItem>>16)|uint32(dicom.TagItem&0xFFFF)<<16)
			dst = le.AppendUint32(dst, undefinedLength)
			dst = appendDataset(dst, it, implicit)
			dst = le.AppendUint32(dst, uint32(dicom.TagItemDelimitationItem>>16)|uint32(dicom.TagItemDelimitationItem&0xFFFF)<<16)
			dst = le.AppendUint32(dst, 0)
		}
		dst = le.AppendUint32(dst, uint32(dicom.TagSequenceDelimitationItem>>16)|uint32(dicom.TagSequenceDelimitationItem&0xFFFF)<<16)
		return le.AppendUint32(dst, 0)
	}
	v := e.Value
	pad := len(v)%2 == 1
	n := len(v)
	if pad {
		n++
	}
	switch {
	case implicit:
		dst = le.AppendUint32(dst, uint32(n))
	case vr.LongLength():
		dst = append(dst, byte(vr>>8), byte(vr), 0, 0)
		dst = le.AppendUint32(dst, uint32(n))
	default:
		dst = append(dst, byte(vr>>8), byte(vr))
		dst = le.AppendUint16(dst, uint16(n))
	}
	dst = append(dst, v...)
	if pad {
		dst = append(dst, vr.PaddingByte())
	}
	return dst
}

var dicmMagic = []byte("DICM")

// part10Header is the result of parsing the start of a Part-10 file.
type part10Header struct {
	Meta           *dicom.Dataset
	TransferSyntax dicom.TransferSyntax
	DatasetOffset  int // where the data set starts (after the File Meta)
}

// parsePart10Meta parses the preamble, "DICM" and the File Meta group of b
// (the start of a file).
func parsePart10Meta(b []byte) (*part10Header, error) {
	if len(b) < 132 || !bytes.Equal(b[128:132], dicmMagic) {
		return nil, fmt.Errorf("dimse: not a Part-10 file (no DICM prefix)")
	}
	r := &dsReader{b: b, off: 132, order: binary.LittleEndian}
	meta := &dicom.Dataset{}
	for r.off+8 <= len(b) && r.tagAt(r.off).Group() == 0x0002 {
		e, err := r.element(len(b), 0)
		if err != nil {
			return nil, fmt.Errorf("dimse: File Meta: %w", err)
		}
		meta.Set(e)
	}
	tsUID := meta.String(dicom.TagTransferSyntaxUID)
	ts, ok := dicom.LookupTransferSyntax(tsUID)
	if !ok {
		return nil, fmt.Errorf("dimse: File Meta: unknown transfer syntax %q", tsUID)
	}
	return &part10Header{Meta: meta, TransferSyntax: ts, DatasetOffset: r.off}, nil
}

// appendFileMeta encodes a File Meta Information group (PS3.10 7.1) for an
// instance, with its group length, in Explicit VR Little Endian.
func appendFileMeta(dst []byte, sopClass, sopInstance, tsUID, sourceAE string) []byte {
	meta := &dicom.Dataset{}
	meta.Set(dicom.Element{Tag: dicom.NewTag(2, 1), VR: dicom.OB, Value: []byte{0, 1}})
	meta.Set(dicom.NewStrings(dicom.TagMediaStorageSOPClassUID, dicom.UI, sopClass))
	meta.Set(dicom.NewStrings(dicom.TagMediaStorageSOPInstanceUID, dicom.UI, sopInstance))
	meta.Set(dicom.NewStrings(dicom.TagTransferSyntaxUID, dicom.UI, tsUID))
	meta.Set(dicom.NewStrings(dicom.NewTag(2, 0x12), dicom.UI, dicom.ImplementationClassUID))
	meta.Set(dicom.NewStrings(dicom.NewTag(2, 0x13), dicom.SH, dicom.ImplementationVersionName))
	if sourceAE != "" {
		meta.Set(dicom.NewStrings(dicom.NewTag(2, 0x16), dicom.AE, sourceAE))
	}
	body := appendDataset(nil, meta, false)
	dst = append(dst, make([]byte, 128)...)
	dst = append(dst, dicmMagic...)
	dst = append(dst, 2, 0, 0, 0, 'U', 'L', 4, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}
