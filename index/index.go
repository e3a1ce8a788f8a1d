package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// DefaultMaxResults caps a Find without a smaller Limit.
const DefaultMaxResults = 1000

var (
	// ErrNotFound reports an entity the index does not hold.
	ErrNotFound = errors.New("index: not found")
	// ErrDuplicate reports an Insert of a SOP Instance UID already indexed.
	ErrDuplicate = errors.New("index: duplicate SOP instance")
	// ErrConflict reports UIDs that contradict the index: a series already
	// filed under another study, or the same UID used at two levels.
	ErrConflict = errors.New("index: conflicting UIDs")
	// ErrMissingUID reports a data set without Study, Series or SOP
	// Instance UID, or without SOP Class UID.
	ErrMissingUID = errors.New("index: missing UID")
)

// Querier runs SQL: a *pgxpool.Pool or a pgx.Tx.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Index answers queries over the instance index.
type Index struct {
	pool *pgxpool.Pool
	// MaxResults caps every Find.
	MaxResults int
}

// New returns an Index over pool, whose database has the schema applied
// (db.Migrate).
func New(pool *pgxpool.Pool) *Index {
	return &Index{pool: pool, MaxResults: DefaultMaxResults}
}

// Span is a byte range of the plaintext Part-10 object.
type Span struct {
	Offset, Length int64
}

// Frames locates the frames of an instance's pixel data in its plaintext
// Part-10 object. For native pixel data frame k is FrameLength bytes at
// PixelOffset + k*FrameLength; for encapsulated pixel data frame k is the
// concatenation of Fragments[FrameFragments[k]:FrameFragments[k+1]] (the
// last frame runs to the last fragment). The zero value means no frames
// are known (no pixel data, or a deflated transfer syntax).
type Frames struct {
	PixelOffset    int64
	FrameLength    int64
	Fragments      []Span
	FrameFragments []int32
}

// Record is one instance to index.
type Record struct {
	// Dataset holds at least the attributes the index stores; bulk data
	// need not be loaded.
	Dataset           *dicom.Dataset
	TransferSyntaxUID string
	OrgID             string

	BlobKey  string
	BlobSize int64 // ciphertext bytes
	Size     int64 // plaintext Part-10 bytes
	// CiphertextSHA256 may be empty: the pipeline hashes ciphertext only
	// when it publishes the study's bundle.
	CiphertextSHA256 []byte

	// Metadata is the instance's DICOM JSON object (PS3.18 F.2) without
	// bulk data, BulkDataURIs starting with BaseURIPlaceholder.
	Metadata []byte
	Frames   Frames
	// Bulk locates bulk values by element path (ElementPath.String(), as
	// in the BulkDataURIs of Metadata).
	Bulk map[string]Span
}

// InstanceRef is what retrieval needs to know of an instance.
type InstanceRef struct {
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUID    string
	SOPClassUID       string
	TransferSyntaxUID string
	NumberOfFrames    int
	OrgID             string

	BlobKey          string
	BlobSize         int64
	Size             int64
	CiphertextSHA256 []byte
}

// Insert indexes r within tx: it files the patient, study and series
// (creating or updating them), adds the instance and its metadata, and
// maintains the study and series counts. Run it in the transaction that
// makes the instance durable. A SOP Instance UID already present is
// ErrDuplicate (the caller decides the policy; see Delete).
func (ix *Index) Insert(ctx context.Context, tx pgx.Tx, r *Record) error {
	var b pgx.Batch
	if err := ix.QueueInsert(&b, r); err != nil {
		return err
	}
	return unwrapInsert(tx.SendBatch(ctx, &b).Close())
}

func unwrapInsert(err error) error {
	var ie *InsertError
	if errors.As(err, &ie) {
		return ie.Err
	}
	return err
}

// InsertError is the failure of one record queued by QueueInsert, so that
// a caller that batched several records knows which one failed.
type InsertError struct {
	SOPInstanceUID string
	Err            error
}

func (e *InsertError) Error() string { return e.Err.Error() }
func (e *InsertError) Unwrap() error { return e.Err }

// QueueInsert queues on b the statements that index r (what Insert
// does), so that many records go to the server in one round trip: send b
// within a transaction (tx.SendBatch) and roll back if closing the batch
// results fails; the failing record's error is an *InsertError. The
// statements find the patient, study and series by their keys rather than
// by what earlier statements returned, so they can be pipelined: five per
// record, whatever the batch holds. Validation errors return at once and
// queue nothing.
func (ix *Index) QueueInsert(b *pgx.Batch, r *Record) error {
	ds := r.Dataset
	studyUID, seriesUID := text(ds, tag.StudyInstanceUID), text(ds, tag.SeriesInstanceUID)
	sopUID, sopClass := text(ds, tag.SOPInstanceUID), text(ds, tag.SOPClassUID)
	switch {
	case studyUID == "":
		return fmt.Errorf("%w: Study Instance UID", ErrMissingUID)
	case seriesUID == "":
		return fmt.Errorf("%w: Series Instance UID", ErrMissingUID)
	case sopUID == "":
		return fmt.Errorf("%w: SOP Instance UID", ErrMissingUID)
	case sopClass == "":
		return fmt.Errorf("%w: SOP Class UID", ErrMissingUID)
	}
	if studyUID == seriesUID || seriesUID == sopUID || studyUID == sopUID {
		return fmt.Errorf("%w: the same UID names two levels", ErrConflict)
	}
	fail := func(what string, err error) error {
		return &InsertError{SOPInstanceUID: sopUID, Err: fmt.Errorf("index: %s: %w", what, err)}
	}

	pn := normalisePN(text(ds, tag.PatientName))
	pname := text(ds, tag.PatientName)
	pid, issuer := text(ds, tag.PatientID), text(ds, tag.IssuerOfPatientID)
	birthRaw, sex := text(ds, tag.PatientBirthDate), text(ds, tag.PatientSex)
	birth := storedDate(birthRaw)

	// Name/birth/sex: a later instance's non-empty value wins, so that
	// corrections sent later take effect.
	b.Queue(`
INSERT INTO patients (org_id, patient_id, issuer_of_patient_id, patient_name, patient_name_norm,
    patient_name_family, patient_name_given, patient_name_middle, patient_birth_date_raw, patient_birth_date, patient_sex,
    patient_name_ideo, patient_name_phon)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (org_id, patient_id, issuer_of_patient_id) DO UPDATE SET
    patient_name = CASE WHEN EXCLUDED.patient_name <> '' THEN EXCLUDED.patient_name ELSE patients.patient_name END,
    patient_name_norm = CASE WHEN EXCLUDED.patient_name <> '' THEN EXCLUDED.patient_name_norm ELSE patients.patient_name_norm END,
    patient_name_family = CASE WHEN EXCLUDED.patient_name <> '' THEN EXCLUDED.patient_name_family ELSE patients.patient_name_family END,
    patient_name_given = CASE WHEN EXCLUDED.patient_name <> '' THEN EXCLUDED.patient_name_given ELSE patients.patient_name_given END,
    patient_name_middle = CASE WHEN EXCLUDED.patient_name <> '' THEN EXCLUDED.patient_name_middle ELSE patients.patient_name_middle END,
    patient_name_ideo = CASE WHEN EXCLUDED.patient_name <> '' THEN EXCLUDED.patient_name_ideo ELSE patients.patient_name_ideo END,
    patient_name_phon = CASE WHEN EXCLUDED.patient_name <> '' THEN EXCLUDED.patient_name_phon ELSE patients.patient_name_phon END,
    patient_birth_date_raw = CASE WHEN EXCLUDED.patient_birth_date_raw <> '' THEN EXCLUDED.patient_birth_date_raw ELSE patients.patient_birth_date_raw END,
    patient_birth_date = CASE WHEN EXCLUDED.patient_birth_date_raw <> '' THEN EXCLUDED.patient_birth_date ELSE patients.patient_birth_date END,
    patient_sex = CASE WHEN EXCLUDED.patient_sex <> '' THEN EXCLUDED.patient_sex ELSE patients.patient_sex END,
    updated_at = now()
WHERE (EXCLUDED.patient_name <> '' AND (EXCLUDED.patient_name, EXCLUDED.patient_name_norm, EXCLUDED.patient_name_ideo, EXCLUDED.patient_name_phon)
        IS DISTINCT FROM (patients.patient_name, patients.patient_name_norm, patients.patient_name_ideo, patients.patient_name_phon))
    OR (EXCLUDED.patient_birth_date_raw <> '' AND EXCLUDED.patient_birth_date_raw <> patients.patient_birth_date_raw)
    OR (EXCLUDED.patient_sex <> '' AND EXCLUDED.patient_sex <> patients.patient_sex)`,
		r.OrgID, pid, issuer, pname, pn.norm, pn.family, pn.given, pn.middle, birthRaw, birth, sex, pn.ideo, pn.phon).Fn = func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return fail("file patient", err)
		}
		return nil
	}

	// The study row also counts the instance and its modality here, so
	// that it is written once per record.
	studyDateRaw, studyTimeRaw := text(ds, tag.StudyDate), text(ds, tag.StudyTime)
	ref := text(ds, tag.ReferringPhysicianName)
	refPN := normalisePN(ref)
	modality := text(ds, tag.Modality)
	b.Queue(`
INSERT INTO studies AS st (study_instance_uid, patient_pk, org_id, specific_character_set,
    patient_id, issuer_of_patient_id, patient_name, patient_name_norm, patient_name_family, patient_name_given,
    patient_name_middle, patient_birth_date_raw, patient_birth_date, patient_sex,
    study_date_raw, study_date, study_time_raw, study_time, accession_number,
    referring_physician_name, referring_physician_name_norm, study_id, study_description,
    number_of_instances, modalities_in_study, patient_name_ideo, patient_name_phon,
    referring_physician_name_ideo, referring_physician_name_phon)
SELECT $1, p.pk, $2, $5, p.patient_id, p.issuer_of_patient_id, p.patient_name, p.patient_name_norm,
    p.patient_name_family, p.patient_name_given, p.patient_name_middle, p.patient_birth_date_raw,
    p.patient_birth_date, p.patient_sex, $6, $7, $8, $9, $10, $11, $12, $13, $14,
    1, CASE WHEN $15 = '' THEN '{}'::text[] ELSE ARRAY[$15::text] END, p.patient_name_ideo, p.patient_name_phon, $16, $17
FROM patients p WHERE p.org_id = $2 AND p.patient_id = $3 AND p.issuer_of_patient_id = $4
ON CONFLICT (study_instance_uid) DO UPDATE SET
    specific_character_set = CASE WHEN EXCLUDED.specific_character_set <> '' THEN EXCLUDED.specific_character_set ELSE st.specific_character_set END,
    patient_name = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_name ELSE st.patient_name END,
    patient_name_norm = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_name_norm ELSE st.patient_name_norm END,
    patient_name_family = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_name_family ELSE st.patient_name_family END,
    patient_name_given = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_name_given ELSE st.patient_name_given END,
    patient_name_middle = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_name_middle ELSE st.patient_name_middle END,
    patient_name_ideo = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_name_ideo ELSE st.patient_name_ideo END,
    patient_name_phon = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_name_phon ELSE st.patient_name_phon END,
    patient_birth_date_raw = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_birth_date_raw ELSE st.patient_birth_date_raw END,
    patient_birth_date = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_birth_date ELSE st.patient_birth_date END,
    patient_sex = CASE WHEN st.patient_pk = EXCLUDED.patient_pk THEN EXCLUDED.patient_sex ELSE st.patient_sex END,
    study_date_raw = CASE WHEN EXCLUDED.study_date_raw <> '' THEN EXCLUDED.study_date_raw ELSE st.study_date_raw END,
    study_date = CASE WHEN EXCLUDED.study_date_raw <> '' THEN EXCLUDED.study_date ELSE st.study_date END,
    study_time_raw = CASE WHEN EXCLUDED.study_time_raw <> '' THEN EXCLUDED.study_time_raw ELSE st.study_time_raw END,
    study_time = CASE WHEN EXCLUDED.study_time_raw <> '' THEN EXCLUDED.study_time ELSE st.study_time END,
    accession_number = CASE WHEN EXCLUDED.accession_number <> '' THEN EXCLUDED.accession_number ELSE st.accession_number END,
    referring_physician_name = CASE WHEN EXCLUDED.referring_physician_name <> '' THEN EXCLUDED.referring_physician_name ELSE st.referring_physician_name END,
    referring_physician_name_norm = CASE WHEN EXCLUDED.referring_physician_name <> '' THEN EXCLUDED.referring_physician_name_norm ELSE st.referring_physician_name_norm END,
    referring_physician_name_ideo = CASE WHEN EXCLUDED.referring_physician_name <> '' THEN EXCLUDED.referring_physician_name_ideo ELSE st.referring_physician_name_ideo END,
    referring_physician_name_phon = CASE WHEN EXCLUDED.referring_physician_name <> '' THEN EXCLUDED.referring_physician_name_phon ELSE st.referring_physician_name_phon END,
    study_id = CASE WHEN EXCLUDED.study_id <> '' THEN EXCLUDED.study_id ELSE st.study_id END,
    study_description = CASE WHEN EXCLUDED.study_description <> '' THEN EXCLUDED.study_description ELSE st.study_description END,
    number_of_instances = st.number_of_instances + 1,
    modalities_in_study = CASE WHEN $15 = '' OR $15 = ANY(st.modalities_in_study) THEN st.modalities_in_study
                          ELSE array_append(st.modalities_in_study, $15::text) END,
    updated_at = now()`,
		studyUID, r.OrgID, pid, issuer, text(ds, tag.SpecificCharacterSet),
		studyDateRaw, storedDate(studyDateRaw), studyTimeRaw, storedTime(studyTimeRaw), text(ds, tag.AccessionNumber),
		ref, refPN.norm, text(ds, tag.StudyID), text(ds, tag.StudyDescription), modality, refPN.ideo, refPN.phon).Fn = func(br pgx.BatchResults) error {
		ct, err := br.Exec()
		if err == nil && ct.RowsAffected() != 1 {
			err = errors.New("patient row missing")
		}
		if err != nil {
			return fail("file study", err)
		}
		return nil
	}

	// The series row counts the instance; a new series counts on its
	// study. A series already filed under another study is a conflict
	// (the transaction must then roll back).
	ppsDateRaw, ppsTimeRaw := text(ds, tag.PerformedProcedureStepStartDate), text(ds, tag.PerformedProcedureStepStartTime)
	b.Queue(`
WITH st AS (SELECT pk FROM studies WHERE study_instance_uid = $2),
se AS (
    INSERT INTO series AS se (series_instance_uid, study_pk, modality, series_number, series_description,
        pps_start_date_raw, pps_start_date, pps_start_time_raw, pps_start_time, number_of_instances)
    SELECT $1, st.pk, $3, $4, $5, $6, $7, $8, $9, 1 FROM st
    ON CONFLICT (series_instance_uid) DO UPDATE SET
        modality = CASE WHEN EXCLUDED.modality <> '' THEN EXCLUDED.modality ELSE se.modality END,
        series_number = COALESCE(EXCLUDED.series_number, se.series_number),
        series_description = CASE WHEN EXCLUDED.series_description <> '' THEN EXCLUDED.series_description ELSE se.series_description END,
        pps_start_date_raw = CASE WHEN EXCLUDED.pps_start_date_raw <> '' THEN EXCLUDED.pps_start_date_raw ELSE se.pps_start_date_raw END,
        pps_start_date = CASE WHEN EXCLUDED.pps_start_date_raw <> '' THEN EXCLUDED.pps_start_date ELSE se.pps_start_date END,
        pps_start_time_raw = CASE WHEN EXCLUDED.pps_start_time_raw <> '' THEN EXCLUDED.pps_start_time_raw ELSE se.pps_start_time_raw END,
        pps_start_time = CASE WHEN EXCLUDED.pps_start_time_raw <> '' THEN EXCLUDED.pps_start_time ELSE se.pps_start_time END,
        number_of_instances = se.number_of_instances + 1,
        metadata_version = se.metadata_version + 1
    RETURNING se.study_pk, xmax = 0 AS created),
counted AS (
    UPDATE studies SET number_of_series = number_of_series + 1
    FROM se WHERE studies.pk = se.study_pk AND se.created)
SELECT se.study_pk = st.pk FROM se, st`,
		seriesUID, studyUID, modality, integer(ds, tag.SeriesNumber), text(ds, tag.SeriesDescription),
		ppsDateRaw, storedDate(ppsDateRaw), ppsTimeRaw, storedTime(ppsTimeRaw)).Fn = func(br pgx.BatchResults) error {
		var same bool
		if err := br.QueryRow().Scan(&same); err != nil {
			return fail("file series", err)
		}
		if !same {
			return &InsertError{SOPInstanceUID: sopUID, Err: fmt.Errorf("%w: series %s belongs to another study", ErrConflict, seriesUID)}
		}
		return nil
	}

	f := r.Frames
	var pixOff, frameLen *int64
	if f.FrameLength > 0 {
		pixOff, frameLen = &f.PixelOffset, &f.FrameLength
	}
	var fragOffs, fragLens []int64
	var frameFrags []int32
	if len(f.Fragments) > 0 {
		fragOffs, fragLens = make([]int64, len(f.Fragments)), make([]int64, len(f.Fragments))
		for i, s := range f.Fragments {
			fragOffs[i], fragLens[i] = s.Offset, s.Length
		}
		frameFrags = f.FrameFragments
	}
	meta := r.Metadata
	if meta == nil {
		meta = []byte("{}")
	}
	bulk := make(map[string][2]int64, len(r.Bulk))
	for k, v := range r.Bulk {
		bulk[k] = [2]int64{v.Offset, v.Length}
	}
	bulkJSON, err := json.Marshal(bulk)
	if err != nil {
		return fmt.Errorf("index: bulk map: %w", err)
	}
	b.Queue(`
WITH se AS (SELECT pk, study_pk FROM series WHERE series_instance_uid = $16),
i AS (
    INSERT INTO instances (sop_instance_uid, series_pk, study_pk, org_id, sop_class_uid, instance_number,
        rows, columns, bits_allocated, number_of_frames, transfer_syntax_uid,
        blob_key, blob_size, size, ciphertext_sha256)
    SELECT $1, se.pk, se.study_pk, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM se
    RETURNING pk)
INSERT INTO instance_data (instance_pk, metadata, pixel_offset, frame_length, fragment_offsets, fragment_lengths, frame_fragments, bulk)
SELECT i.pk, $14, $17, $18, $19, $20, $21, $15 FROM i`,
		sopUID, r.OrgID, sopClass, integer(ds, tag.InstanceNumber),
		integer(ds, tag.Rows), integer(ds, tag.Columns), integer(ds, tag.BitsAllocated), integer(ds, tag.NumberOfFrames),
		r.TransferSyntaxUID, r.BlobKey, r.BlobSize, r.Size, nonNil(r.CiphertextSHA256),
		meta, string(bulkJSON), seriesUID, pixOff, frameLen, fragOffs, fragLens, frameFrags).Fn = func(br pgx.BatchResults) error {
		ct, err := br.Exec()
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "instances_sop_instance_uid_key":
			return &InsertError{SOPInstanceUID: sopUID, Err: fmt.Errorf("%w: %s", ErrDuplicate, sopUID)}
		case err != nil:
			return fail("add instance", err)
		case ct.RowsAffected() != 1:
			return fail("add instance", errors.New("series row missing"))
		}
		return nil
	}
	return nil
}

// Delete removes the instance sopUID within tx, leaving a tombstone with
// reason, and returns what it was (its blob is now unreferenced; the
// caller deletes it after commit or leaves it to the sweeper). Series and
// studies left empty are removed. A missing instance is ErrNotFound.
func (ix *Index) Delete(ctx context.Context, tx pgx.Tx, sopUID, reason string) (InstanceRef, error) {
	ref, seriesPK, studyPK, err := lookup(ctx, tx, sopUID, true)
	if err != nil {
		return InstanceRef{}, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM instances WHERE sop_instance_uid = $1`, sopUID); err != nil {
		return InstanceRef{}, fmt.Errorf("index: delete instance: %w", err)
	}
	if _, err := tx.Exec(ctx, `
INSERT INTO instance_tombstones (sop_instance_uid, series_instance_uid, study_instance_uid, org_id, blob_key, reason)
VALUES ($1, $2, $3, $4, $5, $6)`, ref.SOPInstanceUID, ref.SeriesInstanceUID, ref.StudyInstanceUID, ref.OrgID, ref.BlobKey, reason); err != nil {
		return InstanceRef{}, fmt.Errorf("index: tombstone: %w", err)
	}
	var left int
	if err := tx.QueryRow(ctx, `UPDATE series SET number_of_instances = number_of_instances - 1, metadata_version = metadata_version + 1
WHERE pk = $1 RETURNING number_of_instances`, seriesPK).Scan(&left); err != nil {
		return InstanceRef{}, fmt.Errorf("index: count series: %w", err)
	}
	if left == 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM series WHERE pk = $1`, seriesPK); err != nil {
			return InstanceRef{}, fmt.Errorf("index: delete empty series: %w", err)
		}
	}
	if err := tx.QueryRow(ctx, `
UPDATE studies SET number_of_instances = number_of_instances - 1,
    number_of_series = (SELECT count(*) FROM series WHERE study_pk = $1),
    modalities_in_study = ARRAY(SELECT DISTINCT modality FROM series WHERE study_pk = $1 AND modality <> '' ORDER BY 1)
WHERE pk = $1 RETURNING number_of_instances`, studyPK).Scan(&left); err != nil {
		return InstanceRef{}, fmt.Errorf("index: count study: %w", err)
	}
	if left == 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM studies WHERE pk = $1`, studyPK); err != nil {
			return InstanceRef{}, fmt.Errorf("index: delete empty study: %w", err)
		}
	}
	return ref, nil
}

// Lookup returns the instance sopUID, or ErrNotFound. With a pgx.Tx as q
// and lock set, the row is locked until the transaction ends.
func Lookup(ctx context.Context, q Querier, sopUID string, lock bool) (InstanceRef, error) {
	ref, _, _, err := lookup(ctx, q, sopUID, lock)
	return ref, err
}

const refColumns = `s.study_instance_uid, se.series_instance_uid, i.sop_instance_uid, i.sop_class_uid,
    i.transfer_syntax_uid, COALESCE(i.number_of_frames, 0), i.org_id, i.blob_key, i.blob_size, i.size,
    i.ciphertext_sha256`

func scanRef(row pgx.Row, extra ...any) (InstanceRef, error) {
	var r InstanceRef
	dest := append([]any{&r.StudyInstanceUID, &r.SeriesInstanceUID, &r.SOPInstanceUID, &r.SOPClassUID,
		&r.TransferSyntaxUID, &r.NumberOfFrames, &r.OrgID, &r.BlobKey, &r.BlobSize, &r.Size,
		&r.CiphertextSHA256}, extra...)
	err := row.Scan(dest...)
	return r, err
}

func lookup(ctx context.Context, q Querier, sopUID string, lock bool) (ref InstanceRef, seriesPK, studyPK int64, err error) {
	sql := `SELECT ` + refColumns + `, i.series_pk, i.study_pk
FROM instances i JOIN series se ON se.pk = i.series_pk JOIN studies s ON s.pk = i.study_pk
WHERE i.sop_instance_uid = $1`
	if lock {
		sql += " FOR UPDATE OF i"
	}
	ref, err = scanRef(q.QueryRow(ctx, sql, sopUID), &seriesPK, &studyPK)
	if errors.Is(err, pgx.ErrNoRows) {
		return InstanceRef{}, 0, 0, fmt.Errorf("%w: instance %s", ErrNotFound, sopUID)
	}
	if err != nil {
		return InstanceRef{}, 0, 0, fmt.Errorf("index: look up %s: %w", sopUID, err)
	}
	return ref, seriesPK, studyPK, nil
}

// nonNil keeps an empty digest from being sent as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
