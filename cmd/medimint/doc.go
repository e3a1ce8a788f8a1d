// Command medimint runs the Medimint gateway and its tools.
//
// Usage:
//
//	medimint serve     run the gateway until SIGINT/SIGTERM: gated DICOMweb and
//	                   DIMSE, the portal (/) and its API (/api), study completion,
//	                   the chain worker and the ledger watcher
//	medimint migrate   create the database if missing and apply the schema
//	medimint watcher   run | rebuild: follow the ledger apart from serve, or replay it
//	medimint audit     verify | export -format fhir|dicom: the audit log
//	medimint devnet    run the embedded Stellar devnet (-addr, -state, -interval)
//	medimint wallet    new | derive -n N | show: keys and the deployment's accounts
//	medimint keys      status | rotate -new-kek FILE: KEK rotation without re-encrypting data
//	medimint version   print version and commit
//	medimint help      print this help
//
// Configuration comes from the environment; see package config and the
// README.
package main
