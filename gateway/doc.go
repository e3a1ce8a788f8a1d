// Package gateway owns Medimint's HTTP front door: today the operational
// endpoints (/healthz, /readyz, /version) and the server's life cycle;
// DICOMweb (STOW-RS, WADO-RS, QIDO-RS, PS3.18) mounts here as it lands.
//
// Every error leaves as application/problem+json (RFC 9457).
package gateway
