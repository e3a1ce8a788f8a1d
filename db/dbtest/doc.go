// Package dbtest gives tests a real, freshly migrated PostgreSQL database
// of their own, dropped when the test ends.
//
// The server is the one at MEDIMINT_TEST_PG (an admin URL; default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). When it
// cannot be reached the test is skipped, unless MEDIMINT_REQUIRE_TOOLS is
// set (as in CI and make test), in which case it fails.
package dbtest
