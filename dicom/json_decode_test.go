package dicom

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestJSONDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Element
	}{
		{"strings, nulls and padding", `{"00080008":{"vr":"CS","Value":["ORIGINAL",null,"AXIAL"]},"00100020":{"vr":"LO","Value":["ab"]},"00080016":{"vr":"UI","Value":["1.2.3"]}}`,
			[]Element{jsonRaw(0x00080008, CS, []byte(`ORIGINAL\\AXIAL `)...), jsonRaw(0x00080016, UI, []byte("1.2.3\x00")...), jsonRaw(0x00100020, LO, []byte("ab")...)}},
		{"members in any order, keys sorted", `{"00100020":{"Value":["x"],"vr":"LO"},"00080050":{"vr":"SH"}}`,
			[]Element{{Tag: 0x00080050, VR: SH}, jsonRaw(0x00100020, LO, 'x', ' ')}},
		{"empty Value array", `{"00080050":{"vr":"SH","Value":[]}}`, []Element{{Tag: 0x00080050, VR: SH}}},
		{"lower-case tag", `{"7fe00010":{"vr":"OB","InlineBinary":"AQI="}}`, []Element{jsonRaw(TagPixelData, OB, 1, 2)}},
		{"escapes", `{"00204000":{"vr":"LT","Value":["a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"]}}`,
			[]Element{jsonRaw(0x00204000, LT, []byte("a\"\\/\b\f\n\r\té😀 ")...), jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 192")...)}},
		{"person names", `{"00100010":{"vr":"PN","Value":[{"Alphabetic":"A^B","Phonetic":"p"},null,{"Ideographic":"I"},{}]}}`,
			[]Element{jsonRaw(0x00100010, PN, []byte(`A^B==p\\=I\ `)...)}},
		{"DS and IS spellings kept", `{"00180050":{"vr":"DS","Value":[1.5,"+1",".5","5.",1e3,-0,"  7 ",null]},"00200013":{"vr":"IS","Value":[12,"-3","+4",1.0,2e2]}}`,
			[]Element{jsonRaw(0x00180050, DS, []byte(`1.5\+1\.5\5.\1e3\-0\7\`)...), jsonRaw(0x00200013, IS, []byte(`12\-3\+4\1\200`)...)}},
		{"long DS rewritten to 16 characters", `{"00180050":{"vr":"DS","Value":[0.30000000000000004,-1.2345678901234567e-300]}}`,
			[]Element{jsonRaw(0x00180050, DS, []byte(`0.3\-1.23456789e-300`)...)}},
		{"binary numbers", `{"00280010":{"vr":"US","Value":[0,65535]},"00189219":{"vr":"SS","Value":[-32768,4]},"00660040":{"vr":"UL","Value":[4294967295]},"00189503":{"vr":"SL","Value":[-2147483648]}}`,
			[]Element{jsonRaw(0x00189219, SS, jsonLE16(0x8000, 4)...), jsonRaw(0x00189503, SL, jsonLE32(0x80000000)...),
				jsonRaw(0x00280010, US, jsonLE16(0, 65535)...), jsonRaw(0x00660040, UL, jsonLE32(4294967295)...)}},
		{"64-bit numbers and strings", `{"00720076":{"vr":"SV","Value":[-5,"-9223372036854775808"]},"00720078":{"vr":"UV","Value":["18446744073709551615",7]}}`,
			[]Element{jsonRaw(0x00720076, SV, jsonLE64(uint64(1<<64-5), 1<<63)...), jsonRaw(0x00720078, UV, jsonLE64(math.MaxUint64, 7)...)}},
		{"floats", `{"00189087":{"vr":"FD","Value":[0.1,"NaN","Infinity","-Infinity"]},"00189702":{"vr":"FL","Value":[0.1]}}`,
			[]Element{jsonRaw(0x00189087, FD, jsonLE64(math.Float64bits(0.1), math.Float64bits(math.NaN()), math.Float64bits(math.Inf(1)), math.Float64bits(math.Inf(-1)))...),
				jsonRaw(0x00189702, FL, jsonLE32(math.Float32bits(0.1))...)}},
		{"AT", `{"00209165":{"vr":"AT","Value":["00100010","7fe00010"]}}`,
			[]Element{jsonRaw(0x00209165, AT, jsonLE16(0x0010, 0x0010, 0x7FE0, 0x0010)...)}},
		{"odd OB kept", `{"00091001":{"vr":"OB","InlineBinary":"AQID"}}`, []Element{jsonRaw(0x00091001, OB, 1, 2, 3)}},
		{"sequence", `{"00400275":{"vr":"SQ","Value":[{},{"00400009":{"vr":"SH","Value":["X"]}}]},"00189114":{"vr":"SQ"}}`,
			[]Element{{Tag: 0x00189114, VR: SQ}, {Tag: 0x00400275, VR: SQ, Items: []*Dataset{{}, jsonDS(jsonRaw(0x00400009, SH, 'X', ' '))}}}},
		{"declared set kept for ASCII", `{"00080005":{"vr":"CS","Value":["ISO_IR 100"]},"00100020":{"vr":"LO","Value":["ab"]}}`,
			[]Element{jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 100")...), jsonRaw(0x00100020, LO, 'a', 'b')}},
		{"declared sets used, item's own too", `{"00080005":{"vr":"CS","Value":["ISO_IR 100"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Müller"}]},"00081110":{"vr":"SQ","Value":[{"00080005":{"vr":"CS","Value":["ISO_IR 144"]},"00081150":{"vr":"LO","Value":["Люба"]}}]}}`,
			[]Element{jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 100")...), jsonRaw(0x00100010, PN, []byte("M\xfcller")...),
				{Tag: 0x00081110, VR: SQ, Items: []*Dataset{jsonDS(jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 144")...), jsonRaw(0x00081150, LO, []byte("\xbb\xee\xd1\xd0")...))}}}},
		{"ISO 2022 declared", `{"00080005":{"vr":"CS","Value":["","ISO 2022 IR 87"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎"}]}}`,
			[]Element{jsonRaw(TagSpecificCharacterSet, CS, []byte(`\ISO 2022 IR 87 `)...),
				jsonRaw(0x00100010, PN, []byte("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B")...)}},
		{"not representable: UTF-8, items too", `{"00080005":{"vr":"CS","Value":["ISO_IR 100"]},"00081110":{"vr":"SQ","Value":[{"00080005":{"vr":"CS","Value":["ISO_IR 144"]},"00081150":{"vr":"LO","Value":["Люба 山"]}}]}}`,
			[]Element{jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 192")...),
				{Tag: 0x00081110, VR: SQ, Items: []*Dataset{jsonDS(jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 192")...), jsonRaw(0x00081150, LO, []byte("Люба 山")...))}}}},
		{"no declared set: UTF-8", `{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Müller"}]}}`,
			[]Element{jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 192")...), jsonRaw(0x00100010, PN, []byte("Müller ")...)}},
		// The character set does not apply to UI, CS, DA...: a stray Latin-1
		// character is stored as the Latin-1 byte the encoder reads back,
		// and its presence neither transcodes nor declares anything.
		{"default repertoire VRs: Latin-1 bytes", `{"00080005":{"vr":"CS","Value":["ISO_IR 144"]},"00000001":{"vr":"UI","Value":["1.æ"]},"00080060":{"vr":"CS","Value":["ÆØ"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Люба"}]}}`,
			[]Element{jsonRaw(0x00000001, UI, '1', '.', 0xE6, 0), jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 144")...),
				jsonRaw(0x00080060, CS, 0xC6, 0xD8), jsonRaw(0x00100010, PN, []byte("\xbb\xee\xd1\xd0")...)}},
		{"default repertoire VR under UTF-8", `{"00080060":{"vr":"CS","Value":["é"]},"00100020":{"vr":"LO","Value":["é"]}}`,
			[]Element{jsonRaw(TagSpecificCharacterSet, CS, []byte("ISO_IR 192")...), jsonRaw(0x00080060, CS, 0xE9, ' '), jsonRaw(0x00100020, LO, []byte("é")...)}},
		{"whitespace", " \n{ \"00100020\" : { \"vr\" : \"LO\" , \"Value\" : [ \"a\" , null ] } }\r\n",
			[]Element{jsonRaw(0x00100020, LO, 'a', '\\')}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, bulk, err := DecodeJSONBytes([]byte(tt.in), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || len(bulk) != 0 {
				t.Fatalf("got %d data sets, %d bulk refs", len(got), len(bulk))
			}
			want := jsonDS(tt.want...)
			if diff := jsonDiff(got[0], want, ""); diff != "" {
				t.Error(diff)
			}
		})
	}
}

// jsonDiff describes the first difference between two data sets, or
// returns "". NaN values compare by bits.
func jsonDiff(got, want *Dataset, at string) string {
	if got.Len() != want.Len() {
		return fmt.Sprintf("%s: %d elements %v, want %d %v", at, got.Len(), jsonTagsOf(got), want.Len(), jsonTagsOf(want))
	}
	for i := range want.Elements {
		g, w := &got.Elements[i], &want.Elements[i]
		where := fmt.Sprintf("%s%s", at, w.Tag)
		switch {
		case g.Tag != w.Tag || g.VR != w.VR:
			return fmt.Sprintf("%s: got %s %s, want %s %s", where, g.Tag, g.VR, w.Tag, w.VR)
		case !bytes.Equal(g.Value, w.Value):
			return fmt.Sprintf("%s: value %q, want %q", where, g.Value, w.Value)
		case len(g.Items) != len(w.Items):
			return fmt.Sprintf("%s: %d items, want %d", where, len(g.Items), len(w.Items))
		case (g.Fragments == nil) != (w.Fragments == nil):
			return fmt.Sprintf("%s: fragments %v, want %v", where, g.Fragments != nil, w.Fragments != nil)
		}
		for j := range w.Items {
			if d := jsonDiff(g.Items[j], w.Items[j], fmt.Sprintf("%s/%d/", where, j)); d != "" {
				return d
			}
		}
		if w.Fragments != nil {
			if !reflect.DeepEqual(g.Fragments.BasicOffsetTable, w.Fragments.BasicOffsetTable) || len(g.Fragments.Items) != len(w.Fragments.Items) {
				return where + ": fragments differ"
			}
			for j := range w.Fragments.Items {
				if !bytes.Equal(g.Fragments.Items[j].Data, w.Fragments.Items[j].Data) {
					return fmt.Sprintf("%s: fragment %d differs", where, j)
				}
			}
		}
	}
	return ""
}

func jsonTagsOf(ds *Dataset) []string {
	var out []string
	for _, e := range ds.Elements {
		out = append(out, e.Tag.Hex())
	}
	return out
}

func TestJSONDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not an object", `"x"`, "expected a DICOM JSON object"},
		{"empty input", ``, "expected a DICOM JSON object"},
		{"trailing data", `{} {}`, "after the JSON value"},
		{"short tag", `{"0010010":{"vr":"PN"}}`, `invalid attribute tag "0010010"`},
		{"keyword key", `{"PatientName":{"vr":"PN"}}`, "invalid attribute tag"},
		{"non-hex tag", `{"0010001G":{"vr":"PN"}}`, "invalid attribute tag"},
		{"duplicate tag", `{"00100010":{"vr":"PN"},"00100010":{"vr":"PN"}}`, "appears twice"},
		{"duplicate tag out of order", `{"00100020":{"vr":"LO"},"00100010":{"vr":"PN"},"00100020":{"vr":"LO"}}`, "appears twice"},
		{"no vr", `{"00100010":{"Value":[]}}`, `no "vr"`},
		{"empty attribute", `{"00100010":{}}`, `no "vr"`},
		{"unknown VR", `{"00100010":{"vr":"XX"}}`, `unknown VR "XX"`},
		{"pseudo VR", `{"00100010":{"vr":"ox"}}`, "unknown VR"},
		{"beyond Latin-1 in a default repertoire VR", `{"00000001":{"vr":"UI","Value":["東"]}}`, "limited to the default character repertoire"},
		{"unknown member", `{"00100010":{"vr":"PN","keyword":"PatientName"}}`, `unknown member "keyword"`},
		{"two value members", `{"7FE00010":{"vr":"OB","InlineBinary":"AA==","BulkDataURI":"x"}}`, "more than one"},
		{"number for string VR", `{"00100020":{"vr":"LO","Value":[123]}}`, "must be strings"},
		{"string for US", `{"00280010":{"vr":"US","Value":["512"]}}`, "expected a number"},
		{"US out of range", `{"00280010":{"vr":"US","Value":[65536]}}`, "invalid US value 65536"},
		{"SS out of range", `{"00189219":{"vr":"SS","Value":[-32769]}}`, "invalid SS value"},
		{"fractional UL", `{"00660040":{"vr":"UL","Value":[1.5]}}`, "invalid UL value"},
		{"null for US", `{"00280010":{"vr":"US","Value":[null]}}`, "cannot be null"},
		{"FL overflow", `{"00189702":{"vr":"FL","Value":[1e39]}}`, "out of range"},
		{"FD bad string", `{"00189087":{"vr":"FD","Value":["nan"]}}`, "must be numbers"},
		{"invalid number", `{"00180050":{"vr":"DS","Value":[01]}}`, `invalid number "01"`},
		{"invalid DS string", `{"00180050":{"vr":"DS","Value":["abc"]}}`, `invalid DS value "abc"`},
		{"fractional IS", `{"00200013":{"vr":"IS","Value":[1.5]}}`, "invalid IS value"},
		{"IS out of range", `{"00200013":{"vr":"IS","Value":[2147483648]}}`, "invalid IS value"},
		{"bad AT", `{"00209165":{"vr":"AT","Value":["0010001"]}}`, "invalid AT value"},
		{"PN as string", `{"00100010":{"vr":"PN","Value":["A^B"]}}`, "PN values must be objects"},
		{"PN unknown group", `{"00100010":{"vr":"PN","Value":[{"Alfabetic":"A"}]}}`, "unknown person name component group"},
		{"PN group with delimiter", `{"00100010":{"vr":"PN","Value":[{"Alphabetic":"A=B"}]}}`, "cannot contain"},
		{"backslash in LO", `{"00100020":{"vr":"LO","Value":["a\\b"]}}`, "cannot contain a backslash"},
		{"two LT values", `{"00204000":{"vr":"LT","Value":["a","b"]}}`, "has one value"},
		{"Value for OB", `{"7FE00010":{"vr":"OB","Value":[1]}}`, "takes InlineBinary or BulkDataURI"},
		{"InlineBinary for LO", `{"00100020":{"vr":"LO","InlineBinary":"AA=="}}`, "not allowed for VR LO"},
		{"InlineBinary not base64", `{"7FE00010":{"vr":"OB","InlineBinary":"A*=="}}`, "not valid base64"},
		{"InlineBinary not a string", `{"7FE00010":{"vr":"OB","InlineBinary":1}}`, "expected a string"},
		{"OW odd length", `{"7FE00010":{"vr":"OW","InlineBinary":"AQID"}}`, "not a multiple of 2"},
		{"empty BulkDataURI", `{"7FE00010":{"vr":"OB","BulkDataURI":""}}`, "empty BulkDataURI"},
		{"BulkDataURI for SQ", `{"00400275":{"vr":"SQ","BulkDataURI":"x"}}`, "cannot have a BulkDataURI"},
		{"item not an object", `{"00400275":{"vr":"SQ","Value":[1]}}`, "must be an object"},
		{"unterminated string", `{"00100020":{"vr":"LO","Value":["abc`, "unterminated string"},
		{"truncated", `{"00100020":{"vr":"LO","Value":["abc"]`, "unexpected end of input"},
		{"missing comma", `{"00100020":{"vr":"LO" "Value":["abc"]}}`, "expected ',' or '}'"},
		{"control character", "{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"a\x01\"]}}", "control character"},
		{"invalid UTF-8", "{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"\xff\"]}}", "not valid UTF-8"},
		{"bad escape", `{"00100020":{"vr":"LO","Value":["\x"]}}`, `invalid escape`},
		{"lone surrogate", `{"00100020":{"vr":"LO","Value":["\ud800"]}}`, "unpaired surrogate"},
		{"array of non-objects", `[{}, 1]`, "expected a DICOM JSON object in the array"},
		{"error names the nested path", `{"00400275":{"vr":"SQ","Value":[{},{"00280010":{"vr":"US","Value":[-1]}}]}}`, "in 00400275/1/00280010"},
		{"error names the array index", `[{},{"00280010":{"vr":"US","Value":[-1]}}]`, "of object 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeJSONBytes([]byte(tt.in), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestJSONDecodeLimits(t *testing.T) {
	nest := func(n int) string {
		s := `{"00100020":{"vr":"LO","Value":["x"]}}`
		for range n {
			s = `{"00400275":{"vr":"SQ","Value":[` + s + `]}}`
		}
		return s
	}
	// The same nesting with "Value" before "vr", so it is skipped first.
	nestSkip := func(n int) string {
		s := `{}`
		for range n {
			s = `{"00400275":{"Value":[` + s + `],"vr":"SQ"}}`
		}
		return s
	}
	many := `{"00400275":{"vr":"SQ","Value":[` + strings.Repeat(`{},`, 99) + `{}]}}`
	tests := []struct {
		name string
		in   string
		opts *JSONDecodeOptions
		want string // "" for success
	}{
		{"depth at limit", nest(8), &JSONDecodeOptions{MaxDepth: 8}, ""},
		{"depth over limit", nest(9), &JSONDecodeOptions{MaxDepth: 8}, "nested deeper than 8"},
		{"default depth", nest(DefaultJSONMaxDepth + 1), nil, "nested deeper"},
		{"skipped depth at limit", nestSkip(8), &JSONDecodeOptions{MaxDepth: 8}, ""},
		{"skipped depth over limit", nestSkip(100), &JSONDecodeOptions{MaxDepth: 8}, "too deep"},
		{"size", many, &JSONDecodeOptions{MaxBytes: 100}, "larger than 100 bytes"},
		{"elements at limit", many, &JSONDecodeOptions{MaxElements: 101}, ""},
		{"elements over limit", many, &JSONDecodeOptions{MaxElements: 100}, "more than 100 data elements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeJSON(strings.NewReader(tt.in), tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestJSONDecodeBulkDataURI(t *testing.T) {
	in := `[{"7FE00010":{"vr":"OB","BulkDataURI":"http://h/a"}},` +
		`{"00540016":{"vr":"SQ","Value":[{},{"00181072":{"BulkDataURI":"http://h/b","vr":"OW"}}]}}]`
	got, bulk, err := DecodeJSONBytes([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []JSONBulkData{
		{Instance: 0, Path: ElementPath{Tag: TagPixelData}, URI: "http://h/a"},
		{Instance: 1, Path: ElementPath{Items: []PathItem{{0x00540016, 1}}, Tag: 0x00181072}, URI: "http://h/b"},
	}
	if !reflect.DeepEqual(bulk, want) {
		t.Fatalf("bulk refs %+v, want %+v", bulk, want)
	}
	for _, b := range bulk {
		e := got[b.Instance].Lookup(b.Path)
		if e == nil || e.Value != nil {
			t.Fatalf("element at %s: %+v, want present with no value", b.Path, e)
		}
	}
	if vr := got[1].Lookup(want[1].Path).VR; vr != OW {
		t.Errorf("VR %s, want OW", vr)
	}
}

// TestJSONRoundTrip checks dataset → JSON → dataset for every VR. The
// data sets are built already normalised (UTF-8, even padding, values
// without insignificant spaces), so the round trip must be exact.
func TestJSONRoundTrip(t *testing.T) {
	full := jsonDS(
		NewStrings(TagSpecificCharacterSet, CS, "ISO_IR 192"),
		NewStrings(0x00080008, CS, "ORIGINAL", "", "AXIAL"),
		NewStrings(0x00080016, UI, "1.2.840.10008.5.1.4.1.1.2"),
		NewStrings(0x00080020, DA, "20240101"),
		NewStrings(0x00080030, TM, "101010.123"),
		NewStrings(0x0008002A, DT, "20240101101010+0100"),
		NewStrings(0x00080054, AE, "STORESCP"),
		NewStrings(0x00081030, LO, "Étude du crâne"),
		NewStrings(0x00080050, SH, ""),
		NewStrings(0x00100010, PN, "Yamada^Tarou=山田^太郎=やまだ^たろう", "", "=I", "A^B"),
		NewStrings(0x00101010, AS, "030Y"),
		NewStrings(0x00180050, DS, "+1.5", ".5", "5.", "1e3", "-0", "0.000000", "1E+02"),
		NewStrings(0x00200013, IS, "+12", "-3", "007"),
		NewStrings(0x00204000, LT, `line1\line2`+"\r\n"+`  x`),
		NewStrings(0x00081190, UR, "https://example.org/a b"),
		NewStrings(0x00400010, SH, "a", "b"),
		NewStrings(0x0040A160, UT, "unlimited\ttext"),
		NewStrings(0x00081080, LO, "x", "y", "z"),
		NewStrings(0x00189004, CS, "RESEARCH"),
		NewStrings(0x0018103F, ST, "short text"),
		NewStrings(0x00402017, UC, "uc1", "uc2"),
		jsonRaw(0x00209165, AT, jsonLE16(0x0010, 0x0010, 0x7FE0, 0x0010)...),
		jsonRaw(0x00280010, US, jsonLE16(0, 1, 65535)...),
		jsonRaw(0x00189219, SS, jsonLE16(0x8000, 0x7FFF)...),
		jsonRaw(0x00660040, UL, jsonLE32(0, math.MaxUint32)...),
		jsonRaw(0x00189503, SL, jsonLE32(0x80000000, 1)...),
		jsonRaw(0x00720076, SV, jsonLE64(1<<63, 1<<53, 5)...),
		jsonRaw(0x00720078, UV, jsonLE64(math.MaxUint64, 1<<53-1)...),
		jsonRaw(0x00189087, FD, jsonLE64(math.Float64bits(math.Pi), math.Float64bits(math.Copysign(0, -1)), math.Float64bits(math.SmallestNonzeroFloat64),
			math.Float64bits(math.MaxFloat64), math.Float64bits(math.Inf(-1)), math.Float64bits(math.NaN()))...),
		jsonRaw(0x00189702, FL, jsonLE32(math.Float32bits(0.1), math.Float32bits(math.MaxFloat32), math.Float32bits(float32(math.Inf(1))))...),
		jsonRaw(0x00091001, OB, 0, 1, 2, 255),
		jsonRaw(0x00091002, UN, 9, 8),
		jsonRaw(0x00281201, OW, jsonLE16(1, 2)...),
		jsonRaw(0x00660016, OF, jsonLE32(math.Float32bits(1.5))...),
		jsonRaw(0x00660029, OD, jsonLE64(math.Float64bits(2.5))...),
		jsonRaw(0x00660040|0x100, OL, jsonLE32(7)...),
		jsonRaw(0x00660042, OV, jsonLE64(8)...),
		NewStrings(0x00090010, LO, "ACME 1.0"),
		NewSequence(0x00189114),
		NewSequence(0x00400275, &Dataset{}, jsonDS(
			NewStrings(0x00400009, SH, "X"),
			NewSequence(0x00400008, jsonDS(NewStrings(0x00080100, SH, "CODE"))),
		)),
	)
	encap := jsonDS(Element{Tag: TagPixelData, VR: OB, UndefinedLength: true, Fragments: &Fragments{
		BasicOffsetTable: []uint32{0, 12},
		Items:            []Fragment{{Length: 4, Data: []byte{1, 2, 3, 4}}, {Length: 2, Data: []byte{5, 6}}},
	}})
	tests := []struct {
		name string
		ds   *Dataset
		enc  *JSONOptions
		dec  *JSONDecodeOptions
	}{
		{"every VR", full, nil, nil},
		{"empty", &Dataset{}, nil, nil},
		{"inline encapsulated", encap, &JSONOptions{InlineEncapsulated: true}, &JSONDecodeOptions{Encapsulated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendJSON(nil, tt.ds, tt.enc)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := DecodeJSONBytes(b, tt.dec)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			if d := jsonDiff(got[0], tt.ds, ""); d != "" {
				t.Errorf("%s\n%s", d, b)
			}
			again, err := AppendJSON(nil, got[0], tt.enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Errorf("second encoding differs:\n%s\n%s", b, again)
			}
		})
	}
}

// FuzzJSONDecode feeds arbitrary input to the decoder. Whatever it
// accepts must encode, and decoding that encoding must give a data set
// that encodes the same way (the codec reaches a fixed point in one step).
func FuzzJSONDecode(f *testing.F) {
	f.Add([]byte(`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"A^B"}]}}`))
	f.Add([]byte(`[{"00180050":{"vr":"DS","Value":[1.5,"+1",null]}},{}]`))
	f.Add([]byte(`{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00080018":{"vr":"UI","Value":["1.æ"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"æ"}]}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		opts := &JSONDecodeOptions{MaxBytes: 1 << 20, MaxDepth: 8, MaxElements: 1 << 14}
		got, _, err := DecodeJSONBytes(in, opts)
		if err != nil {
			return
		}
		// Values given by BulkDataURI are left unresolved (empty) and so
		// encode as empty values.
		var buf bytes.Buffer
		a := NewJSONArrayWriter(&buf, nil)
		for _, ds := range got {
			if err := a.Write(ds); err != nil {
				t.Fatalf("decoded input does not encode: %v", err)
			}
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		first := buf.Bytes()
		again, _, err := DecodeJSONBytes(first, opts)
		if err != nil {
			t.Fatalf("own output does not decode: %v\n%s", err, first)
		}
		var buf2 bytes.Buffer
		if err := EncodeJSONArray(&buf2, again, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, buf2.Bytes()) {
			t.Fatalf("not a fixed point:\n%s\n%s", first, buf2.Bytes())
		}
	})
}
