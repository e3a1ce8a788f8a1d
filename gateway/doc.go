// Package gateway owns Medimint's HTTP front door: the DICOMweb services
// of PS3.18 (STOW-RS, WADO-RS, QIDO-RS) on Fiber, mounted under a
// configurable base path (default /dicom-web) in the standard's URL
// layout so that OHIF, dicomweb-client and Orthanc's DICOMweb client work
// unmodified; the operational endpoints (/healthz, /readyz, /version,
// /metrics); and the server's life cycle.
//
// Instances are stored and read through the ingest pipeline (package
// mint) and found through the instance index (package index):
//
//   - STOW-RS reads the request body as a stream, part by part, and hands
//     each part to the pipeline as it arrives; nothing is acknowledged
//     before it is durable, and an instance that fails leaves nothing.
//   - WADO-RS streams instances, frames and bulk data out of the blob
//     store through decryption (never a whole study in memory), transcodes
//     only between uncompressed transfer syntaxes, and serves /metadata
//     from the DICOM JSON precomputed at ingest.
//   - QIDO-RS is the index's PS3.4 C.2.2.2 matching.
//
// Every error leaves as application/problem+json (RFC 9457) carrying the
// DICOM status where there is one and the request's X-Request-ID.
package gateway
