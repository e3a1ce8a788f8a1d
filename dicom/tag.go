package dicom

import (
	"fmt"
	"strconv"
	"strings"
)

// Tag is a data element tag: group in the high 16 bits, element in the low.
type Tag uint32

// NewTag returns the tag (group,element).
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the tag's group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the tag's element number.
func (t Tag) Element() uint16 { return uint16(t) }

// String formats the tag as (gggg,eeee) in upper-case hex, as dcmdump does.
func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// Hex formats the tag as 8 upper-case hex digits, the DICOM JSON key form.
func (t Tag) Hex() string { return fmt.Sprintf("%08X", uint32(t)) }

// IsPrivate reports whether the tag belongs to an odd (private) group.
func (t Tag) IsPrivate() bool { return t.Group()%2 == 1 }

// IsPrivateCreator reports whether the tag is a private creator element
// (gggg,0010-00FF) of a private group.
func (t Tag) IsPrivateCreator() bool {
	return t.IsPrivate() && t.Element() >= 0x0010 && t.Element() <= 0x00FF
}

// PrivateCreatorTag returns the creator element that reserves the block a
// private data element belongs to: (gggg,00xx) for (gggg,xxyy).
func (t Tag) PrivateCreatorTag() Tag { return NewTag(t.Group(), t.Element()>>8) }

// IsGroupLength reports whether the tag is a group length element (gggg,0000).
func (t Tag) IsGroupLength() bool { return t.Element() == 0 }

// ParseTag parses "(gggg,eeee)", "gggg,eeee" or "ggggeeee" (hex).
func ParseTag(s string) (Tag, error) {
	orig := s
	s = strings.TrimSuffix(strings.TrimPrefix(s, "("), ")")
	s = strings.ReplaceAll(s, ",", "")
	if len(s) != 8 {
		return 0, fmt.Errorf("dicom: invalid tag %q", orig)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("dicom: invalid tag %q", orig)
	}
	return Tag(v), nil
}

// Tags the codec itself needs; the full set is in the generated dictionary.
const (
	TagItem                           Tag = 0xFFFEE000
	TagItemDelimitationItem           Tag = 0xFFFEE00D
	TagSequenceDelimitationItem       Tag = 0xFFFEE0DD
	TagPixelData                      Tag = 0x7FE00010
	TagFloatPixelData                 Tag = 0x7FE00008
	TagDoubleFloatPixelData           Tag = 0x7FE00009
	TagSpecificCharacterSet           Tag = 0x00080005
	TagTransferSyntaxUID              Tag = 0x00020010
	TagFileMetaInformationGroupLength Tag = 0x00020000
	TagMediaStorageSOPClassUID        Tag = 0x00020002
	TagMediaStorageSOPInstanceUID     Tag = 0x00020003
	TagSOPClassUID                    Tag = 0x00080016
	TagSOPInstanceUID                 Tag = 0x00080018
	TagStudyInstanceUID               Tag = 0x0020000D
	TagSeriesInstanceUID              Tag = 0x0020000E
	TagNumberOfFrames                 Tag = 0x00280008
	TagRows                           Tag = 0x00280010
	TagColumns                        Tag = 0x00280011
	TagBitsAllocated                  Tag = 0x00280100
	TagSamplesPerPixel                Tag = 0x00280002
	TagPixelRepresentation            Tag = 0x00280103
	TagPhotometricInterpretation      Tag = 0x00280004
)
