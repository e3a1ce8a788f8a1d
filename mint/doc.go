// Package mint owns the ingest pipeline and what follows it: one path by
// which both C-STORE (StoreDataset) and STOW-RS (StorePart10) store an
// instance, retrieval that decrypts on the fly, the transactional outbox,
// study completion (publishing the study's ciphertext bundle and PHI-free
// NFT metadata to IPFS and queueing exactly one mint job per completion),
// and the sweeper that removes blobs no index row refers to.
//
// An instance is stored thus: the header (up to the Series Instance UID)
// is buffered and parsed for its UIDs; the study's data encryption key is
// fetched or created (one per study, agreed on through Postgres); then the
// full parse reads the whole Part-10 stream once, every byte it reads
// being hashed and encrypted (mint/envelope) as it goes by, and the
// ciphertext is hashed and handed through a bounded pipe to the blob
// store's Put under a random key. The index rows (package index), the
// precomputed metadata and a "study touched" outbox row are committed by
// the group committer: stores that arrive while a transaction is in
// flight share the next one (rows sent in one round trip while the blobs'
// fsyncs run, one WAL flush), and COMMIT waits until each member's blob is
// durable. Only after that commit does Store return, so the caller
// acknowledges (C-STORE Success, STOW 200) only durable instances. A
// failed store leaves no row and deletes its blob; blobs orphaned by a
// crash between Put and commit are removed by Sweep after a grace period.
//
// Schema: db/migrations/0110_mint.sql.
package mint
