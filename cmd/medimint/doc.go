// Command medimint runs the Medimint gateway and its tools.
//
// Usage:
//
//	medimint serve     run the gateway (HTTP/DICOMweb) until SIGINT/SIGTERM
//	medimint migrate   create the database if missing and apply the schema
//	medimint devnet    run the embedded Stellar devnet (not implemented yet)
//	medimint wallet    manage keys and accounts (not implemented yet)
//	medimint version   print version and commit
//	medimint help      print this help
//
// Configuration comes from the environment; see package config and the
// README.
package main
