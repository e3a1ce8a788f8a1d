package mint

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint/envelope"
)

// EncryptionScheme names, in published metadata, how bundle objects are
// encrypted (mint/envelope format version 1, per-study DEK).
const EncryptionScheme = "AES-256-GCM-STREAM/MMEV1"

// MintJob is the payload of a KindMint outbox row: what the chain worker
// needs to mint a completed study's NFT. It holds no PHI; the row's
// Subject (the Study Instance UID) never leaves the database.
type MintJob struct {
	// StudyRef is HMAC-SHA256(deployment salt, Study Instance UID), hex:
	// the study's only public identifier.
	StudyRef string `json:"study_ref"`
	// OrgID is the issuing organisation; PatientAccount the patient's
	// Stellar account when linked (the NFT's recipient), else empty.
	OrgID          string `json:"org_id"`
	PatientAccount string `json:"patient_account,omitempty"`
	// PatientRef is PatientRef(salt, Issuer of Patient ID, Patient ID),
	// hex: the chain worker's key to the patient's custodial account.
	// Empty when the study has no Patient ID (the patient is unknown).
	PatientRef string `json:"patient_ref,omitempty"`
	// ManifestCID lists the study's ciphertext objects; MetadataCID is
	// the SEP-39 style NFT metadata (whose url is ipfs://ManifestCID).
	ManifestCID    string `json:"manifest_cid"`
	MetadataCID    string `json:"metadata_cid"`
	MetadataSHA256 string `json:"metadata_sha256"`
	InstanceCount  int    `json:"instance_count"`
	// Completion is the id of the study.touched row this job completes:
	// each completion of a study yields one job.
	Completion int64 `json:"completion"`
}

// Manifest is the pinned list of a study's encrypted objects.
type Manifest struct {
	Schema     string           `json:"schema"` // "medimint-bundle/1"
	StudyRef   string           `json:"study_ref"`
	Encryption string           `json:"encryption"`
	Objects    []ManifestObject `json:"objects"`
}

// ManifestObject is one encrypted instance in a Manifest.
type ManifestObject struct {
	CID    string `json:"cid"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // of the ciphertext
}

// NFTMetadata is the pinned SEP-39 style metadata of a study's NFT. It
// carries no names, IDs, dates, accession numbers or UIDs.
type NFTMetadata struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	URL         string        `json:"url"`        // ipfs://<manifest CID>
	URLSHA256   string        `json:"url_sha256"` // of the manifest bytes
	Issuer      string        `json:"issuer,omitempty"`
	Properties  NFTProperties `json:"properties"`
}

// NFTProperties are the descriptive fields of NFTMetadata.
type NFTProperties struct {
	StudyRef      string `json:"study_ref"`
	Modalities    string `json:"modalities"`
	SeriesCount   int    `json:"series_count"`
	InstanceCount int    `json:"instance_count"`
	Encryption    string `json:"encryption"`
}

// StudyRef returns the salted hash that stands for a study in public.
func (p *Pipeline) StudyRef(ctx context.Context, studyUID string) (string, error) {
	salt, err := p.studyRefSalt(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(studyUID))
	return hex.EncodeToString(m.Sum(nil)), nil
}

// PatientRef returns the salted hash that stands for a patient (Issuer
// of Patient ID and Patient ID) outside the index, or "" for an empty
// Patient ID: patients without an ID must not share one account.
func PatientRef(salt []byte, issuerOfPatientID, patientID string) string {
	if patientID == "" {
		return ""
	}
	m := hmac.New(sha256.New, salt)
	m.Write([]byte("medimint patient\x00" + issuerOfPatientID + "\x00" + patientID))
	return hex.EncodeToString(m.Sum(nil))
}

// studyRefSalt returns the deployment's salt, created once in app_meta.
func (p *Pipeline) studyRefSalt(ctx context.Context) ([]byte, error) {
	p.mu.Lock()
	salt := p.salt
	p.mu.Unlock()
	if salt != nil {
		return salt, nil
	}
	var b [32]byte
	rand.Read(b[:])
	// Insert a candidate, then read whichever won: in a new statement, so
	// that a concurrent first caller's commit is visible.
	var s string
	_, err := p.cfg.Pool.Exec(ctx, `INSERT INTO app_meta (key, value) VALUES ('study_ref_salt', $1) ON CONFLICT (key) DO NOTHING`, hex.EncodeToString(b[:]))
	if err == nil {
		err = p.cfg.Pool.QueryRow(ctx, `SELECT value FROM app_meta WHERE key = 'study_ref_salt'`).Scan(&s)
	}
	if err != nil {
		return nil, fmt.Errorf("mint: study ref salt: %w", err)
	}
	salt, err = hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("mint: study ref salt: %w", err)
	}
	p.mu.Lock()
	p.salt = salt
	p.mu.Unlock()
	return salt, nil
}

// CompleteDue completes every study that is due now, one at a time, and
// returns how many jobs it handled. Failures are retried with backoff.
func (p *Pipeline) CompleteDue(ctx context.Context, lease time.Duration) (int, error) {
	n := 0
	for {
		j, ok, err := p.outbox.Claim(ctx, KindStudyTouched, lease)
		if err != nil || !ok {
			return n, err
		}
		n++
		if err := p.completeStudy(ctx, j); err != nil {
			p.log.WarnContext(ctx, "mint: study completion failed", slog.Int64("job", j.ID), slog.Int("attempt", j.Attempts), slog.Any("err", err))
			if rerr := p.outbox.Retry(ctx, j, err); rerr != nil {
				return n, rerr
			}
		}
	}
}

// RunCompletion runs workers goroutines that complete due studies,
// polling every poll, until ctx ends.
func (p *Pipeline) RunCompletion(ctx context.Context, workers int, poll time.Duration) {
	done := make(chan struct{})
	for range max(workers, 1) {
		go func() {
			defer func() { done <- struct{}{} }()
			t := time.NewTicker(poll)
			defer t.Stop()
			for {
				if _, err := p.CompleteDue(ctx, 10*time.Minute); err != nil && ctx.Err() == nil {
					p.log.WarnContext(ctx, "mint: completion worker", slog.Any("err", err))
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	for range max(workers, 1) {
		<-done
	}
}

// pinBlob pins the instance's blob as stored, reading it once: as it
// goes to the pinner it is hashed (the manifest's SHA-256; ingest does
// not hash ciphertext) and authenticated under the study's key, so that a
// blob altered at rest fails the completion instead of being published
// with a hash that vouches for it.
func (p *Pipeline) pinBlob(ctx context.Context, r index.InstanceRef, dek []byte) (cid string, sum []byte, err error) {
	blob, err := p.cfg.Blobs.Get(ctx, r.BlobKey)
	if err != nil {
		return "", nil, fmt.Errorf("mint: bundle %s: %w", r.BlobKey, err)
	}
	defer blob.Close()
	h := sha256.New()
	pr, pw := io.Pipe()
	verified := make(chan error, 1)
	go func() {
		dr, err := envelope.NewReader(pr, dek, []byte(r.BlobKey))
		if err == nil {
			_, err = io.Copy(io.Discard, dr)
		}
		pr.CloseWithError(err) // a failure stops the pinning too
		verified <- err
	}()
	c, err := p.cfg.Pinner.Add(ctx, io.TeeReader(blob, io.MultiWriter(h, pw)))
	pw.CloseWithError(err) // nil: EOF, the check completes
	verr := <-verified
	switch {
	case errors.Is(verr, envelope.ErrAuth) || errors.Is(verr, envelope.ErrFormat):
		return "", nil, fmt.Errorf("mint: bundle %s: stored blob fails authentication: %w", r.BlobKey, verr)
	case err != nil:
		return "", nil, fmt.Errorf("mint: pin %s: %w", r.BlobKey, err)
	case verr != nil:
		return "", nil, fmt.Errorf("mint: bundle %s: check: %w", r.BlobKey, verr)
	}
	return c.String(), h.Sum(nil), nil
}

// completeStudy publishes the study's bundle and queues its mint job.
// Everything before the final transaction is idempotent (same bytes, same
// CIDs), so a retry or a second worker after a lapsed lease is harmless;
// the transaction queues the job only if j is still the study's current,
// unfinished generation.
func (p *Pipeline) completeStudy(ctx context.Context, j Job) error {
	study := j.Subject
	refs, err := p.ix.Instances(ctx, index.Study, []string{study})
	if err != nil {
		return err
	}
	if len(refs) == 0 { // every instance deleted meanwhile
		_, err := p.outbox.Done(ctx, j)
		return err
	}
	if p.cfg.Pinner == nil {
		return errors.New("mint: no Pinner configured")
	}
	studyRef, err := p.StudyRef(ctx, study)
	if err != nil {
		return err
	}
	dek, err := p.studyKey(ctx, study)
	if err != nil {
		return err
	}
	man := Manifest{Schema: "medimint-bundle/1", StudyRef: studyRef, Encryption: EncryptionScheme}
	for _, r := range refs {
		c, sum, err := p.pinBlob(ctx, r, dek)
		if err != nil {
			return err
		}
		man.Objects = append(man.Objects, ManifestObject{CID: c, Size: r.BlobSize, SHA256: hex.EncodeToString(sum)})
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return err
	}
	manCID, err := p.cfg.Pinner.Add(ctx, bytes.NewReader(manJSON))
	if err != nil {
		return fmt.Errorf("mint: pin manifest: %w", err)
	}
	manSum := sha256.Sum256(manJSON)

	res, err := p.ix.Find(ctx, index.Query{Level: index.Study, Filters: map[dicom.Tag][]string{tag.StudyInstanceUID: {study}}, OnlyRequested: true,
		IncludeFields: []dicom.Tag{tag.ModalitiesInStudy, tag.NumberOfStudyRelatedSeries, tag.NumberOfStudyRelatedInstances}})
	if err != nil {
		return err
	}
	props := NFTProperties{StudyRef: studyRef, InstanceCount: len(refs), Encryption: EncryptionScheme}
	if len(res.Matches) == 1 {
		m := res.Matches[0]
		props.Modalities = strings.Join(m.Get(tag.ModalitiesInStudy).Strings(), `\`)
		fmt.Sscan(m.String(tag.NumberOfStudyRelatedSeries), &props.SeriesCount)
	}
	desc := fmt.Sprintf("Encrypted medical imaging study: %d instances in %d series", props.InstanceCount, props.SeriesCount)
	if props.Modalities != "" {
		desc += " (" + strings.ReplaceAll(props.Modalities, `\`, ", ") + ")"
	}
	meta := NFTMetadata{
		Name:        "Medimint study " + studyRef[:12],
		Description: desc + ". Keys are held off-chain and released to holders of on-chain grants.",
		URL:         "ipfs://" + manCID.String(),
		URLSHA256:   hex.EncodeToString(manSum[:]),
		Issuer:      p.cfg.Issuer,
		Properties:  props,
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	metaCID, err := p.cfg.Pinner.Add(ctx, bytes.NewReader(metaJSON))
	if err != nil {
		return fmt.Errorf("mint: pin metadata: %w", err)
	}
	metaSum := sha256.Sum256(metaJSON)

	return pgx.BeginFunc(ctx, p.cfg.Pool, func(tx pgx.Tx) error {
		var org, pid, pidIssuer string
		var account *string
		if err := tx.QueryRow(ctx, `SELECT org_id, patient_account, patient_id, issuer_of_patient_id FROM studies WHERE study_instance_uid = $1`,
			study).Scan(&org, &account, &pid, &pidIssuer); err != nil {
			return fmt.Errorf("mint: study of job %d: %w", j.ID, err)
		}
		ok, err := p.outbox.done(ctx, tx, j)
		if err != nil || !ok {
			return err // touched again meanwhile: a later completion takes over
		}
		salt, err := p.studyRefSalt(ctx)
		if err != nil {
			return err
		}
		job := MintJob{StudyRef: studyRef, OrgID: org, PatientRef: PatientRef(salt, pidIssuer, pid), ManifestCID: manCID.String(), MetadataCID: metaCID.String(),
			MetadataSHA256: hex.EncodeToString(metaSum[:]), InstanceCount: len(refs), Completion: j.ID}
		if account != nil {
			job.PatientAccount = *account
		}
		payload, err := json.Marshal(job)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO study_bundles (study_instance_uid, outbox_id, study_ref, manifest_cid, metadata_cid, instance_count)
VALUES ($1, $2, $3, $4, $5, $6)`, study, j.ID, studyRef, job.ManifestCID, job.MetadataCID, job.InstanceCount); err != nil {
			return fmt.Errorf("mint: record bundle: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (kind, subject, payload, dedupe_key) VALUES ($1, $2, $3, $4)
ON CONFLICT (dedupe_key) DO NOTHING`, KindMint, study, payload, fmt.Sprintf("mint:%d", j.ID)); err != nil {
			return fmt.Errorf("mint: queue mint job: %w", err)
		}
		p.log.InfoContext(ctx, "mint: study complete", slog.String("study_ref", studyRef), slog.Int("instances", len(refs)),
			slog.String("metadata_cid", job.MetadataCID))
		return nil
	})
}
