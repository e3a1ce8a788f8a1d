package dicom

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestLookupTag(t *testing.T) {
	tests := []struct {
		tag     Tag
		keyword string
		vr      VR
		vm      string
		ok      bool
	}{
		{0x00100010, "PatientName", PN, "1", true},
		{0x0020000D, "StudyInstanceUID", UI, "1", true},
		{0x00080005, "SpecificCharacterSet", CS, "1-n", true},
		{0x7FE00010, "PixelData", VRPixel, "1", true},
		{0x00280106, "SmallestImagePixelValue", VRUSorSS, "1", true},
		{0x60023000, "OverlayData", VROBorOW, "1", true}, // repeating group 60xx
		{0x50100010, "NumberOfPoints", US, "1", true},    // repeating group 50xx (retired curves)
		{0x00090010, "PrivateCreator", LO, "1", true},
		{0x00180000, "GroupLength", UL, "1", true},
		{0x00091001, "", 0, "", false}, // private data element
		{0x00081111, "ReferencedPerformedProcedureStepSequence", SQ, "1", true},
		{0xFFFEE000, "Item", VRNone, "1", true},
	}
	for _, tt := range tests {
		e, ok := LookupTag(tt.tag)
		if ok != tt.ok || e.Keyword != tt.keyword || e.VR != tt.vr || e.VM != tt.vm {
			t.Errorf("LookupTag(%s) = %+v, %v; want %s %s %s %v", tt.tag, e, ok, tt.keyword, tt.vr, tt.vm, tt.ok)
		}
		if ok && e.Tag != tt.tag {
			t.Errorf("LookupTag(%s).Tag = %s", tt.tag, e.Tag)
		}
	}
}

func TestLookupKeyword(t *testing.T) {
	for _, kw := range []string{"PatientName", "PatientID", "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "PixelData", "Modality"} {
		e, ok := LookupKeyword(kw)
		if !ok || e.Keyword != kw {
			t.Fatalf("LookupKeyword(%q) = %+v, %v", kw, e, ok)
		}
		back, ok := LookupTag(e.Tag)
		if !ok || back.Keyword != kw {
			t.Errorf("LookupTag(LookupKeyword(%q).Tag) = %+v", kw, back)
		}
	}
	if _, ok := LookupKeyword("NoSuchKeyword"); ok {
		t.Error("LookupKeyword(NoSuchKeyword) succeeded")
	}
	if n := DictionaryLen(); n < 4000 {
		t.Errorf("dictionary has %d entries; the standard has over 4000", n)
	}
}

func TestParseTagOrKeyword(t *testing.T) {
	tests := []struct {
		in   string
		want Tag
		err  bool
	}{
		{"PatientName", 0x00100010, false},
		{"00100010", 0x00100010, false},
		{"(0010,0020)", 0x00100020, false},
		{"0010,0020", 0x00100020, false},
		{"0010002", 0, true},
		{"zz100010", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseTagOrKeyword(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseTagOrKeyword(%q) = %s, %v", tt.in, got, err)
		}
	}
}

func TestResolveVR(t *testing.T) {
	tests := []struct {
		tag      Tag
		pixelRep uint16
		want     VR
	}{
		{0x00280106, 0, US},
		{0x00280106, 1, SS},
		{0x7FE00010, 0, OW},
		{0x00100010, 0, PN},
		{0x00091001, 0, UN},
		{0x00283006, 0, OW},
	}
	for _, tt := range tests {
		if got := ResolveVR(tt.tag, tt.pixelRep); got != tt.want {
			t.Errorf("ResolveVR(%s, %d) = %s, want %s", tt.tag, tt.pixelRep, got, tt.want)
		}
	}
}

func TestUIDRegistry(t *testing.T) {
	tests := []struct {
		uid  string
		kw   string
		typ  UIDType
		name string
	}{
		{"1.2.840.10008.5.1.4.1.1.2", "CTImageStorage", UIDTypeStorage, "CT Image Storage"},
		{"1.2.840.10008.5.1.4.1.1.4", "MRImageStorage", UIDTypeStorage, "MR Image Storage"},
		{"1.2.840.10008.1.1", "VerificationSOPClass", UIDTypeSOPClass, "Verification SOP Class"},
		{StudyRootQueryRetrieveFind, "FINDStudyRootQueryRetrieveInformationModel", UIDTypeQueryRetrieve, "FIND Study Root Query Retrieve Information Model"},
		{ExplicitVRLittleEndian, "ExplicitVRLittleEndian", UIDTypeTransferSyntax, "Explicit VR Little Endian"},
		{"1.2.840.10008.1.20.1", "StorageCommitmentPushModelSOPClass", UIDTypeSOPClass, "Storage Commitment Push Model SOP Class"},
	}
	for _, tt := range tests {
		e, ok := LookupUID(tt.uid)
		if !ok || e.Keyword != tt.kw || e.Type != tt.typ || e.Name != tt.name {
			t.Errorf("LookupUID(%s) = %+v, %v", tt.uid, e, ok)
		}
	}
	if n := len(StorageSOPClasses()); n < 150 {
		t.Errorf("%d storage SOP classes; want the registry's 150+", n)
	}
	if !IsStorageSOPClass("1.2.840.10008.5.1.4.1.1.1") || IsStorageSOPClass("1.2.840.10008.1.1") {
		t.Error("IsStorageSOPClass misclassifies CR Image Storage or Verification")
	}
}

func TestNewUID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		u := NewUID()
		if !ValidUID(u) {
			t.Fatalf("NewUID() = %q is not a valid UID", u)
		}
		if seen[u] {
			t.Fatalf("NewUID() repeated %q", u)
		}
		seen[u] = true
	}
	if !ValidUID(ImplementationClassUID) {
		t.Errorf("ImplementationClassUID %q is invalid", ImplementationClassUID)
	}
	for _, bad := range []string{"", "1..2", "1.02", "1.2.a", ".1", "1.", "1.2.840.10008.1.2.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1"} {
		if ValidUID(bad) {
			t.Errorf("ValidUID(%q) = true", bad)
		}
	}
}

func TestVR(t *testing.T) {
	for _, vr := range AllVRs {
		got, ok := ParseVR(vr.String())
		if !ok || got != vr {
			t.Errorf("ParseVR(%q) = %v, %v", vr.String(), got, ok)
		}
	}
	for _, bad := range []string{"", "A", "XX", "ae", "ABC"} {
		if _, ok := ParseVR(bad); ok {
			t.Errorf("ParseVR(%q) succeeded", bad)
		}
	}
	long := map[VR]bool{OB: true, OD: true, OF: true, OL: true, OV: true, OW: true, SQ: true, SV: true, UC: true, UN: true, UR: true, UT: true, UV: true}
	for _, vr := range AllVRs {
		if vr.LongLength() != long[vr] {
			t.Errorf("%s.LongLength() = %v", vr, vr.LongLength())
		}
	}
}

// TestGeneratedUpToDate regenerates the dictionary and UID registry from the
// checked-in data files and fails if the committed Go source differs.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go generate")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./internal/gen", "-dic", "data/dicom.dic", "-uids", "data/uids.tsv", "-out", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	for _, f := range []string{"dict_gen.go", "uid_gen.go", filepath.Join("tag", "tag_gen.go")} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./dicom", f)
		}
	}
}
