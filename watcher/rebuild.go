package watcher

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/access"
)

// derivedTables are the tables Rebuild empties and derives again.
var derivedTables = []string{"registry_issuers", "record_tokens", "grants", "access_requests", "watcher_violations"}

// Rebuild derives every table again from chain history alone: it empties
// them and resets the cursor in one transaction (listeners are told to
// reload), then pages /transactions from the start. Chain events are not
// audited a second time; the rebuild itself is. A watcher running
// elsewhere notices the cursor moved and follows from the new one.
//
// While it runs, the tables show an earlier state of the chain (access
// decisions fail closed: grants appear later than they were made). If it
// is interrupted, the tables are consistent with the cursor and Run or
// Rebuild carries on.
func (w *Watcher) Rebuild(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO watcher_cursor (stream, registry) VALUES ($1, $2)
ON CONFLICT (stream) DO UPDATE SET registry = EXCLUDED.registry, paging_token = '', ledger = 0, tx_hash = ''`, Stream, w.cfg.Registry); err != nil {
			return fmt.Errorf("watcher: reset cursor: %w", err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1 FROM watcher_cursor WHERE stream = $1 FOR UPDATE", Stream); err != nil {
			return fmt.Errorf("watcher: lock cursor: %w", err)
		}
		for _, t := range derivedTables {
			if _, err := tx.Exec(ctx, "DELETE FROM "+t); err != nil {
				return fmt.Errorf("watcher: empty %s: %w", t, err)
			}
		}
		if _, err := access.AppendTx(ctx, tx, access.Entry{Category: access.CategoryAdmin, Action: "watcher.rebuild",
			Outcome: access.OutcomeSuccess, Actor: "watcher", Resource: w.cfg.Registry}); err != nil {
			return err
		}
		return access.NotifyTx(ctx, tx, []access.Change{{Kind: access.ChangeReload}})
	})
	if err != nil {
		return err
	}
	cur := ""
	for {
		page, err := w.page(ctx, cur)
		if err != nil {
			return err
		}
		recs := page.Embedded.Records
		if len(recs) > 0 {
			if cur, err = w.applyBatch(ctx, cur, recs, false); err != nil {
				return fmt.Errorf("watcher: rebuild: %w", err)
			}
		}
		if len(recs) < w.cfg.PageLimit {
			break
		}
	}
	w.log.InfoContext(ctx, "watcher: rebuilt from chain history", slog.String("cursor", cur))
	return nil
}
