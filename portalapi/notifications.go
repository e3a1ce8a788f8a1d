package portalapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/notify"
)

// Notification is one entry of /api/notifications: what happened, in the
// same fixed words as the e-mail (package notify), never the payload.
type Notification struct {
	ID    int64     `json:"id"`
	Kind  string    `json:"kind"`
	Title string    `json:"title"`
	Body  string    `json:"body"`
	At    time.Time `json:"at"`
	Read  bool      `json:"read"`
}

// notifications lists the caller's notifications, newest first
// (?before=id pages back). New ones are announced on /api/events with
// their kind.
func (a *API) notifications(c *fiber.Ctx) error {
	sub := subject(c)
	before := int64(1<<63 - 1)
	if b := c.Query("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			return fiber.NewError(http.StatusBadRequest, "before must be a notification id")
		}
		before = n
	}
	out := []Notification{}
	if sub.Account == "" {
		return c.JSON(out)
	}
	rows, err := a.pool.Query(c.UserContext(), `SELECT id, kind, created_at, read_at IS NOT NULL FROM access_notifications
		WHERE account = $1 AND id < $2 ORDER BY id DESC LIMIT 100`, sub.Account, before)
	if err != nil {
		return a.problem(c, err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) {
		var n Notification
		err := r.Scan(&n.ID, &n.Kind, &n.At, &n.Read)
		t := notify.Describe(n.Kind)
		n.Title, n.Body = t.Title, t.Body
		return n, err
	})
	if err != nil {
		return a.problem(c, err)
	}
	if out == nil {
		out = []Notification{}
	}
	return c.JSON(out)
}

// markNotificationsRead marks the caller's notifications read, up to and
// including ?upto=id (default: all).
func (a *API) markNotificationsRead(c *fiber.Ctx) error {
	sub := subject(c)
	upto := int64(1<<63 - 1)
	if u := c.Query("upto"); u != "" {
		n, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return fiber.NewError(http.StatusBadRequest, "upto must be a notification id")
		}
		upto = n
	}
	if _, err := a.pool.Exec(c.UserContext(), `UPDATE access_notifications SET read_at = now()
		WHERE account = $1 AND id <= $2 AND read_at IS NULL`, sub.Account, upto); err != nil {
		return a.problem(c, err)
	}
	return c.SendStatus(http.StatusNoContent)
}
