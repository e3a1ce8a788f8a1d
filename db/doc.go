// Package db owns Medimint's PostgreSQL plumbing: finding a server,
// creating the database, opening a pgx pool and applying the schema.
//
// The schema is plain SQL in migrations/NNNN_name.sql, embedded in the
// binary and applied in order by [Migrate], each file in its own
// transaction, recorded in schema_migrations and serialised across
// processes with an advisory lock. Packages that need tables add a file
// there with the next free number; a file, once applied anywhere, is never
// edited (its checksum is recorded and checked) — add a new one instead.
//
// Tests get a fresh, migrated, throw-away database from package dbtest.
package db
