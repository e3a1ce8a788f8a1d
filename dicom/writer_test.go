package dicom

import (
	"bytes"
	"testing"
)

// TestWriteDefinedLengths: the lengths the writer computes for items,
// sequences and group lengths match the headers it writes, in every
// native encoding.
func TestWriteDefinedLengths(t *testing.T) {
	odd := NewTag(0xFFFE, 0x0001) // no VR in any encoding, like items
	name := NewTag(0x0010, 0x0010)
	long := Element{Tag: NewTag(0x0009, 0x1001), VR: LO, Value: bytes.Repeat([]byte("x"), 0x10000)}
	tests := []struct {
		name string
		item *Dataset
	}{
		{"group FFFE element in an item", &Dataset{Elements: []Element{NewStrings(name, PN, "Doe^"), {Tag: odd, Value: []byte{1, 2}}}}},
		{"value too long for its VR in an item", &Dataset{Elements: []Element{long}}},
	}
	for _, tt := range tests {
		for _, uid := range []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian} {
			t.Run(tt.name+"/"+uid, func(t *testing.T) {
				ts, _ := LookupTransferSyntax(uid)
				f := &File{TransferSyntax: ts}
				f.Dataset.Set(NewUint32s(NewTag(0x0040, 0x0000), 0))
				f.Dataset.Set(NewSequence(NewTag(0x0040, 0xA730), tt.item))
				f.Dataset.Set(NewStrings(NewTag(0x0040, 0xDB00), CS, "AFTER"))
				var buf bytes.Buffer
				if err := f.Write(&buf, WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				g, err := ParseBytes(buf.Bytes(), ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if g.Dataset.String(NewTag(0x0040, 0xDB00)) != "AFTER" {
					t.Errorf("element after the sequence mis-framed: %s", tagList(&g.Dataset))
				}
				// Group 0040 is all of the data set but its group length.
				want := uint64(len(buf.Bytes())) - uint64(g.DatasetOffset) - 12
				if gl, _ := g.Dataset.Uint(NewTag(0x0040, 0x0000)); gl != want {
					t.Errorf("group length %d, want %d", gl, want)
				}
			})
		}
	}
}

// TestWriteTooLongForVR: a value too long for its VR's 16-bit length is
// written as UN (PS3.5 6.2.2): unswapped in big endian, as the reader
// reads UN, and padded as its own VR pads.
func TestWriteTooLongForVR(t *testing.T) {
	us := make([]byte, 0x10002)
	for i := range us {
		us[i] = byte(i * 7)
	}
	text := bytes.Repeat([]byte("y"), 0x10001)
	tests := []struct {
		name string
		e    Element
		want []byte
	}{
		{"US", Element{Tag: NewTag(0x0028, 0x1101), VR: US, Value: us}, us},
		{"odd LO", Element{Tag: NewTag(0x0009, 0x1001), VR: LO, Value: text}, append(bytes.Clone(text), ' ')},
	}
	for _, tt := range tests {
		for _, uid := range []string{ExplicitVRLittleEndian, ExplicitVRBigEndian} {
			t.Run(tt.name+"/"+uid, func(t *testing.T) {
				ts, _ := LookupTransferSyntax(uid)
				f := &File{TransferSyntax: ts}
				f.Dataset.Set(tt.e)
				var buf bytes.Buffer
				if err := f.Write(&buf, WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				g, err := ParseBytes(buf.Bytes(), ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				e := g.Dataset.Get(tt.e.Tag)
				if e == nil {
					t.Fatal("element lost")
				}
				if e.VR != UN || !bytes.Equal(e.Value, tt.want) {
					t.Errorf("read back %s of %d bytes (% X...), want UN % X...", e.VR, len(e.Value), clip(e.Value)[:8], tt.want[:8])
				}
			})
		}
	}
}
