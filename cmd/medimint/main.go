package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: medimint <command> [flags]

commands:
  serve     run the gateway (DICOMweb, DIMSE, portal and its API, chain
            worker, ledger watcher) until SIGINT/SIGTERM
  migrate   create the database if missing and apply the schema
  watcher   run | rebuild: follow the ledger apart from serve, or replay it
  audit     verify | export: check the audit log's hash chain, or export it
  devnet    run the embedded Stellar devnet
  wallet    manage keys and accounts
  keys      KEK status and rotation (re-wraps study keys, no re-encryption)
  version   print version and commit
  help      print this help

Configuration is read from environment variables (see README.md).
Run 'medimint <command> -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is a subcommand: it returns the process exit status.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

func commands() map[string]command {
	return map[string]command{
		"serve":   cmdServe,
		"migrate": cmdMigrate,
		"devnet":  cmdDevnet,
		"wallet":  cmdWallet,
		"watcher": cmdWatcher,
		"audit":   cmdAudit,
		"keys":    cmdKeys,
		"version": cmdVersion,
	}
}

// run dispatches args to a subcommand; exit status 2 means usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "medimint: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
