//go:build conformance

package conformance

import (
	"net/http"
	"testing"
)

// Access gating through the public interfaces: a viewer without a grant is
// denied, a grant on chain lets them in, a revocation shuts them out again.
// Gating is in serve (gateway 2f62f5b), but driving a grant black-box means
// a patient signing in to the portal API (SEP-10), granting on chain and
// the watcher catching up: these wait for that harness; the gateway's
// TestAuthorizationMatrix covers the decisions over real HTTP meanwhile.
const accessPending = "grant/revoke scenarios need a portal sign-in + on-chain grant driver in this suite (not written yet); gateway's TestAuthorizationMatrix covers them over real HTTP"

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

// TestAccessNoCredentials: without an API key or token every DICOMweb
// service answers 401, and a made-up key is no better.
func TestAccessNoCredentials(t *testing.T) {
	track(t)
	s := startServer(t)
	in := corpus.Instances[0]
	stowCorpus(t, s.DICOMweb(), []Instance{in})
	urls := []struct{ method, path string }{
		{http.MethodGet, "/studies"},
		{http.MethodGet, "/studies/" + in.Study},
		{http.MethodGet, "/studies/" + in.Study + "/metadata"},
		{http.MethodPost, "/studies"},
	}
	for _, key := range []string{"", "mmk_000000000000_not-a-key"} {
		for _, u := range urls {
			req, _ := http.NewRequest(u.method, s.DICOMweb()+u.path, nil)
			// Not through client: it would add the server's key.
			if key != "" {
				req.Header.Set("X-API-Key", key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with key %q: HTTP %d, want 401", u.method, u.path, key, resp.StatusCode)
			}
		}
	}
}
