package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// elBE encodes one explicit VR big endian element.
func elBE(t Tag, vr VR, value []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint16(b, t.Group())
	b = binary.BigEndian.AppendUint16(b, t.Element())
	b = append(b, byte(vr>>8), byte(vr))
	if vr.LongLength() {
		b = binary.BigEndian.AppendUint32(append(b, 0, 0), uint32(len(value)))
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	}
	return append(b, value...)
}

// elImplicit encodes one implicit VR little endian element.
func elImplicit(t Tag, length uint32, value []byte) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint16(b, t.Group())
	b = binary.LittleEndian.AppendUint16(b, t.Element())
	b = binary.LittleEndian.AppendUint32(b, length)
	return append(b, value...)
}

// withMeta returns a preamble and a File Meta Information group naming
// transfer syntax uid (known or not), followed by body.
func withMeta(t testing.TB, uid string, body ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(make([]byte, preambleLen))
	buf.WriteString(magic)
	meta := NewFileMeta("1.2.840.10008.5.1.4.1.1.7", "2.25.1", uid)
	meta.Set(NewUint32s(TagFileMetaInformationGroupLength, 0))
	if err := WriteDataset(&buf, &meta, TransferSyntax{Order: binary.LittleEndian}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, b := range body {
		buf.Write(b)
	}
	return buf.Bytes()
}

// TestDetectEncoding: the data set encoding chosen for files whose meta
// names no transfer syntax we know, or names one the data contradicts;
// memory and stream parsers choose alike, and a private syntax's file is
// read back as it was written.
func TestDetectEncoding(t *testing.T) {
	const private = "1.2.3.4.5.6"
	name, id := NewTag(0x0010, 0x0010), NewTag(0x0010, 0x0020)
	modality, cmd := NewTag(0x0008, 0x0060), NewTag(0x0000, 0x3030)
	tests := []struct {
		name     string
		in       []byte
		implicit bool
		order    binary.ByteOrder
		uid      string // of File.TransferSyntax; "" for no check
		want     map[Tag]string
	}{
		{
			// Read big endian, a group 0000 tag sorts first when written:
			// in both byte orders it reads (0000,3030), which told the old
			// first-element guess nothing (FuzzParseBytes b1cd34d7b5df4efb).
			name:  "private syntax, big endian, group 0000 among the tags",
			in:    withMeta(t, private, elBE(modality, CS, []byte("OT")), elBE(cmd, UI, nil), elBE(id, LO, []byte("ID01"))),
			order: binary.BigEndian, uid: private,
			want: map[Tag]string{modality: "OT", id: "ID01", cmd: ""},
		},
		{
			name:  "private syntax, a first group that reads the same both ways",
			in:    withMeta(t, private, el(NewTag(0x0909, 0x0010), LO, 4, []byte("ACME")), el(NewTag(0x0909, 0x1001), LO, 2, []byte("xy"))),
			order: binary.LittleEndian, uid: private,
			want: map[Tag]string{NewTag(0x0909, 0x0010): "ACME", NewTag(0x0909, 0x1001): "xy"},
		},
		{
			// A first group above 0FFF was implausible to the old guess.
			name:  "private syntax, only pixel data",
			in:    withMeta(t, private, el(TagPixelData, OB, 4, []byte{1, 2, 3, 4})),
			order: binary.LittleEndian, uid: private,
			want: map[Tag]string{TagPixelData: "\x01\x02\x03\x04"},
		},
		{
			name:     "private syntax, implicit",
			in:       withMeta(t, private, elImplicit(modality, 2, []byte("OT")), elImplicit(name, 4, []byte("Doe^"))),
			implicit: true, order: binary.LittleEndian, uid: private,
			want: map[Tag]string{modality: "OT", name: "Doe^"},
		},
		{
			name:     "meta says explicit, data is implicit",
			in:       withMeta(t, ExplicitVRLittleEndian, elImplicit(modality, 2, []byte("OT")), elImplicit(name, 4, []byte("Doe^"))),
			implicit: true, order: binary.LittleEndian, uid: ImplicitVRLittleEndian,
			want: map[Tag]string{modality: "OT", name: "Doe^"},
		},
		{
			name:  "meta says implicit, data is explicit",
			in:    withMeta(t, ImplicitVRLittleEndian, el(modality, CS, 2, []byte("OT")), el(name, PN, 4, []byte("Doe^"))),
			order: binary.LittleEndian, uid: ExplicitVRLittleEndian,
			want: map[Tag]string{modality: "OT", name: "Doe^"},
		},
		{
			// Read as implicit, the first length is 0x00025343, past
			// the 64 KiB window but not past the end of the file.
			name:  "meta says implicit, data is explicit, a large file",
			in:    withMeta(t, ImplicitVRLittleEndian, el(modality, CS, 2, []byte("OT")), el(NewTag(0x0009, 0x1001), OB, 200000, make([]byte, 200000))),
			order: binary.LittleEndian, uid: ExplicitVRLittleEndian,
			want: map[Tag]string{modality: "OT"},
		},
		{
			// The length 0x4955 spells "UI" where an explicit VR would
			// be; the data reads cleanly as declared, so the meta stands.
			name:     "implicit data whose first length looks like a VR",
			in:       withMeta(t, ImplicitVRLittleEndian, elImplicit(NewTag(0x0009, 0x1001), 0x4955, make([]byte, 0x4955)), elImplicit(id, 4, []byte("ID01"))),
			implicit: true, order: binary.LittleEndian, uid: ImplicitVRLittleEndian,
			want: map[Tag]string{id: "ID01"},
		},
		{
			name:  "bare big endian data set",
			in:    append(elBE(modality, CS, []byte("OT")), elBE(name, PN, []byte("Doe^"))...),
			order: binary.BigEndian, uid: ExplicitVRBigEndian,
			want: map[Tag]string{modality: "OT", name: "Doe^"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseBytes(tt.in, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ts := f.TransferSyntax
			if ts.Implicit != tt.implicit || ts.Order != tt.order || tt.uid != "" && ts.UID != tt.uid {
				t.Fatalf("read as %s implicit=%v %v, want %s implicit=%v %v", ts.UID, ts.Implicit, ts.Order, tt.uid, tt.implicit, tt.order)
			}
			for tag, v := range tt.want {
				if e := f.Dataset.Get(tag); e == nil || string(bytes.TrimRight(e.Value, " \x00")) != v {
					t.Errorf("%s = %+v, want %q", tag, e, v)
				}
			}
			g, err := Parse(onlyReader{bytes.NewReader(tt.in)}, ReadOptions{})
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if g.TransferSyntax != f.TransferSyntax {
				t.Errorf("stream read %+v, memory %+v", g.TransferSyntax, f.TransferSyntax)
			}
			roundTrip(t, f)
		})
	}
}

// TestWritePrivateSyntax: the data set of a transfer syntax we do not know
// is written in Explicit VR Little Endian under its own UID.
func TestWritePrivateSyntax(t *testing.T) {
	const private = "1.2.3.4.5.6"
	f := &File{TransferSyntax: TransferSyntax{UID: private, Implicit: true, Order: binary.BigEndian}}
	f.Dataset.Set(NewStrings(NewTag(0x0008, 0x0060), CS, "OT"))
	var buf bytes.Buffer
	if err := f.Write(&buf, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	g, err := ParseBytes(buf.Bytes(), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Meta.String(TagTransferSyntaxUID) != private {
		t.Errorf("meta names %q, want %q", g.Meta.String(TagTransferSyntaxUID), private)
	}
	body := buf.Bytes()[g.DatasetOffset:]
	if want := el(NewTag(0x0008, 0x0060), CS, 2, []byte("OT")); !bytes.Equal(body, want) {
		t.Errorf("data set % X, want explicit VR little endian % X", body, want)
	}
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
