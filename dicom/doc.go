// Package dicom owns the DICOM data model and its encodings: the Part 10
// file format and the PS3.5 data set encodings (implicit/explicit VR,
// little/big endian, deflate, encapsulated pixel data), the PS3.6 data
// dictionary and UID registry, and the PS3.18 Annex F DICOM JSON model.
//
// Values are kept as the raw bytes of their encoding, normalised to little
// endian, so a data set read from memory references its source without
// copying bulk data, and a read → write round trip is exact. Typed accessors
// decode values on demand.
package dicom

//go:generate go run ./internal/gen -dic data/dicom.dic -uids data/uids.tsv -out .
