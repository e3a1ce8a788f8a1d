package dicom

import (
	"bytes"
	"io"
	"testing"
)

// benchCT builds, in memory, a 512x512x16 CT instance with a header of
// the size real scanners write (~110 elements, two sequences).
func benchCT(t testing.TB) []byte {
	t.Helper()
	ds := &Dataset{}
	str := func(kw, v string) {
		e, ok := LookupKeyword(kw)
		if !ok {
			t.Fatalf("no keyword %s", kw)
		}
		ds.Set(NewStrings(e.Tag, e.VR, v))
	}
	us := func(kw string, v uint16) {
		e, _ := LookupKeyword(kw)
		ds.Set(NewUint16s(e.Tag, v))
	}
	for _, kv := range [][2]string{
		{"SpecificCharacterSet", "ISO_IR 100"}, {"ImageType", `ORIGINAL\PRIMARY\AXIAL`},
		{"InstanceCreationDate", "20240131"}, {"InstanceCreationTime", "120000"},
		{"SOPClassUID", "1.2.840.10008.5.1.4.1.1.2"}, {"SOPInstanceUID", "2.25.1234567890123456789012345678901234567"},
		{"StudyDate", "20240131"}, {"SeriesDate", "20240131"}, {"AcquisitionDate", "20240131"}, {"ContentDate", "20240131"},
		{"StudyTime", "120000"}, {"SeriesTime", "120100"}, {"AcquisitionTime", "120101.123"}, {"ContentTime", "120101.123"},
		{"AccessionNumber", "ACC0001"}, {"Modality", "CT"}, {"Manufacturer", "Medimint Medical Systems"},
		{"InstitutionName", "General Hospital"}, {"InstitutionAddress", "1 Hospital Road"}, {"ReferringPhysicianName", "Doe^Jane"},
		{"StationName", "CT01"}, {"StudyDescription", "CT CHEST ABDOMEN PELVIS"}, {"SeriesDescription", "AXIAL 1.25mm"},
		{"InstitutionalDepartmentName", "Radiology"}, {"OperatorsName", "Tech^One"}, {"ManufacturerModelName", "MM-CT 128"},
		{"PatientName", "Test^Patient"}, {"PatientID", "PID0001"}, {"PatientBirthDate", "19700101"}, {"PatientSex", "O"},
		{"PatientAge", "054Y"}, {"PatientWeight", "70"}, {"BodyPartExamined", "CHEST"}, {"ScanOptions", "HELICAL MODE"},
		{"SliceThickness", "1.25"}, {"KVP", "120"}, {"DataCollectionDiameter", "500"}, {"DeviceSerialNumber", "SN123456"},
		{"SoftwareVersions", "1.2.3"}, {"ProtocolName", "CHEST ABD PELVIS"}, {"ReconstructionDiameter", "360"},
		{"DistanceSourceToDetector", "1085.6"}, {"DistanceSourceToPatient", "541"}, {"GantryDetectorTilt", "0"},
		{"TableHeight", "150"}, {"RotationDirection", "CW"}, {"ExposureTime", "500"}, {"XRayTubeCurrent", "300"},
		{"Exposure", "150"}, {"FilterType", "BODY FILTER"}, {"GeneratorPower", "36"}, {"FocalSpots", "1.2"},
		{"ConvolutionKernel", "STANDARD"}, {"PatientPosition", "HFS"}, {"RevolutionTime", "0.5"},
		{"SingleCollimationWidth", "0.625"}, {"TotalCollimationWidth", "40"}, {"TableSpeed", "78.75"},
		{"TableFeedPerRotation", "39.375"}, {"SpiralPitchFactor", "0.984"},
		{"StudyInstanceUID", "2.25.1111111111111111111111111111111111111"}, {"SeriesInstanceUID", "2.25.2222222222222222222222222222222222222"},
		{"StudyID", "1"}, {"SeriesNumber", "2"}, {"AcquisitionNumber", "1"}, {"InstanceNumber", "57"},
		{"ImagePositionPatient", `-180\-180\-250.5`}, {"ImageOrientationPatient", `1\0\0\0\1\0`},
		{"FrameOfReferenceUID", "2.25.3333333333333333333333333333333333333"}, {"PositionReferenceIndicator", "SN"},
		{"SliceLocation", "-250.5"}, {"PhotometricInterpretation", "MONOCHROME2"}, {"PixelSpacing", `0.703125\0.703125`},
		{"WindowCenter", `40\400`}, {"WindowWidth", `400\1500`}, {"RescaleIntercept", "-1024"}, {"RescaleSlope", "1"},
		{"RescaleType", "HU"}, {"WindowCenterWidthExplanation", `SOFT TISSUE\BONE`}, {"LossyImageCompression", "00"},
		{"RequestedProcedureDescription", "CT CHEST ABDOMEN PELVIS WITH CONTRAST"}, {"PerformedProcedureStepID", "PPS0001"},
		{"PerformedProcedureStepStartDate", "20240131"}, {"PerformedProcedureStepStartTime", "115900"},
		{"PerformedProcedureStepDescription", "CT CAP"}, {"ContrastBolusAgent", "IOHEXOL"}, {"ContrastBolusRoute", "IV"},
		{"ContrastBolusVolume", "100"}, {"DateOfLastCalibration", "20240130"}, {"TimeOfLastCalibration", "080000"},
		{"EstimatedDoseSaving", "20"}, {"CTDIvol", "12.5"}, {"BurnedInAnnotation", "NO"},
		{"IrradiationEventUID", "2.25.4444444444444444444444444444444444444"}, {"DeidentificationMethod", ""},
	} {
		str(kv[0], kv[1])
	}
	us("SamplesPerPixel", 1)
	us("Rows", 512)
	us("Columns", 512)
	us("BitsAllocated", 16)
	us("BitsStored", 12)
	us("HighBit", 11)
	us("PixelRepresentation", 1)
	code := func(v, scheme, meaning string) *Dataset {
		it := &Dataset{}
		it.Set(NewStrings(NewTag(0x0008, 0x0100), SH, v))
		it.Set(NewStrings(NewTag(0x0008, 0x0102), SH, scheme))
		it.Set(NewStrings(NewTag(0x0008, 0x0104), LO, meaning))
		return it
	}
	ds.Set(NewSequence(NewTag(0x0008, 0x1032), code("CTCAP", "L", "CT chest abdomen pelvis")))
	ref := &Dataset{}
	ref.Set(NewStrings(NewTag(0x0008, 0x1150), UI, "1.2.840.10008.3.1.2.3.3"))
	ref.Set(NewStrings(NewTag(0x0008, 0x1155), UI, "2.25.5555555555555555555555555555555555555"))
	ds.Set(NewSequence(NewTag(0x0008, 0x1111), ref))
	px := make([]byte, 512*512*2)
	for i := range px {
		px[i] = byte(i * 7)
	}
	ds.Set(Element{Tag: TagPixelData, VR: OW, Value: px})
	ts, _ := LookupTransferSyntax(ExplicitVRLittleEndian)
	f := &File{Meta: NewFileMeta("1.2.840.10008.5.1.4.1.1.2", ds.String(TagSOPInstanceUID), ts.UID), TransferSyntax: ts, Dataset: *ds}
	var buf bytes.Buffer
	if err := f.Write(&buf, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkParseHeaderCT: the header of a CT instance, stopping before
// Pixel Data (target < 20 µs).
func BenchmarkParseHeaderCT(b *testing.B) {
	in := benchCT(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes(in, ReadOptions{StopAtTag: TagPixelData}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseFull: the whole instance from memory (target >= 1 GB/s:
// pixel data is referenced, not copied).
func BenchmarkParseFull(b *testing.B) {
	in := benchCT(b)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes(in, ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseStreamSkipBulk: the whole instance from a seekable
// stream, pixel data skipped.
func BenchmarkParseStreamSkipBulk(b *testing.B) {
	in := benchCT(b)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(in), ReadOptions{SkipBulk: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseStream: the whole instance from a plain stream, copied.
func BenchmarkParseStream(b *testing.B) {
	in := benchCT(b)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(onlyReader{bytes.NewReader(in)}, ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite: writing the instance (explicit VR little endian).
func BenchmarkWrite(b *testing.B) {
	in := benchCT(b)
	f, err := ParseBytes(in, ReadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Write(io.Discard, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteBigEndian: writing with byte swapping.
func BenchmarkWriteBigEndian(b *testing.B) {
	in := benchCT(b)
	f, err := ParseBytes(in, ReadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	f.TransferSyntax, _ = LookupTransferSyntax(ExplicitVRBigEndian)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Write(io.Discard, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
