-- Authentication (package auth): organisations, users and their staff
-- roles, invitations, refresh tokens, API keys, used SEP-10 challenges and
-- sign-in throttling. Secrets are stored only as hashes: passwords as
-- argon2id PHC strings, refresh tokens, invitation tokens and API keys as
-- SHA-256 of their random bytes.

CREATE TABLE orgs (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A person. account is their Stellar account (custodial: derived from the
-- organisation's seed at SEP-5 index hd_index; otherwise their own, e.g.
-- Freighter). email is stored lower-cased.
CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email           text UNIQUE CHECK (email = lower(email)),
    display_name    text NOT NULL DEFAULT '',
    account         text UNIQUE,
    hd_index        integer UNIQUE CHECK (hd_index >= 1000),
    password_hash   text,
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (hd_index IS NULL OR account IS NOT NULL)
);

-- Roles of a user in an organisation. org_id '' is no organisation (a
-- patient who signed in with their own wallet).
CREATE TABLE memberships (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id      text NOT NULL,
    role        text NOT NULL CHECK (role IN ('patient', 'clinician', 'technologist', 'issuer_admin', 'auditor')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, org_id, role)
);
CREATE INDEX memberships_org ON memberships (org_id, role);

-- An invitation to join an organisation in a role; the token (sent to the
-- invitee) is stored hashed. account, when set, is the custodial account
-- the invitee will sign in as (a patient's, found by the chain worker).
CREATE TABLE invitations (
    token_hash   bytea PRIMARY KEY,
    org_id       text NOT NULL,
    role         text NOT NULL CHECK (role IN ('patient', 'clinician', 'technologist', 'issuer_admin', 'auditor')),
    email        text NOT NULL CHECK (email = lower(email)),
    account      text,
    hd_index     integer,
    invited_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    accepted_at  timestamptz
);

-- Refresh tokens rotate: each use marks the row used and issues a new one
-- in the same family. A used token presented again means it was stolen:
-- the whole family is revoked.
CREATE TABLE refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    family       uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- API keys of modalities and PACS, scoped to one organisation. The key is
-- "mmk_<prefix>_<secret>"; prefix finds the row, secret_hash checks it.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        text NOT NULL,
    name          text NOT NULL,
    prefix        text NOT NULL UNIQUE,
    secret_hash   bytea NOT NULL,
    scopes        text[] NOT NULL,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_org ON api_keys (org_id);

-- SEP-10 challenges already exchanged for a session (by transaction
-- hash), so that a signed challenge is good for one sign-in only. Rows
-- past expires_at can go.
CREATE TABLE sep10_used (
    tx_hash     text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

-- Fixed-window counters for sign-in throttling, shared by every process.
CREATE TABLE auth_throttle (
    key           text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL
);
