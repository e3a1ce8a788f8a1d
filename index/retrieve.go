package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
)

// BaseURIPlaceholder starts every BulkDataURI in stored metadata;
// Metadata replaces it with the serving base URL, so stored metadata does
// not depend on where it is served from.
const BaseURIPlaceholder = "urn:medimint:base"

// Metadata writes the stored DICOM JSON of the instances of a study, a
// series of it, or one instance (series and sop may be empty) to w as a
// JSON array (WADO-RS /metadata), BulkDataURIs rebased on base (e.g.
// "https://host/dicom-web"). Instances stream from the database one at a
// time. No instance is ErrNotFound, reported before anything is written.
func (ix *Index) Metadata(ctx context.Context, w io.Writer, base, study, series, sop string) error {
	sql := `SELECT d.metadata FROM instances i
JOIN series se ON se.pk = i.series_pk JOIN studies s ON s.pk = i.study_pk
JOIN instance_data d ON d.instance_pk = i.pk
WHERE s.study_instance_uid = $1 AND ($2 = '' OR se.series_instance_uid = $2) AND ($3 = '' OR i.sop_instance_uid = $3)
ORDER BY se.series_number NULLS LAST, se.pk, i.instance_number NULLS LAST, i.pk`
	rows, err := ix.pool.Query(ctx, sql, study, series, sop)
	if err != nil {
		return fmt.Errorf("index: metadata: %w", err)
	}
	defer rows.Close()
	baseJSON, _ := json.Marshal(base) // a quoted JSON string
	from := []byte(`"BulkDataURI":"` + BaseURIPlaceholder)
	to := append([]byte(`"BulkDataURI":`), baseJSON[:len(baseJSON)-1]...)
	n := 0
	var meta []byte
	for rows.Next() {
		if err := rows.Scan(&meta); err != nil {
			return fmt.Errorf("index: metadata: %w", err)
		}
		sep := []byte(",")
		if n == 0 {
			sep = []byte("[")
		}
		n++
		if _, err := w.Write(sep); err != nil {
			return err
		}
		if _, err := w.Write(bytes.ReplaceAll(meta, from, to)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("index: metadata: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s/%s/%s", ErrNotFound, study, series, sop)
	}
	_, err = w.Write([]byte("]"))
	return err
}

// Instances returns the instances under the entities uids at level (e.g.
// every instance of two studies), ordered by study, series and instance
// number, for WADO-RS, C-MOVE and C-GET. Patient-level uids are Patient
// IDs. No match is an empty slice.
func (ix *Index) Instances(ctx context.Context, level Level, uids []string) ([]InstanceRef, error) {
	var where string
	switch level {
	case Patient:
		where = "s.patient_id = ANY($1)"
	case Study:
		where = "s.study_instance_uid = ANY($1)"
	case Series:
		where = "se.series_instance_uid = ANY($1)"
	case Instance:
		where = "i.sop_instance_uid = ANY($1)"
	default:
		return nil, fmt.Errorf("index: invalid level %d", level)
	}
	rows, err := ix.pool.Query(ctx, `SELECT `+refColumns+`
FROM instances i JOIN series se ON se.pk = i.series_pk JOIN studies s ON s.pk = i.study_pk
WHERE `+where+`
ORDER BY s.pk, se.series_number NULLS LAST, se.pk, i.instance_number NULLS LAST, i.pk`, uids)
	if err != nil {
		return nil, fmt.Errorf("index: instances: %w", err)
	}
	defer rows.Close()
	var out []InstanceRef
	for rows.Next() {
		r, err := scanRef(rows)
		if err != nil {
			return nil, fmt.Errorf("index: instances: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: instances: %w", err)
	}
	return out, nil
}

// FrameInfo is an instance with its frame locations.
type FrameInfo struct {
	InstanceRef
	Frames
}

// Frame returns the spans of the plaintext holding frame k (0-based), or
// ErrNotFound if there is no such frame.
func (f *FrameInfo) Frame(k int) ([]Span, error) {
	if k < 0 {
		return nil, fmt.Errorf("%w: frame %d", ErrNotFound, k+1)
	}
	if f.FrameLength > 0 {
		n := max(f.NumberOfFrames, 1)
		if k >= n {
			return nil, fmt.Errorf("%w: frame %d of %d", ErrNotFound, k+1, n)
		}
		return []Span{{f.PixelOffset + int64(k)*f.FrameLength, f.FrameLength}}, nil
	}
	if k >= len(f.FrameFragments) {
		return nil, fmt.Errorf("%w: frame %d of %d", ErrNotFound, k+1, len(f.FrameFragments))
	}
	end := len(f.Fragments)
	if k+1 < len(f.FrameFragments) {
		end = int(f.FrameFragments[k+1])
	}
	return f.Fragments[f.FrameFragments[k]:end], nil
}

// Frames returns the instance sopUID with its frame locations.
func (ix *Index) Frames(ctx context.Context, sopUID string) (FrameInfo, error) {
	var fi FrameInfo
	var pixOff, frameLen *int64
	var offs, lens []int64
	ref, err := scanRef(ix.pool.QueryRow(ctx, `SELECT `+refColumns+`,
    d.pixel_offset, d.frame_length, d.fragment_offsets, d.fragment_lengths, d.frame_fragments
FROM instances i JOIN series se ON se.pk = i.series_pk JOIN studies s ON s.pk = i.study_pk
JOIN instance_data d ON d.instance_pk = i.pk
WHERE i.sop_instance_uid = $1`, sopUID), &pixOff, &frameLen, &offs, &lens, &fi.FrameFragments)
	if errors.Is(err, pgx.ErrNoRows) {
		return FrameInfo{}, fmt.Errorf("%w: instance %s", ErrNotFound, sopUID)
	}
	if err != nil {
		return FrameInfo{}, fmt.Errorf("index: frames of %s: %w", sopUID, err)
	}
	fi.InstanceRef = ref
	if pixOff != nil && frameLen != nil {
		fi.PixelOffset, fi.FrameLength = *pixOff, *frameLen
	}
	for i := range offs {
		fi.Fragments = append(fi.Fragments, Span{offs[i], lens[i]})
	}
	return fi, nil
}

// Bulk returns the instance sopUID and where the bulk value at path (an
// ElementPath.String(), e.g. "7FE00010") lies in its plaintext, or
// ErrNotFound.
func (ix *Index) Bulk(ctx context.Context, sopUID, path string) (InstanceRef, Span, error) {
	var span []int64
	ref, err := scanRef(ix.pool.QueryRow(ctx, `SELECT `+refColumns+`,
    ARRAY(SELECT jsonb_array_elements_text(d.bulk -> $2)::bigint)
FROM instances i JOIN series se ON se.pk = i.series_pk JOIN studies s ON s.pk = i.study_pk
JOIN instance_data d ON d.instance_pk = i.pk
WHERE i.sop_instance_uid = $1`, sopUID, path), &span)
	if errors.Is(err, pgx.ErrNoRows) {
		return InstanceRef{}, Span{}, fmt.Errorf("%w: instance %s", ErrNotFound, sopUID)
	}
	if err != nil {
		return InstanceRef{}, Span{}, fmt.Errorf("index: bulk of %s: %w", sopUID, err)
	}
	if len(span) != 2 {
		return InstanceRef{}, Span{}, fmt.Errorf("%w: bulk data %s of %s", ErrNotFound, path, sopUID)
	}
	return ref, Span{span[0], span[1]}, nil
}
