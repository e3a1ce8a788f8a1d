package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/mint/chain"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/wallet"
)

// devnetStateFile is the embedded devnet's state under MEDIMINT_DATA_DIR.
const devnetStateFile = "devnet.state"

// openKeys is the key wrapper for study keys and the master mnemonic:
// KMS if configured, else the KEK file (created if missing).
func openKeys(ctx context.Context, cfg config.Config) (envelope.KeyWrapper, error) {
	if cfg.KMSKeyID != "" {
		client, err := envelope.NewKMSClient(ctx, cfg.S3.Region, "")
		if err != nil {
			return nil, err
		}
		return envelope.NewKMS(client, cfg.KMSKeyID), nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.KEKFile), 0o700); err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	return envelope.OpenLocalKEK(cfg.KEKFile)
}

func masterPath(cfg config.Config) string { return filepath.Join(cfg.DataDir, chain.MasterFile) }

// startDevnet runs the devnet on a loopback listener until ctx ends and
// returns its network; wait returns once it has stopped and persisted.
func startDevnet(ctx context.Context, addr, statePath string, interval time.Duration, log *slog.Logger) (wallet.Network, func() error, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return wallet.Network{}, nil, fmt.Errorf("devnet: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		// The devnet's friendbot hands out lumens to anyone: keep it local.
		return wallet.Network{}, nil, fmt.Errorf("devnet: %s is not a loopback address", addr)
	}
	if statePath != "" {
		if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
			return wallet.Network{}, nil, fmt.Errorf("devnet: %w", err)
		}
	}
	n, err := devnet.New(devnet.Config{StatePath: statePath, LedgerInterval: interval, Logger: log})
	if err != nil {
		return wallet.Network{}, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return wallet.Network{}, nil, fmt.Errorf("devnet: %w", err)
	}
	srv := &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	url := "http://" + ln.Addr().String()
	log.Info("devnet listening", "addr", ln.Addr().String(), "horizon", url, "passphrase", n.Passphrase(), "state", statePath)
	wait := func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close() // event streams stay open until their clients leave
		}
		<-served
		return <-ran
	}
	return wallet.Network{HorizonURL: url, Passphrase: n.Passphrase(), FriendbotURL: url + "/friendbot"}, wait, nil
}

// chainNetwork is the configured network, or the embedded devnet when
// HORIZON_URL is empty (started here; wait stops it).
func chainNetwork(ctx context.Context, cfg config.Config, log *slog.Logger) (wallet.Network, func() error, error) {
	if cfg.HorizonURL != "" {
		return wallet.Network{HorizonURL: cfg.HorizonURL, Passphrase: cfg.NetworkPassphrase, FriendbotURL: cfg.FriendbotURL},
			func() error { return nil }, nil
	}
	return startDevnet(ctx, cfg.DevnetAddr, filepath.Join(cfg.DataDir, devnetStateFile), cfg.DevnetInterval, log)
}

// runChain sets the organisation up on the network (retrying until it
// succeeds: the network may be down, or the pubnet sponsor not funded
// yet) and then mints until ctx ends.
// ready, if set, is called once with the deployment.
func runChain(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, cust *wallet.Custodian, netw wallet.Network, log *slog.Logger,
	ready func(*chain.Deployment)) {
	var d *chain.Deployment
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		var err error
		d, err = chain.Bootstrap(ctx, chain.BootstrapConfig{Network: netw, Custodian: cust, HomeDomain: cfg.HomeDomain,
			Channels: cfg.Channels, Pool: pool, Logger: log})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("chain bootstrap failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	log.Info("chain ready", "network", netw.Passphrase, "horizon", netw.HorizonURL, "sponsor", d.Sponsor.Address(),
		"issuer", d.Issuer.Address(), "registry", d.Registry, "issuer_url", netw.AccountURL(d.Issuer.Address()))
	if ready != nil {
		ready(d)
	}
	m, err := chain.NewMinter(chain.MinterConfig{Pool: pool, Deployment: d, Patients: chain.NewPatients(pool, cust), Logger: log})
	if err != nil {
		log.Error("minter", "err", err)
		return
	}
	m.Run(ctx)
}

func cmdDevnet(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("devnet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8000", "loopback `address` for the Horizon API")
	state := fs.String("state", "", "state `file` (empty: in memory only)")
	interval := fs.Duration("interval", time.Second, "ledger close `interval`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: medimint devnet [-addr host:port] [-state file] [-interval 1s]\n\nRuns the embedded Stellar devnet (Horizon API and friendbot) until SIGINT/SIGTERM.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *interval <= 0 {
		fs.Usage()
		return 2
	}
	log := newLogger(stderr, slog.LevelInfo)
	_, wait, err := startDevnet(ctx, *addr, *state, *interval, log)
	if err != nil {
		log.Error("devnet", "err", err)
		return 1
	}
	if err := wait(); err != nil {
		log.Error("devnet", "err", err)
		return 1
	}
	log.Info("devnet stopped")
	return 0
}

const walletUsage = `usage: medimint wallet <command> [flags]

commands:
  new                 print a new 24-word BIP-39 mnemonic
  derive -n N         print the first N SEP-5 addresses of the deployment's
                      master seed (-start index, -mnemonic-file to use another)
  show                the deployment's sponsor, issuer, registry, governor and
                      channel accounts with their balances on the network
`

func cmdWallet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, walletUsage)
		return 2
	}
	switch args[0] {
	case "new":
		return walletNew(args[1:], stdout, stderr)
	case "derive":
		return walletDerive(ctx, args[1:], stdout, stderr)
	case "show":
		return walletShow(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, walletUsage)
		return 0
	}
	fmt.Fprintf(stderr, "medimint wallet: unknown command %q\n\n%s", args[0], walletUsage)
	return 2
}

func walletNew(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wallet new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	words := fs.Int("words", 24, "mnemonic length: 12, 15, 18, 21 or 24 `words`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *words%3 != 0 || *words < 12 || *words > 24 {
		fmt.Fprintf(stderr, "medimint wallet new: -words %d: want 12, 15, 18, 21 or 24\n", *words)
		return 2
	}
	m, err := wallet.NewMnemonic(*words / 3 * 32)
	if err != nil {
		fmt.Fprintf(stderr, "medimint wallet new: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, m)
	return 0
}

// deploymentCustodian opens the deployment's sealed master (it must exist:
// serve creates it on first start).
func deploymentCustodian(ctx context.Context, cfg config.Config) (*wallet.Custodian, error) {
	keys, err := openKeys(ctx, cfg)
	if err != nil {
		return nil, err
	}
	m, err := chain.LoadMaster(masterPath(cfg), keys)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no master mnemonic at %s yet (medimint serve creates it on first start)", masterPath(cfg))
	}
	if err != nil {
		return nil, err
	}
	return m.Custodian(ctx)
}

func roleOf(i uint32) string {
	switch {
	case i == wallet.SponsorIndex:
		return "sponsor"
	case i == wallet.IssuerIndex:
		return "issuer"
	case i == chain.RegistryIndex:
		return "registry"
	case i >= chain.GovernorIndexBase && i < chain.GovernorIndexBase+chain.MaxGovernors:
		return fmt.Sprintf("governor %d", i-chain.GovernorIndexBase)
	case i >= wallet.ChannelIndexBase && i < wallet.ChannelIndexBase+wallet.MaxChannels:
		return fmt.Sprintf("channel %d", i-wallet.ChannelIndexBase)
	case i >= wallet.UserIndexBase:
		return fmt.Sprintf("patient %d", i-wallet.UserIndexBase)
	}
	return ""
}

func walletDerive(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wallet derive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 5, "how many `addresses`")
	start := fs.Uint("start", 0, "first SEP-5 account `index`")
	file := fs.String("mnemonic-file", "", "derive from the mnemonic in this `file` instead of the deployment's master (- for stdin)")
	passphrase := fs.String("passphrase", "", "BIP-39 `passphrase` (with -mnemonic-file)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 1 || *n > 10000 || *start+uint(*n)-1 > uint(wallet.MaxAccountIndex) {
		fmt.Fprintln(stderr, "medimint wallet derive: -n must be 1..10000 and indexes below 2^31")
		return 2
	}
	idx := make([]uint32, *n)
	for i := range idx {
		idx[i] = uint32(*start) + uint32(i)
	}
	var addrs []string
	if *file != "" {
		var b []byte
		var err error
		if *file == "-" {
			b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
		} else {
			b, err = os.ReadFile(*file)
		}
		if err != nil {
			fmt.Fprintf(stderr, "medimint wallet derive: %v\n", err)
			return 1
		}
		seed, err := wallet.SeedFromMnemonic(strings.Join(strings.Fields(string(b)), " "), *passphrase)
		if err != nil {
			fmt.Fprintf(stderr, "medimint wallet derive: %v\n", err)
			return 1
		}
		hd, err := wallet.NewHD(seed)
		clear(seed)
		if err != nil {
			fmt.Fprintf(stderr, "medimint wallet derive: %v\n", err)
			return 1
		}
		for _, i := range idx {
			kp, err := hd.Account(i)
			if err != nil {
				fmt.Fprintf(stderr, "medimint wallet derive: %v\n", err)
				return 1
			}
			addrs = append(addrs, kp.Address())
		}
	} else {
		cfg, err := config.FromEnv()
		if err != nil {
			fmt.Fprintf(stderr, "medimint wallet derive: %v\n", err)
			return 2
		}
		cust, err := deploymentCustodian(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "medimint wallet derive: %v\n", err)
			return 1
		}
		kps, err := cust.Accounts(ctx, idx...)
		if err != nil {
			fmt.Fprintf(stderr, "medimint wallet derive: %v\n", err)
			return 1
		}
		for _, kp := range kps {
			addrs = append(addrs, kp.Address())
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tPATH\tADDRESS\tROLE")
	for i, a := range addrs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", idx[i], wallet.AccountPath(idx[i]), a, roleOf(idx[i]))
	}
	tw.Flush()
	return 0
}

func walletShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wallet show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "medimint wallet show: %v\n", err)
		return 2
	}
	cust, err := deploymentCustodian(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "medimint wallet show: %v\n", err)
		return 1
	}
	roles, err := chain.DeriveRoles(ctx, cust, cfg.Channels, chain.DefaultGovernors)
	if err != nil {
		fmt.Fprintf(stderr, "medimint wallet show: %v\n", err)
		return 1
	}
	netw := wallet.Network{HorizonURL: cfg.HorizonURL, Passphrase: cfg.NetworkPassphrase}
	if netw.HorizonURL == "" {
		// The devnet that serve runs.
		netw = wallet.Network{HorizonURL: "http://" + cfg.DevnetAddr, Passphrase: devnet.DefaultPassphrase}
	}
	fmt.Fprintf(stdout, "network: %s (%s)\n", netw.Passphrase, netw.HorizonURL)
	info, err := chain.Describe(ctx, netw, roles)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tINDEX\tADDRESS\tXLM\tLINK")
	for _, a := range info {
		bal := a.XLM
		if !a.Exists {
			bal = "(not on chain)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", a.Role, a.Index, a.Address, bal, a.URL)
	}
	tw.Flush()
	if err != nil {
		fmt.Fprintf(stderr, "medimint wallet show: %v\n", err)
		return 1
	}
	return 0
}

// openMaster opens (on first start: creates) the sealed master mnemonic
// and returns its custodian and the issuer address it derives.
func openMaster(ctx context.Context, cfg config.Config, keys envelope.KeyWrapper, log *slog.Logger) (*wallet.Custodian, string, error) {
	m, created, err := chain.OpenMaster(ctx, masterPath(cfg), keys)
	if err != nil {
		return nil, "", err
	}
	if created {
		log.Info("generated the organisation's master mnemonic (sealed under the KEK)", "path", masterPath(cfg))
	}
	cust, err := m.Custodian(ctx)
	if err != nil {
		return nil, "", err
	}
	iss, err := cust.Account(ctx, wallet.IssuerIndex)
	if err != nil {
		return nil, "", err
	}
	return cust, iss.Address(), nil
}
