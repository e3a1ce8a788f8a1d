// Package access decides who may do what with a study, and keeps the
// audit log.
//
// Decisions (Authorizer.Decide) come from an in-memory cache of the
// tables the chain watcher derives (package watcher): record tokens and
// their current holders, grants, and which organisation each issuer
// belongs to (org_issuers). The cache loads at start and is invalidated
// through PostgreSQL LISTEN/NOTIFY on Channel, which the watcher signals
// in the same transaction as its rows; Postgres stays the truth, and a
// cache that lost its notification connection denies until it has
// reloaded. QueryFilter turns the same rules into an SQL condition so
// that QIDO-RS and C-FIND filter in the database.
//
// The rules (evaluate; TestMatrix is the table):
//   - the current holder of the study's record token: query, retrieve,
//     metadata, grant, revoke;
//   - a grantee with an unexpired grant written by the current holder:
//     query (scope bit 1), retrieve (bit 2), metadata (either);
//   - staff of the issuing organisation (org_issuers, or studies.org_id
//     for studies not minted yet): issuer_admin query, metadata, delete;
//     clinician and technologist query, retrieve, metadata; auditor query
//     and metadata only;
//   - break-glass: any clinician with a reason; audited synchronously and
//     a notification queued for the holder (access_notifications).
//
// Everything else is denied with the same Decision whether or not the
// study exists, so a caller cannot probe for other patients' studies.
//
// The audit log (table audit_log, db/migrations/0201_access.sql) records
// every decision, retrieval, grant change, admin action and chain event.
// Rows are hash-chained: each stores sha256(prev_hash || CanonicalBytes).
// Appends serialise on a transaction-scoped advisory lock (AppendTx) and
// go through one batching writer per process (Auditor); VerifyAudit finds
// modified, deleted and reordered rows. Entries export as FHIR R4
// AuditEvent and as DICOM audit messages (PS3.15 A.5).
package access
