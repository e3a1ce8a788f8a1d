// Package devnet is Medimint's development and test Stellar network: an
// in-process ledger that speaks enough of Horizon's HTTP API for
// horizonclient and txnbuild from go-stellar-sdk to work against it
// unchanged. Pointing the same code at testnet or pubnet only needs a
// different HORIZON_URL and NETWORK_PASSPHRASE.
//
// It owns the classic ledger state (accounts, trust lines, data entries,
// claimable balances, CAP-33 sponsorships), transaction validation exactly as
// stellar-core orders it (hash, signatures and thresholds, sequence numbers,
// preconditions, fees, CAP-15 fee bumps), operation application with
// stellar-core's result codes encoded as real XDR, ledger closing on a timer,
// the history (ledgers, transactions, operations, effects) with Horizon's
// HAL paging and TOID paging tokens, Server-Sent Event streams, friendbot,
// and optional persistence of the whole state to one file.
//
// It does not model the DEX (offers, path payments), liquidity pools,
// Soroban, inflation, surge pricing or full transaction meta; see README.md.
package devnet
