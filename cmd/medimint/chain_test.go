package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/chain"
	"github.com/medimint/medimint/wallet"
)

// `medimint devnet` serves Horizon and friendbot on a loopback port and
// persists its state when stopped.
func TestDevnetCommand(t *testing.T) {
	state := filepath.Join(t.TempDir(), "devnet.state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"devnet", "-addr", "127.0.0.1:0", "-state", state, "-interval", "50ms"}, io.Discard, pw)
		pw.Close()
	}()
	addrRE := regexp.MustCompile(`devnet listening"? addr=(\S+)`)
	lines := bufio.NewScanner(pr)
	var addr string
	for addr == "" && lines.Scan() {
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("devnet never logged its address")
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	var root struct {
		Passphrase string `json:"network_passphrase"`
	}
	err = json.NewDecoder(resp.Body).Decode(&root)
	resp.Body.Close()
	if err != nil || root.Passphrase != devnet.DefaultPassphrase {
		t.Fatalf("root: %+v %v", root, err)
	}
	net := wallet.Network{HorizonURL: "http://" + addr, Passphrase: root.Passphrase, FriendbotURL: "http://" + addr + "/friendbot"}
	if err := net.Fund(ctx, "GDRXE2BQUC3AZNPVFSCEZ76NJ3WWL25FYFK6RGZGIEKWE4SOOHSUJUJ6"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Fatalf("exit %d", code)
	}
	// The state file has the funded account.
	b, err := os.ReadFile(state)
	if err != nil || !bytes.Contains(b, []byte("GDRXE2BQUC3AZNPVFSCEZ76NJ3WWL25FYFK6RGZGIEKWE4SOOHSUJUJ6")) {
		t.Errorf("state file lacks the funded account (%v)", err)
	}
}

func TestWalletCommands(t *testing.T) {
	ctx := context.Background()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"wallet", "new"}, &out, &errb); code != 0 {
		t.Fatalf("wallet new: %d %s", code, errb.String())
	}
	words := strings.Fields(out.String())
	if len(words) != 24 {
		t.Fatalf("wallet new printed %q", out.String())
	}
	if _, err := wallet.SeedFromMnemonic(strings.Join(words, " "), ""); err != nil {
		t.Fatal(err)
	}

	// SEP-5 test vector 1.
	f := filepath.Join(t.TempDir(), "mnemonic")
	if err := os.WriteFile(f, []byte("illness spike retreat truth genius clock brain pass fit cave bargain toe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(ctx, []string{"wallet", "derive", "-n", "2", "-mnemonic-file", f}, &out, &errb); code != 0 {
		t.Fatalf("wallet derive: %d %s", code, errb.String())
	}
	for _, want := range []string{"m/44'/148'/0'", "GDRXE2BQUC3AZNPVFSCEZ76NJ3WWL25FYFK6RGZGIEKWE4SOOHSUJUJ6", "sponsor",
		"GBAW5XGWORWVFE2XTJYDTLDHXTY2Q2MO73HYCGB3XMFMQ562Q2W2GJQX", "issuer"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("derive output lacks %q:\n%s", want, out.String())
		}
	}

	// show and derive without -mnemonic-file use the deployment's master,
	// which serve creates; here Bootstrap sets it up on a devnet.
	dataDir := t.TempDir()
	kekFile := filepath.Join(t.TempDir(), "kek")
	url, dn := devnettest.Start(t)
	t.Setenv("MEDIMINT_DATA_DIR", dataDir)
	t.Setenv("MEDIMINT_KEK_FILE", kekFile)
	t.Setenv("MEDIMINT_CHANNELS", "2")
	t.Setenv("HORIZON_URL", url)
	t.Setenv("NETWORK_PASSPHRASE", dn.Passphrase())
	errb.Reset()
	if code := run(ctx, []string{"wallet", "show"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no master mnemonic") {
		t.Fatalf("show before any master: %d %q", code, errb.String())
	}
	cfgKeys, err := openKeys(ctx, mustConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := chain.OpenMaster(ctx, filepath.Join(dataDir, chain.MasterFile), cfgKeys)
	if err != nil {
		t.Fatal(err)
	}
	cust, err := m.Custodian(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := chain.Bootstrap(ctx, chain.BootstrapConfig{Network: wallet.Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"},
		Custodian: cust, HomeDomain: "hospital.example", Channels: 2, TxTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(ctx, []string{"wallet", "show"}, &out, &errb); code != 0 {
		t.Fatalf("wallet show: %d %s", code, errb.String())
	}
	for _, want := range []string{d.Sponsor.Address(), d.Issuer.Address(), d.Registry, "channel 1", "0.0000000", "governor 2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("show output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run(ctx, []string{"wallet", "derive", "-n", "1", "-start", "1"}, &out, &errb); code != 0 || !strings.Contains(out.String(), d.Issuer.Address()) {
		t.Errorf("derive from master: %d %q %s", code, out.String(), errb.String())
	}
}

func mustConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The real binary with HORIZON_URL empty: serve runs the devnet, sets the
// organisation up on it and mints queued studies; a restart reuses the
// persisted devnet and the sealed master, and sets nothing up again.
func TestServeMintsOnEmbeddedDevnet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	pool := dbtest.New(t)
	bin := filepath.Join(t.TempDir(), "medimint")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	dataDir, kek := t.TempDir(), filepath.Join(t.TempDir(), "kek")
	readyRE := regexp.MustCompile(`chain ready.* horizon=(\S+) sponsor=(\S+) issuer=(\S+)`)
	start := func() (*exec.Cmd, []string) {
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+pool.Config().ConnString(), "MEDIMINT_HTTP_ADDR=127.0.0.1:0",
			"MEDIMINT_DIMSE_ADDR=127.0.0.1:0", "MEDIMINT_DEVNET_ADDR=127.0.0.1:0", "MEDIMINT_DATA_DIR="+dataDir,
			"MEDIMINT_KEK_FILE="+kek, "MEDIMINT_CHANNELS=2", "MEDIMINT_LOG_LEVEL=info", "HORIZON_URL=")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		lines := bufio.NewScanner(stderr)
		var log strings.Builder
		for lines.Scan() {
			log.WriteString(lines.Text() + "\n")
			if m := readyRE.FindStringSubmatch(lines.Text()); m != nil {
				go func() { _, _ = io.Copy(io.Discard, stderr) }()
				return cmd, m[1:]
			}
		}
		t.Fatalf("serve never got the chain ready:\n%s", log.String())
		return nil, nil
	}
	stop := func(cmd *exec.Cmd) {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	}

	cmd, ready := start()
	horizonURL, sponsor, issuer := ready[0], ready[1], ready[2]
	if !strings.HasPrefix(horizonURL, "http://127.0.0.1:") {
		t.Errorf("devnet at %s", horizonURL)
	}
	ctx := context.Background()
	j := mint.MintJob{StudyRef: strings.Repeat("ab", 32), OrgID: "org1", PatientRef: strings.Repeat("cd", 32),
		MetadataCID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Completion: 1}
	payload, _ := json.Marshal(j)
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (kind, subject, payload) VALUES ('mint', '1.2.3', $1)`, payload); err != nil {
		t.Fatal(err)
	}
	var txHash, holder string
	for {
		err := pool.QueryRow(ctx, `SELECT tx_hash, holder FROM minted_records WHERE study_ref = $1`, j.StudyRef).Scan(&txHash, &holder)
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond) // bounded by the test timeout
	}
	netw := wallet.Network{HorizonURL: horizonURL, Passphrase: devnet.DefaultPassphrase}
	tx, err := netw.Horizon(ctx).TransactionDetail(txHash)
	if err != nil || tx.FeeAccount != sponsor {
		t.Fatalf("mint tx %s: fee account %q, %v", txHash, tx.FeeAccount, err)
	}
	if bal, _, err := netw.Holding(ctx, holder, contracts.AssetCode([32]byte(bytes.Repeat([]byte{0xab}, 32))), issuer); err != nil || bal != 1 {
		t.Errorf("holder balance %d, %v", bal, err)
	}
	stop(cmd)
	if _, err := os.Stat(filepath.Join(dataDir, devnetStateFile)); err != nil {
		t.Errorf("devnet state: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, chain.MasterFile)); err != nil || !bytes.HasPrefix(b, []byte("medimint sealed")) {
		t.Errorf("sealed master: %v", err)
	}

	// Restart: same accounts, same ledger history (the devnet persisted).
	cmd, ready = start()
	if ready[1] != sponsor || ready[2] != issuer {
		t.Errorf("restart: sponsor %s issuer %s, want %s %s", ready[1], ready[2], sponsor, issuer)
	}
	netw.HorizonURL = ready[0]
	if _, err := netw.Horizon(ctx).TransactionDetail(txHash); err != nil {
		t.Errorf("mint tx lost across restart: %v", err)
	}
	stop(cmd)
}
