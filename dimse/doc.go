// Package dimse owns the DICOM network protocol: the Upper Layer of PS3.8
// (PDUs, the association state machine of 9.2, association negotiation) and
// the DIMSE-C services of PS3.7 (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET),
// both as SCP (Server) and as SCU (Client).
//
// The Server hands C-STORE data sets to a StoreHandler as an io.Reader that
// yields the PDV fragments as they arrive: a study is never reassembled in
// memory. C-FIND, C-MOVE and C-GET are served from a FindHandler and a
// RetrieveHandler. DirStore and DirIndex implement them over a directory of
// Part-10 files; the gateway replaces them with the encrypting ingest
// pipeline and the Postgres index.
//
// Command sets are always Implicit VR Little Endian (PS3.7 6.3.1).
package dimse
