package portalapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/access"
)

// Activity is one entry of the timeline, from the audit log.
type Activity struct {
	Seq      int64     `json:"seq"`
	At       time.Time `json:"at"`
	Category string    `json:"category"`
	Action   string    `json:"action"`
	Outcome  string    `json:"outcome"`
	Actor    string    `json:"actor"`
	Resource string    `json:"resource"`
	Reason   string    `json:"reason,omitempty"`
	TxHash   string    `json:"tx_hash,omitempty"`
	TxURL    string    `json:"tx_url,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// activity lists what happened to the caller's records and what the
// caller did, newest first (?before=seq pages back).
func (a *API) activity(c *fiber.Ctx) error {
	sub := subject(c)
	before := int64(1<<63 - 1)
	if b := c.Query("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			return fiber.NewError(http.StatusBadRequest, "before must be a sequence number")
		}
		before = n
	}
	rows, err := a.pool.Query(c.UserContext(), `SELECT seq, recorded, category, action, outcome, actor, resource, reason, tx_hash, tx_url, detail
		FROM audit_log
		WHERE seq < $3 AND (actor = $1 OR actor = $2
		   OR resource IN (SELECT code || ':' || issuer FROM record_tokens WHERE holder = $1)
		   OR (category = 'chain' AND detail LIKE '%' || $1 || '%' AND $1 <> ''))
		ORDER BY seq DESC LIMIT 100`, sub.Account, "user:"+sub.UserID, before)
	if err != nil {
		return a.problem(c, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Activity, error) {
		var e Activity
		err := r.Scan(&e.Seq, &e.At, &e.Category, &e.Action, &e.Outcome, &e.Actor, &e.Resource, &e.Reason, &e.TxHash, &e.TxURL, &e.Detail)
		return e, err
	})
	if err != nil {
		return a.problem(c, err)
	}
	if out == nil {
		out = []Activity{}
	}
	return c.JSON(out)
}

// Event is one Server-Sent Event of /api/events: something changed about
// the subscriber's records, grants or requests.
type Event struct {
	Kind   string `json:"kind"` // access.Change kinds: record, grant, request, …
	Token  string `json:"token,omitempty"`
	Ledger int32  `json:"ledger,omitempty"`
}

// notificationsChannel is where access announces a notification queued
// for an account (access_notifications: break-glass access).
const notificationsChannel = "medimint_notifications"

// EventBreakGlass is the Event kind telling a holder that someone broke
// the glass on one of their records (the activity timeline has the entry).
const EventBreakGlass = "break-glass"

// hub fans chain changes (NOTIFY on access.Channel) out to the
// subscribers they concern.
type hub struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	mu   sync.Mutex
	subs map[chan Event]string // → account
}

func newHub(pool *pgxpool.Pool, log *slog.Logger) *hub {
	return &hub{pool: pool, log: log, subs: map[chan Event]string{}}
}

func (h *hub) subscribe(account string) chan Event {
	ch := make(chan Event, 16)
	h.mu.Lock()
	h.subs[ch] = account
	h.mu.Unlock()
	return ch
}

func (h *hub) unsubscribe(ch chan Event) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

// run listens until ctx ends, reconnecting after failures.
func (h *hub) run(ctx context.Context) error {
	for {
		err := h.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		h.log.Warn("notification listener failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func (h *hub) listen(ctx context.Context) error {
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for _, ch := range []string{access.Channel, notificationsChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	defer func() {
		// The connection goes back to the pool: stop listening first.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "UNLISTEN *")
	}()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == notificationsChannel {
			// Break-glass access to a record: the payload is its holder;
			// other notifications (package notify): "<account> <kind>".
			acct, kind, ok := strings.Cut(n.Payload, " ")
			if !ok {
				kind = EventBreakGlass
			}
			h.dispatch(ctx, access.Change{Kind: kind, Account: acct})
			continue
		}
		var ch access.Change
		if err := json.Unmarshal([]byte(n.Payload), &ch); err != nil {
			continue
		}
		h.dispatch(ctx, ch)
	}
}

// dispatch sends ch to the subscribers it concerns: the account it names
// and the current holder of its token.
func (h *hub) dispatch(ctx context.Context, ch access.Change) {
	concerned := map[string]bool{}
	if ch.Account != "" {
		concerned[ch.Account] = true
	}
	if code, issuer, ok := strings.Cut(ch.Token, ":"); ok {
		var holder string
		if err := h.pool.QueryRow(ctx, `SELECT holder FROM record_tokens WHERE code = $1 AND issuer = $2`, code, issuer).Scan(&holder); err == nil {
			concerned[holder] = true
		}
	}
	ev := Event{Kind: ch.Kind, Token: ch.Token, Ledger: ch.Ledger}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub, acct := range h.subs {
		if ch.Kind == access.ChangeReload || concerned[acct] {
			select {
			case sub <- ev:
			default: // a slow client misses an event; it re-reads on the next
			}
		}
	}
}

// events streams Server-Sent Events: "change" events as the chain
// watcher records what concerns the caller, and a comment every 15
// seconds to keep proxies from closing the stream. The stream ends when
// the server shuts down: graceful shutdown waits for every response to
// end, and this one never would.
func (a *API) events(c *fiber.Ctx) error {
	sub := subject(c)
	// Closed when the server begins to shut down (nil, never closed, for
	// a connection served outside a listener, as app.Test does).
	stopping := c.Context().Done()
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no")
	ch := a.hub.subscribe(sub.Account)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer a.hub.unsubscribe(ch)
		tick := time.NewTicker(15 * time.Second)
		defer tick.Stop()
		fmt.Fprint(w, "retry: 5000\n: connected\n\n")
		if w.Flush() != nil {
			return
		}
		for {
			select {
			case ev := <-ch:
				b, _ := json.Marshal(ev)
				fmt.Fprintf(w, "event: change\ndata: %s\n\n", b)
			case <-tick.C:
				fmt.Fprint(w, ": keep-alive\n\n")
			case <-stopping:
				// The client reconnects after retry, to the next server.
				return
			}
			if w.Flush() != nil {
				return // the client went away
			}
		}
	})
	return nil
}
