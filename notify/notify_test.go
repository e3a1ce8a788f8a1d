package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/db/dbtest"
)

// phiMarker stands for anything identifying: it is in the user's name and
// in the notification's payload, and must never reach an e-mail.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const phiMarker = "PHIMARKER-Doe-19700101"

const (
	patient   = "GPATIENTXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	clinician = "GCLINICIANXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	stranger  = "GSTRANGERXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
)

func setup(t *testing.T) (context.Context, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.New(t)
	for _, u := range []struct{ email, account string }{
		{"pat@example.org", patient},
		{"doc@example.org", clinician},
	} {
		if _, err := pool.Exec(ctx, `INSERT INTO users (email, display_name, account) VALUES ($1, $2, $3)`,
			u.email, phiMarker, u.account); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, pool
}

func queue(t *testing.T, pool *pgxpool.Pool, account, kind string) int64 {
	t.Helper()
	var id int64
	err := pool.QueryRow(context.Background(), `INSERT INTO access_notifications (account, kind, payload)
		VALUES ($1, $2, jsonb_build_object('study_description', $3::text, 'patient_name', $3::text)) RETURNING id`,
		account, kind, phiMarker).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type row struct {
	delivered bool
	email     *string
	attempts  int
	lastErr   *string
}

func state(t *testing.T, pool *pgxpool.Pool, id int64) row {
	t.Helper()
	var r row
	if err := pool.QueryRow(context.Background(), `SELECT delivered_at IS NOT NULL, email, attempts, last_error
		FROM access_notifications WHERE id = $1`, id).Scan(&r.delivered, &r.email, &r.attempts, &r.lastErr); err != nil {
		t.Fatal(err)
	}
	return r
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// TestDeliverRetryOnce: the sink refuses the first attempt; the retry
// delivers; later passes send nothing more; the account without a user
// is settled without e-mail; the message holds no PHI and links to the
// portal.
func TestDeliverRetryOnce(t *testing.T) {
	ctx, pool := setup(t)
	s := startSink(t, nil, 1)
	n, err := New(Config{Pool: pool, Logger: quiet, SMTP: SMTP{Addr: s.addr(), From: "noreply@medimint.test"}, PortalURL: "https://portal.medimint.test/",
		Backoff: func(int) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	minted := queue(t, pool, patient, KindStudyMinted)
	nobody := queue(t, pool, stranger, KindGrantRevoked)

	if k, err := n.DeliverDue(ctx); err != nil || k != 2 {
		t.Fatalf("first pass: %d, %v", k, err)
	}
	if r := state(t, pool, minted); r.delivered || r.attempts != 1 || !strings.Contains(str(r.lastErr), "451") {
		t.Errorf("after the refusal: %+v (last error %s), want pending with attempt 1 and the 451", r, str(r.lastErr))
	}
	if r := state(t, pool, nobody); !r.delivered || str(r.email) != "no-address" {
		t.Errorf("no user: %+v %s, want settled as no-address", r, str(r.email))
	}
	if got := s.messages(); len(got) != 0 {
		t.Fatalf("%d messages after a refused attempt", len(got))
	}

	if k, err := n.DeliverDue(ctx); err != nil || k != 1 {
		t.Fatalf("retry pass: %d, %v", k, err)
	}
	if r := state(t, pool, minted); !r.delivered || str(r.email) != "sent" || r.attempts != 2 || r.lastErr != nil {
		t.Errorf("after the retry: %+v %s %s", r, str(r.email), str(r.lastErr))
	}
	for i := 0; i < 2; i++ {
		if k, err := n.DeliverDue(ctx); err != nil || k != 0 {
			t.Errorf("idle pass %d leased %d (%v)", i, k, err)
		}
	}
	got := s.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages, want exactly 1", len(got))
	}
	m := got[0]
	if m.to != "<pat@example.org>" || m.from != "<noreply@medimint.test>" {
		t.Errorf("envelope from %s to %s", m.from, m.to)
	}
	for _, want := range []string{"Subject: Medimint: A new imaging study is available", "To: <pat@example.org>",
		"https://portal.medimint.test/notifications", "Message-ID: <notification."} {
		if !strings.Contains(m.data, want) {
			t.Errorf("message lacks %q:\n%s", want, m.data)
		}
	}
	if strings.Contains(m.data, phiMarker) || strings.Contains(m.data, "PHIMARKER") {
		t.Errorf("PHI in the e-mail:\n%s", m.data)
	}
}

func TestGiveUpAndDisabled(t *testing.T) {
	ctx, pool := setup(t)
	s := startSink(t, nil, 100)
	n, err := New(Config{Pool: pool, Logger: quiet, SMTP: SMTP{Addr: s.addr(), From: "noreply@medimint.test"}, MaxAttempts: 3,
		Backoff: func(int) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	id := queue(t, pool, patient, KindBreakGlass)
	for i := 0; i < 5; i++ {
		if _, err := n.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r := state(t, pool, id); !r.delivered || str(r.email) != "failed" || r.attempts != 3 {
		t.Errorf("after max attempts: %+v %s", r, str(r.email))
	}

	off, err := New(Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	id = queue(t, pool, patient, KindStudyMinted)
	if _, err := off.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	if r := state(t, pool, id); !r.delivered || str(r.email) != "disabled" {
		t.Errorf("with e-mail disabled: %+v %s", r, str(r.email))
	}
	if _, err := New(Config{Pool: pool, SMTP: SMTP{Addr: s.addr(), From: "not an address\r\nBcc: x@y"}}); err == nil {
		t.Error("a malformed sender address was accepted")
	}
}

// TestRunSTARTTLS: Run, woken by the trigger's announcement (its poll is
// an hour), delivers over STARTTLS with authentication a notification the
// watcher's insert of a record token queued.
func TestRunSTARTTLS(t *testing.T) {
	ctx, pool := setup(t)
	serverTLS, clientTLS := selfSigned(t)
	s := startSink(t, serverTLS, 0)
	n, err := New(Config{Pool: pool, Poll: time.Hour, Logger: quiet,
		SMTP: SMTP{Addr: s.addr(), From: "Medimint <noreply@medimint.test>", User: "mailer", Password: "s3cret", TLS: clientTLS}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// Whether the row comes before or after Run listens, it is delivered
	// without waiting for the hourly poll.
	mintRecord(t, pool, "MR0001", patient, time.Now())
	m := <-s.arrivals
	if !m.tls || m.auth != "\x00mailer\x00s3cret" {
		t.Errorf("delivered with tls %v auth %q", m.tls, m.auth)
	}
	if !strings.Contains(m.data, "A new imaging study is available") {
		t.Errorf("message:\n%s", m.data)
	}
}

func mintRecord(t *testing.T, pool *pgxpool.Pool, code, holder string, at time.Time) {
	t.Helper()
	sum := sha256.Sum256([]byte(code))
	hash := hex.EncodeToString(sum[:])
	if _, err := pool.Exec(context.Background(), `INSERT INTO record_tokens (code, issuer, study_hash, cid, holder, minted_tx, minted_ledger, minted_at, holder_tx, holder_ledger)
		VALUES ($1, 'GISSUER', $2, 'bafy', $3, 'tx-' || $1, 7, $4, 'tx-' || $1, 7)`, code, hash, holder, at); err != nil {
		t.Fatal(err)
	}
}

// TestTriggers: the watcher's rows queue the notifications, once each,
// also when a rebuild writes them again, and not for old events.
func TestTriggers(t *testing.T) {
	ctx, pool := setup(t)
	now := time.Now()
	mintRecord(t, pool, "MR0001", patient, now)
	mintRecord(t, pool, "MR0002", patient, now.Add(-30*24*time.Hour)) // long ago: no notification
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	grant := func() {
		exec(`INSERT INTO grants (tx_hash, op, code, issuer, holder, grantee, scope, expires_at, ledger, created_at, state)
			VALUES ('gtx', 0, 'MR0001', 'GISSUER', $1, $2, 3, $3, 8, $4, 'active')`, patient, clinician, now.Add(time.Hour), now)
	}
	request := func() {
		exec(`INSERT INTO access_requests (request_tx, op, code, issuer, requester, scope, until, ledger, requested_at, state)
			VALUES ('rtx', 0, 'MR0001', 'GISSUER', $1, 3, $2, 9, $3, 'pending')`, clinician, now.Add(time.Hour), now)
	}
	grant()
	request()
	exec(`UPDATE grants SET state = 'revoked', ended_tx = 'etx', ended_ledger = 10, ended_at = $1 WHERE tx_hash = 'gtx'`, now)

	want := []string{
		patient + " study.minted",
		patient + " grant.confirmed", clinician + " grant.confirmed",
		patient + " request.received",
		patient + " grant.revoked", clinician + " grant.revoked",
	}
	check := func(when string) {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT account || ' ' || kind FROM access_notifications ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: notifications\n%s\nwant\n%s", when, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	check("incremental")

	// A rebuild empties the watcher's tables and writes them again.
	exec(`DELETE FROM grants`)
	exec(`DELETE FROM access_requests`)
	exec(`DELETE FROM record_tokens`)
	mintRecord(t, pool, "MR0001", patient, now)
	grant()
	request()
	exec(`UPDATE grants SET state = 'revoked', ended_tx = 'etx', ended_ledger = 10, ended_at = $1 WHERE tx_hash = 'gtx'`, now)
	check("after a rebuild")
}
