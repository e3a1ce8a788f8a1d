// Package envelope owns envelope encryption of study data at rest.
//
// Each study has its own 32-byte data encryption key (DEK). Objects are
// encrypted with AES-256-GCM in fixed-size chunks using the STREAM
// construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
// Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015):
// every chunk's nonce is a random per-object prefix, a 32-bit big-endian
// chunk counter and a final-chunk flag. Reordered, duplicated, truncated or
// extended ciphertext therefore fails authentication, as does a ciphertext
// moved to another object, because the object's identity (the caller's aad)
// and the header are authenticated with every chunk.
//
// Ciphertext layout:
//
//	header:  magic "MMEV" | version (1) | chunk size (uint32 BE) | nonce prefix (7)
//	chunks:  AES-GCM(chunk_i) || tag (16), chunk_i = chunk size bytes of
//	         plaintext, except the last, which holds 0..chunk size bytes
//	nonce_i: nonce prefix | i (uint32 BE) | 1 if last else 0
//	aad:     header || object aad
//
// DEKs are stored only wrapped by a key-encryption key through a
// KeyWrapper: LocalKEK (a key file) or KMS (AWS KMS or a compatible
// service). Rewrap rotates the KEK without touching the data.
package envelope
