// Package chain mints on ingest: it is the worker between the ingest
// pipeline's outbox and the Stellar ledger, and it sets the
// organisation's accounts up on whichever network it is pointed at.
//
// It owns:
//
//   - The master secret (Master, OpenMaster): a 24-word BIP-39 mnemonic
//     generated on first start and kept only sealed under the KEK or KMS
//     key (Sealer) in MEDIMINT_DATA_DIR/master-mnemonic.sealed. Every key
//     the organisation uses derives from it by SEP-5: sponsor (index 0),
//     issuer (1), registry (2), governors (10+k), channels (100+k),
//     patients (1000+n).
//   - Bootstrap: idempotently creates and configures the sponsor (funded by
//     friendbot on devnet/testnet; on pubnet the operator funds it), the
//     channel accounts, the multisig registry, the organisation's issuer
//     (AUTH_REQUIRED, AUTH_REVOCABLE, home domain) and its listing in the
//     registry (contracts' builders, wallet.Sponsor).
//   - Custodial patient accounts (Patients, table patient_accounts):
//     (organisation, salted patient reference from mint.MintJob.PatientRef)
//     to a SEP-5 index and address. No PHI: the reference is an HMAC under
//     the deployment's secret salt. Accounts hold 0 XLM; the sponsor pays
//     their reserves and every fee.
//   - The Minter: workers (one per channel account) claim mint jobs in
//     batches, resolve each patient's account (created inside the mint
//     transaction when new), lay the mints out as few transactions as
//     Stellar's limits allow (contracts.MintBatches, <= 100 operations),
//     submit them fee-bumped through the sponsor, and record token, holder,
//     transaction, ledger and explorer link in minted_records before
//     finishing the jobs.
//
// Never minting twice: before each submission the studies are written to
// mint_attempts with the time; a study found there on a later attempt is
// first looked for on chain (the issuer's transactions, read through
// contracts.Interpret, as the Index would) and recorded if minted, and is
// minted again only after a ledger has closed past the earlier
// transaction's time bounds, when that transaction can no longer apply.
// The sponsor makes one build per submission (wallet.SponsorConfig
// MaxAttempts 1) so no envelope outlives that window. On chain, the
// one-stroop trustline limit makes a second direct mint to the same
// patient fail anyway.
//
// Networks: with HORIZON_URL empty, `medimint serve` runs the devnet
// in-process (package devnet, state in MEDIMINT_DATA_DIR/devnet.state) on
// a loopback port. Testnet is configuration only:
//
//	HORIZON_URL=https://horizon-testnet.stellar.org
//	NETWORK_PASSPHRASE='Test SDF Network ; September 2015'
//	FRIENDBOT_URL=https://friendbot.stellar.org
//
// On pubnet leave FRIENDBOT_URL empty and fund the sponsor address that
// `medimint wallet show` prints (Bootstrap's error names the amount).
// Minted records and on-chain account facts are kept per network
// passphrase.
//
// Schema: db/migrations/0300_chain.sql.
package chain
