// Package contracts is Medimint's on-chain protocol on classic Stellar:
// what the transactions look like (builders) and what successful
// transactions mean (Interpret, Index).
//
// It owns the trusted-issuer registry, record tokens (one per study: a
// per-study asset of an organisation issuer, supply one stroop, minted to
// the patient), the metadata pointer (the CID of PHI-free metadata JSON),
// access grants bound to the current holder, access requests and answers,
// and transfers. PROTOCOL.md specifies the encoding of every data entry,
// memo and operation layout, and the cost model.
//
// The package does no I/O: builders return operations for wallet.Sponsor
// to submit, and Interpret turns a transaction's XDR into events. Nothing
// it writes on chain is PHI: only salted hashes, CIDs, public keys,
// expiries and scope codes.
package contracts
