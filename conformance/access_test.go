//go:build conformance

package conformance

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medimint/medimint/internal/proctest"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// TestAccessGrants is access gating through the public interfaces only,
// as a hospital, a patient and a clinician meet it: the corpus's study K
// arrives over STOW-RS and is minted on the embedded devnet; the
// organisation's admin (the credentials printed at first start) invites
// the study's patient through the portal API; the patient accepts and
// signs in; a clinician signs in with a Stellar wallet (SEP-10) and is
// denied the study; the patient grants it on chain and the clinician
// retrieves it byte for byte; the patient revokes and the clinician is
// denied again. Denial looks like an unknown study (404).
func TestAccessGrants(t *testing.T) {
	track(t)
	s := startServer(t, "MEDIMINT_STUDY_QUIET=1s")
	api := s.HTTP + "/api"
	m := adminLine.FindStringSubmatch(s.Log())
	if m == nil {
		t.Fatalf("no issuer admin credentials in the first start's output:\n%s", s.Log())
	}
	admin := signIn(t, api, m[1], m[2])

	study := corpusStudy("K")
	stowCorpus(t, s.DICOMweb(), corpus.Study(study))
	var patientRef string
	if err := waitFor(2*time.Minute, 200*time.Millisecond, func() (bool, error) {
		var rows []struct {
			Study      string `json:"study_instance_uid"`
			Stage      string `json:"stage"`
			PatientRef string `json:"patient_ref"`
		}
		if code, b := apiCall(t, "GET", api+"/admin/ingest", admin, nil); code != http.StatusOK || json.Unmarshal(b, &rows) != nil {
			return false, fmt.Errorf("admin ingest list: HTTP %d: %s", code, b)
		}
		for _, r := range rows {
			if r.Study == study && r.Stage == "minted" {
				patientRef = r.PatientRef
				return true, nil
			}
		}
		return false, nil
	}); err != nil || patientRef == "" {
		t.Fatalf("study %s not minted with a patient reference: %v", study, err)
	}

	// The admin invites the study's patient, who accepts and signs in.
	const patientEmail, patientPW = "patient-k@conformance.example", "a long enough password"
	code, b := apiCall(t, "POST", api+"/admin/invitations", admin, map[string]any{"email": patientEmail, "role": "patient", "patient_ref": patientRef})
	var inv struct{ Token string }
	if code != http.StatusCreated || json.Unmarshal(b, &inv) != nil || inv.Token == "" {
		t.Fatalf("invite the patient: HTTP %d: %s", code, b)
	}
	if code, b := apiCall(t, "POST", api+"/auth/invitations/accept", "", map[string]any{"token": inv.Token, "password": patientPW, "display_name": "Patient K"}); code != http.StatusCreated {
		t.Fatalf("accept the invitation: HTTP %d: %s", code, b)
	}
	patient := signIn(t, api, patientEmail, patientPW)

	// The clinician's wallet signs in with SEP-10: an account the server
	// has never seen, with no organisation.
	wallet := keypair.MustRandom()
	clinician := signInSEP10(t, api, wallet)
	retrieve := func() (int, [][]byte) { return retrieveAs(t, s.DICOMweb()+"/studies/"+study, clinician) }

	t.Run("NoGrantDenied", func(t *testing.T) {
		track(t)
		if code, _ := retrieve(); code != http.StatusNotFound {
			t.Errorf("clinician's WADO-RS without a grant: HTTP %d, want 404", code)
		}
		if code, b := apiCall(t, "GET", s.DICOMweb()+"/studies?StudyInstanceUID="+study, clinician, nil); code != http.StatusOK && code != http.StatusNoContent || strings.Contains(string(b), study) {
			t.Errorf("clinician's QIDO-RS without a grant: HTTP %d, found the study: %v", code, strings.Contains(string(b), study))
		}
		// The patient reads their own study.
		if code, parts := retrieveAs(t, s.DICOMweb()+"/studies/"+study, patient); code != http.StatusOK || len(parts) != len(corpus.Study(study)) {
			t.Errorf("patient's own WADO-RS: HTTP %d, %d parts", code, len(parts))
		}
	})

	var tokenCode string
	t.Run("GrantAllows", func(t *testing.T) {
		track(t)
		code, b := apiCall(t, "POST", api+"/grants", patient, map[string]any{"study_instance_uid": study, "grantee": wallet.Address(),
			"scope": []string{"query", "retrieve"}, "expires_at": time.Now().Add(time.Hour)})
		if code != http.StatusOK {
			t.Fatalf("grant: HTTP %d: %s", code, b)
		}
		var parts [][]byte
		if err := waitFor(time.Minute, 100*time.Millisecond, func() (bool, error) {
			code, parts = retrieve()
			return code == http.StatusOK, nil
		}); err != nil {
			t.Fatalf("clinician's WADO-RS after the grant: still HTTP %d", code)
		}
		seen := map[string]bool{}
		for i, part := range parts {
			if in, ok := compareRetrieved(t, part, fmt.Sprintf("granted WADO-RS part %d", i), fileDataset); ok {
				seen[in.SOP] = true
			}
		}
		checkComplete(t, []string{study}, seen, "granted WADO-RS")
		var grants []struct {
			Token, Grantee, State string
			Study                 string `json:"study_instance_uid"`
		}
		if code, b := apiCall(t, "GET", api+"/grants", patient, nil); code != http.StatusOK || json.Unmarshal(b, &grants) != nil {
			t.Fatalf("patient's grants: HTTP %d: %s", code, b)
		}
		for _, g := range grants {
			if g.Study == study && g.Grantee == wallet.Address() && g.State == "active" {
				tokenCode, _, _ = strings.Cut(g.Token, ":") // CODE:ISSUER
			}
		}
		if tokenCode == "" {
			t.Fatalf("the grant is not listed as active: %+v", grants)
		}
	})

	t.Run("RevokeDenies", func(t *testing.T) {
		track(t)
		if tokenCode == "" {
			t.Skip("no grant to revoke")
		}
		if code, b := apiCall(t, "DELETE", api+"/grants/"+tokenCode+"/"+wallet.Address(), patient, nil); code != http.StatusOK {
			t.Fatalf("revoke: HTTP %d: %s", code, b)
		}
		var code int
		if err := waitFor(time.Minute, 100*time.Millisecond, func() (bool, error) {
			code, _ = retrieve()
			return code == http.StatusNotFound, nil
		}); err != nil {
			t.Fatalf("clinician's WADO-RS after the revocation: still HTTP %d", code)
		}
	})
}

// adminLine finds the issuer admin's e-mail and password in the first
// start's output.
var adminLine = regexp.MustCompile(`e-mail (\S+)\s+password (\S+)`)

// apiCall sends a JSON request with a bearer token (none if tok is
// empty) through a client that adds no API key, and returns status and
// body.
func apiCall(t testing.TB, method, u, tok string, body any) (int, []byte) {
	t.Helper()
	resp, b := proctest.Do(t, proctest.JSONRequest(t, method, u, tok, body, ""))
	return resp.StatusCode, b
}

func signIn(t testing.TB, api, email, password string) string {
	t.Helper()
	code, b := apiCall(t, "POST", api+"/auth/password", "", map[string]any{"email": email, "password": password})
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &sess) != nil || sess.AccessToken == "" {
		t.Fatalf("sign in %s: HTTP %d: %s", email, code, b)
	}
	return sess.AccessToken
}

// signInSEP10 signs in as a Stellar account the way a wallet does: fetch
// the challenge, check and sign it, send it back.
func signInSEP10(t testing.TB, api string, kp *keypair.Full) string {
	t.Helper()
	code, b := apiCall(t, "GET", api+"/auth/sep10?account="+kp.Address(), "", nil)
	var ch struct {
		Transaction       string `json:"transaction"`
		NetworkPassphrase string `json:"network_passphrase"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &ch) != nil || ch.Transaction == "" {
		t.Fatalf("SEP-10 challenge: HTTP %d: %s", code, b)
	}
	gtx, err := txnbuild.TransactionFromXDR(ch.Transaction)
	if err != nil {
		t.Fatal(err)
	}
	tx, ok := gtx.Transaction()
	if !ok || tx.SequenceNumber() != 0 || len(tx.Operations()) == 0 {
		t.Fatalf("SEP-10 challenge is not a sequence-0 transaction with operations")
	}
	if tx, err = tx.Sign(ch.NetworkPassphrase, kp); err != nil {
		t.Fatal(err)
	}
	signed, err := tx.Base64()
	if err != nil {
		t.Fatal(err)
	}
	code, b = apiCall(t, "POST", api+"/auth/sep10", "", map[string]any{"transaction": signed})
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &sess) != nil || sess.AccessToken == "" {
		t.Fatalf("SEP-10 sign-in: HTTP %d: %s", code, b)
	}
	return sess.AccessToken
}

// retrieveAs GETs a study as stored with a bearer token; it returns the
// status and, for 200, the parts.
func retrieveAs(t testing.TB, u, tok string) (int, [][]byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", acceptAsStored)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return resp.StatusCode, parts
		}
		if err != nil {
			t.Fatalf("GET %s: multipart: %v", u, err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
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
