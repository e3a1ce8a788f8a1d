// Package conformance owns Medimint's conformance suite and its DICOM
// conformance statement (CONFORMANCE.md at the repository root).
//
// The suite (build tag conformance: go test -tags conformance
// ./conformance/...) is black-box: it builds the real binary, starts it as
// a user does (medimint serve, configured by environment variables, with a
// fresh database and data directory) and drives it only through its public
// interfaces, with real peers: dcmtk's echoscu, storescu, findscu, movescu
// and getscu; Orthanc, started on loopback, pushing to Medimint over DIMSE
// and STOW-RS and retrieving from it over WADO-RS; and dicomweb-client, the
// library OHIF uses; and a patient and a clinician through the portal API
// (invitation, password and SEP-10 sign-in, grant and revocation on the
// embedded devnet) for access gating. Everything retrieved is compared byte
// for byte with the corpus that mkcorpus.sh builds, and the data directory
// is scanned for the PHI markers of the corpus's marker study.
//
// statement_test.go, in the normal test suite, keeps CONFORMANCE.md's SOP
// class and transfer syntax tables equal to the code's registries
// (go test ./conformance -run Statement -update rewrites them).
package conformance
