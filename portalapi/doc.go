// Package portalapi owns the HTTP API of the patient portal, mounted under
// /api by the gateway and described in openapi.yaml (OpenAPI 3; a test
// checks it against the registered routes).
//
// It covers sign-in (password, SEP-10, refresh, sign-out, invitations; see
// package auth), the signed-in user's profile, their studies (from the
// instance index and the chain watcher's tables), grants, access
// requests, transfers, an activity timeline from the audit log,
// notifications as Server-Sent Events, clinicians' shared studies and
// viewer links, and issuer admins' ingest status, modality (AE) and staff
// management.
//
// Chain actions are built with package contracts. For custodial users the
// server signs with their derived key and the sponsor fee-bumps; a user
// with their own wallet (Freighter) gets the unsigned transaction and a
// plain-words description of what it does, and sends back the signed
// envelope, which is submitted only if it is exactly the prepared
// transaction. Fees are paid by the sponsor and never shown.
//
// Handlers stay thin: the SQL they need is here, the rules are in auth,
// contracts and the watcher's tables. Schema: db/migrations/0401_portal.sql.
package portalapi
