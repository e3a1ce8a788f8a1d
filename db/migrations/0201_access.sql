-- Access control (package access): which organisation each issuer account
-- belongs to, the hash-chained audit log, and notifications waiting for
-- delivery to patients.

-- The organisation (studies.org_id) that an issuer account mints for.
CREATE TABLE org_issuers (
    issuer  text PRIMARY KEY,
    org_id  text NOT NULL
);
CREATE INDEX org_issuers_org ON org_issuers (org_id);

-- Append-only, hash-chained: hash = sha256(prev_hash || canonical bytes of
-- the row) (access.CanonicalBytes). seq has no gaps; row 1's prev_hash is
-- 32 zero bytes. detail is JSON kept as text so the hashed bytes are the
-- stored bytes.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY CHECK (seq > 0),
    recorded   timestamptz NOT NULL,
    category   text NOT NULL,
    action     text NOT NULL,
    outcome    text NOT NULL,
    actor      text NOT NULL,
    roles      text NOT NULL,
    org_id     text NOT NULL,
    resource   text NOT NULL,
    reason     text NOT NULL,
    tx_hash    text NOT NULL,
    tx_url     text NOT NULL,
    detail     text NOT NULL,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_resource ON audit_log (resource, seq);

-- Notifications for account holders (break-glass access to their study),
-- an outbox for the notification service.
CREATE TABLE access_notifications (
    id            bigserial PRIMARY KEY,
    account       text NOT NULL,
    kind          text NOT NULL,
    payload       jsonb NOT NULL,
    audit_seq     bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);
CREATE INDEX access_notifications_pending ON access_notifications (account) WHERE delivered_at IS NULL;
