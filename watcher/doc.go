// Package watcher follows the Stellar ledger through Horizon and keeps
// Medimint's protocol state in Postgres: the issuers the registry lists,
// record tokens and their current holders (CID, study hash, issuer, mint
// transaction), grants with their life cycle (active, revoked, expired,
// superseded by a transfer, replaced) and access requests with their
// answers. The schema is db/migrations/0200_watcher.sql.
//
// Transactions come from Horizon's /transactions: paged
// (cursor=…&order=asc&limit=200) to catch up at start, after a dropped
// stream and when the stream lags, then streamed (Server-Sent Events) as
// ledgers close. Each batch is interpreted by contracts.Interpret, folded
// with the rules of contracts.Index, and written in one Postgres
// transaction together with the cursor (the last paging token applied),
// the chain entries of the audit log and a NOTIFY on access.Channel. A
// batch only applies if the stored cursor is where its transactions were
// read from, so a crash, a restart, a dropped stream or a second watcher
// can neither skip nor repeat a transaction.
//
// Every row derives from chain data alone (no wall-clock columns), so
// Rebuild — which empties the tables and replays /transactions from the
// start — reproduces exactly what the incremental run wrote.
package watcher
