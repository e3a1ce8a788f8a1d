package dicom

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The examples of PS3.5 Annexes H, I and J, and pydicom's character set
// samples, both ways.
func TestCharacterSetExamples(t *testing.T) {
	tests := []struct {
		name  string
		terms string
		text  string
		hex   string
	}{
		{"latin1", "ISO_IR 100", "Buc^Jérôme", "42 75 63 5E 4A E9 72 F4 6D 65"},
		{"greek", "ISO_IR 126", "Διονυσιος", "C4 E9 EF ED F5 F3 E9 EF F2"},
		{"utf8", "ISO_IR 192", "Wang^XiaoDong=王^小東=", "57 61 6E 67 5E 58 69 61 6F 44 6F 6E 67 3D E7 8E 8B 5E E5 B0 8F E6 9D B1 3D"},
		{"gb18030", "GB18030", "Wang^XiaoDong=王^小东=", "57 61 6E 67 5E 58 69 61 6F 44 6F 6E 67 3D CD F5 5E D0 A1 B6 AB 3D"},
		{"H.3.1 IR 87", `\ISO 2022 IR 87`, "Yamada^Tarou=山田^太郎=やまだ^たろう",
			"59 61 6D 61 64 61 5E 54 61 72 6F 75 3D 1B 24 42 3B 33 45 44 1B 28 42 5E 1B 24 42 42 40 4F 3A 1B 28 42 3D 1B 24 42 24 64 24 5E 24 40 1B 28 42 5E 1B 24 42 24 3F 24 6D 24 26 1B 28 42"},
		{"H.3.2 IR 13 + 87", `ISO 2022 IR 13\ISO 2022 IR 87`, "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう",
			"D4 CF C0 DE 5E C0 DB B3 3D 1B 24 42 3B 33 45 44 1B 28 4A 5E 1B 24 42 42 40 4F 3A 1B 28 4A 3D 1B 24 42 24 64 24 5E 24 40 1B 28 4A 5E 1B 24 42 24 3F 24 6D 24 26 1B 28 4A"},
		{"I.2 IR 149", `\ISO 2022 IR 149`, "Hong^Gildong=洪^吉洞=홍^길동",
			"48 6F 6E 67 5E 47 69 6C 64 6F 6E 67 3D 1B 24 29 43 FB F3 5E 1B 24 29 43 D1 CE D4 D7 3D 1B 24 29 43 C8 AB 5E 1B 24 29 43 B1 E6 B5 BF"},
		{"J.3 IR 58", `\ISO 2022 IR 58`, "Zhang^XiaoDong=张^小东=",
			"5A 68 61 6E 67 5E 58 69 61 6F 44 6F 6E 67 3D 1B 24 29 41 D5 C5 5E 1B 24 29 41 D0 A1 B6 AB 3D"},
		{"greek with extensions", `ISO 2022 IR 6\ISO 2022 IR 126`, "Dionysios=Διονυσιος",
			"44 69 6F 6E 79 73 69 6F 73 3D 1B 2D 46 C4 E9 EF ED F5 F3 E9 EF F2"},
		{"cyrillic", "ISO_IR 144", "Люксембург", "BB EE DA E1 D5 DC D1 E3 E0 D3"},
		{"hebrew", "ISO_IR 138", "שרון^דבורה", "F9 F8 E5 EF 5E E3 E1 E5 F8 E4"},
		{"arabic", "ISO_IR 127", "قباني^لنزار", "E2 C8 C7 E6 EA 5E E4 E6 D2 C7 D1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := ParseCharacterSet(strings.Split(tt.terms, `\`))
			if err != nil {
				t.Fatal(err)
			}
			want := unhex(t, tt.hex)
			got, err := cs.Decode(want, PN)
			if err != nil || got != tt.text {
				t.Errorf("Decode = %q, %v; want %q", got, err, tt.text)
			}
			enc, err := cs.Encode(tt.text, PN)
			if err != nil || !bytes.Equal(enc, want) {
				t.Errorf("Encode = % X, %v; want % X", enc, err, want)
			}
		})
	}
}

func TestCharacterSetDefaults(t *testing.T) {
	var nilSet *CharacterSet
	if s, _ := nilSet.Decode([]byte("ABC^DEF"), PN); s != "ABC^DEF" {
		t.Errorf("default decode = %q", s)
	}
	// Bytes above 0x7F in the default repertoire are read as Latin-1.
	if s, _ := nilSet.Decode([]byte{'J', 0xE9}, PN); s != "Jé" {
		t.Errorf("default decode = %q", s)
	}
	if _, err := nilSet.Encode("Jé", PN); err == nil {
		t.Error("encoding é in the default repertoire succeeded")
	}
	if cs, err := ParseCharacterSet([]string{""}); cs != nil || err != nil {
		t.Errorf("empty term = %v, %v", cs, err)
	}
	cs, err := ParseCharacterSet([]string{"ISO_IR 999"})
	if !errors.Is(err, ErrUnknownCharacterSet) || cs == nil {
		t.Errorf("unknown term = %v, %v", cs, err)
	}
	// Values whose VR the character set does not affect stay ASCII/Latin-1.
	greek, _ := ParseCharacterSet([]string{"ISO_IR 126"})
	if s, _ := greek.Decode([]byte{0xE9}, CS); s != "é" {
		t.Errorf("CS decode = %q", s)
	}
	if _, err := greek.Encode("Ωmega", PN); err != nil {
		t.Error(err)
	}
	if _, err := greek.Encode("山", PN); err == nil {
		t.Error("encoding a kanji in Greek succeeded")
	}
}

func TestDatasetCharacterSetInheritance(t *testing.T) {
	item := &Dataset{}
	item.Set(NewStrings(TagSpecificCharacterSet, CS, "ISO_IR 192"))
	top := &Dataset{}
	top.Set(NewStrings(TagSpecificCharacterSet, CS, "ISO_IR 100"))
	parent, err := top.CharacterSet(nil)
	if err != nil || parent.String() != "ISO_IR 100" {
		t.Fatalf("top = %v, %v", parent, err)
	}
	if cs, _ := (&Dataset{}).CharacterSet(parent); cs != parent {
		t.Errorf("item without (0008,0005) = %v, want parent", cs)
	}
	if cs, _ := item.CharacterSet(parent); cs.String() != "ISO_IR 192" {
		t.Errorf("item with its own = %v", cs)
	}
}

func BenchmarkDecodePN(b *testing.B) {
	cs, _ := ParseCharacterSet([]string{"", "ISO 2022 IR 87"})
	v := unhex(b, "59 61 6D 61 64 61 5E 54 61 72 6F 75 3D 1B 24 42 3B 33 45 44 1B 28 42 5E 1B 24 42 42 40 4F 3A 1B 28 42")
	for b.Loop() {
		if _, err := cs.Decode(v, PN); err != nil {
			b.Fatal(err)
		}
	}
}
