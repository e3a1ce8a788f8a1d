-- The instance index (package index): patients, studies, series and
-- instances with the attributes C-FIND and QIDO-RS match on and return
-- (PS3.4 C.6, PS3.18 10.6), plus per-instance storage facts, precomputed
-- DICOM JSON metadata and frame offsets.
--
-- Conventions: *_raw columns keep the value as received, for returning it;
-- typed columns (date, time, int) exist for matching. Person names keep
-- the raw value and an upper-cased normalised form of the alphabetic
-- component group, plus its family/given/middle components for fuzzy
-- (prefix-per-component) matching. Patient attributes are copied onto the
-- study so that study-level queries touch one table.

CREATE TABLE patients (
    pk                    bigserial PRIMARY KEY,
    org_id                text NOT NULL,
    patient_id            text NOT NULL,
    issuer_of_patient_id  text NOT NULL DEFAULT '',
    patient_name          text NOT NULL DEFAULT '',
    patient_name_norm     text NOT NULL DEFAULT '',
    patient_name_family   text NOT NULL DEFAULT '',
    patient_name_given    text NOT NULL DEFAULT '',
    patient_name_middle   text NOT NULL DEFAULT '',
    patient_birth_date_raw text NOT NULL DEFAULT '',
    patient_birth_date    date,
    patient_sex           text NOT NULL DEFAULT '',
    -- Placeholder for access control: the patient's wallet account once linked.
    patient_account       text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, patient_id, issuer_of_patient_id)
);
CREATE INDEX patients_name_norm ON patients (patient_name_norm text_pattern_ops);

CREATE TABLE studies (
    pk                     bigserial PRIMARY KEY,
    study_instance_uid     text NOT NULL UNIQUE,
    patient_pk             bigint NOT NULL REFERENCES patients (pk),
    org_id                 text NOT NULL,
    patient_account        text,
    specific_character_set text NOT NULL DEFAULT '',
    -- Patient attributes, copied from the patient at the latest ingest.
    patient_id             text NOT NULL DEFAULT '',
    issuer_of_patient_id   text NOT NULL DEFAULT '',
    patient_name           text NOT NULL DEFAULT '',
    patient_name_norm      text NOT NULL DEFAULT '',
    patient_name_family    text NOT NULL DEFAULT '',
    patient_name_given     text NOT NULL DEFAULT '',
    patient_name_middle    text NOT NULL DEFAULT '',
    patient_birth_date_raw text NOT NULL DEFAULT '',
    patient_birth_date     date,
    patient_sex            text NOT NULL DEFAULT '',
    -- Study attributes.
    study_date_raw         text NOT NULL DEFAULT '',
    study_date             date,
    study_time_raw         text NOT NULL DEFAULT '',
    study_time             time,
    accession_number       text NOT NULL DEFAULT '',
    referring_physician_name      text NOT NULL DEFAULT '',
    referring_physician_name_norm text NOT NULL DEFAULT '',
    study_id               text NOT NULL DEFAULT '',
    study_description      text NOT NULL DEFAULT '',
    modalities_in_study    text[] NOT NULL DEFAULT '{}',
    number_of_series       integer NOT NULL DEFAULT 0,
    number_of_instances    integer NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX studies_patient_pk ON studies (patient_pk);
CREATE INDEX studies_patient_id ON studies (patient_id);
CREATE INDEX studies_patient_name_norm ON studies (patient_name_norm text_pattern_ops);
CREATE INDEX studies_patient_name_family ON studies (patient_name_family text_pattern_ops);
CREATE INDEX studies_patient_name_given ON studies (patient_name_given text_pattern_ops);
CREATE INDEX studies_patient_name_middle ON studies (patient_name_middle text_pattern_ops);
CREATE INDEX studies_study_date ON studies (study_date);
CREATE INDEX studies_accession_number ON studies (accession_number);
CREATE INDEX studies_modalities ON studies USING gin (modalities_in_study);
CREATE INDEX studies_org_id ON studies (org_id);

CREATE TABLE series (
    pk                   bigserial PRIMARY KEY,
    series_instance_uid  text NOT NULL UNIQUE,
    study_pk             bigint NOT NULL REFERENCES studies (pk),
    modality             text NOT NULL DEFAULT '',
    series_number        integer,
    series_description   text NOT NULL DEFAULT '',
    pps_start_date_raw   text NOT NULL DEFAULT '',
    pps_start_date       date,
    pps_start_time_raw   text NOT NULL DEFAULT '',
    pps_start_time       time,
    number_of_instances  integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX series_study_pk ON series (study_pk);
CREATE INDEX series_modality ON series (modality);

CREATE TABLE instances (
    pk                   bigserial PRIMARY KEY,
    sop_instance_uid     text NOT NULL UNIQUE,
    series_pk            bigint NOT NULL REFERENCES series (pk),
    study_pk             bigint NOT NULL REFERENCES studies (pk),
    org_id               text NOT NULL,
    sop_class_uid        text NOT NULL,
    instance_number      integer,
    rows                 integer,
    columns              integer,
    bits_allocated       integer,
    number_of_frames     integer,
    transfer_syntax_uid  text NOT NULL,
    -- Storage: the blob key reveals nothing (random); sizes and digests
    -- let retrieval and dedup work without reading the blob.
    blob_key             text NOT NULL UNIQUE,
    blob_size            bigint NOT NULL,   -- ciphertext bytes
    size                 bigint NOT NULL,   -- plaintext Part-10 bytes
    ciphertext_sha256    bytea NOT NULL,
    plaintext_sha256     bytea NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_series_pk ON instances (series_pk);
CREATE INDEX instances_study_pk ON instances (study_pk);

-- Kept apart from instances so that matching scans stay narrow.
CREATE TABLE instance_data (
    instance_pk       bigint PRIMARY KEY REFERENCES instances (pk) ON DELETE CASCADE,
    -- DICOM JSON (PS3.18 F.2) of the instance without bulk data; BulkDataURI
    -- values start with a placeholder replaced by the serving base URL.
    metadata          bytea NOT NULL,
    -- Native pixel data: frame k is at pixel_offset + k*frame_length of the
    -- plaintext Part-10 object.
    pixel_offset      bigint,
    frame_length      bigint,
    -- Encapsulated pixel data: fragment values (offset, length) in the
    -- plaintext, and for each frame the index of its first fragment.
    fragment_offsets  bigint[],
    fragment_lengths  bigint[],
    frame_fragments   integer[]
);

-- Deleted instances: what was there, so that audit, sync and blob
-- collection can see deletes.
CREATE TABLE instance_tombstones (
    sop_instance_uid     text NOT NULL,
    series_instance_uid  text NOT NULL,
    study_instance_uid   text NOT NULL,
    org_id               text NOT NULL,
    blob_key             text NOT NULL,
    reason               text NOT NULL,
    deleted_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_tombstones_sop ON instance_tombstones (sop_instance_uid);
CREATE INDEX instance_tombstones_study ON instance_tombstones (study_instance_uid);
