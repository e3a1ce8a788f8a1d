// Package proctest runs programs — the medimint binary above all — as
// child processes of a test, keeping their standard error as a log the
// test can wait on, and stops them when the test ends.
//
// It serves the end-to-end tests of cmd/medimint and portal, which start
// the real binary the way a user does, and gives them, the conformance
// suite and the gateway's tests one way to send an HTTP request and read
// its answer (JSONRequest, Do).
package proctest
