package portal_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/internal/proctest"
	"github.com/medimint/medimint/portal"
)

// The DICOM sample the modality pushes, from the shared samples.
const sample = "../../shared/dicom-samples/pydicom/CT_small.dcm"

// TestPortalEndToEnd is issue 8's story through the UI against the real
// server: it builds and starts `medimint serve` (portal embedded,
// embedded devnet, fresh database and data dir), reads the bootstrap
// admin it prints, pushes a study with storescu, waits for the mint and
// the watcher, then drives the portal in Chromium (e2e/run.mjs): the
// patient signs in and sees the study and its thumbnail, shares it with a
// clinician of another organisation, the clinician signs in and opens it
// (the frame from DICOMweb), the patient revokes, the clinician's view
// fails. Between the UI steps run.mjs hands this test the clinician's
// session token, and the test checks over HTTP that WADO-RS returns the
// bytes storescu sent while the grant stands and 404 once it is revoked.
// The patient also adds a passkey and signs in with it. axe finds no
// violations on any page; screenshots at 390 and 1280 px go to
// e2e/artifacts/. The server is reached as localhost: the passkeys'
// Relying Party ID.
func TestPortalEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server, mints on the devnet, drives Chromium")
	}
	_, errNode := exec.LookPath("node")
	_, errChrome := os.Stat("/usr/bin/chromium")
	_, errSCU := exec.LookPath("storescu")
	_, errSCP := exec.LookPath("storescp")
	need(t, errNode == nil, "node not installed")
	need(t, errChrome == nil, "chromium not installed (scripts/tools-chromium.sh)")
	need(t, errSCU == nil && errSCP == nil, "dcmtk not installed (apt-get install -y dcmtk)")
	need(t, portal.Assets() != nil, "portal not built (npm ci && npm run build in portal/), so not embedded")
	_, errPW := os.Stat("node_modules/playwright-core")
	need(t, errPW == nil, "portal node_modules missing (npm ci in portal/)")

	// Every wait below is bounded by this one deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	pool := dbtest.New(t)
	dataDir := t.TempDir()
	port := freePort(t)
	base := "http://localhost:" + port
	start := time.Now()
	s := startServer(t, "DATABASE_URL="+pool.Config().ConnString(), "MEDIMINT_HTTP_ADDR=127.0.0.1:"+port,
		"MEDIMINT_DIMSE_ADDR=127.0.0.1:0", "MEDIMINT_DEVNET_ADDR=127.0.0.1:0", "MEDIMINT_DATA_DIR="+dataDir,
		"MEDIMINT_KEK_FILE="+filepath.Join(dataDir, "kek"), "MEDIMINT_CHANNELS=2", "MEDIMINT_LOG_LEVEL=info", "HORIZON_URL=",
		"MEDIMINT_ORG_ID=org1", "MEDIMINT_AE_ALLOWLIST=MODALITY=org1", "MEDIMINT_STUDY_QUIET=1s",
		"MEDIMINT_PUBLIC_URL="+base, "MEDIMINT_SMTP_ADDR=")
	t.Logf("built medimint in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	waitLog(ctx, t, s, regexp.MustCompile(`gateway listening`))
	dimseAddr := waitLog(ctx, t, s, regexp.MustCompile(`DIMSE listening"? addr=(\S+)`))[1]
	admin := waitLog(ctx, t, s, regexp.MustCompile(`e-mail (\S+)\s+password (\S+)`))
	apiKey := waitLog(ctx, t, s, regexp.MustCompile(`API key\s+(mmk_\S+)`))[1]
	waitLog(ctx, t, s, regexp.MustCompile(`chain ready`))
	t.Logf("serve up, chain set up on the devnet in %v", time.Since(start).Round(time.Millisecond))
	dw := base + "/dicom-web"

	// The bootstrap API key opens DICOMweb; nothing does anonymously.
	for key, want := range map[string]int{apiKey: http.StatusOK, "": http.StatusUnauthorized} {
		req, _ := http.NewRequestWithContext(ctx, "GET", dw+"/studies", nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("QIDO-RS with API key %v: %d, want %d", key != "", resp.StatusCode, want)
		}
	}

	// The modality pushes the study; what went on the wire is what a
	// bit-preserving storescp receives.
	input, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dicom.ParseBytes(input, dicom.ReadOptions{SkipBulk: true})
	if err != nil {
		t.Fatal(err)
	}
	study := f.Dataset.String(dicom.TagStudyInstanceUID)
	push := func(host, port, calledAE string) {
		storescu := exec.CommandContext(ctx, "storescu", "-aet", "MODALITY", "-aec", calledAE, host, port, sample)
		storescu.Env = append(os.Environ(), "TCP_NODELAY=1")
		if out, err := storescu.CombinedOutput(); err != nil {
			t.Fatalf("storescu: %v\n%s", err, out)
		}
	}
	sent := proctest.CaptureStore(t, push)
	host, dport, _ := strings.Cut(dimseAddr, ":")
	pushed := time.Now()
	push(host, dport, "MEDIMINT")

	// Completion, mint to the patient's custodial account, the watcher's
	// record of the token.
	var studyRef, holder string
	var hdIndex int32
	poll(ctx, t, "mint", func() (bool, error) {
		err := pool.QueryRow(ctx, `SELECT m.study_ref, m.holder, a.hd_index FROM study_bundles b
JOIN minted_records m ON m.study_ref = b.study_ref JOIN patient_accounts a ON a.address = m.holder
WHERE b.study_instance_uid = $1`, study).Scan(&studyRef, &holder, &hdIndex)
		return err == nil, ignoreNoRows(err)
	})
	poll(ctx, t, "watcher", func() (bool, error) {
		var code string
		err := pool.QueryRow(ctx, `SELECT code FROM record_tokens WHERE study_hash = $1 AND holder = $2`, studyRef, holder).Scan(&code)
		return err == nil, ignoreNoRows(err)
	})
	t.Logf("pushed, minted to %s and recorded by the watcher in %v", holder, time.Since(pushed).Round(time.Millisecond))

	// The patient, custodial on the minted account, and a clinician of
	// another organisation: users as an issuer admin's tools create them.
	users := authService(t, pool)
	const pw = "correct horse battery staple"
	if err := users.CreateOrg(ctx, "org2", "Other Hospital"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.CreateUser(ctx, auth.NewUser{Email: "patient@example.org", DisplayName: "Pat Patient", Password: pw, Account: holder,
		HDIndex: hdIndex, Memberships: []auth.Membership{{OrgID: "org1", Role: auth.RolePatient}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.CreateUser(ctx, auth.NewUser{Email: "doctor@example.org", DisplayName: "Dr Chen", Password: pw,
		Account: keypair.MustRandom().Address(), Memberships: []auth.Membership{{OrgID: "org2", Role: auth.RoleClinician}}}); err != nil {
		t.Fatal(err)
	}

	// run.mjs drives the UI and stops at two checkpoints, printing
	// "@@<step> <clinician's access token>" and waiting for "ok" or
	// "fail <why>" on its stdin.
	node := exec.CommandContext(ctx, "node", "e2e/run.mjs")
	node.Env = append(os.Environ(), "BASE_URL="+base, "STUDY_UID="+study,
		"PATIENT_EMAIL=patient@example.org", "CLINICIAN_EMAIL=doctor@example.org", "PASSWORD="+pw,
		"ADMIN_EMAIL="+admin[1], "ADMIN_PASSWORD="+admin[2], "ACCESS_COOKIE="+auth.CookieAccess)
	node.Stderr = os.Stderr
	// Its own process group, so that a failing test kills Chromium with it.
	node.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	node.Cancel = func() error { return syscall.Kill(-node.Process.Pid, syscall.SIGKILL) }
	node.WaitDelay = 5 * time.Second
	stdin, err := node.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ui := time.Now()
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	checkpoints := map[string]func(token string) error{
		"granted": func(token string) error {
			code, got := wadoInstance(ctx, t, dw+"/studies/"+study, token)
			if code != http.StatusOK {
				return fmt.Errorf("clinician's WADO-RS with the grant: %d %.200s", code, got)
			}
			if !equalDataSets(t, got, sent) {
				return fmt.Errorf("the clinician's WADO-RS instance differs from what storescu sent (%d vs %d bytes)", len(got), len(sent))
			}
			return nil
		},
		"revoked": func(token string) error {
			code, body := wadoInstance(ctx, t, dw+"/studies/"+study, token)
			if code != http.StatusNotFound || !strings.Contains(string(body), "no study "+study) {
				return fmt.Errorf("clinician's WADO-RS after the revocation: %d %.200s, want the not-found answer", code, body)
			}
			return nil
		},
	}
	seen := map[string]bool{}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		step, token, ok := strings.Cut(strings.TrimPrefix(line, "@@"), " ")
		check := checkpoints[step]
		if !strings.HasPrefix(line, "@@") || !ok || check == nil {
			fmt.Println(line)
			continue
		}
		seen[step] = true
		answer := "ok"
		if err := check(token); err != nil {
			t.Errorf("%s: %v", step, err)
			answer = "fail " + strings.ReplaceAll(err.Error(), "\n", " ")
		} else {
			fmt.Printf("ok   WADO-RS over HTTP with the clinician's token (%s)\n", step)
		}
		if _, err := io.WriteString(stdin, answer+"\n"); err != nil {
			t.Errorf("answering run.mjs: %v", err)
		}
	}
	stdin.Close()
	if err := node.Wait(); err != nil {
		t.Errorf("e2e/run.mjs: %v", err)
	}
	for step := range checkpoints {
		if !seen[step] {
			t.Errorf("run.mjs never reached the %q checkpoint", step)
		}
	}
	t.Logf("the UI flow took %v", time.Since(ui).Round(time.Millisecond))
	// The server is killed by startServer's cleanup, not stopped with
	// SIGTERM: its graceful stop (cmd/medimint's e2e checks it) takes ~29 s
	// after this flow, a third of the test's time.
}

// authService is auth on the test's pool, to create users as an issuer
// admin would invite them.
func authService(t *testing.T, pool *pgxpool.Pool) *auth.Service {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.New(auth.Config{Pool: pool, Keys: auth.NewKeys("medimint-test", key)})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
