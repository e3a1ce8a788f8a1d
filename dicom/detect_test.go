package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// elImplicit encodes one implicit VR little endian element.
func elImplicit(t Tag, length uint32, value []byte) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint16(b, t.Group())
	b = binary.LittleEndian.AppendUint16(b, t.Element())
	b = binary.LittleEndian.AppendUint32(b, length)
	return append(b, value...)
}

// TestDetectBareStreamAgrees: a bare data set whose first implicit length
// runs past the end is not DICOM from memory and from a stream alike: the
// decision rests on the same window, not on a size only memory knows
// (FuzzParse b8234f027e35db2f).
func TestDetectBareStreamAgrees(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []byte
		want error // nil: parses
	}{
		{"length past the end", elImplicit(NewTag(0x0040, 0xA730), 0x30303030, []byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}), ErrNotDICOM},
		{"length that fits", elImplicit(NewTag(0x0010, 0x0010), 4, []byte("Doe^")), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, memErr := ParseBytes(tt.in, ReadOptions{})
			_, strErr := Parse(onlyReader{bytes.NewReader(tt.in)}, ReadOptions{})
			for how, err := range map[string]error{"memory": memErr, "stream": strErr} {
				if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
					t.Errorf("%s: %v, want %v", how, err, tt.want)
				}
			}
		})
	}
}
