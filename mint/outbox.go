package mint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Outbox job kinds.
const (
	// KindStudyTouched: a study received an instance; due StableAge after
	// the latest one. Subject is the Study Instance UID.
	KindStudyTouched = "study.touched"
	// KindMint: mint the NFT of a completed study. Subject is the Study
	// Instance UID, Payload a MintJob.
	KindMint = "mint"
)

// Outbox is the transactional outbox (table outbox). Workers lease jobs
// with Claim, then end them with Done or Retry; a job whose lease runs
// out (its worker died) is claimed again, so handlers must be idempotent.
type Outbox struct {
	pool *pgxpool.Pool
}

// NewOutbox returns the outbox in pool's database.
func NewOutbox(pool *pgxpool.Pool) *Outbox { return &Outbox{pool: pool} }

// Job is a leased outbox row.
type Job struct {
	ID         int64
	Kind       string
	Subject    string
	Payload    json.RawMessage
	Generation int // bumped when a pending row is touched again
	Attempts   int // including this one
}

const touchSQL = `
INSERT INTO outbox (kind, subject, available_at) VALUES ($1, $2, now() + $3::interval)
ON CONFLICT (subject) WHERE kind = 'study.touched' AND done_at IS NULL
DO UPDATE SET available_at = EXCLUDED.available_at, generation = outbox.generation + 1`

// queueTouch queues touch on b.
func (o *Outbox) queueTouch(b *pgx.Batch, study string, stable time.Duration) {
	b.Queue(touchSQL, KindStudyTouched, study, stable.String()).Fn = func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("mint: outbox touch: %w", err)
		}
		return nil
	}
}

// touch records, within tx, that study received an instance: it makes
// the study's pending study.touched row due after stable (creating it if
// none is pending) and bumps its generation.
func (o *Outbox) touch(ctx context.Context, tx pgx.Tx, study string, stable time.Duration) error {
	_, err := tx.Exec(ctx, touchSQL, KindStudyTouched, study, stable.String())
	if err != nil {
		return fmt.Errorf("mint: outbox touch: %w", err)
	}
	return nil
}

// Claim leases the oldest due job of kind for lease, or reports false if
// none is due. Concurrent claimers never get the same job while its lease
// holds (FOR UPDATE SKIP LOCKED).
func (o *Outbox) Claim(ctx context.Context, kind string, lease time.Duration) (Job, bool, error) {
	var j Job
	err := o.pool.QueryRow(ctx, `
UPDATE outbox SET leased_until = now() + $2::interval, attempts = attempts + 1
WHERE id = (
    SELECT id FROM outbox
    WHERE kind = $1 AND done_at IS NULL AND available_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
    ORDER BY available_at, id
    FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, kind, subject, payload, generation, attempts`, kind, lease.String()).
		Scan(&j.ID, &j.Kind, &j.Subject, &j.Payload, &j.Generation, &j.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("mint: outbox claim %s: %w", kind, err)
	}
	return j, true, nil
}

// Done marks j finished. It reports false, and leaves the job pending,
// if j was touched again since it was claimed (its generation moved).
func (o *Outbox) Done(ctx context.Context, j Job) (bool, error) {
	var ok bool
	err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) (err error) {
		ok, err = o.done(ctx, tx, j)
		return err
	})
	return ok, err
}

// done is Done within tx; it locks the row until tx ends.
func (o *Outbox) done(ctx context.Context, tx pgx.Tx, j Job) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE outbox SET done_at = now(), leased_until = NULL, last_error = NULL
WHERE id = $1 AND generation = $2 AND done_at IS NULL`, j.ID, j.Generation)
	if err != nil {
		return false, fmt.Errorf("mint: outbox done %d: %w", j.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox SET leased_until = NULL WHERE id = $1 AND done_at IS NULL`, j.ID); err != nil {
		return false, fmt.Errorf("mint: outbox release %d: %w", j.ID, err)
	}
	return false, nil
}

// Retry releases j after a failure, due again after Backoff(j.Attempts).
func (o *Outbox) Retry(ctx context.Context, j Job, cause error) error {
	_, err := o.pool.Exec(ctx, `UPDATE outbox SET leased_until = NULL, last_error = $2,
    available_at = greatest(available_at, now() + $3::interval) WHERE id = $1 AND done_at IS NULL`,
		j.ID, cause.Error(), Backoff(j.Attempts).String())
	if err != nil {
		return fmt.Errorf("mint: outbox retry %d: %w", j.ID, err)
	}
	return nil
}

// Backoff is the delay before attempt n+1: exponential from one second,
// capped at ten minutes, with up to 25% jitter so that failing jobs do not
// retry in lockstep.
func Backoff(attempts int) time.Duration {
	d := time.Second << min(max(attempts-1, 0), 10)
	d = min(d, 10*time.Minute)
	return d + time.Duration(rand.Int64N(int64(d/4)+1))
}
