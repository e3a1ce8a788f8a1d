// Package index owns the instance index: the Postgres tables (migration
// db/migrations/0100_index.sql) that record every stored instance with the
// attributes C-FIND and QIDO-RS match on and return, where its encrypted
// blob lives, its precomputed DICOM JSON metadata and its frame offsets.
//
// Find implements the matching rules of PS3.4 C.2.2.2 (single value, UID
// list, wildcard, range, case-insensitive and fuzzy person names) for the
// patient, study, series and instance levels and returns each match as a
// *dicom.Dataset, so that the QIDO-RS JSON and the C-FIND identifiers are
// built from the same answer; person names match on any of their
// component groups (migration 0102). Metadata, Instances and Frames serve
// WADO-RS, C-MOVE and C-GET without reading or parsing instances again;
// study and series metadata come from per-series documents built on first
// use and rebuilt when the series changes (migration 0103).
//
// Insert and Delete run inside the caller's transaction, so that the
// ingest pipeline (package mint) commits index rows together with its own;
// QueueInsert queues Insert's statements on a pgx.Batch so that many
// instances' rows reach the server in one round trip.
package index
