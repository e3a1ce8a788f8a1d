package dicom

import "encoding/binary"

// TransferSyntax describes how a data set is encoded (PS3.5 section 10).
type TransferSyntax struct {
	UID      string
	Keyword  string
	Name     string
	Implicit bool             // implicit VR
	Order    binary.ByteOrder // binary.LittleEndian or binary.BigEndian
	Deflated bool             // the data set is deflate-compressed (RFC 1951)
	// Encapsulated: Pixel Data is a sequence of fragments (PS3.5 A.4).
	Encapsulated bool
	Lossy        bool
	Retired      bool
}

// Transfer syntax UIDs used by name.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	EncapsulatedUncompressedExplVR = "1.2.840.10008.1.2.1.98"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	JPEGBaseline8Bit               = "1.2.840.10008.1.2.4.50"
	JPEGExtended12Bit              = "1.2.840.10008.1.2.4.51"
	JPEGLossless                   = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                 = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless             = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless               = "1.2.840.10008.1.2.4.90"
	JPEG2000                       = "1.2.840.10008.1.2.4.91"
	RLELossless                    = "1.2.840.10008.1.2.5"
)

var le, be = binary.ByteOrder(binary.LittleEndian), binary.ByteOrder(binary.BigEndian)

// transferSyntaxes is the registry of PS3.6 Annex A transfer syntaxes the
// codec can read. Encapsulated syntaxes are stored as sent: their pixel
// data is never decoded.
var transferSyntaxes = [...]TransferSyntax{
	{UID: ImplicitVRLittleEndian, Keyword: "ImplicitVRLittleEndian", Name: "Implicit VR Little Endian", Implicit: true, Order: le},
	{UID: ExplicitVRLittleEndian, Keyword: "ExplicitVRLittleEndian", Name: "Explicit VR Little Endian", Order: le},
	{UID: EncapsulatedUncompressedExplVR, Keyword: "EncapsulatedUncompressedExplicitVRLittleEndian", Name: "Encapsulated Uncompressed Explicit VR Little Endian", Order: le, Encapsulated: true},
	{UID: DeflatedExplicitVRLittleEndian, Keyword: "DeflatedExplicitVRLittleEndian", Name: "Deflated Explicit VR Little Endian", Order: le, Deflated: true},
	{UID: ExplicitVRBigEndian, Keyword: "ExplicitVRBigEndian", Name: "Explicit VR Big Endian", Order: be, Retired: true},
	{UID: JPEGBaseline8Bit, Keyword: "JPEGBaseline8Bit", Name: "JPEG Baseline (Process 1)", Order: le, Encapsulated: true, Lossy: true},
	{UID: JPEGExtended12Bit, Keyword: "JPEGExtended12Bit", Name: "JPEG Extended (Process 2 & 4)", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.53", Keyword: "JPEGSpectralSelectionNonHierarchical68", Name: "JPEG Spectral Selection, Non-Hierarchical (Process 6 & 8)", Order: le, Encapsulated: true, Lossy: true, Retired: true},
	{UID: "1.2.840.10008.1.2.4.55", Keyword: "JPEGFullProgressionNonHierarchical1012", Name: "JPEG Full Progression, Non-Hierarchical (Process 10 & 12)", Order: le, Encapsulated: true, Lossy: true, Retired: true},
	{UID: JPEGLossless, Keyword: "JPEGLossless", Name: "JPEG Lossless, Non-Hierarchical (Process 14)", Order: le, Encapsulated: true},
	{UID: JPEGLosslessSV1, Keyword: "JPEGLosslessSV1", Name: "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])", Order: le, Encapsulated: true},
	{UID: JPEGLSLossless, Keyword: "JPEGLSLossless", Name: "JPEG-LS Lossless Image Compression", Order: le, Encapsulated: true},
	{UID: JPEGLSNearLossless, Keyword: "JPEGLSNearLossless", Name: "JPEG-LS Lossy (Near-Lossless) Image Compression", Order: le, Encapsulated: true, Lossy: true},
	{UID: JPEG2000Lossless, Keyword: "JPEG2000Lossless", Name: "JPEG 2000 Image Compression (Lossless Only)", Order: le, Encapsulated: true},
	{UID: JPEG2000, Keyword: "JPEG2000", Name: "JPEG 2000 Image Compression", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.92", Keyword: "JPEG2000MCLossless", Name: "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)", Order: le, Encapsulated: true},
	{UID: "1.2.840.10008.1.2.4.93", Keyword: "JPEG2000MC", Name: "JPEG 2000 Part 2 Multi-component Image Compression", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.100", Keyword: "MPEG2MPML", Name: "MPEG2 Main Profile / Main Level", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.101", Keyword: "MPEG2MPHL", Name: "MPEG2 Main Profile / High Level", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.102", Keyword: "MPEG4HP41", Name: "MPEG-4 AVC/H.264 High Profile / Level 4.1", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.103", Keyword: "MPEG4HP41BD", Name: "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.104", Keyword: "MPEG4HP422D", Name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.105", Keyword: "MPEG4HP423D", Name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.106", Keyword: "MPEG4HP42STEREO", Name: "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.107", Keyword: "HEVCMP51", Name: "HEVC/H.265 Main Profile / Level 5.1", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.108", Keyword: "HEVCM10P51", Name: "HEVC/H.265 Main 10 Profile / Level 5.1", Order: le, Encapsulated: true, Lossy: true},
	{UID: "1.2.840.10008.1.2.4.201", Keyword: "HTJ2KLossless", Name: "High-Throughput JPEG 2000 Image Compression (Lossless Only)", Order: le, Encapsulated: true},
	{UID: "1.2.840.10008.1.2.4.202", Keyword: "HTJ2KLosslessRPCL", Name: "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)", Order: le, Encapsulated: true},
	{UID: "1.2.840.10008.1.2.4.203", Keyword: "HTJ2K", Name: "High-Throughput JPEG 2000 Image Compression", Order: le, Encapsulated: true, Lossy: true},
	{UID: RLELossless, Keyword: "RLELossless", Name: "RLE Lossless", Order: le, Encapsulated: true},
}

// LookupTransferSyntax returns the registry entry for uid.
func LookupTransferSyntax(uid string) (TransferSyntax, bool) {
	for _, ts := range transferSyntaxes {
		if ts.UID == uid {
			return ts, true
		}
	}
	return TransferSyntax{}, false
}

// TransferSyntaxes returns the transfer syntaxes the codec reads.
func TransferSyntaxes() []TransferSyntax {
	return append([]TransferSyntax(nil), transferSyntaxes[:]...)
}
