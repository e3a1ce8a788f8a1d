package dicom

// VR is a value representation, stored as its two ASCII characters.
type VR uint16

// The value representations of PS3.5 Table 6.2-1.
const (
	AE VR = 'A'<<8 | 'E'
	AS VR = 'A'<<8 | 'S'
	AT VR = 'A'<<8 | 'T'
	CS VR = 'C'<<8 | 'S'
	DA VR = 'D'<<8 | 'A'
	DS VR = 'D'<<8 | 'S'
	DT VR = 'D'<<8 | 'T'
	FL VR = 'F'<<8 | 'L'
	FD VR = 'F'<<8 | 'D'
	IS VR = 'I'<<8 | 'S'
	LO VR = 'L'<<8 | 'O'
	LT VR = 'L'<<8 | 'T'
	OB VR = 'O'<<8 | 'B'
	OD VR = 'O'<<8 | 'D'
	OF VR = 'O'<<8 | 'F'
	OL VR = 'O'<<8 | 'L'
	OV VR = 'O'<<8 | 'V'
	OW VR = 'O'<<8 | 'W'
	PN VR = 'P'<<8 | 'N'
	SH VR = 'S'<<8 | 'H'
	SL VR = 'S'<<8 | 'L'
	SQ VR = 'S'<<8 | 'Q'
	SS VR = 'S'<<8 | 'S'
	ST VR = 'S'<<8 | 'T'
	SV VR = 'S'<<8 | 'V'
	TM VR = 'T'<<8 | 'M'
	UC VR = 'U'<<8 | 'C'
	UI VR = 'U'<<8 | 'I'
	UL VR = 'U'<<8 | 'L'
	UN VR = 'U'<<8 | 'N'
	UR VR = 'U'<<8 | 'R'
	US VR = 'U'<<8 | 'S'
	UT VR = 'U'<<8 | 'T'
	UV VR = 'U'<<8 | 'V'
)

// Dictionary pseudo-VRs for elements whose VR depends on context (PS3.6
// "US or SS", "OB or OW"). They never appear in an encoded data set; the
// codec resolves them (see ResolveVR).
const (
	VRUSorSS   VR = 'x'<<8 | 's' // US or SS, by Pixel Representation
	VROBorOW   VR = 'o'<<8 | 'x' // OB or OW
	VRPixel    VR = 'p'<<8 | 'x' // Pixel Data: OB or OW
	VRUSorSSLT VR = 'l'<<8 | 't' // LUT Data: US, SS or OW
	VRUSorOW   VR = 'u'<<8 | 'p' // US or OW (dcmtk's "up": unsigned long or pointer)
	VRNone     VR = 'n'<<8 | 'a' // item and delimitation tags
)

// AllVRs lists the encodable value representations in PS3.5 order.
var AllVRs = [...]VR{AE, AS, AT, CS, DA, DS, DT, FL, FD, IS, LO, LT, OB, OD, OF, OL, OV, OW, PN, SH, SL, SQ, SS, ST, SV, TM, UC, UI, UL, UN, UR, US, UT, UV}

// String returns the two-letter VR.
func (v VR) String() string { return string([]byte{byte(v >> 8), byte(v)}) }

// ParseVR returns the VR named by s if it is an encodable VR.
func ParseVR(s string) (VR, bool) {
	if len(s) != 2 {
		return 0, false
	}
	v := VR(s[0])<<8 | VR(s[1])
	return v, v.Valid()
}

// Valid reports whether v is one of the encodable VRs of PS3.5.
func (v VR) Valid() bool {
	switch v {
	case AE, AS, AT, CS, DA, DS, DT, FL, FD, IS, LO, LT, OB, OD, OF, OL, OV, OW,
		PN, SH, SL, SQ, SS, ST, SV, TM, UC, UI, UL, UN, UR, US, UT, UV:
		return true
	}
	return false
}

// LongLength reports whether explicit VR encoding uses the 2 reserved bytes
// and a 32-bit length for v (PS3.5 7.1.2); the other VRs have a 16-bit length.
func (v VR) LongLength() bool {
	switch v {
	case OB, OD, OF, OL, OV, OW, SQ, SV, UC, UN, UR, UT, UV:
		return true
	}
	return false
}

// IsString reports whether values of v are character strings.
func (v VR) IsString() bool {
	switch v {
	case AE, AS, CS, DA, DS, DT, IS, LO, LT, PN, SH, ST, TM, UC, UI, UR, UT:
		return true
	}
	return false
}

// IsText reports whether v is a text VR whose value is one string that may
// contain backslashes (VM is always 1).
func (v VR) IsText() bool {
	switch v {
	case LT, ST, UT, UR:
		return true
	}
	return false
}

// IsBulk reports whether v holds binary bulk data (the O* VRs and UN).
func (v VR) IsBulk() bool {
	switch v {
	case OB, OD, OF, OL, OV, OW, UN:
		return true
	}
	return false
}

// WordSize is the size in bytes of one binary value of v, used for byte
// swapping between little and big endian; 1 means no swapping.
func (v VR) WordSize() int {
	switch v {
	case US, SS, OW, AT:
		return 2 // AT is swapped as two 16-bit words
	case UL, SL, FL, OF, OL:
		return 4
	case FD, OD, SV, UV, OV:
		return 8
	}
	return 1
}

// PaddingByte is the byte used to pad odd-length values of v to even length.
func (v VR) PaddingByte() byte {
	if v.IsString() && v != UI {
		return ' '
	}
	return 0
}
