package mint

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/medimint/medimint/mint/blobstore"
)

// Sweep deletes instance blobs older than grace that no index row refers
// to: leftovers of a crash between the blob's Put and the index commit,
// of deletes whose blob removal failed, and of replaced instances. grace
// must exceed the longest store (Put to commit), so that a blob whose
// commit is still coming is spared. It returns how many blobs it deleted.
func (p *Pipeline) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	cutoff := time.Now().Add(-grace)
	var batch []string
	deleted := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		rows, err := p.cfg.Pool.Query(ctx, `SELECT k FROM unnest($1::text[]) k
WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.blob_key = k)`, batch)
		if err != nil {
			return fmt.Errorf("mint: sweep: %w", err)
		}
		var orphans []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return fmt.Errorf("mint: sweep: %w", err)
			}
			orphans = append(orphans, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("mint: sweep: %w", err)
		}
		for _, k := range orphans {
			if err := p.cfg.Blobs.Delete(ctx, k); err != nil {
				return fmt.Errorf("mint: sweep: %w", err)
			}
			deleted++
			p.log.InfoContext(ctx, "mint: swept orphan blob", slog.String("blob", k))
		}
		batch = batch[:0]
		return nil
	}
	err := p.cfg.Blobs.List(ctx, BlobPrefix, func(info blobstore.Info) error {
		if !info.ModTime.Before(cutoff) {
			return nil
		}
		batch = append(batch, info.Key)
		if len(batch) == 500 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return deleted, fmt.Errorf("mint: sweep: %w", err)
	}
	return deleted, flush()
}
