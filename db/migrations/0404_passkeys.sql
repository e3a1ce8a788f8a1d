-- Passkeys (WebAuthn Level 2) for custodial users (package auth). The
-- user handle given to authenticators is the user's id (16 random bytes,
-- no personal data). credential is the go-webauthn Credential record:
-- public key, flags, signature counter, AAGUID and attestation data.
CREATE TABLE passkeys (
    credential_id  bytea PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           text NOT NULL DEFAULT '',
    credential     jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A registration or sign-in ceremony between its begin and finish: the
-- challenge and what the answer is checked against. Each is used once
-- (deleted on finish) and only until expires_at.
CREATE TABLE passkey_ceremonies (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind        text NOT NULL CHECK (kind IN ('register', 'sign-in')),
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
    session     jsonb NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies (expires_at);
