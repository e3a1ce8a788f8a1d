package portal_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/gateway"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/chain"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/mint/pinning"
	"github.com/medimint/medimint/portal"
	"github.com/medimint/medimint/portalapi"
	"github.com/medimint/medimint/wallet"
	"github.com/medimint/medimint/watcher"
)

// need skips (or, with MEDIMINT_REQUIRE_TOOLS, fails) when a tool is
// missing.
func need(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s (MEDIMINT_REQUIRE_TOOLS is set)", what)
	}
	t.Skip(what)
}

// TestPortalEndToEnd runs the gateway with the portal on a devnet and
// Postgres, then drives the portal in Chromium (e2e/run.mjs): a patient
// signs in and sees their study, shares it with a clinician, the
// clinician sees it, the patient revokes, the clinician is refused; the
// patient adds a passkey (CDP virtual authenticator) and signs in with it,
// and sees the new-study notification; axe finds no accessibility
// violations on any page. The server is reached as localhost: the
// passkeys' Relying Party ID.
func TestPortalEndToEnd(t *testing.T) {
	_, errNode := exec.LookPath("node")
	_, errChrome := os.Stat("/usr/bin/chromium")
	need(t, errNode == nil, "node not installed")
	need(t, errChrome == nil, "chromium not installed (scripts/tools-chromium.sh)")
	need(t, portal.Assets() != nil, "portal not built (npm ci && npm run build in portal/), so not embedded")
	_, errPW := os.Stat("node_modules/playwright-core")
	need(t, errPW == nil, "portal node_modules missing (npm ci in portal/)")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := dbtest.New(t)
	hz, dn := devnettest.Start(t)
	net := wallet.Network{HorizonURL: hz, Passphrase: dn.Passphrase(), FriendbotURL: hz + "/friendbot"}
	dir := t.TempDir()

	kek, err := envelope.OpenLocalKEK(filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("portal e2e master seed"))
	sealed, err := wallet.SealSeed(ctx, kek, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	custodian := wallet.NewCustodian(kek, sealed)
	dep, err := chain.Bootstrap(ctx, chain.BootstrapConfig{Network: net, Custodian: custodian, HomeDomain: "medimint.test",
		Channels: 2, Governors: 1, Threshold: 1, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}

	// A real study through the ingest pipeline.
	blobs, err := blobstore.NewFS(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	pins, err := pinning.NewLocal(filepath.Join(dir, "ipfs"))
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := mint.New(mint.Config{Pool: pool, Blobs: blobs, Keys: kek, Pinner: pins})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../../shared/dicom-samples/pydicom/CT_small.dcm")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pipe.StorePart10(ctx, mint.Source{OrgID: "org1", Transport: "test"}, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	// Patient and clinician, custodial; the patient's record token minted.
	patientKey, err := custodian.User(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	clinicianKey, err := custodian.User(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dep.Sponsor.CreateAccounts(ctx, patientKey, clinicianKey); err != nil {
		t.Fatal(err)
	}
	studyHash := contracts.StudyHash([]byte("org1 salt"), stored.StudyInstanceUID)
	mh, _ := multihash.Sum([]byte(`{"name":"study"}`), multihash.SHA2_256, -1)
	metaCID := cid.NewCidV1(cid.Raw, mh).String()
	if _, err := pool.Exec(ctx, `INSERT INTO study_bundles (study_instance_uid, outbox_id, study_ref, manifest_cid, metadata_cid, instance_count)
		VALUES ($1, 1, $2, $3, $3, 1)`, stored.StudyInstanceUID, hex.EncodeToString(studyHash[:]), metaCID); err != nil {
		t.Fatal(err)
	}
	drafts, err := contracts.MintBatches(dep.Sponsor.Address(), dep.Issuer.Address(),
		[]contracts.Mint{{StudyHash: studyHash, CID: metaCID, Holder: patientKey.Address()}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range drafts {
		if _, err := dep.Sponsor.Submit(ctx, wallet.Submission{Operations: d.Operations, Signers: []*keypairFull{dep.Issuer, patientKey}}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := watcher.New(watcher.Config{Pool: pool, Network: net, Registry: dep.Registry, MinBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.Run(ctx) }()

	// Sign-in.
	_, key, _ := ed25519Key()
	authSvc, err := auth.New(auth.Config{Pool: pool, Keys: auth.NewKeys("medimint", key)})
	if err != nil {
		t.Fatal(err)
	}
	const pw = "correct horse battery"
	if _, err := authSvc.CreateUser(ctx, auth.NewUser{Email: "patient@example.org", DisplayName: "Pat Patient", Password: pw,
		Account: patientKey.Address(), HDIndex: int32(wallet.UserIndexBase), Memberships: []auth.Membership{{OrgID: "org1", Role: auth.RolePatient}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := authSvc.CreateUser(ctx, auth.NewUser{Email: "doctor@example.org", DisplayName: "Dr Chen", Password: pw,
		Account: clinicianKey.Address(), HDIndex: int32(wallet.UserIndexBase + 1), Memberships: []auth.Membership{{OrgID: "org1", Role: auth.RoleClinician}}}); err != nil {
		t.Fatal(err)
	}
	ln, err := net0()
	if err != nil {
		t.Fatal(err)
	}
	// localhost, not 127.0.0.1: a WebAuthn Relying Party ID is a domain.
	base := "http://localhost:" + portOf(ln)
	passkeys, err := auth.NewPasskeys(authSvc, auth.PasskeyConfig{PublicURL: base})
	if err != nil {
		t.Fatal(err)
	}
	api, err := portalapi.New(portalapi.Config{Auth: authSvc, Pool: pool, Network: net, Sponsor: dep.Sponsor, Custodian: custodian,
		InsecureCookies: true, Passkeys: passkeys})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = api.Run(ctx) }()
	gw := gateway.New(gateway.Config{}, gateway.Deps{DB: pool, Pipeline: pipe, Mount: func(r fiber.Router) {
		api.Mount(r.Group("/api"))
		portal.Mount(r, portal.Assets(), "/api", "/dicom-web")
	}})
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-served
	}()

	cmd := exec.CommandContext(ctx, "node", "e2e/run.mjs")
	cmd.Env = append(os.Environ(), "BASE_URL="+base, "STUDY_UID="+stored.StudyInstanceUID,
		"PATIENT_EMAIL=patient@example.org", "CLINICIAN_EMAIL=doctor@example.org", "PASSWORD="+pw)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("e2e/run.mjs: %v", err)
	}
}

func net0() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func portOf(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
