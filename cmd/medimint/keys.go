package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/mint/chain"
	"github.com/medimint/medimint/mint/envelope"
)

const keysUsage = `usage: medimint keys <command> [flags]

commands:
  status   count the study keys under each KEK; say which KEK seals the master mnemonic
  rotate   re-wrap every study key and re-seal the master mnemonic under a new KEK
           (-new-kek FILE or -new-kms-key-id ID, -batch N); no data is re-encrypted

Rotation: stop 'medimint serve', run 'medimint keys rotate' with the current
KEK configured (MEDIMINT_KEK_FILE or MEDIMINT_KMS_KEY_ID) and the new one as
a flag, then point MEDIMINT_KEK_FILE / MEDIMINT_KMS_KEY_ID at the new KEK and
start serve again. An interrupted rotation is resumed by running it again.
`

// cmdKeys manages the key-encryption key (KEK) that wraps every study's
// data key and seals the master mnemonic.
func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return 2
	}
	switch args[0] {
	case "status":
		return keysStatus(ctx, args[1:], stdout, stderr)
	case "rotate":
		return keysRotate(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, keysUsage)
		return 0
	}
	fmt.Fprintf(stderr, "medimint keys: unknown command %q\n\n%s", args[0], keysUsage)
	return 2
}

func keysStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprint(stderr, "usage: medimint keys status\n")
		return 2
	}
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "medimint keys status: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	cur, err := currentKeys(ctx, cfg)
	if err != nil {
		log.Error("current KEK", "err", err)
		return 1
	}
	pool, err := openDatabase(ctx, cfg, log)
	if err != nil {
		log.Error("database", "err", err)
		return 1
	}
	defer pool.Close()
	counts, err := studyKeyCounts(ctx, pool)
	if err != nil {
		log.Error("keys status", "err", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEK\tSTUDY KEYS\t")
	ids := make([]string, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		note := ""
		if id == cur.KeyID() {
			note = "(current)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", id, counts[id], note)
	}
	tw.Flush()
	master, err := masterState(ctx, masterPath(cfg), cur)
	if err != nil {
		log.Error("master mnemonic", "err", err)
		return 1
	}
	fmt.Fprintf(stdout, "master mnemonic: %s\n", master)
	return 0
}

func keysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	newFile := fs.String("new-kek", "", "`file` of the new KEK (32 random bytes, mode 0600; created if missing)")
	newKMS := fs.String("new-kms-key-id", "", "AWS KMS key `id` or ARN to wrap under instead of a KEK file")
	batch := fs.Int("batch", 500, "study keys re-wrapped per database transaction")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: medimint keys rotate (-new-kek FILE | -new-kms-key-id ID) [-batch N]\n\n"+
			"Re-wraps every study key and re-seals the master mnemonic from the configured KEK to the new one.\n"+
			"Run it with 'medimint serve' stopped; run it again to resume.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*newFile == "") == (*newKMS == "") || *batch < 1 {
		fs.Usage()
		return 2
	}
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "medimint keys rotate: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	old, err := currentKeys(ctx, cfg)
	if err != nil {
		log.Error("current KEK", "err", err)
		return 1
	}
	var next envelope.KeyWrapper
	if *newKMS != "" {
		next, err = kmsKeys(ctx, cfg, *newKMS)
	} else {
		next, err = localKeys(*newFile)
	}
	if err != nil {
		log.Error("new KEK", "err", err)
		return 1
	}
	if next.KeyID() == old.KeyID() {
		fmt.Fprintf(stderr, "medimint keys rotate: the new KEK is the current one (%s)\n", old.KeyID())
		return 2
	}
	pool, err := openDatabase(ctx, cfg, log)
	if err != nil {
		log.Error("database", "err", err)
		return 1
	}
	defer pool.Close()
	r, err := rotateKeys(ctx, pool, masterPath(cfg), old, next, *batch, log)
	fmt.Fprintf(stdout, "study keys re-wrapped: %d (already under %s: %d)\nmaster mnemonic: %s\n",
		r.Rewrapped, next.KeyID(), r.Already, r.Master)
	if err != nil {
		log.Error("rotate", "err", err, "hint", "run the same command again to resume")
		return 1
	}
	setting := "MEDIMINT_KEK_FILE=" + *newFile
	if *newKMS != "" {
		setting = "MEDIMINT_KMS_KEY_ID=" + *newKMS
	}
	fmt.Fprintf(stdout, "done: every key is under %s.\nNow set %s, start serve, and check it; then the old KEK (%s) can be destroyed.\n",
		next.KeyID(), setting, old.KeyID())
	return 0
}

// currentKeys opens the configured KEK. Unlike openKeys it never creates
// a KEK file: rotating away from a key that does not exist is a mistake.
func currentKeys(ctx context.Context, cfg config.Config) (envelope.KeyWrapper, error) {
	if cfg.KMSKeyID != "" {
		return kmsKeys(ctx, cfg, cfg.KMSKeyID)
	}
	if _, err := os.Stat(cfg.KEKFile); err != nil {
		return nil, fmt.Errorf("KEK file (MEDIMINT_KEK_FILE): %w", err)
	}
	return envelope.OpenLocalKEK(cfg.KEKFile)
}

func kmsKeys(ctx context.Context, cfg config.Config, keyID string) (envelope.KeyWrapper, error) {
	client, err := envelope.NewKMSClient(ctx, cfg.S3.Region, "")
	if err != nil {
		return nil, err
	}
	return envelope.NewKMS(client, keyID), nil
}

func localKeys(path string) (envelope.KeyWrapper, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	return envelope.OpenLocalKEK(path)
}

// rotation reports what rotateKeys did.
type rotation struct {
	Rewrapped int    // study keys re-wrapped now
	Already   int    // study keys found under the new KEK already
	Master    string // what happened to the sealed master mnemonic
}

// rotateKeys re-wraps every study key (table study_keys) from old to
// new, batch rows per transaction, and then re-seals the master
// mnemonic. Blobs are not touched: their DEKs do not change, only the
// wrapping. Rows already under new are skipped, so a run that stopped
// half-way is resumed by running it again. Rows under a KEK that is
// neither old nor new are refused up front: they need that KEK.
func rotateKeys(ctx context.Context, pool *pgxpool.Pool, master string, old, new envelope.KeyWrapper, batch int, log *slog.Logger) (rotation, error) {
	var r rotation
	counts, err := studyKeyCounts(ctx, pool)
	if err != nil {
		return r, err
	}
	var foreign []string
	for id, n := range counts {
		if id != old.KeyID() && id != new.KeyID() {
			foreign = append(foreign, fmt.Sprintf("%s (%d)", id, n))
		}
	}
	if len(foreign) > 0 {
		slices.Sort(foreign)
		return r, fmt.Errorf("study keys under a KEK that is neither the current nor the new one: %v; rotate those with their KEK configured first", foreign)
	}
	r.Already = counts[new.KeyID()]
	for {
		n, err := rewrapBatch(ctx, pool, old, new, batch)
		r.Rewrapped += n
		if err != nil {
			return r, err
		}
		if n == 0 {
			break
		}
		log.Info("study keys re-wrapped", "batch", n, "total", r.Rewrapped, "of", counts[old.KeyID()])
	}
	if counts, err = studyKeyCounts(ctx, pool); err != nil {
		return r, err
	} else if left := counts[old.KeyID()]; left > 0 {
		// Only a concurrent writer under the old KEK (a running serve) leaves rows behind.
		return r, fmt.Errorf("%d study keys are still under %s (is serve running?)", left, old.KeyID())
	}
	changed, err := chain.ResealMaster(ctx, master, old, new)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Master = "none yet (created under the configured KEK on first serve)"
	case err != nil:
		r.Master = "not re-sealed"
		return r, err
	case changed:
		r.Master = "re-sealed under " + new.KeyID()
	default:
		r.Master = "already under " + new.KeyID()
	}
	return r, nil
}

// rewrapBatch re-wraps up to n study keys still under old in one
// transaction and returns how many it did. The rows are locked, and the
// update insists on the old kek_id, so two rotations at once cannot
// wrap a key twice.
func rewrapBatch(ctx context.Context, pool *pgxpool.Pool, old, new envelope.KeyWrapper, n int) (int, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("rotate: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	rows, err := tx.Query(ctx, `SELECT study_instance_uid, wrapped_dek FROM study_keys
		WHERE kek_id = $1 ORDER BY study_instance_uid LIMIT $2 FOR UPDATE`, old.KeyID(), n)
	if err != nil {
		return 0, fmt.Errorf("rotate: read study keys: %w", err)
	}
	type row struct {
		study   string
		wrapped []byte
	}
	todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.study, &x.wrapped)
	})
	if err != nil {
		return 0, fmt.Errorf("rotate: read study keys: %w", err)
	}
	var b pgx.Batch
	for _, x := range todo {
		w, err := envelope.Rewrap(ctx, old, new, x.wrapped)
		if err != nil {
			return 0, fmt.Errorf("rotate: study %s: %w", x.study, err)
		}
		b.Queue(`UPDATE study_keys SET kek_id = $2, wrapped_dek = $3 WHERE study_instance_uid = $1 AND kek_id = $4`,
			x.study, new.KeyID(), w, old.KeyID())
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return 0, fmt.Errorf("rotate: write study keys: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("rotate: commit: %w", err)
	}
	return len(todo), nil
}

func studyKeyCounts(ctx context.Context, pool *pgxpool.Pool) (map[string]int, error) {
	rows, err := pool.Query(ctx, `SELECT kek_id, count(*) FROM study_keys GROUP BY kek_id`)
	if err != nil {
		return nil, fmt.Errorf("count study keys: %w", err)
	}
	counts := map[string]int{}
	var id string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		counts[id] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count study keys: %w", err)
	}
	return counts, nil
}

// masterState says whether the master mnemonic is sealed under cur.
func masterState(ctx context.Context, path string, cur envelope.KeyWrapper) (string, error) {
	ok, err := chain.MasterSealedUnder(ctx, path, cur)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "none yet", nil
	case err != nil:
		return "", err
	case ok:
		return "sealed under the current KEK (" + cur.KeyID() + ")", nil
	}
	return "NOT sealed under the current KEK: a rotation is half done or the wrong KEK is configured", nil
}
