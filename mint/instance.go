package mint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint/envelope"
)

// studyKey returns the study's DEK, creating it on the study's first
// instance. Concurrent first instances agree through the primary key:
// every caller inserts a candidate (ON CONFLICT DO NOTHING) and then uses
// whichever row is there.
func (p *Pipeline) studyKey(ctx context.Context, studyUID string) ([]byte, error) {
	p.mu.Lock()
	dek, ok := p.deks[studyUID]
	p.mu.Unlock()
	if ok {
		return dek, nil
	}
	var wrapped []byte
	err := p.cfg.Pool.QueryRow(ctx, `SELECT wrapped_dek FROM study_keys WHERE study_instance_uid = $1`, studyUID).Scan(&wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		cand, candWrapped, err := envelope.NewDEK(ctx, p.cfg.Keys)
		if err != nil {
			return nil, fmt.Errorf("mint: new study key: %w", err)
		}
		clear(cand)
		if _, err := p.cfg.Pool.Exec(ctx, `INSERT INTO study_keys (study_instance_uid, kek_id, wrapped_dek) VALUES ($1, $2, $3)
ON CONFLICT (study_instance_uid) DO NOTHING`, studyUID, p.cfg.Keys.KeyID(), candWrapped); err != nil {
			return nil, fmt.Errorf("mint: save study key: %w", err)
		}
		err = p.cfg.Pool.QueryRow(ctx, `SELECT wrapped_dek FROM study_keys WHERE study_instance_uid = $1`, studyUID).Scan(&wrapped)
		if err != nil {
			return nil, fmt.Errorf("mint: read study key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("mint: read study key: %w", err)
	}
	dek, err = p.cfg.Keys.Unwrap(ctx, wrapped)
	if err != nil {
		return nil, fmt.Errorf("mint: unwrap study key: %w", err)
	}
	p.mu.Lock()
	if len(p.deks) >= maxCachedDEKs {
		clear(p.deks) // crude but bounded; unwrapping again is cheap with a local KEK
	}
	p.deks[studyUID] = dek
	p.mu.Unlock()
	return dek, nil
}

// bulkDataThreshold matches the parser's default: longer binary values
// are not loaded, so they become BulkDataURIs.
const bulkDataThreshold = 1024

// metadata encodes the instance's DICOM JSON with BulkDataURIs under
// index.BaseURIPlaceholder, and collects where each bulk value lies.
func (p *Pipeline) metadata(ds *dicom.Dataset, ts dicom.TransferSyntax, st Stored) ([]byte, map[string]index.Span) {
	prefix := index.BaseURIPlaceholder + "/studies/" + st.StudyInstanceUID + "/series/" + st.SeriesInstanceUID +
		"/instances/" + st.SOPInstanceUID + "/bulkdata/"
	bulk := map[string]index.Span{}
	opts := &dicom.JSONOptions{
		BulkDataThreshold: bulkDataThreshold,
		BulkDataURI: func(path dicom.ElementPath) string {
			ps := path.String()
			if e := ds.Lookup(path); e != nil && e.Bulk != nil && !ts.Deflated {
				// Offsets into a deflated data set count inflated bytes,
				// which the stored object does not hold.
				bulk[ps] = index.Span{Offset: e.Bulk.Offset, Length: e.Bulk.Length}
			}
			return prefix + ps
		},
	}
	js, err := dicom.AppendJSON(make([]byte, 0, 8<<10), ds, opts)
	if err != nil {
		// Storage must not fail on a value the JSON model cannot express;
		// metadata falls back to the identifying attributes.
		p.log.Warn("mint: metadata encoding failed; storing identifiers only", slog.String("sop", st.SOPInstanceUID), slog.Any("err", err))
		min := &dicom.Dataset{}
		for _, t := range []dicom.Tag{dicom.TagSOPClassUID, dicom.TagSOPInstanceUID, dicom.TagStudyInstanceUID, dicom.TagSeriesInstanceUID} {
			if e := ds.Get(t); e != nil {
				min.Set(*e)
			}
		}
		js, _ = dicom.AppendJSON(nil, min, nil)
	}
	return js, bulk
}

// framesOf locates the frames of the instance's pixel data in the
// plaintext Part-10 object, as far as the encoding allows.
func framesOf(f *dicom.File, ts dicom.TransferSyntax) index.Frames {
	ds := &f.Dataset
	e := ds.Get(dicom.TagPixelData)
	if e == nil || ts.Deflated {
		return index.Frames{}
	}
	nFrames := 1
	if s := ds.String(dicom.TagNumberOfFrames); s != "" {
		if _, err := fmt.Sscan(s, &nFrames); err != nil || nFrames < 1 {
			return index.Frames{}
		}
	}
	if e.Bulk != nil {
		rows, _ := ds.Uint(dicom.TagRows)
		cols, _ := ds.Uint(dicom.TagColumns)
		bits, _ := ds.Uint(dicom.TagBitsAllocated)
		spp, ok := ds.Uint(dicom.TagSamplesPerPixel)
		if !ok {
			spp = 1
		}
		if bits == 0 || bits%8 != 0 {
			return index.Frames{} // bit-packed frames need not start on a byte
		}
		frameLen := int64(rows * cols * spp * bits / 8)
		if frameLen == 0 || frameLen*int64(nFrames) > e.Bulk.Length {
			return index.Frames{}
		}
		return index.Frames{PixelOffset: e.Bulk.Offset, FrameLength: frameLen}
	}
	fr := e.Fragments
	if fr == nil || len(fr.Items) == 0 {
		return index.Frames{}
	}
	out := index.Frames{Fragments: make([]index.Span, len(fr.Items))}
	for i, it := range fr.Items {
		out.Fragments[i] = index.Span{Offset: it.Offset, Length: int64(it.Length)}
	}
	switch {
	case len(fr.BasicOffsetTable) == nFrames:
		// BOT offsets count from the first fragment's item tag (8 bytes
		// before its value).
		base := fr.Items[0].Offset - 8
		at := make(map[int64]int32, len(fr.Items))
		for i, it := range fr.Items {
			at[it.Offset-8-base] = int32(i)
		}
		for _, off := range fr.BasicOffsetTable {
			i, ok := at[int64(off)]
			if !ok {
				return index.Frames{Fragments: out.Fragments}
			}
			out.FrameFragments = append(out.FrameFragments, i)
		}
	case nFrames == 1:
		out.FrameFragments = []int32{0}
	case len(fr.Items) == nFrames:
		for i := range nFrames {
			out.FrameFragments = append(out.FrameFragments, int32(i))
		}
	}
	return out
}
