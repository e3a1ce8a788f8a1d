package dicom

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJSONRoundTripCorpus takes every corpus file through JSON and back.
// The decoded data set must encode to the same JSON, byte for byte, and
// must equal the source up to these normalisations:
//
//   - group lengths and Data Set Trailing Padding are dropped;
//   - strings are UTF-8, and Specific Character Set says ISO_IR 192
//     (added at the top when non-ASCII text appears without one);
//   - padding: values lose the leading and trailing spaces PS3.5 Table
//     6.2-1 calls insignificant, and are re-padded to even length;
//   - person names lose trailing empty components and component groups
//     ("Smith^^^==" is "Smith"), PS3.5 6.2.1.1;
//   - a UN element read as a sequence (undefined length, CP-246) is SQ;
//   - lengths: SQ and items become defined-length.
//
// DS and IS spellings are kept as they are. A source with values its VR
// does not allow (jsonInvalidSources) encodes, but its JSON is refused by
// the strict decoder.
func TestJSONRoundTripCorpus(t *testing.T) {
	files := testCorpus(t)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseBytes(b, ReadOptions{})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			enc := &JSONOptions{InlineEncapsulated: true}
			first, err := AppendJSON(nil, &f.Dataset, enc)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got, bulk, err := DecodeJSONBytes(first, &JSONDecodeOptions{Encapsulated: f.TransferSyntax.Encapsulated})
			if want, ok := jsonInvalidSources[filepath.Base(path)]; ok {
				// The encoder writes what it was given; the decoder
				// refuses values the VR does not allow.
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("decode error %v, want one containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(got) != 1 || len(bulk) != 0 {
				t.Fatalf("%d data sets, %d bulk refs", len(got), len(bulk))
			}
			if d := jsonNormalDiff(&f.Dataset, got[0], nil, ""); d != "" {
				t.Errorf("round trip: %s", d)
			}
			second, err := AppendJSON(nil, got[0], enc)
			if err != nil {
				t.Fatalf("encode decoded: %v", err)
			}
			if !bytes.Equal(first, second) {
				i := 0
				for i < len(first) && i < len(second) && first[i] == second[i] {
					i++
				}
				lo := max(0, i-80)
				t.Errorf("second encoding differs at byte %d:\n%s\n%s", i, first[lo:min(len(first), i+80)], second[lo:min(len(second), i+80)])
			}
		})
	}
}

// jsonInvalidSources are corpus files with invalid values, and the error
// decoding their JSON must give.
var jsonInvalidSources = map[string]string{
	"badVR.dcm": `in 00280008: invalid IS value "1A"`,
}

func jsonSkipped(t Tag) bool {
	return t.IsGroupLength() || t.Group() == 0xFFFE || t == jsonTagTrailingPadding || t == TagSpecificCharacterSet
}

// jsonNormalDiff compares src, as read from a file, with got, decoded from
// JSON, under the normalisations of TestJSONRoundTripCorpus.
func jsonNormalDiff(src, got *Dataset, parent *CharacterSet, at string) string {
	cs, _ := src.CharacterSet(parent)
	var a, b []*Element
	for i := range src.Elements {
		if !jsonSkipped(src.Elements[i].Tag) {
			a = append(a, &src.Elements[i])
		}
	}
	for i := range got.Elements {
		if !jsonSkipped(got.Elements[i].Tag) {
			b = append(b, &got.Elements[i])
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%s: %d elements, got %d", at, len(a), len(b))
	}
	for i, x := range a {
		y := b[i]
		p := at + x.Tag.Hex()
		vr := x.VR
		if x.Items != nil {
			vr = SQ
		}
		if x.Tag != y.Tag || vr != y.VR {
			return fmt.Sprintf("%s: %s %s, got %s %s", p, x.Tag, x.VR, y.Tag, y.VR)
		}
		switch {
		case vr == SQ:
			if len(x.Items) != len(y.Items) {
				return fmt.Sprintf("%s: %d items, got %d", p, len(x.Items), len(y.Items))
			}
			for j := range x.Items {
				if d := jsonNormalDiff(x.Items[j], y.Items[j], cs, fmt.Sprintf("%s/%d/", p, j)); d != "" {
					return d
				}
			}
		case x.Fragments != nil:
			if y.Fragments == nil || fmt.Sprint(x.Fragments.BasicOffsetTable) != fmt.Sprint(y.Fragments.BasicOffsetTable) ||
				len(x.Fragments.Items) != len(y.Fragments.Items) {
				return p + ": fragments differ"
			}
			for j := range x.Fragments.Items {
				if !bytes.Equal(x.Fragments.Items[j].Data, y.Fragments.Items[j].Data) {
					return fmt.Sprintf("%s: fragment %d differs", p, j)
				}
			}
		case vr.IsString():
			src, err := cs.Decode(x.Value, vr)
			if err != nil {
				return fmt.Sprintf("%s: %v", p, err)
			}
			want, have := jsonNormalStrings(vr, src), jsonNormalStrings(vr, string(y.Value))
			if want != have {
				return fmt.Sprintf("%s %s: %q, got %q", p, vr, want, have)
			}
			if len(y.Value)%2 != 0 {
				return fmt.Sprintf("%s: odd length %d", p, len(y.Value))
			}
		default:
			if !bytes.Equal(x.Value, y.Value) {
				return fmt.Sprintf("%s %s: % x, got % x", p, vr, clip(x.Value), clip(y.Value))
			}
		}
	}
	return ""
}

// jsonNormalStrings normalises a string value for comparison: values
// trimmed as the VR allows, person names without trailing empty
// components and groups; an only-padding value is empty.
func jsonNormalStrings(vr VR, s string) string {
	e := Element{VR: vr, Value: []byte(s)}
	vals := e.Strings()
	if vr == PN {
		for i, v := range vals {
			groups := strings.Split(v, "=")
			for g := range groups {
				groups[g] = strings.TrimRight(groups[g], "^ ")
			}
			vals[i] = strings.TrimRight(strings.Join(groups, "="), "=")
		}
	}
	if len(vals) == 1 && vals[0] == "" {
		return ""
	}
	return strings.Join(vals, `\`)
}
