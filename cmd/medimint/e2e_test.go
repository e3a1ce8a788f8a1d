package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/internal/proctest"
	"github.com/medimint/medimint/wallet"
)

// requireTool skips (or, with MEDIMINT_REQUIRE_TOOLS, fails) without tool.
func requireTool(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (MEDIMINT_REQUIRE_TOOLS is set): %v", tool, err)
		}
		t.Skipf("%s not installed (apt-get install -y dcmtk): %v", tool, err)
	}
}

// startServer builds and starts `medimint serve` with env added.
func startServer(t *testing.T, env ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, proctest.Build(t, proctest.Medimint), env, "serve")
}

// serveLogWait bounds the wait for a line of serve's log.
const serveLogWait = 2 * time.Minute

// poll runs fn until it reports done; the test's timeout bounds it.
func poll(t *testing.T, what string, fn func() (bool, error)) {
	t.Helper()
	for {
		ok, err := fn()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpDo sends a request and returns status and body.
func httpDo(t *testing.T, method, url, bearer string, body any, accept string) (int, http.Header, []byte) {
	t.Helper()
	resp, b := proctest.Do(t, proctest.JSONRequest(t, method, url, bearer, body, accept))
	return resp.StatusCode, resp.Header, b
}

// dataSet is a Part-10 file's or a data set's bytes after the File Meta
// Information: what DIMSE carries and must come back unchanged.
func dataSet(t *testing.T, b []byte) []byte {
	t.Helper()
	f, err := dicom.ParseBytes(b, dicom.ReadOptions{SkipBulk: true})
	if err != nil {
		t.Fatal(err)
	}
	return b[f.DatasetOffset:]
}

// TestGatedRetrievalEndToEnd is issue 8's flow through the real binary:
// a modality pushes a study with storescu (TCP_NODELAY=1); the study
// completes and is minted on the embedded devnet to the patient's
// custodial account; the watcher records the token; the patient signs in
// with a password through /api and grants a clinician of another
// organisation; the clinician's WADO-RS retrieve returns the bytes sent;
// the patient revokes and the clinician's WADO-RS is denied (404, as for
// a study that does not exist). It reports the revocation latency from
// the close of the revoke's ledger to the first denied WADO-RS request.
func TestGatedRetrievalEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, mints on the devnet")
	}
	requireTool(t, "storescu")
	ctx := context.Background()
	pool := dbtest.New(t)
	dataDir := t.TempDir()
	s := startServer(t, "DATABASE_URL="+pool.Config().ConnString(), "MEDIMINT_HTTP_ADDR=127.0.0.1:0",
		"MEDIMINT_DIMSE_ADDR=127.0.0.1:0", "MEDIMINT_DEVNET_ADDR=127.0.0.1:0", "MEDIMINT_DATA_DIR="+dataDir,
		"MEDIMINT_KEK_FILE="+filepath.Join(dataDir, "kek"), "MEDIMINT_CHANNELS=2", "MEDIMINT_LOG_LEVEL=info", "HORIZON_URL=",
		"MEDIMINT_ORG_ID=org1", "MEDIMINT_AE_ALLOWLIST=MODALITY=org1", "MEDIMINT_STUDY_QUIET=1s", "MEDIMINT_PUBLIC_URL=")
	httpAddr := s.WaitLog(t, regexp.MustCompile(`gateway listening"? addr=(\S+)`), serveLogWait)[1]
	dimseAddr := s.WaitLog(t, regexp.MustCompile(`DIMSE listening"? addr=(\S+)`), serveLogWait)[1]
	apiKey := s.WaitLog(t, regexp.MustCompile(`API key\s+(mmk_\S+)`), serveLogWait)[1]
	horizon := s.WaitLog(t, regexp.MustCompile(`chain ready.* horizon=(\S+)`), serveLogWait)[1]
	base := "http://" + httpAddr
	dw := base + "/dicom-web"
	if apiKey == "" {
		t.Fatal("no bootstrap API key printed")
	}

	// The modality pushes the study.
	const sample = "../../../shared/dicom-samples/pydicom/CT_small.dcm"
	input, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dicom.ParseBytes(input, dicom.ReadOptions{SkipBulk: true})
	if err != nil {
		t.Fatal(err)
	}
	study := f.Dataset.String(dicom.TagStudyInstanceUID)
	host, port, _ := strings.Cut(dimseAddr, ":")
	push := func(host, port, calledAE string) {
		storescu := exec.Command("storescu", "-aet", "MODALITY", "-aec", calledAE, host, port, sample)
		storescu.Env = append(os.Environ(), "TCP_NODELAY=1")
		if out, err := storescu.CombinedOutput(); err != nil {
			t.Fatalf("storescu: %v\n%s", err, out)
		}
	}
	// dcmtk re-encodes what it sends (group lengths, padding): what went
	// on the wire is what a bit-preserving storescp receives.
	requireTool(t, "storescp")
	sent := proctest.CaptureStore(t, push)
	push(host, port, "MEDIMINT")
	// A caller off the allowlist is refused.
	if out, err := exec.Command("storescu", "-aet", "STRANGER", "-aec", "MEDIMINT", host, port, sample).CombinedOutput(); err == nil {
		t.Errorf("storescu from an AE off the allowlist succeeded:\n%s", out)
	}

	// Completion and mint to the patient's custodial account; the watcher
	// records the token.
	var studyRef, holder, code string
	var hdIndex int32
	poll(t, "mint", func() (bool, error) {
		err := pool.QueryRow(ctx, `SELECT m.study_ref, m.holder, a.hd_index FROM study_bundles b
JOIN minted_records m ON m.study_ref = b.study_ref JOIN patient_accounts a ON a.address = m.holder
WHERE b.study_instance_uid = $1`, study).Scan(&studyRef, &holder, &hdIndex)
		return err == nil, ignoreNoRows(err)
	})
	poll(t, "watcher", func() (bool, error) {
		err := pool.QueryRow(ctx, `SELECT code FROM record_tokens WHERE study_hash = $1 AND holder = $2`, studyRef, holder).Scan(&code)
		return err == nil, ignoreNoRows(err)
	})
	t.Logf("study minted to %s as %s, recorded by the watcher", holder, code)

	// The patient (custodial) and a clinician of another organisation.
	users := authService(t, pool)
	const pw = "correct horse battery staple"
	if err := users.CreateOrg(ctx, "org2", "Other Hospital"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.CreateUser(ctx, auth.NewUser{Email: "patient@example.org", DisplayName: "Pat", Password: pw, Account: holder,
		HDIndex: hdIndex, Memberships: []auth.Membership{{OrgID: "org1", Role: auth.RolePatient}}}); err != nil {
		t.Fatal(err)
	}
	clinician := keypair.MustRandom().Address()
	if _, err := users.CreateUser(ctx, auth.NewUser{Email: "doctor@example.org", DisplayName: "Dr Chen", Password: pw, Account: clinician,
		Memberships: []auth.Membership{{OrgID: "org2", Role: auth.RoleClinician}}}); err != nil {
		t.Fatal(err)
	}
	signIn := func(email string) string {
		code, _, b := httpDo(t, "POST", base+"/api/auth/password", "", map[string]any{"email": email, "password": pw}, "")
		var sess auth.Session
		if code != 200 || json.Unmarshal(b, &sess) != nil || sess.AccessToken == "" {
			t.Fatalf("sign-in %s: %d %s", email, code, b)
		}
		return sess.AccessToken
	}
	patientTok, doctorTok := signIn("patient@example.org"), signIn("doctor@example.org")
	const accept = `multipart/related; type="application/dicom"; transfer-syntax=*`
	retrieve := func() (int, []byte) {
		code, h, b := httpDo(t, "GET", dw+"/studies/"+study, doctorTok, nil, accept)
		if code != 200 {
			return code, b
		}
		_, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := multipart.NewReader(bytes.NewReader(b), params["boundary"]).NextPart()
		if err != nil {
			t.Fatal(err)
		}
		inst, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		return code, inst
	}
	if code, b := retrieve(); code != 404 {
		t.Fatalf("clinician before the grant: %d %.200s", code, b)
	}
	if code, _, b := httpDo(t, "GET", dw+"/studies?StudyInstanceUID="+url.QueryEscape(study), "", nil, "application/dicom+json"); code != 401 {
		t.Errorf("anonymous QIDO: %d %.200s", code, b)
	}

	// The patient grants the clinician through the portal API.
	code2, _, b := httpDo(t, "POST", base+"/api/grants", patientTok, map[string]any{"study_instance_uid": study, "grantee": "doctor@example.org",
		"scope": []string{"retrieve"}, "expires_at": time.Now().Add(time.Hour)}, "")
	if code2 != 200 || !bytes.Contains(b, []byte(`"submitted"`)) {
		t.Fatalf("grant: %d %s", code2, b)
	}
	var got []byte
	poll(t, "clinician's retrieve after the grant", func() (bool, error) {
		code, inst := retrieve()
		got = inst
		return code == 200, nil
	})
	if !bytes.Equal(dataSet(t, got), dataSet(t, sent)) {
		t.Errorf("the clinician's WADO-RS instance differs from what storescu sent (%d vs %d bytes)", len(got), len(sent))
	}

	// The patient revokes; the clinician is denied.
	code3, _, b := httpDo(t, "DELETE", base+"/api/grants/"+code+"/"+clinician, patientTok, nil, "")
	var act struct {
		Status string `json:"status"`
		TxHash string `json:"tx_hash"`
	}
	if code3 != 200 || json.Unmarshal(b, &act) != nil || act.TxHash == "" {
		t.Fatalf("revoke: %d %s", code3, b)
	}
	revoked := time.Now()
	var denied time.Time
	var deniedBody []byte
	for {
		// Back to back, not polled: the figure is the latency.
		code, body := retrieve()
		denied, deniedBody = time.Now(), body
		if code == 404 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !bytes.Contains(deniedBody, []byte("no study "+study)) {
		t.Errorf("denial is not the not-found answer: %s", deniedBody)
	}
	netw := wallet.Network{HorizonURL: horizon, Passphrase: devnet.DefaultPassphrase}
	tx, err := netw.Horizon(ctx).TransactionDetail(act.TxHash)
	if err != nil {
		t.Fatal(err)
	}
	led, err := netw.Horizon(ctx).LedgerDetail(uint32(tx.Ledger))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("revocation latency: %v from the close of ledger %d (%s; whole seconds on chain) to the first denied WADO-RS; %v after the revoke API answered",
		denied.Sub(led.ClosedAt).Round(time.Millisecond), tx.Ledger, led.ClosedAt.Format(time.RFC3339), denied.Sub(revoked).Round(time.Millisecond))

	// The patient still reads their own study; the audit log holds.
	if code, _, b := httpDo(t, "GET", dw+"/studies/"+study+"/metadata", patientTok, nil, "application/dicom+json"); code != 200 {
		t.Errorf("patient's metadata: %d %.200s", code, b)
	}
	s.Terminate(t, time.Minute)
	var out, errb bytes.Buffer
	t.Setenv("DATABASE_URL", pool.Config().ConnString())
	if code := run(ctx, []string{"audit", "verify"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "intact") {
		t.Errorf("audit verify: %d %s %s", code, out.String(), errb.String())
	}
	var denials int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE category = 'decision' AND outcome = 'deny' AND actor LIKE $1`,
		"%"+clinician+"%").Scan(&denials); err != nil || denials < 2 {
		t.Errorf("%d denials of the clinician audited (%v), want at least 2", denials, err)
	}
}

func ignoreNoRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

// authService is auth on the test's pool, to create users as an issuer
// admin would invite them.
func authService(t *testing.T, pool *pgxpool.Pool) *auth.Service {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.New(auth.Config{Pool: pool, Keys: auth.NewKeys("medimint-test", key)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
