// Package pinning owns content addressing and pinning of what the ingest
// pipeline publishes to IPFS: study ciphertext and PHI-free metadata.
//
// A Pinner adds bytes and returns their CID exactly as Kubo's
// `ipfs add --cid-version=1` computes it (UnixFS file, fixed-size 256 KiB
// chunks as raw leaves, balanced DAG of at most 174 links per dag-pb node,
// sha2-256), so the same bytes have the same CID whichever Pinner stored
// them. Local (the default) keeps pinned content in a directory; Kubo
// delegates to an IPFS node's RPC API.
package pinning
