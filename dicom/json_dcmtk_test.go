package dicom

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// dcm2jsonFails lists the files dcm2json (dcmtk 3.6.7) cannot convert at
// all, so there is nothing to compare with; any other failure of dcm2json
// fails the test. (dcm2json's refusal of encapsulated Pixel Data is
// handled separately, see TestJSONMatchesDcm2json.)
var dcm2jsonFails = map[string]string{
	"explicit_VR-UN.dcm": "its Specific Character Set holds garbage",
	// (0008,0005) is "\\ISO 2022 IR 87": an empty second value, which
	// dcmtk refuses; dcmtk's iconv has no ISO 2022 IR 87 either.
	"charset-japanese.dcm":          "dcmtk cannot convert its Specific Character Set",
	"charset-japanese-implicit.dcm": "dcmtk cannot convert its Specific Character Set",
	"charset-korean.dcm":            "its Specific Character Set has an empty second value",
}

// TestJSONMatchesDcm2json encodes every corpus file and compares the
// result with dcm2json's, both parsed as generic JSON. Where the standard
// allows several spellings, or where dcm2json deviates from PS3.18, the
// comparison normalises, and each normalisation is a case of the compare
// functions below:
//
//   - Numbers compare by value: dcm2json writes DS as stored ("0.000000"),
//     FD with 17 digits, FL with 9; we write DS as stored and floats in
//     their shortest round-tripping form. FL values compare as float32; FD
//     values to 1e-15 relative, because dcmtk's own formatting
//     (OFStandard::ftoa) is not correctly rounded: PhysicalDeltaX of
//     JPGLosslessP14SV1_1s_1f_8b.dcm is 0.025476696592378157 exactly,
//     dcm2json says ...154; -1e-300 it writes -9.9999999999999929e-301.
//   - DS and IS values that are not valid JSON numbers as stored ("+1",
//     ".5", "007") we write as strings, which PS3.18 Table F.2.3-1 permits
//     to preserve the original format; dcm2json rewrites them as numbers.
//     They compare by numeric value.
//   - dcm2json 3.6.7 writes some DS values as invalid JSON numbers ("5.",
//     dcmtk bug #1079); its output is repaired ("5." → "5") before parsing.
//   - dcm2json refuses encapsulated Pixel Data ("JSON InlineBinary encoding
//     not supported for compressed pixel data"); for those files it runs on
//     a copy with Pixel Data removed (dcmodify -ea), and our Pixel Data,
//     written as a BulkDataURI, is left out of the comparison.
//   - dcmtk knows private tags from its private dictionary, so in implicit
//     VR files it gives them a VR where we (and PS3.5) have UN. Such an
//     element compares by value: their attribute is decoded with our
//     decoder and its bytes must equal our InlineBinary.
//   - Binary values compare as bytes up to one trailing pad byte (dcmtk
//     pads odd-length OB values when reading).
//   - dcm2json writes Data Set Trailing Padding (FFFC,FFFC); we leave it
//     out, as its value "shall have no significance" (PS3.10 7.2) and it is
//     no attribute of the object. It is dropped from dcm2json's output.
//   - dcm2json converts every value to UTF-8 but rewrites only the
//     top-level Specific Character Set to "ISO_IR 192", leaving an item's
//     own (0008,0005) as it was, which then misdescribes the JSON. We write
//     "ISO_IR 192" at every level; an item's (0008,0005) is compared as
//     such.
func TestJSONMatchesDcm2json(t *testing.T) {
	needTool(t, "dcm2json", "dcmodify")
	files := testCorpus(t)
	compared := 0
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if compareWithDcm2json(t, path) {
				compared++
			}
		})
	}
	if compared < len(files)-len(dcm2jsonFails) {
		t.Fatalf("compared %d of %d files", compared, len(files))
	}
	t.Logf("compared %d of %d files with dcm2json", compared, len(files))
}

// TestJSONCharsetsMatchDcm2json compares multi-byte character sets that
// dcmtk's iconv converts, on files written here with dump2dcm (dcmtk's
// iconv has no ISO 2022 IR 87; TestJSONEncode covers it).
func TestJSONCharsetsMatchDcm2json(t *testing.T) {
	needTool(t, "dcm2json", "dcmodify", "dump2dcm")
	const ids = "(0008,0016) UI [1.2.3]\n(0008,0018) UI [1.2.3.4]\n"
	tests := []struct{ name, dump string }{
		{"gb18030", "(0008,0005) CS [GB18030]\n" + ids +
			// 乗 is 81 5C: its second byte is not a value delimiter.
			"(0010,0020) LO [\x81\x5c\\b]\n(0010,0010) PN [Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab=]\n"},
		{"korean", "(0008,0005) CS [\\ISO 2022 IR 149]\n" + ids +
			"(0010,0010) PN [Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf]\n"},
		// The item inherits Latin-1. (dcm2json ignores an item's own
		// Specific Character Set, decoding it with the data set's: the
		// item-level case is TestJSONEncode's.)
		{"latin1-item", "(0008,0005) CS [ISO_IR 100]\n" + ids +
			"(0010,0010) PN [M\xfcller^J\xfcrgen]\n(0040,a043) SQ (Sequence with undefined length)\n" +
			"(fffe,e000) na (Item with undefined length)\n(0008,0104) LO [cr\xe2ne\\\xe9t\xe9]\n" +
			"(fffe,e00d) na\n(fffe,e0dd) na\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dump, dcm := filepath.Join(dir, "in.dump"), filepath.Join(dir, tt.name+".dcm")
			if err := os.WriteFile(dump, []byte(tt.dump), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("dump2dcm", "-q", dump, dcm).CombinedOutput(); err != nil {
				t.Fatalf("dump2dcm: %v: %s", err, out)
			}
			if !compareWithDcm2json(t, dcm) {
				t.Fatal("dcm2json failed")
			}
		})
	}
}

// compareWithDcm2json encodes path and compares with dcm2json's output,
// reporting whether it could compare (false: dcm2json cannot convert a
// file listed in dcm2jsonFails).
func compareWithDcm2json(t *testing.T, path string) bool {
	t.Helper()
	name := filepath.Base(path)
	opts := &JSONOptions{
		// Everything inline, as dcm2json writes it, except encapsulated
		// Pixel Data (which dcm2json refuses).
		BulkDataThreshold: math.MaxInt,
		BulkDataURI:       func(ElementPath) string { return "encapsulated" },
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseBytes(b, ReadOptions{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	ours, err := AppendJSON(nil, &f.Dataset, opts)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	theirs, withoutPixels, err := runDcm2json(t, path)
	if err != nil {
		if reason, ok := dcm2jsonFails[name]; ok {
			t.Logf("not compared: dcm2json fails (%s): %v", reason, err)
			return false
		}
		t.Fatal(err)
	}
	var o, d map[string]any
	if err := jsonUnmarshalNumbers(ours, &o); err != nil {
		t.Fatalf("our output is not JSON: %v", err)
	}
	if err := jsonUnmarshalNumbers(theirs, &d); err != nil {
		t.Fatalf("dcm2json output is not JSON even after repair: %v", err)
	}
	if withoutPixels {
		if p, ok := o["7FE00010"].(map[string]any); !ok || p["BulkDataURI"] != "encapsulated" {
			t.Fatalf("dcm2json refused Pixel Data that we do not see as encapsulated: %v", o["7FE00010"])
		}
		delete(o, "7FE00010")
	}
	delete(d, "FFFCFFFC")
	if diff := jsonCompareObjects(o, d, ""); diff != "" {
		t.Errorf("differs from dcm2json: %s", diff)
	}
	return true
}

var dcm2jsonBadDS = regexp.MustCompile(`([0-9])\.([,\]])`)

// runDcm2json converts path with dcm2json, retrying on a copy without
// Pixel Data when dcm2json refuses encapsulated pixel data.
func runDcm2json(t *testing.T, path string) (out []byte, withoutPixels bool, err error) {
	var stderr bytes.Buffer
	cmd := exec.Command("dcm2json", "-fc", path)
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil && strings.Contains(stderr.String(), "not supported for compressed pixel data") {
		tmp := filepath.Join(t.TempDir(), "nopixels.dcm")
		b, rerr := os.ReadFile(path)
		if rerr != nil {
			return nil, false, rerr
		}
		if werr := os.WriteFile(tmp, b, 0o644); werr != nil {
			return nil, false, werr
		}
		if mout, merr := exec.Command("dcmodify", "-nb", "-q", "-ea", "(7fe0,0010)", tmp).CombinedOutput(); merr != nil {
			return nil, false, fmt.Errorf("dcmodify: %v: %s", merr, mout)
		}
		stderr.Reset()
		cmd = exec.Command("dcm2json", "-fc", tmp)
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		withoutPixels = true
	}
	if err != nil {
		return nil, withoutPixels, fmt.Errorf("dcm2json: %v: %s", err, stderr.Bytes())
	}
	// dcmtk bug #1079: DS values such as "5." are written unchanged, which
	// is not a JSON number.
	return dcm2jsonBadDS.ReplaceAll(out, []byte("$1$2")), withoutPixels, nil
}

func jsonUnmarshalNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func jsonCompareObjects(o, d map[string]any, at string) string {
	keys := func(m map[string]any) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		sort.Strings(k)
		return k
	}
	if ko, kd := keys(o), keys(d); !slicesEqual(ko, kd) {
		return fmt.Sprintf("%s: attributes\n ours   %v\n theirs %v", at, ko, kd)
	}
	for k, ov := range o {
		oa, _ := ov.(map[string]any)
		da, _ := d[k].(map[string]any)
		if oa == nil || da == nil {
			return fmt.Sprintf("%s%s: not an attribute object", at, k)
		}
		if diff := jsonCompareAttr(k, oa, da, at+k); diff != "" {
			return diff
		}
	}
	return ""
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func jsonCompareAttr(tag string, o, d map[string]any, at string) string {
	ovr, _ := o["vr"].(string)
	dvr, _ := d["vr"].(string)
	if ovr == "UN" && dvr != "UN" {
		return jsonCompareUN(tag, o, d, at)
	}
	if ovr != dvr {
		return fmt.Sprintf("%s: vr %s, dcm2json %s", at, ovr, dvr)
	}
	if oi, ok := o["InlineBinary"]; ok {
		di, _ := d["InlineBinary"].(string)
		ob, _ := base64.StdEncoding.DecodeString(oi.(string))
		db, err := base64.StdEncoding.DecodeString(di)
		if err != nil || !jsonBytesEqualPadded(ob, db) {
			return fmt.Sprintf("%s: InlineBinary of %d bytes, dcm2json %d bytes (%v)", at, len(ob), len(db), err)
		}
		return ""
	}
	if len(o) != len(d) {
		return fmt.Sprintf("%s: members %v, dcm2json %v", at, o, d)
	}
	ov, _ := o["Value"].([]any)
	dv, _ := d["Value"].([]any)
	if len(ov) != len(dv) {
		return fmt.Sprintf("%s: %d values %v, dcm2json %d %v", at, len(ov), ov, len(dv), dv)
	}
	for i := range ov {
		where := fmt.Sprintf("%s[%d]", at, i)
		if ovr == "SQ" {
			oi, _ := ov[i].(map[string]any)
			di, _ := dv[i].(map[string]any)
			if cs, ok := di["00080005"].(map[string]any); ok {
				cs["Value"] = []any{"ISO_IR 192"} // see TestJSONMatchesDcm2json
			}
			if diff := jsonCompareObjects(oi, di, where+"/"); diff != "" {
				return diff
			}
			continue
		}
		if !jsonValueEqual(ovr, ov[i], dv[i]) {
			return fmt.Sprintf("%s: %#v, dcm2json %#v", where, ov[i], dv[i])
		}
	}
	return ""
}

func jsonValueEqual(vr string, o, d any) bool {
	on, oNum := o.(json.Number)
	dn, dNum := d.(json.Number)
	os, oStr := o.(string)
	ds, dStr := d.(string)
	switch {
	case oNum && dNum:
		of, err1 := on.Float64()
		df, err2 := dn.Float64()
		if err1 != nil || err2 != nil {
			return on == dn
		}
		switch vr {
		case "FL":
			return float32(of) == float32(df)
		case "FD":
			// dcmtk's own float formatting is not correctly rounded.
			return of == df || math.Abs(of-df) <= 1e-15*math.Abs(df)
		}
		return of == df
	case oStr && dNum && (vr == "DS" || vr == "IS"):
		// Our string keeps a spelling that is not a JSON number.
		of, err1 := strconv.ParseFloat(os, 64)
		df, err2 := dn.Float64()
		return err1 == nil && err2 == nil && of == df
	case oStr && dStr:
		return os == ds
	case o == nil && d == nil:
		return true
	}
	om, ok1 := o.(map[string]any)
	dm, ok2 := d.(map[string]any)
	if ok1 && ok2 && len(om) == len(dm) {
		for k, v := range om {
			if dm[k] != v {
				return false
			}
		}
		return true
	}
	return false
}

// jsonCompareUN compares our UN element with dcm2json's typed one by
// decoding dcm2json's attribute with our decoder.
func jsonCompareUN(tag string, o, d map[string]any, at string) string {
	ob, _ := base64.StdEncoding.DecodeString(fmt.Sprint(o["InlineBinary"]))
	attr, _ := json.Marshal(map[string]any{tag: d})
	got, _, err := DecodeJSONBytes(attr, nil)
	if err != nil {
		return fmt.Sprintf("%s: decoding dcm2json's %s attribute: %v", at, d["vr"], err)
	}
	e := &got[0].Elements[0]
	if e.VR == SQ {
		return fmt.Sprintf("%s: UN, dcm2json SQ", at)
	}
	db := e.Value
	if e.VR.IsString() {
		// Compare the text: the padding of our UN value is the source's.
		if string(jsonTrimTrailing(ob)) == string(jsonTrimTrailing(db)) {
			return ""
		}
		return fmt.Sprintf("%s: UN %q, dcm2json %s %q", at, ob, d["vr"], db)
	}
	if !jsonBytesEqualPadded(ob, db) {
		return fmt.Sprintf("%s: UN % x, dcm2json %s % x", at, ob, d["vr"], db)
	}
	return ""
}

func jsonBytesEqualPadded(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	return len(b) == len(a)+1 && b[len(a)] == 0 && bytes.Equal(a, b[:len(a)])
}
