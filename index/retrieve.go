package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// BaseURIPlaceholder starts every BulkDataURI in stored metadata;
// Metadata replaces it with the serving base URL, so stored metadata does
// not depend on where it is served from.
const BaseURIPlaceholder = "urn:medimint:base"

// Metadata writes the stored DICOM JSON of the instances of a study, a
// series of it, or one instance (series and sop may be empty) to w as a
// JSON array (WADO-RS /metadata), BulkDataURIs rebased on base (e.g.
// "https://host/dicom-web"). Study and series metadata come from each
// series' pre-joined document (table series_metadata): one query reads
// them all, and a series whose document is missing or out of date has it
// rebuilt (at most every rebuildEvery while its instances keep changing;
// in between its instances are read one by one). No instance is
// ErrNotFound, reported before anything is written.
func (ix *Index) Metadata(ctx context.Context, w io.Writer, base, study, series, sop string) error {
	baseJSON, _ := json.Marshal(base) // a quoted JSON string
	rb := rebaser{from: []byte(`"BulkDataURI":"` + BaseURIPlaceholder), to: append([]byte(`"BulkDataURI":`), baseJSON[:len(baseJSON)-1]...)}
	if sop != "" {
		return ix.instanceMetadata(ctx, w, rb, study, series, sop)
	}
	rows, err := ix.pool.Query(ctx, `
SELECT se.pk, sm.version IS NOT DISTINCT FROM se.metadata_version,
    sm.series_pk IS NULL OR sm.built_at < now() - $3::interval,
    CASE WHEN sm.version = se.metadata_version THEN sm.doc END
FROM studies s JOIN series se ON se.study_pk = s.pk
LEFT JOIN series_metadata sm ON sm.series_pk = se.pk
WHERE s.study_instance_uid = $1 AND ($2 = '' OR se.series_instance_uid = $2)
ORDER BY se.series_number NULLS LAST, se.pk`, study, series, rebuildEvery.String())
	if err != nil {
		return fmt.Errorf("index: metadata: %w", err)
	}
	type part struct {
		pk      int64
		current bool
		rebuild bool
		doc     []byte
	}
	var parts []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.pk, &p.current, &p.rebuild, &p.doc); err != nil {
			rows.Close()
			return fmt.Errorf("index: metadata: %w", err)
		}
		parts = append(parts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("index: metadata: %w", err)
	}
	for i := range parts {
		p := &parts[i]
		if p.current {
			continue
		}
		if p.rebuild {
			if p.doc, err = ix.buildSeriesMetadata(ctx, p.pk); err != nil {
				return err
			}
		}
		if p.doc == nil { // rebuilt a moment ago and changed since: read the instances
			if p.doc, err = ix.joinedMetadata(ctx, p.pk); err != nil {
				return err
			}
		}
	}
	n := 0
	for _, p := range parts {
		if len(p.doc) == 0 {
			continue // every instance deleted meanwhile
		}
		sep := ","
		if n == 0 {
			sep = "["
		}
		n++
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		if err := rb.write(w, p.doc); err != nil {
			return err
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: %s/%s", ErrNotFound, study, series)
	}
	_, err = io.WriteString(w, "]")
	return err
}

// rebuildEvery bounds how often one series' metadata document is rebuilt
// while its instances keep changing (each rebuild rewrites all of it).
const rebuildEvery = 5 * time.Second

// seriesDocSQL joins a series' instance metadata in retrieval order.
const seriesDocSQL = `SELECT count(*), string_agg(d.metadata, ','::bytea ORDER BY i.instance_number NULLS LAST, i.pk)
FROM instances i JOIN instance_data d ON d.instance_pk = i.pk WHERE i.series_pk = $1`

// buildSeriesMetadata stores and returns the series' document, built in
// one statement so that the version it records is the one its rows had.
// It returns nil if the series is gone.
func (ix *Index) buildSeriesMetadata(ctx context.Context, seriesPK int64) ([]byte, error) {
	var doc []byte
	err := ix.pool.QueryRow(ctx, `
WITH d AS (`+seriesDocSQL+`),
v AS (SELECT metadata_version FROM series WHERE pk = $1),
ins AS (
    INSERT INTO series_metadata (series_pk, version, instances, doc)
    SELECT $1, v.metadata_version, d.count, d.string_agg FROM d, v WHERE d.count > 0
    ON CONFLICT (series_pk) DO UPDATE SET version = EXCLUDED.version, instances = EXCLUDED.instances,
        doc = EXCLUDED.doc, built_at = now()
    WHERE series_metadata.version < EXCLUDED.version)
SELECT d.string_agg FROM d`, seriesPK).Scan(&doc)
	if err != nil {
		return nil, fmt.Errorf("index: build series metadata: %w", err)
	}
	return doc, nil
}

// RebuildEvery bounds how often one series' metadata document is rebuilt
// while its instances keep changing; see Metadata.
const RebuildEvery = rebuildEvery

// RefreshSeriesMetadata builds the stored /metadata document of the
// series if it is missing or older than its instances, so that the first
// request for it finds it ready (the pipeline calls it shortly after a
// series stops receiving instances). A series that is gone is not an
// error.
func (ix *Index) RefreshSeriesMetadata(ctx context.Context, seriesUID string) error {
	var pk int64
	err := ix.pool.QueryRow(ctx, `SELECT se.pk FROM series se
LEFT JOIN series_metadata sm ON sm.series_pk = se.pk
WHERE se.series_instance_uid = $1 AND sm.version IS DISTINCT FROM se.metadata_version`, seriesUID).Scan(&pk)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // current, or gone
	}
	if err != nil {
		return fmt.Errorf("index: refresh series metadata: %w", err)
	}
	_, err = ix.buildSeriesMetadata(ctx, pk)
	return err
}

// joinedMetadata returns the series' document without storing it.
func (ix *Index) joinedMetadata(ctx context.Context, seriesPK int64) ([]byte, error) {
	var n int64
	var doc []byte
	if err := ix.pool.QueryRow(ctx, seriesDocSQL, seriesPK).Scan(&n, &doc); err != nil {
		return nil, fmt.Errorf("index: series metadata: %w", err)
	}
	return doc, nil
}

// instanceMetadata writes one instance's metadata as a one-element array.
func (ix *Index) instanceMetadata(ctx context.Context, w io.Writer, rb rebaser, study, series, sop string) error {
	var meta []byte
	err := ix.pool.QueryRow(ctx, `SELECT d.metadata FROM instances i
JOIN series se ON se.pk = i.series_pk JOIN studies s ON s.pk = i.study_pk
JOIN instance_data d ON d.instance_pk = i.pk
WHERE i.sop_instance_uid = $3 AND s.study_instance_uid = $1 AND ($2 = '' OR se.series_instance_uid = $2)`, study, series, sop).Scan(&meta)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s/%s/%s", ErrNotFound, study, series, sop)
	}
	if err != nil {
		return fmt.Errorf("index: metadata: %w", err)
	}
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	if err := rb.write(w, meta); err != nil {
		return err
	}
	_, err = io.WriteString(w, "]")
	return err
}

// rebaser writes stored metadata with its BulkDataURI placeholder
// replaced, in place (no copy of the document).
type rebaser struct{ from, to []byte }

func (r rebaser) write(w io.Writer, doc []byte) error {
	for {
		i := bytes.Index(doc, r.from)
		if i < 0 {
			_, err := w.Write(doc)
			return err
		}
		if _, err := w.Write(doc[:i]); err != nil {
			return err
		}
		if _, err := w.Write(r.to); err != nil {
			return err
		}
		doc = doc[i+len(r.from):]
	}
}

// Instances returns the instances under the entities uids at level (e.g.
// every instance of two studies), ordered by study, series and instance
// number, for WADO-RS, C-MOVE and C-GET. Patient-level uids are Patient
// IDs. No match is an empty slice.
func (ix *Index) Instances(ctx context.Context, level Level, uids []string) ([]InstanceRef, error) {
	var column string
	switch level {
	case Patient:
		column = "s.patient_id"
	case Study:
		column = "s.study_instance_uid"
	case Series:
		column = "se.series_instance_uid"
	case Instance:
		column = "i.sop_instance_uid"
	default:
		return nil, fmt.Errorf("index: invalid level %d", level)
	}
	// One UID (every WADO-RS request) is matched with "=", whose prepared
	// statement Postgres soon runs on a cached generic plan: a custom plan
	// for "= ANY($1)" costs ~0.2 ms of planning per request, and a generic
	// one for it would scan (the array's length is unknown).
	where, arg := column+" = ANY($1)", any(uids)
	if len(uids) == 1 {
		where, arg = column+" = $1", uids[0]
	}
	rows, err := ix.pool.Query(ctx, `SELECT `+refColumns+`
FROM instances i JOIN series se ON se.pk = i.series_pk JOIN studies s ON s.pk = i.study_pk
WHERE `+where+`
ORDER BY s.pk, se.series_number NULLS LAST, se.pk, i.instance_number NULLS LAST, i.pk`, arg)
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
