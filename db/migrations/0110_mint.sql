-- The ingest pipeline (package mint): per-study data keys, the outbox and
-- the bundles published for completed studies.

-- One data encryption key per study, stored only wrapped by the KEK named
-- kek_id. The primary key makes concurrent first instances of a study
-- agree on one key (INSERT ... ON CONFLICT DO NOTHING, then read).
CREATE TABLE study_keys (
    study_instance_uid text PRIMARY KEY,
    kek_id             text NOT NULL,
    wrapped_dek        bytea NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox. Rows are written in the transaction that causes
-- them and processed by workers that lease them (FOR UPDATE SKIP LOCKED).
--   kind 'study.touched': subject = Study Instance UID; at most one pending
--     row per study. Every ingest pushes available_at to now() + StableAge
--     and bumps generation; when it comes due the study is complete.
--   kind 'mint': one per study completion (dedupe_key 'mint:<touched id>'),
--     payload = mint.MintJob (JSON); consumed by the chain worker.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    subject      text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    generation   integer NOT NULL DEFAULT 1,
    attempts     integer NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT now(),
    leased_until timestamptz,
    last_error   text,
    dedupe_key   text UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz
);
CREATE UNIQUE INDEX outbox_touched_pending ON outbox (subject) WHERE kind = 'study.touched' AND done_at IS NULL;
CREATE INDEX outbox_due ON outbox (kind, available_at) WHERE done_at IS NULL;

-- What was published to IPFS when a study completed.
CREATE TABLE study_bundles (
    id                 bigserial PRIMARY KEY,
    study_instance_uid text NOT NULL,
    outbox_id          bigint NOT NULL UNIQUE,
    study_ref          text NOT NULL,   -- salted hash: the only study identifier made public
    manifest_cid       text NOT NULL,
    metadata_cid       text NOT NULL,
    instance_count     integer NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX study_bundles_study ON study_bundles (study_instance_uid);
