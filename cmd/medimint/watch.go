package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/mint/chain"
	"github.com/medimint/medimint/wallet"
	"github.com/medimint/medimint/watcher"
)

// runWatcher follows the ledger into Postgres until ctx ends, from the
// persisted cursor (the watcher retries failures itself).
func runWatcher(ctx context.Context, pool *pgxpool.Pool, netw wallet.Network, registry string, log *slog.Logger) {
	w, err := watcher.New(watcher.Config{Pool: pool, Network: netw, Registry: registry, Log: log})
	if err != nil {
		log.Error("watcher", "err", err)
		return
	}
	if c, err := w.Cursor(ctx); err == nil {
		log.Info("watcher following the ledger", "registry", registry, "from_ledger", c.Ledger)
	}
	if err := w.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("watcher stopped", "err", err)
	}
}

const watcherUsage = `usage: medimint watcher <command>

commands:
  run       follow the ledger into Postgres until SIGINT/SIGTERM (serve
            does this itself; for running the watcher apart)
  rebuild   empty the watcher's tables and replay the ledger from the start
            (every row derives from chain data, so the result is what the
            incremental run wrote)
`

// watcherEnv opens what a watcher needs outside serve: the database, the
// network (HORIZON_URL, or the devnet serve runs) and the registry, which
// derives from the deployment's master.
func watcherEnv(ctx context.Context, log *slog.Logger) (*pgxpool.Pool, wallet.Network, string, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return nil, wallet.Network{}, "", err
	}
	cust, err := deploymentCustodian(ctx, cfg)
	if err != nil {
		return nil, wallet.Network{}, "", err
	}
	reg, err := cust.Account(ctx, chain.RegistryIndex)
	if err != nil {
		return nil, wallet.Network{}, "", err
	}
	netw := wallet.Network{HorizonURL: cfg.HorizonURL, Passphrase: cfg.NetworkPassphrase}
	if netw.HorizonURL == "" {
		netw = wallet.Network{HorizonURL: "http://" + cfg.DevnetAddr, Passphrase: devnet.DefaultPassphrase}
	}
	pool, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return nil, wallet.Network{}, "", err
	}
	return pool, netw, reg.Address(), nil
}

func cmdWatcher(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, watcherUsage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, watcherUsage)
		return 0
	case "run", "rebuild":
	default:
		fmt.Fprintf(stderr, "medimint watcher: unknown command %q\n\n%s", args[0], watcherUsage)
		return 2
	}
	log := newLogger(stderr, slog.LevelInfo)
	pool, netw, registry, err := watcherEnv(ctx, log)
	if err != nil {
		log.Error("watcher", "err", err)
		return 1
	}
	defer pool.Close()
	if args[0] == "run" {
		runWatcher(ctx, pool, netw, registry, log)
		return 0
	}
	w, err := watcher.New(watcher.Config{Pool: pool, Network: netw, Registry: registry, Log: log})
	if err != nil {
		log.Error("watcher", "err", err)
		return 1
	}
	err = w.Rebuild(ctx)
	e := access.Entry{Category: access.CategoryAdmin, Action: "watcher.rebuild", Outcome: access.OutcomeSuccess, Actor: "medimint watcher rebuild",
		Resource: registry}
	if err != nil {
		e.Outcome = access.OutcomeFailure
		e.Reason = err.Error()
	}
	a := access.NewAuditor(pool, log, 0)
	if _, aerr := a.Append(context.WithoutCancel(ctx), e); aerr != nil {
		log.Error("rebuild not audited", "err", aerr)
	}
	a.Close()
	if err != nil {
		log.Error("watcher rebuild", "err", err)
		return 1
	}
	c, err := w.Cursor(ctx)
	if err != nil {
		log.Error("watcher rebuild", "err", err)
		return 1
	}
	fmt.Fprintf(stdout, "rebuilt up to ledger %d (transaction %s)\n", c.Ledger, c.TxHash)
	return 0
}

const auditUsage = `usage: medimint audit <command> [flags]

commands:
  verify                          check the audit log's hash chain end to end
  export [-format fhir|dicom] [-after seq]
                                  write the audit log as NDJSON: FHIR R4
                                  AuditEvent (default) or DICOM audit messages
`

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	var format string
	var after int64
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, auditUsage)
		return 0
	case "verify":
		if len(args) > 1 {
			fmt.Fprint(stderr, auditUsage)
			return 2
		}
	case "export":
		fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.StringVar(&format, "format", access.FormatFHIR, "`format`: fhir or dicom")
		fs.Int64Var(&after, "after", 0, "export entries after this sequence `number`")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
			return 2
		}
		if format != access.FormatFHIR && format != access.FormatDICOM {
			fmt.Fprintf(stderr, "medimint audit export: -format %q: want fhir or dicom\n", format)
			return 2
		}
	default:
		fmt.Fprintf(stderr, "medimint audit: unknown command %q\n\n%s", args[0], auditUsage)
		return 2
	}
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "medimint audit: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	pool, err := openDatabase(ctx, cfg, log)
	if err != nil {
		log.Error("database", "err", err)
		return 1
	}
	defer pool.Close()
	if args[0] == "export" {
		if err := access.ExportAudit(ctx, pool, stdout, format, after); err != nil {
			log.Error("audit export", "err", err)
			return 1
		}
		return 0
	}
	head, err := access.VerifyAudit(ctx, pool)
	if err != nil {
		fmt.Fprintf(stdout, "audit log BROKEN: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "audit log intact: %d entries, head %s\n", head.Rows, hex.EncodeToString(head.Hash))
	return 0
}
