// Package wallet owns Medimint's Stellar keys and the accounts that pay for
// everything on chain.
//
// It covers:
//   - SEP-5 key derivation: BIP-39 mnemonic (+ optional passphrase) to
//     ed25519 keys at m/44'/148'/n' (HD).
//   - Custodial accounts: per-user keys derived from the organisation's
//     master seed, which is kept wrapped by a KeyWrapper at rest (Custodian).
//     Bring-your-own-key users sign client-side; for them we only verify and
//     fee-bump (Sponsor.SubmitSigned).
//   - The gasless sponsor (Sponsor): every transaction is wrapped in a
//     CAP-15 fee bump paid by the sponsor, reserves are sponsored with CAP-33
//     sandwiches so users hold 0 XLM, fees follow /fee_stats, and a pool of
//     channel accounts provides sequence numbers for parallel submission
//     with safe resubmission (never double-applied).
//   - SEP-10 web authentication (Authenticator).
//   - Explorer links per network.
//
// Everything talks to Horizon only, so the same code runs against the
// in-process devnet and against testnet/pubnet by changing the Horizon URL
// and network passphrase.
package wallet
