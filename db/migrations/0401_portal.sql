-- The portal API (package portalapi): transactions prepared for users who
-- sign with their own wallet (Freighter), and the modalities (DICOM AEs)
-- an organisation's admins configure.

-- An unsigned transaction handed to a bring-your-own-key user, with the
-- plain-words description they were shown. Only an envelope with exactly
-- this hash, signed by the user, is fee-bumped and submitted.
CREATE TABLE portal_prepared_tx (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account       text NOT NULL,
    kind          text NOT NULL,
    description   text NOT NULL,
    tx_hash       text NOT NULL UNIQUE,
    xdr           text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    submitted_tx  text,
    submitted_at  timestamptz
);

-- DICOM application entities of an organisation's modalities and PACS.
CREATE TABLE portal_modalities (
    org_id       text NOT NULL,
    ae_title     text NOT NULL CHECK (length(ae_title) BETWEEN 1 AND 16),
    host         text NOT NULL DEFAULT '',
    port         integer CHECK (port BETWEEN 1 AND 65535),
    description  text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, ae_title)
);
