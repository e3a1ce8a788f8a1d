// Package auth owns who is calling: organisations, users and their staff
// roles (patient, clinician, technologist, issuer admin, auditor),
// invitations, sign-in, sessions and API keys (schema
// db/migrations/0400_auth.sql).
//
// Sign-in:
//   - SEP-10 for wallet holders, custodial or bring-your-own-key
//     (Freighter): Service.Challenge / Service.SignInSEP10 through
//     wallet.Authenticator; a signed challenge is accepted once.
//   - Password for custodial patients: argon2id hashes, per-address and
//     per-account throttling in Postgres, lockout after repeated failures.
//
// A session is a short-lived access token (a JWT signed with EdDSA over
// ed25519, RFC 8037) and a refresh token that rotates on every use and is
// stored hashed; presenting a used refresh token revokes its whole
// family. Modalities and PACS authenticate with API keys scoped to an
// organisation, stored hashed.
//
// Middleware authenticates a request (bearer token, session cookie or API
// key) and puts its Subject in the request's context. Cookie sessions are
// protected against CSRF by SameSite=Strict cookies, an Origin check and
// a double-submit token; CORS answers only configured origins.
//
// Passkeys (WebAuthn Level 2, go-webauthn) for custodial users
// (Passkeys, passkey.go; schema db/migrations/0404_passkeys.sql): the
// Relying Party ID is the host of MEDIMINT_PUBLIC_URL and its origin the
// only one accepted; discoverable credentials with user verification,
// "none" attestation; ceremony state is kept server-side and used once;
// a signature counter that goes backwards is refused.
package auth
