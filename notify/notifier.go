package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Channel is the PostgreSQL NOTIFY channel on which every new
// notification is announced; the payload is "<account> <kind>", or the
// account alone for break-glass (announced by package access).
const Channel = "medimint_notifications"

// Config configures a Notifier.
type Config struct {
	Pool *pgxpool.Pool
	// SMTP is the mail server; an empty Addr disables e-mail (rows are
	// settled as email = 'disabled' and shown in the portal only).
	SMTP SMTP
	// PortalURL is the portal's address as users reach it, for the link
	// in e-mails (MEDIMINT_PUBLIC_URL).
	PortalURL string
	// MaxAttempts is how often a message is tried before giving up
	// (email = 'failed'); zero: 8.
	MaxAttempts int
	// Backoff is the wait before retry n (n >= 1); nil: 30 s doubling
	// up to 1 h.
	Backoff func(n int) time.Duration
	// Poll bounds the wait between passes when nothing is announced;
	// zero: 1 minute.
	Poll time.Duration
	// Batch is how many rows one pass leases; zero: 50.
	Batch  int
	Logger *slog.Logger
}

// Notifier delivers queued notifications by e-mail.
type Notifier struct {
	cfg  Config
	from *mail.Address
	log  *slog.Logger
}

// lease is how long a leased row is left to its worker before another
// may take it: longer than one SMTP delivery.
const lease = 2 * time.Minute

// New checks cfg and returns a Notifier.
func New(cfg Config) (*Notifier, error) {
	if cfg.Pool == nil {
		return nil, errors.New("notify: Config needs Pool")
	}
	n := &Notifier{cfg: cfg}
	if cfg.SMTP.Addr != "" {
		from, err := mail.ParseAddress(cfg.SMTP.From)
		if err != nil {
			return nil, fmt.Errorf("notify: sender address (MEDIMINT_SMTP_FROM) %q: %w", cfg.SMTP.From, err)
		}
		if from.Name == "" {
			from.Name = "Medimint"
		}
		n.from = from
		n.cfg.SMTP.From = from.Address
	}
	if n.cfg.MaxAttempts <= 0 {
		n.cfg.MaxAttempts = 8
	}
	if n.cfg.Backoff == nil {
		n.cfg.Backoff = func(k int) time.Duration { return min(30*time.Second<<min(k-1, 10), time.Hour) }
	}
	if n.cfg.Poll <= 0 {
		n.cfg.Poll = time.Minute
	}
	if n.cfg.Batch <= 0 {
		n.cfg.Batch = 50
	}
	if n.cfg.Logger == nil {
		n.cfg.Logger = slog.Default()
	}
	n.log = n.cfg.Logger.With(slog.String("component", "notify"))
	return n, nil
}

// Run delivers notifications until ctx ends: at once when one is
// announced on Channel, when a retry comes due, and at least every Poll.
func (n *Notifier) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	go n.listen(ctx, wake)
	for {
		for {
			k, err := n.DeliverDue(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				n.log.Warn("delivery pass failed", "err", err)
				break
			}
			if k < n.cfg.Batch {
				break
			}
		}
		wait := n.cfg.Poll
		var next *time.Time
		err := n.cfg.Pool.QueryRow(ctx, `SELECT min(greatest(next_attempt_at, coalesce(leased_until, next_attempt_at)))
			FROM access_notifications WHERE delivered_at IS NULL`).Scan(&next)
		if err == nil && next != nil {
			wait = min(wait, max(time.Until(*next), 0)+10*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// listen turns announcements on Channel into wake-ups, reconnecting
// after failures; Run's polling covers the gaps.
func (n *Notifier) listen(ctx context.Context, wake chan<- struct{}) {
	for ctx.Err() == nil {
		err := func() error {
			conn, err := n.cfg.Pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
				return err
			}
			defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN *") //nolint:errcheck // best effort before the pool reuses it
			// What was queued before we listened is delivered by one more pass.
			select {
			case wake <- struct{}{}:
			default:
			}
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					return err
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("notification listener failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// DeliverDue leases the notifications that are due, delivers each, and
// returns how many it leased.
func (n *Notifier) DeliverDue(ctx context.Context) (int, error) {
	rows, err := n.cfg.Pool.Query(ctx, `UPDATE access_notifications SET leased_until = now() + make_interval(secs => $2), attempts = attempts + 1
		WHERE id IN (SELECT id FROM access_notifications
			WHERE delivered_at IS NULL AND next_attempt_at <= now() AND (leased_until IS NULL OR leased_until < now())
			ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING id, account, kind, created_at, attempts`, n.cfg.Batch, lease.Seconds())
	if err != nil {
		return 0, fmt.Errorf("notify: lease: %w", err)
	}
	type due struct {
		message
		account  string
		attempts int
	}
	todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
		var d due
		return d, r.Scan(&d.id, &d.account, &d.kind, &d.created, &d.attempts)
	})
	if err != nil {
		return 0, fmt.Errorf("notify: lease: %w", err)
	}
	for _, d := range todo {
		if err := n.deliver(ctx, d.message, d.account, d.attempts); err != nil {
			return len(todo), err
		}
	}
	return len(todo), nil
}

// deliver e-mails one leased notification and settles or reschedules it.
func (n *Notifier) deliver(ctx context.Context, m message, account string, attempts int) error {
	if n.from == nil {
		return n.settle(ctx, m.id, "disabled", "")
	}
	var to *string
	err := n.cfg.Pool.QueryRow(ctx, `SELECT email FROM users WHERE account = $1 AND NOT disabled AND email IS NOT NULL LIMIT 1`, account).Scan(&to)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && to == nil) {
		return n.settle(ctx, m.id, "no-address", "")
	}
	if err != nil {
		return fmt.Errorf("notify: address of %s: %w", account, err)
	}
	if _, err := mail.ParseAddress(*to); err != nil {
		return n.settle(ctx, m.id, "no-address", "unusable address")
	}
	m.to = *to
	sendErr := n.cfg.SMTP.send(ctx, m.to, m.compose(n.from, n.cfg.PortalURL))
	if sendErr == nil {
		n.log.Info("notification e-mailed", "id", m.id, "kind", m.kind)
		return n.settle(ctx, m.id, "sent", "")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if attempts >= n.cfg.MaxAttempts {
		n.log.Error("notification e-mail failed; giving up", "id", m.id, "attempts", attempts, "err", sendErr)
		return n.settle(ctx, m.id, "failed", sendErr.Error())
	}
	wait := n.cfg.Backoff(attempts)
	n.log.Warn("notification e-mail failed; will retry", "id", m.id, "attempts", attempts, "in", wait, "err", sendErr)
	_, err = n.cfg.Pool.Exec(ctx, `UPDATE access_notifications SET leased_until = NULL, last_error = $2,
		next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1`, m.id, sendErr.Error(), wait.Seconds())
	if err != nil {
		return fmt.Errorf("notify: reschedule %d: %w", m.id, err)
	}
	return nil
}

func (n *Notifier) settle(ctx context.Context, id int64, how, lastErr string) error {
	_, err := n.cfg.Pool.Exec(ctx, `UPDATE access_notifications SET delivered_at = now(), email = $2, leased_until = NULL,
		last_error = NULLIF($3, '') WHERE id = $1`, id, how, lastErr)
	if err != nil {
		return fmt.Errorf("notify: settle %d: %w", id, err)
	}
	return nil
}
