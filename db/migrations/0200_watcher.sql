-- The chain watcher (package watcher): Medimint's protocol state as the
-- ledger says it is, derived from Horizon's /transactions alone (so that
-- watcher.Rebuild reproduces every row), and the cursor it was derived up
-- to, written in the same transaction as the rows.
--
-- No column holds wall-clock time: every time is a ledger close time or a
-- time written on chain, so an incremental run and a rebuild agree.

-- Where the watcher is in the stream, one row per stream. paging_token is
-- Horizon's paging token of the last applied transaction ('' = nothing
-- applied yet: start from the beginning).
CREATE TABLE watcher_cursor (
    stream        text PRIMARY KEY,
    registry      text NOT NULL,
    paging_token  text NOT NULL DEFAULT '',
    ledger        integer NOT NULL DEFAULT 0,
    tx_hash       text NOT NULL DEFAULT ''
);

-- Issuers the registry lists (mm.iss.<issuer>); delisted issuers stay with
-- listed = false.
CREATE TABLE registry_issuers (
    issuer          text PRIMARY KEY,
    home_domain     text NOT NULL,
    listed          boolean NOT NULL,
    added_tx        text NOT NULL,
    added_ledger    integer NOT NULL,
    added_at        timestamptz NOT NULL,
    removed_tx      text,
    removed_ledger  integer,
    removed_at      timestamptz
);

-- Record tokens that count (first recorded mint by a listed issuer) and
-- who holds each now. study_hash is the lower-case hex of the on-chain
-- study hash, the same text as study_bundles.study_ref.
CREATE TABLE record_tokens (
    code                text NOT NULL,
    issuer              text NOT NULL,
    study_hash          text NOT NULL UNIQUE CHECK (study_hash ~ '^[0-9a-f]{64}$'),
    cid                 text NOT NULL,
    holder              text NOT NULL,
    balance_id          text NOT NULL DEFAULT '',  -- set while in escrow
    minted_tx           text NOT NULL,
    minted_ledger       integer NOT NULL,
    minted_at           timestamptz NOT NULL,
    holder_tx           text NOT NULL,             -- transaction that made holder the holder
    holder_ledger       integer NOT NULL,
    PRIMARY KEY (code, issuer)
);
CREATE INDEX record_tokens_holder ON record_tokens (holder);

-- Grants, one row per grant written (mm.g.<code>.<grantee> by its holder).
-- state: active; revoked (deleted before it expired); expired (deleted at
-- or after expiry); superseded (the token was transferred); replaced (the
-- holder wrote new terms). An active row past expires_at no longer
-- counts; it turns expired when the holder cleans it up.
CREATE TABLE grants (
    tx_hash        text NOT NULL,
    op             integer NOT NULL,
    code           text NOT NULL,
    issuer         text NOT NULL,
    holder         text NOT NULL,
    grantee        text NOT NULL,
    scope          smallint NOT NULL,
    expires_at     timestamptz NOT NULL,
    ledger         integer NOT NULL,
    created_at     timestamptz NOT NULL,
    state          text NOT NULL CHECK (state IN ('active', 'revoked', 'expired', 'superseded', 'replaced')),
    ended_tx       text,
    ended_ledger   integer,
    ended_at       timestamptz,
    PRIMARY KEY (tx_hash, op)
);
CREATE UNIQUE INDEX grants_active_key ON grants (holder, code, grantee) WHERE state = 'active';
CREATE INDEX grants_active_token ON grants (code, issuer) WHERE state = 'active';
CREATE INDEX grants_active_grantee ON grants (grantee) WHERE state = 'active';

-- Access requests (ephemeral mm.req. records) and their answers.
CREATE TABLE access_requests (
    request_tx      text PRIMARY KEY,  -- the hash Horizon lists the request under
    op              integer NOT NULL,
    code            text NOT NULL,
    issuer          text NOT NULL,
    requester       text NOT NULL,
    scope           smallint NOT NULL,
    until           timestamptz NOT NULL,
    ledger          integer NOT NULL,
    requested_at    timestamptz NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
    answer_tx       text,
    answered_by     text,
    answered_ledger integer,
    answered_at     timestamptz
);
CREATE INDEX access_requests_token ON access_requests (code, issuer) WHERE state = 'pending';

-- What the chain said that did not count: a second mint, an untrusted
-- issuer, a grant by a non-holder, undecodable protocol data (op = -1
-- when the whole transaction was rejected).
CREATE TABLE watcher_violations (
    tx_hash   text NOT NULL,
    op        integer NOT NULL,
    ledger    integer NOT NULL,
    rule      text NOT NULL,
    detail    text NOT NULL,
    PRIMARY KEY (tx_hash, op)
);
