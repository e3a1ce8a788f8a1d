package dimse

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/medimint/medimint/dicom"
)

// decodeDataset decodes a data set held in memory (an identifier or a
// response) encoded in ts.
func decodeDataset(b []byte, ts dicom.TransferSyntax) (*dicom.Dataset, error) {
	ds, err := dicom.ReadDataset(bytes.NewReader(b), ts, dicom.ReadOptions{})
	if err != nil {
		return nil, fmt.Errorf("dimse: decoding data set: %w", err)
	}
	return ds, nil
}

// encodeDataset encodes ds in ts.
func encodeDataset(ds *dicom.Dataset, ts dicom.TransferSyntax) ([]byte, error) {
	var buf bytes.Buffer
	if err := dicom.WriteDataset(&buf, ds, ts, dicom.WriteOptions{}); err != nil {
		return nil, fmt.Errorf("dimse: encoding data set: %w", err)
	}
	return buf.Bytes(), nil
}

var explicitLE, _ = dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)

// writeFileMeta writes the preamble, "DICM" and the File Meta Information
// of an instance whose data set (in tsUID) follows as raw bytes.
func writeFileMeta(w io.Writer, sopClass, sopInstance, tsUID, sourceAE string) error {
	meta := dicom.NewFileMeta(sopClass, sopInstance, tsUID)
	meta.Set(dicom.NewUint32s(dicom.TagFileMetaInformationGroupLength, 0)) // computed by the writer
	if sourceAE != "" {
		meta.Set(dicom.NewStrings(dicom.NewTag(0x0002, 0x0016), dicom.AE, sourceAE))
	}
	var head [132]byte
	copy(head[128:], "DICM")
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	return dicom.WriteDataset(w, &meta, explicitLE, dicom.WriteOptions{})
}

// readFileHeader parses a Part-10 file's meta and the data set elements
// before Pixel Data, without loading bulk values.
func readFileHeader(path string) (*dicom.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return dicom.Parse(f, dicom.ReadOptions{SkipBulk: true, StopAtTag: dicom.TagFloatPixelData})
}
