package dicom

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func jsonDS(els ...Element) *Dataset {
	ds := &Dataset{}
	for _, e := range els {
		ds.Set(e)
	}
	return ds
}

func jsonRaw(t Tag, vr VR, b ...byte) Element { return Element{Tag: t, VR: vr, Value: b} }

func jsonLE16(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func jsonLE32(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func jsonLE64(v ...uint64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

func TestJSONEncode(t *testing.T) {
	nested := jsonDS(Element{Tag: 0x00181072, VR: OB, Value: []byte("0123456789")})
	tests := []struct {
		name string
		ds   *Dataset
		opts *JSONOptions
		want string
	}{
		{"empty data set", &Dataset{}, nil, `{}`},
		{"strings and empty values", jsonDS(
			NewStrings(0x00080008, CS, "ORIGINAL", "", "AXIAL", ""),
			NewStrings(0x00080050, SH),
			NewStrings(0x00080060, CS, " "),
			NewStrings(0x00100020, LO, "  id 1  "),
			NewStrings(0x00080018, UI, "1.2.3"),
			NewStrings(0x00204000, LT, `  a\b  `),
		), nil, `{"00080008":{"vr":"CS","Value":["ORIGINAL",null,"AXIAL",null]},` +
			`"00080018":{"vr":"UI","Value":["1.2.3"]},` +
			`"00080050":{"vr":"SH"},"00080060":{"vr":"CS"},` +
			`"00100020":{"vr":"LO","Value":["id 1"]},` +
			`"00204000":{"vr":"LT","Value":["  a\\b"]}}`},
		{"UI NUL padding", jsonDS(jsonRaw(0x00080016, UI, []byte("1.2.840.10008.1.1\x00")...)), nil,
			`{"00080016":{"vr":"UI","Value":["1.2.840.10008.1.1"]}}`},
		{"JSON escapes", jsonDS(NewStrings(0x00204000, LT, "q\"b\\\r\n\t\x01")), nil,
			`{"00204000":{"vr":"LT","Value":["q\"b\\\r\n\t\u0001"]}}`},
		{"person names", jsonDS(NewStrings(TagSpecificCharacterSet, CS, "ISO_IR 192"), NewStrings(0x00100010, PN,
			"Yamada^Tarou=山田^太郎=やまだ^たろう", "", "=Ide", "Smith^J^^^", "==")), nil,
			`{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"},` +
				`null,{"Ideographic":"Ide"},{"Alphabetic":"Smith^J"},null]}}`},
		{"DS and IS", jsonDS(
			NewStrings(0x00180050, DS, "1.5", " -0.25 ", "1e3", "1E+02", "+1", ".5", "5.", "007", ""),
			NewStrings(0x00200013, IS, "12", "-3", "+4", "007"),
			NewStrings(0x00280030, DS, "  "),
		), nil, `{"00180050":{"vr":"DS","Value":[1.5,-0.25,1e3,1E+02,"+1",".5","5.","007",null]},` +
			`"00200013":{"vr":"IS","Value":[12,-3,"+4","007"]},"00280030":{"vr":"DS"}}`},
		{"binary numbers", jsonDS(
			jsonRaw(0x00280010, US, jsonLE16(0, 65535)...),
			jsonRaw(0x00189219, SS, jsonLE16(0xFFFD, 4)...),
			jsonRaw(0x00660040, UL, jsonLE32(4294967295)...),
			jsonRaw(0x00189503, SL, jsonLE32(0x80000000)...),
		), nil, `{"00189219":{"vr":"SS","Value":[-3,4]},"00189503":{"vr":"SL","Value":[-2147483648]},` +
			`"00280010":{"vr":"US","Value":[0,65535]},"00660040":{"vr":"UL","Value":[4294967295]}}`},
		{"64-bit beyond 2^53 as strings", jsonDS(
			jsonRaw(0x00720076, SV, jsonLE64(1<<53-1, uint64(1<<64-(1<<53-1)), uint64(1<<64-(1<<53)), 5)...),
			jsonRaw(0x00720078, UV, jsonLE64(1<<53-1, 1<<53, math.MaxUint64)...),
		), nil, `{"00720076":{"vr":"SV","Value":[9007199254740991,-9007199254740991,"-9007199254740992",5]},` +
			`"00720078":{"vr":"UV","Value":[9007199254740991,"9007199254740992","18446744073709551615"]}}`},
		{"floats", jsonDS(
			jsonRaw(0x00189087, FD, jsonLE64(math.Float64bits(0.1), math.Float64bits(-2.5e-300), math.Float64bits(1),
				math.Float64bits(math.NaN()), math.Float64bits(math.Inf(1)), math.Float64bits(math.Inf(-1)))...),
			jsonRaw(0x00189702, FL, jsonLE32(math.Float32bits(0.1), math.Float32bits(3.4e38))...),
		), nil, `{"00189087":{"vr":"FD","Value":[0.1,-2.5e-300,1,"NaN","Infinity","-Infinity"]},` +
			`"00189702":{"vr":"FL","Value":[0.1,3.4e+38]}}`},
		{"AT", jsonDS(jsonRaw(0x00209165, AT, jsonLE16(0x0010, 0x0010, 0x7FE0, 0x0010)...)), nil,
			`{"00209165":{"vr":"AT","Value":["00100010","7FE00010"]}}`},
		{"group lengths excluded, private included", jsonDS(
			NewUint32s(0x00080000, 10),
			NewUint32s(0x00090000, 10),
			NewStrings(0x00090010, LO, "ACME"),
			jsonRaw(0x00091001, UN, 1, 2, 3, 4),
		), nil, `{"00090010":{"vr":"LO","Value":["ACME"]},"00091001":{"vr":"UN","InlineBinary":"AQIDBA=="}}`},
		{"sequences", jsonDS(
			NewSequence(0x00189114),
			NewSequence(0x00400275, &Dataset{}, jsonDS(NewStrings(0x00400009, SH, "X"))),
		), nil, `{"00189114":{"vr":"SQ"},"00400275":{"vr":"SQ","Value":[{},{"00400009":{"vr":"SH","Value":["X"]}}]}}`},
		{"UN read as a sequence", jsonDS(Element{Tag: 0x3F031001, VR: UN, Items: []*Dataset{{}}}), nil,
			`{"3F031001":{"vr":"SQ","Value":[{}]}}`},
		{"bulk data URIs by threshold and path", jsonDS(
			jsonRaw(0x00091001, OB, 1, 2),
			Element{Tag: 0x00540016, VR: SQ, Items: []*Dataset{{}, nested}},
			jsonRaw(TagPixelData, OW, make([]byte, 16)...),
		), &JSONOptions{BulkDataThreshold: 8, BulkDataURI: func(p ElementPath) string {
			return "https://h/bulk/" + p.String()
		}}, `{"00091001":{"vr":"OB","InlineBinary":"AQI="},` +
			`"00540016":{"vr":"SQ","Value":[{},{"00181072":{"vr":"OB","BulkDataURI":"https://h/bulk/00540016/1/00181072"}}]},` +
			`"7FE00010":{"vr":"OW","BulkDataURI":"https://h/bulk/7FE00010"}}`},
		{"bulk data URI declined", jsonDS(jsonRaw(TagPixelData, OW, 1, 2)),
			&JSONOptions{BulkDataURI: func(ElementPath) string { return "" }},
			`{"7FE00010":{"vr":"OW","InlineBinary":"AQI="}}`},
		{"not loaded value", jsonDS(Element{Tag: TagPixelData, VR: OW, Bulk: &BulkRef{Offset: 100, Length: 1 << 20}}),
			&JSONOptions{BulkDataThreshold: 1 << 30, BulkDataURI: func(p ElementPath) string { return "u/" + p.String() }},
			`{"7FE00010":{"vr":"OW","BulkDataURI":"u/7FE00010"}}`},
		{"encapsulated as URI", jsonDS(Element{Tag: TagPixelData, VR: OB, UndefinedLength: true,
			Fragments: &Fragments{Items: []Fragment{{Length: 2, Data: []byte{1, 2}}}}}),
			&JSONOptions{BulkDataURI: func(p ElementPath) string { return "frames" }},
			`{"7FE00010":{"vr":"OB","BulkDataURI":"frames"}}`},
		{"Latin-1 to UTF-8", jsonDS(
			NewStrings(TagSpecificCharacterSet, CS, "ISO_IR 100"),
			NewStrings(0x00100010, PN, "M\xfcller^J\xfcrgen"),
			NewSequence(0x00081110, jsonDS(NewStrings(0x00081150, LO, "\xe9t\xe9"))),
		), nil, `{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},` +
			`"00081110":{"vr":"SQ","Value":[{"00081150":{"vr":"LO","Value":["été"]}}]},` +
			`"00100010":{"vr":"PN","Value":[{"Alphabetic":"Müller^Jürgen"}]}}`},
		{"item with its own character set", jsonDS(
			NewSequence(0x00081110, jsonDS(
				NewStrings(TagSpecificCharacterSet, CS, "ISO_IR 144"),
				NewStrings(0x00081150, LO, "\xbb\xee\xd1\xd0"))),
		), nil, `{"00081110":{"vr":"SQ","Value":[{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00081150":{"vr":"LO","Value":["Люба"]}}]}}`},
		{"ISO 2022 JIS", jsonDS(
			NewStrings(TagSpecificCharacterSet, CS, "", "ISO 2022 IR 87"),
			NewStrings(0x00100010, PN, "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"),
		), nil, `{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎"}]}}`},
		{"GB18030 with 0x5C trail byte", jsonDS(
			NewStrings(TagSpecificCharacterSet, CS, "GB18030"),
			// 乗 is 0x81 0x5C in GB18030: the 0x5C is not a delimiter.
			jsonRaw(0x00100020, LO, 0x81, 0x5C, '\\', 'b'),
		), nil, `{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00100020":{"vr":"LO","Value":["乗","b"]}}`},
		{"default repertoire, stray Latin-1", jsonDS(NewStrings(0x00100010, PN, "Ren\xe9")), nil,
			`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"René"}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendJSON(nil, tt.ds, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON")
			}
			var buf bytes.Buffer
			if err := NewJSONEncoder(&buf, tt.opts).Encode(tt.ds); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("JSONEncoder wrote\n%s\nwant\n%s", buf.String(), tt.want)
			}
		})
	}
}

func TestJSONEncodeErrors(t *testing.T) {
	encap := Element{Tag: TagPixelData, VR: OB, Fragments: &Fragments{Items: []Fragment{{Length: 2, Data: []byte{1, 2}}}}}
	tests := []struct {
		name string
		ds   *Dataset
		opts *JSONOptions
		want string
	}{
		{"encapsulated without URI", jsonDS(encap), nil, "needs a BulkDataURI"},
		{"not loaded without URI", jsonDS(Element{Tag: TagPixelData, VR: OW, Bulk: &BulkRef{Length: 4}}), nil, "not loaded"},
		{"bad US length", jsonDS(jsonRaw(0x00280010, US, 1, 2, 3)), nil, "not a multiple of 2"},
		{"invalid VR", jsonDS(Element{Tag: 0x00100010, VR: VRUSorSS}), nil, "invalid VR"},
		{"error names the path", jsonDS(NewSequence(0x00400275, &Dataset{}, jsonDS(jsonRaw(0x00280010, US, 1)))), nil,
			"00400275/1/00280010"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AppendJSON(nil, tt.ds, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestJSONInlineEncapsulated checks the streamed base64 of an encapsulated
// value against the value assembled and encoded in one piece, and that
// the decoder splits it back into the same fragments.
func TestJSONInlineEncapsulated(t *testing.T) {
	for _, sizes := range [][]int{{0}, {1}, {2, 3}, {5, 7, 100001}, {jsonBase64Chunk + 1, 3}} {
		f := &Fragments{BasicOffsetTable: []uint32{0}}
		off := uint32(0)
		for i, n := range sizes {
			data := bytes.Repeat([]byte{byte(i + 1)}, n)
			f.Items = append(f.Items, Fragment{Length: uint32(n), Data: data})
			if i > 0 {
				f.BasicOffsetTable = append(f.BasicOffsetTable, off)
			}
			off += 8 + uint32(n)
		}
		want := binary.LittleEndian.AppendUint32(jsonLE16(0xFFFE, 0xE000), uint32(4*len(f.BasicOffsetTable)))
		for _, o := range f.BasicOffsetTable {
			want = binary.LittleEndian.AppendUint32(want, o)
		}
		for _, fr := range f.Items {
			want = binary.LittleEndian.AppendUint32(append(want, jsonLE16(0xFFFE, 0xE000)...), fr.Length)
			want = append(want, fr.Data...)
		}
		want = append(want, jsonLE16(0xFFFE, 0xE0DD, 0, 0)...)

		ds := jsonDS(Element{Tag: TagPixelData, VR: OB, UndefinedLength: true, Fragments: f})
		opts := &JSONOptions{InlineEncapsulated: true}
		var buf bytes.Buffer
		if err := NewJSONEncoder(&buf, opts).Encode(ds); err != nil {
			t.Fatal(err)
		}
		wantJSON := `{"7FE00010":{"vr":"OB","InlineBinary":"` + base64.StdEncoding.EncodeToString(want) + `"}}`
		if buf.String() != wantJSON {
			t.Fatalf("sizes %v: streamed encoding differs from the one-piece encoding", sizes)
		}
		got, _, err := DecodeJSONBytes(buf.Bytes(), &JSONDecodeOptions{Encapsulated: true})
		if err != nil {
			t.Fatal(err)
		}
		gf := got[0].Get(TagPixelData).Fragments
		if gf == nil || len(gf.Items) != len(f.Items) || len(gf.BasicOffsetTable) != len(f.BasicOffsetTable) {
			t.Fatalf("sizes %v: decoded fragments %+v", sizes, gf)
		}
		for i := range f.Items {
			if !bytes.Equal(gf.Items[i].Data, f.Items[i].Data) {
				t.Errorf("sizes %v: fragment %d differs", sizes, i)
			}
		}
	}
}

// TestJSONStreamsLargeValues checks that a large InlineBinary is written
// in pieces no bigger than the flush size, and still encodes correctly.
func TestJSONStreamsLargeValues(t *testing.T) {
	big := make([]byte, 1<<20+1)
	for i := range big {
		big[i] = byte(i * 7)
	}
	ds := jsonDS(jsonRaw(TagPixelData, OB, big...))
	w := &jsonMaxWriteRecorder{}
	if err := NewJSONEncoder(w, nil).Encode(ds); err != nil {
		t.Fatal(err)
	}
	want := `{"7FE00010":{"vr":"OB","InlineBinary":"` + base64.StdEncoding.EncodeToString(big) + `"}}`
	if w.buf.String() != want {
		t.Fatal("streamed InlineBinary differs from base64 of the value")
	}
	if limit := jsonFlushSize + base64.StdEncoding.EncodedLen(jsonBase64Chunk) + 64; w.max > limit {
		t.Errorf("largest write %d bytes, want at most %d", w.max, limit)
	}
}

type jsonMaxWriteRecorder struct {
	buf bytes.Buffer
	max int
}

func (m *jsonMaxWriteRecorder) Write(p []byte) (int, error) {
	m.max = max(m.max, len(p))
	return m.buf.Write(p)
}

type jsonFailWriter struct{}

func (jsonFailWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestJSONWriterError(t *testing.T) {
	err := NewJSONEncoder(jsonFailWriter{}, nil).Encode(jsonDS(NewStrings(0x00100020, LO, "x")))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v, want the writer's", err)
	}
}

func TestJSONArrayWriter(t *testing.T) {
	a := jsonDS(NewStrings(0x00100020, LO, "a"))
	b := jsonDS(NewStrings(0x00100020, LO, "b"))
	pre, err := AppendJSON(nil, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		write func(*JSONArrayWriter) error
		want  string
	}{
		{"empty", func(*JSONArrayWriter) error { return nil }, `[]`},
		{"one", func(w *JSONArrayWriter) error { return w.Write(a) }, `[{"00100020":{"vr":"LO","Value":["a"]}}]`},
		{"mixed raw", func(w *JSONArrayWriter) error {
			if err := w.Write(a); err != nil {
				return err
			}
			return w.WriteRaw(pre)
		}, `[{"00100020":{"vr":"LO","Value":["a"]}},{"00100020":{"vr":"LO","Value":["b"]}}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewJSONArrayWriter(&buf, nil)
			if err := tt.write(w); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("got %s, want %s", buf.String(), tt.want)
			}
			if err := w.Write(a); err == nil {
				t.Error("Write after Close succeeded")
			}
		})
	}
	var buf bytes.Buffer
	if err := EncodeJSONArray(&buf, []*Dataset{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	got, _, err := DecodeJSON(&buf, nil)
	if err != nil || len(got) != 2 || got[1].String(0x00100020) != "b" {
		t.Fatalf("decoded %v, %v", got, err)
	}
}

func TestElementPath(t *testing.T) {
	inner := jsonDS(NewStrings(0x00080100, SH, "C"))
	ds := jsonDS(NewSequence(0x00081032, &Dataset{}, jsonDS(NewSequence(0x00400260, inner))))
	p := ElementPath{Items: []PathItem{{0x00081032, 1}, {0x00400260, 0}}, Tag: 0x00080100}
	if got, want := p.String(), "00081032/1/00400260/0/00080100"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if e := ds.Lookup(p); e == nil || e.String() != "C" {
		t.Errorf("Lookup(%s) = %v", p, e)
	}
	for _, bad := range []ElementPath{
		{Items: []PathItem{{0x00081032, 2}}, Tag: 0x00080100},
		{Items: []PathItem{{0x00081033, 0}}, Tag: 0x00080100},
		{Tag: 0x00100010},
	} {
		if e := ds.Lookup(bad); e != nil {
			t.Errorf("Lookup(%s) = %v, want nil", bad, e)
		}
	}
}
