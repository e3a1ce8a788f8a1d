//go:build conformance

package conformance

import "testing"

// Access gating through the public interfaces: a viewer without a grant is
// denied, a grant on chain lets them in, a revocation shuts them out again.
// They wait for the serve binary to expose viewer authentication (SEP-10
// sign-in) and grants on its HTTP API; the access package's own tests
// cover the decisions in-process meanwhile.
const accessPending = "access gating is not exposed by medimint serve yet (viewer sign-in and grant endpoints); covered in-process by access's own tests"

func TestAccessNoGrantDenied(t *testing.T) {
	track(t)
	t.Skip(accessPending)
}

func TestAccessGrantAllows(t *testing.T) {
	track(t)
	t.Skip(accessPending)
}

func TestAccessRevokeDenies(t *testing.T) {
	track(t)
	t.Skip(accessPending)
}
