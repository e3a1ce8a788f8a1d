package dicom

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Strings splits a string value into its values (backslash separated, except
// for the text VRs LT, ST, UT and UR, whose value is a single string),
// trimming the padding PS3.5 allows: trailing spaces (leading too, where
// the VR permits), and a trailing NUL for UI. The bytes are not converted
// from the data set's character set; see Dataset.Text for that.
func (e *Element) Strings() []string {
	if e == nil || len(e.Value) == 0 {
		return nil
	}
	s := string(e.Value)
	if e.VR.IsText() {
		return []string{strings.TrimRight(s, " \x00")}
	}
	parts := strings.Split(s, `\`)
	for i, p := range parts {
		parts[i] = trimValue(e.VR, p)
	}
	return parts
}

func trimValue(vr VR, s string) string {
	switch vr {
	case UI:
		return strings.TrimRight(s, "\x00 ")
	case DS, IS, AE, CS, DA, TM, DT, AS, SH, LO:
		// Leading spaces are insignificant for these VRs (PS3.5 Table 6.2-1).
		return strings.Trim(s, " \x00")
	default:
		return strings.TrimRight(s, " \x00")
	}
}

// String returns the first value of a string element, or "".
func (e *Element) String() string {
	if v := e.Strings(); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Uints decodes US, UL, UV and AT-free unsigned binary values.
func (e *Element) Uints() ([]uint64, error) {
	if e == nil {
		return nil, nil
	}
	b := e.Value
	switch e.VR {
	case US, OW:
		if len(b)%2 != 0 {
			return nil, e.lengthError(2)
		}
		out := make([]uint64, len(b)/2)
		for i := range out {
			out[i] = uint64(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return out, nil
	case UL, OL:
		if len(b)%4 != 0 {
			return nil, e.lengthError(4)
		}
		out := make([]uint64, len(b)/4)
		for i := range out {
			out[i] = uint64(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out, nil
	case UV, OV:
		if len(b)%8 != 0 {
			return nil, e.lengthError(8)
		}
		out := make([]uint64, len(b)/8)
		for i := range out {
			out[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		return out, nil
	}
	return nil, fmt.Errorf("dicom: %s: VR %s is not unsigned binary", e.Tag, e.VR)
}

// Ints decodes SS, SL and SV values.
func (e *Element) Ints() ([]int64, error) {
	if e == nil {
		return nil, nil
	}
	b := e.Value
	switch e.VR {
	case SS:
		if len(b)%2 != 0 {
			return nil, e.lengthError(2)
		}
		out := make([]int64, len(b)/2)
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(b[2*i:])))
		}
		return out, nil
	case SL:
		if len(b)%4 != 0 {
			return nil, e.lengthError(4)
		}
		out := make([]int64, len(b)/4)
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return out, nil
	case SV:
		if len(b)%8 != 0 {
			return nil, e.lengthError(8)
		}
		out := make([]int64, len(b)/8)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("dicom: %s: VR %s is not signed binary", e.Tag, e.VR)
}

// Floats decodes FL, FD, OF and OD values.
func (e *Element) Floats() ([]float64, error) {
	if e == nil {
		return nil, nil
	}
	b := e.Value
	switch e.VR {
	case FL, OF:
		if len(b)%4 != 0 {
			return nil, e.lengthError(4)
		}
		out := make([]float64, len(b)/4)
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return out, nil
	case FD, OD:
		if len(b)%8 != 0 {
			return nil, e.lengthError(8)
		}
		out := make([]float64, len(b)/8)
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("dicom: %s: VR %s is not floating point", e.Tag, e.VR)
}

// AttributeTags decodes an AT value.
func (e *Element) AttributeTags() ([]Tag, error) {
	if e == nil {
		return nil, nil
	}
	if e.VR != AT {
		return nil, fmt.Errorf("dicom: %s: VR %s is not AT", e.Tag, e.VR)
	}
	if len(e.Value)%4 != 0 {
		return nil, e.lengthError(4)
	}
	out := make([]Tag, len(e.Value)/4)
	for i := range out {
		g := binary.LittleEndian.Uint16(e.Value[4*i:])
		el := binary.LittleEndian.Uint16(e.Value[4*i+2:])
		out[i] = NewTag(g, el)
	}
	return out, nil
}

func (e *Element) lengthError(size int) error {
	return fmt.Errorf("dicom: %s: %s value length %d is not a multiple of %d", e.Tag, e.VR, len(e.Value), size)
}

// NewStrings builds a string element, joining values with backslashes and
// padding to even length with the VR's padding byte.
func NewStrings(t Tag, vr VR, values ...string) Element {
	s := strings.Join(values, `\`)
	b := make([]byte, len(s), len(s)+1)
	copy(b, s)
	if len(b)%2 == 1 {
		b = append(b, vr.PaddingByte())
	}
	return Element{Tag: t, VR: vr, Value: b}
}

// NewUint16s builds a US element.
func NewUint16s(t Tag, values ...uint16) Element {
	b := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return Element{Tag: t, VR: US, Value: b}
}

// NewUint32s builds a UL element.
func NewUint32s(t Tag, values ...uint32) Element {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return Element{Tag: t, VR: UL, Value: b}
}

// NewSequence builds an SQ element from items.
func NewSequence(t Tag, items ...*Dataset) Element {
	return Element{Tag: t, VR: SQ, Items: items}
}

// String returns the first value of the string element t, or "".
func (ds *Dataset) String(t Tag) string { return ds.Get(t).String() }

// Uint returns the first value of the unsigned binary element t.
func (ds *Dataset) Uint(t Tag) (uint64, bool) {
	v, err := ds.Get(t).Uints()
	if err != nil || len(v) == 0 {
		return 0, false
	}
	return v[0], true
}
