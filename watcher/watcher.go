package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"

	"github.com/medimint/medimint/wallet"
)

// Stream is the watcher_cursor row the watcher keeps.
const Stream = "transactions"

// Config configures a Watcher.
type Config struct {
	Pool    *pgxpool.Pool
	Network wallet.Network
	// Registry is the registry account whose issuer list is trusted.
	Registry string
	Log      *slog.Logger
	// PageLimit is the page size when catching up (Horizon's maximum, 200,
	// by default).
	PageLimit int
	// QueueSize is how many streamed transactions may wait to be written;
	// a stream that gets further ahead is dropped and the watcher catches
	// up by paging instead (default 1000).
	QueueSize int
	// MinBackoff and MaxBackoff bound the jittered exponential backoff
	// between failed attempts (defaults 200ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// NoAudit leaves chain events out of the audit log.
	NoAudit bool
}

// Watcher follows the ledger into Postgres. See the package comment.
type Watcher struct {
	cfg      Config
	log      *slog.Logger
	progress atomic.Int64 // batches applied, to reset the backoff
}

// Cursor is where the watcher stands: the last applied transaction.
type Cursor struct {
	PagingToken string // '' before the first transaction
	Ledger      int32
	TxHash      string
}

// New checks cfg and returns a Watcher.
func New(cfg Config) (*Watcher, error) {
	switch {
	case cfg.Pool == nil:
		return nil, errors.New("watcher: no database pool")
	case cfg.Network.HorizonURL == "":
		return nil, errors.New("watcher: no Horizon URL")
	case cfg.Registry == "":
		return nil, errors.New("watcher: no registry account")
	}
	if cfg.PageLimit <= 0 || cfg.PageLimit > 200 {
		cfg.PageLimit = 200
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{cfg: cfg, log: log.With(slog.String("component", "watcher"))}, nil
}

// errors that end one attempt to follow the stream.
var (
	errLagged        = errors.New("watcher: stream lagged behind; catching up by paging")
	errStreamDropped = errors.New("watcher: stream dropped")
	errCursorMoved   = errors.New("watcher: cursor moved underneath (another watcher or a rebuild)")
)

// Run follows the ledger until ctx is done (then it returns nil): it
// catches up by paging from the stored cursor, streams, and on any
// failure backs off (exponential with full jitter) and starts again from
// the stored cursor.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.init(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	backoff := w.cfg.MinBackoff
	for {
		before := w.progress.Load()
		err := w.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errLagged) {
			w.log.InfoContext(ctx, "watcher: stream lagged; catching up by paging")
			continue
		}
		if w.progress.Load() != before {
			backoff = w.cfg.MinBackoff
		}
		level := slog.LevelWarn
		if errors.Is(err, errStreamDropped) || errors.Is(err, errCursorMoved) {
			level = slog.LevelInfo
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		w.log.Log(ctx, level, "watcher: restarting", slog.Any("err", err), slog.Duration("after", wait))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

// init creates the cursor row, or checks that the stored state was
// derived for the same registry.
func (w *Watcher) init(ctx context.Context) error {
	var registry string
	err := w.cfg.Pool.QueryRow(ctx, `
WITH ins AS (INSERT INTO watcher_cursor (stream, registry) VALUES ($1, $2) ON CONFLICT (stream) DO NOTHING RETURNING registry)
SELECT registry FROM ins UNION ALL SELECT registry FROM watcher_cursor WHERE stream = $1 LIMIT 1`, Stream, w.cfg.Registry).Scan(&registry)
	if err != nil {
		return fmt.Errorf("watcher: cursor: %w", err)
	}
	if registry != w.cfg.Registry {
		return fmt.Errorf("watcher: tables were derived for registry %s, not %s: rebuild them", registry, w.cfg.Registry)
	}
	return nil
}

// Cursor returns the stored cursor.
func (w *Watcher) Cursor(ctx context.Context) (Cursor, error) {
	var c Cursor
	err := w.cfg.Pool.QueryRow(ctx, "SELECT paging_token, ledger, tx_hash FROM watcher_cursor WHERE stream = $1", Stream).
		Scan(&c.PagingToken, &c.Ledger, &c.TxHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cursor{}, nil
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("watcher: read cursor: %w", err)
	}
	return c, nil
}

// follow catches up by paging, then streams until something goes wrong.
func (w *Watcher) follow(ctx context.Context) error {
	c, err := w.Cursor(ctx)
	if err != nil {
		return err
	}
	cur, err := w.catchUp(ctx, c.PagingToken)
	if err != nil {
		return err
	}
	return w.stream(ctx, cur)
}

// CatchUp applies every transaction after the stored cursor by paging
// /transactions, and returns the cursor reached. Run does this itself;
// CatchUp is for one-shot synchronisation (and the command line).
func (w *Watcher) CatchUp(ctx context.Context) (Cursor, error) {
	if err := w.init(ctx); err != nil {
		return Cursor{}, err
	}
	c, err := w.Cursor(ctx)
	if err != nil {
		return Cursor{}, err
	}
	if _, err := w.catchUp(ctx, c.PagingToken); err != nil {
		return Cursor{}, err
	}
	return w.Cursor(ctx)
}

func (w *Watcher) catchUp(ctx context.Context, cur string) (string, error) {
	for {
		page, err := w.page(ctx, cur)
		if err != nil {
			return cur, err
		}
		recs := page.Embedded.Records
		if len(recs) > 0 {
			if cur, err = w.applyBatch(ctx, cur, recs, !w.cfg.NoAudit); err != nil {
				return cur, err
			}
		}
		if len(recs) < w.cfg.PageLimit {
			return cur, nil
		}
	}
}

func (w *Watcher) page(ctx context.Context, cur string) (horizon.TransactionsPage, error) {
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	hz := w.cfg.Network.Horizon(pctx)
	page, err := hz.Transactions(horizonclient.TransactionRequest{Cursor: cur, Order: horizonclient.OrderAsc, Limit: uint(w.cfg.PageLimit)})
	if err != nil {
		return page, fmt.Errorf("watcher: page /transactions after %q: %w", cur, err)
	}
	return page, nil
}

// stream follows the SSE stream of /transactions from cur. Streamed
// transactions queue for one writer that applies whatever has arrived as
// one batch. It returns errLagged when the queue overflows and
// errStreamDropped when the connection ends: horizonclient would reconnect
// by itself, at once and without catching up by paging, so the HTTP client
// given to it serves exactly one request.
func (w *Watcher) stream(ctx context.Context, cur string) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan horizon.Transaction, w.cfg.QueueSize)
	var lagged atomic.Bool
	streamErr := make(chan error, 1)
	go func() {
		defer close(queue)
		hz := &horizonclient.Client{HorizonURL: w.cfg.Network.HorizonURL, AppName: "medimint-watcher",
			HTTP: &oneShot{ctx: sctx, base: w.cfg.Network.HTTP}}
		from := cur
		if from == "" {
			from = "0" // the beginning; an empty cursor would mean "now"
		}
		dropping := false
		err := hz.StreamTransactions(sctx, horizonclient.TransactionRequest{Cursor: from}, func(tx horizon.Transaction) {
			if dropping {
				return // after one is dropped nothing may follow it in
			}
			select {
			case queue <- tx:
			default:
				dropping = true
				lagged.Store(true)
				cancel()
			}
		})
		if err == nil && sctx.Err() == nil {
			err = errStreamDropped
		}
		streamErr <- err
	}()

	for tx := range queue {
		batch := []horizon.Transaction{tx}
	drain:
		for len(batch) < w.cfg.PageLimit {
			select {
			case t, ok := <-queue:
				if !ok {
					break drain
				}
				batch = append(batch, t)
			default:
				break drain
			}
		}
		var err error
		if cur, err = w.applyBatch(ctx, cur, batch, !w.cfg.NoAudit); err != nil {
			cancel()
			for range queue {
			}
			<-streamErr
			return err
		}
	}
	err := <-streamErr
	switch {
	case lagged.Load():
		return errLagged
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		return errStreamDropped
	}
	if errors.Is(err, errStreamDropped) {
		return errStreamDropped
	}
	return fmt.Errorf("watcher: stream: %w", err)
}

// oneShot is the stream's HTTP client: it binds requests to ctx and
// refuses a second request, turning horizonclient's silent reconnection
// into an error so that the watcher backs off and catches up first.
type oneShot struct {
	ctx  context.Context
	base *http.Client
	used atomic.Bool
}

func (o *oneShot) Do(r *http.Request) (*http.Response, error) {
	if o.used.Swap(true) {
		return nil, errStreamDropped
	}
	c := o.base
	if c == nil {
		c = http.DefaultClient
	}
	return c.Do(r.WithContext(o.ctx))
}

func (o *oneShot) Get(u string) (*http.Response, error) {
	r, err := http.NewRequestWithContext(o.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return o.Do(r)
}

func (o *oneShot) PostForm(u string, data url.Values) (*http.Response, error) {
	r, err := http.NewRequestWithContext(o.ctx, http.MethodPost, u, strings.NewReader(data.Encode()))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return o.Do(r)
}
