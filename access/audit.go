package access

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Audit categories: what kind of event an entry records.
const (
	CategoryDecision   = "decision"    // an access decision (Decide)
	CategoryRetrieval  = "retrieval"   // data actually served
	CategoryGrant      = "grant"       // grant or revoke requested through Medimint
	CategoryAdmin      = "admin"       // administrative action (org mapping, rebuild, delete)
	CategoryChain      = "chain"       // protocol event observed on chain (linked to its transaction)
	CategoryBreakGlass = "break-glass" // emergency access
)

// Audit outcomes.
const (
	OutcomeAllow   = "allow"
	OutcomeDeny    = "deny"
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Entry is one row of the audit log. Seq, PrevHash and Hash are assigned
// when it is appended; Recorded is truncated to microseconds (what
// PostgreSQL keeps) and set to the append time when zero.
type Entry struct {
	Seq      int64
	Recorded time.Time
	Category string
	Action   string
	Outcome  string
	Actor    string // Stellar account, user or component
	Roles    string // comma-separated
	OrgID    string
	Resource string // token, study hash, Study Instance UID or other object
	Reason   string
	TxHash   string // the chain transaction this entry is about, if any
	TxURL    string // explorer link to TxHash (wallet.Network.TxURL)
	Detail   string // JSON object, or empty
	PrevHash []byte
	Hash     []byte
}

// canonicalTag versions CanonicalBytes.
const canonicalTag = "medimint-audit/1"

// CanonicalBytes is the row encoding the hash chain covers: a version tag,
// seq and the recorded time in Unix microseconds as 8 big-endian bytes
// each, then every text column in table order, each prefixed by its length
// as a uvarint. Hash = sha256(PrevHash || CanonicalBytes).
func CanonicalBytes(e Entry) []byte {
	b := make([]byte, 0, 256)
	b = append(b, canonicalTag...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Recorded.UnixMicro()))
	for _, s := range []string{e.Category, e.Action, e.Outcome, e.Actor, e.Roles, e.OrgID, e.Resource, e.Reason, e.TxHash, e.TxURL, e.Detail} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func chainHash(prev []byte, e Entry) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(CanonicalBytes(e))
	return h.Sum(nil)
}

// auditLock is the pg_advisory_xact_lock key serialising appends across
// processes; its bytes spell "Mm_audit".
const auditLock int64 = 0x4d6d5f6175646974

var auditColumns = []string{"seq", "recorded", "category", "action", "outcome", "actor", "roles", "org_id",
	"resource", "reason", "tx_hash", "tx_url", "detail", "prev_hash", "hash"}

// AppendTx appends entries to the audit log inside tx, chained after the
// last row. It takes a transaction-scoped advisory lock, so appends from
// any number of goroutines and processes serialise and the chain has no
// forks or gaps; the entries become visible when tx commits. It returns
// the entries with Seq, Recorded, PrevHash and Hash filled in.
func AppendTx(ctx context.Context, tx pgx.Tx, entries ...Entry) ([]Entry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", auditLock); err != nil {
		return nil, fmt.Errorf("access: audit lock: %w", err)
	}
	var seq int64
	prev := make([]byte, sha256.Size)
	err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").Scan(&seq, &prev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("access: audit head: %w", err)
	}
	now := time.Now()
	out := make([]Entry, len(entries))
	rows := make([][]any, len(entries))
	for i, e := range entries {
		seq++
		e.Seq = seq
		if e.Recorded.IsZero() {
			e.Recorded = now
		}
		e.Recorded = e.Recorded.UTC().Truncate(time.Microsecond)
		e.PrevHash = prev
		e.Hash = chainHash(prev, e)
		prev = e.Hash
		out[i] = e
		rows[i] = []any{e.Seq, e.Recorded, e.Category, e.Action, e.Outcome, e.Actor, e.Roles, e.OrgID,
			e.Resource, e.Reason, e.TxHash, e.TxURL, e.Detail, e.PrevHash, e.Hash}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_log"}, auditColumns, pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("access: append %d audit entries: %w", len(rows), err)
	}
	return out, nil
}

// Auditor appends entries through one writer goroutine that batches
// whatever is queued into one transaction, so that auditing every
// decision costs a channel send, not a commit.
type Auditor struct {
	pool  *pgxpool.Pool
	log   *slog.Logger
	queue chan auditReq
	stop  chan struct{}
	done  chan struct{}
}

type auditReq struct {
	entries []Entry
	reply   chan auditReply // nil: fire and forget
}

type auditReply struct {
	entries []Entry
	err     error
}

// maxAuditBatch bounds the rows of one append transaction.
const maxAuditBatch = 1000

// NewAuditor starts the writer; Close stops it after writing what is
// queued. queue is how many requests may wait before Log blocks (the
// back-pressure that keeps an unreachable database from growing memory).
func NewAuditor(pool *pgxpool.Pool, log *slog.Logger, queue int) *Auditor {
	if log == nil {
		log = slog.Default()
	}
	if queue <= 0 {
		queue = 4096
	}
	a := &Auditor{pool: pool, log: log, queue: make(chan auditReq, queue), stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// Log queues entries to be appended soon. It blocks only while the queue
// is full, until ctx is done.
func (a *Auditor) Log(ctx context.Context, entries ...Entry) error {
	select {
	case a.queue <- auditReq{entries: entries}:
		return nil
	case <-a.stop:
		return errors.New("access: auditor closed")
	case <-ctx.Done():
		return fmt.Errorf("access: audit queue full: %w", ctx.Err())
	}
}

// Append appends entries and returns once they are committed, with their
// sequence numbers and hashes.
func (a *Auditor) Append(ctx context.Context, entries ...Entry) ([]Entry, error) {
	r := auditReq{entries: entries, reply: make(chan auditReply, 1)}
	select {
	case a.queue <- r:
	case <-a.stop:
		return nil, errors.New("access: auditor closed")
	case <-ctx.Done():
		return nil, fmt.Errorf("access: audit queue full: %w", ctx.Err())
	}
	select {
	case rep := <-r.reply:
		return rep.entries, rep.err
	case <-ctx.Done():
		// The entries may still be written: the outcome is unknown.
		return nil, fmt.Errorf("access: audit append: %w", ctx.Err())
	}
}

// Close writes what is queued and stops the writer.
func (a *Auditor) Close() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}

func (a *Auditor) run() {
	defer close(a.done)
	for {
		var first auditReq
		select {
		case first = <-a.queue:
		case <-a.stop:
			// Write what was queued before Close, then stop.
			select {
			case first = <-a.queue:
			default:
				return
			}
		}
		batch := []auditReq{first}
		n := len(first.entries)
	fill:
		for n < maxAuditBatch {
			select {
			case r := <-a.queue:
				batch = append(batch, r)
				n += len(r.entries)
			default:
				break fill
			}
		}
		a.write(batch)
	}
}

// write appends a batch, retrying with jittered backoff: audit entries
// are not dropped because the database blinked. After Close it tries a
// few times more and then reports failure to the waiters.
func (a *Auditor) write(batch []auditReq) {
	var all []Entry
	for _, r := range batch {
		all = append(all, r.entries...)
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var out []Entry
		err := pgx.BeginFunc(context.Background(), a.pool, func(tx pgx.Tx) error {
			var err error
			out, err = AppendTx(context.Background(), tx, all...)
			return err
		})
		if err == nil {
			i := 0
			for _, r := range batch {
				if r.reply != nil {
					r.reply <- auditReply{entries: out[i : i+len(r.entries)]}
				}
				i += len(r.entries)
			}
			return
		}
		a.log.Error("access: audit append failed", slog.Int("entries", len(all)), slog.Int("attempt", attempt), slog.Any("err", err))
		stopped := false
		select {
		case <-a.stop:
			stopped = true
		default:
		}
		if stopped && attempt >= 3 {
			for _, r := range batch {
				if r.reply != nil {
					r.reply <- auditReply{err: err}
				}
			}
			return
		}
		time.Sleep(backoff/2 + rand.N(backoff/2))
		backoff = min(2*backoff, 5*time.Second)
	}
}

// AuditError reports where the audit chain is broken.
type AuditError struct {
	Seq     int64
	Problem string
}

func (e *AuditError) Error() string {
	return fmt.Sprintf("access: audit log broken at seq %d: %s", e.Seq, e.Problem)
}

// ErrAuditBroken is wrapped by every *AuditError.
var ErrAuditBroken = errors.New("access: audit log broken")

// Unwrap makes errors.Is(err, ErrAuditBroken) hold.
func (e *AuditError) Unwrap() error { return ErrAuditBroken }

// AuditHead is the state of a verified chain.
type AuditHead struct {
	Rows int64
	Hash []byte // hash of the last row (32 zero bytes when empty)
}

// VerifyAudit walks the whole audit log in sequence order and checks that
// sequence numbers run 1, 2, 3… (a deleted or renumbered row leaves a
// gap), that each row names its predecessor's hash (a reordered or
// deleted row breaks the link) and that each row's hash matches its
// contents (a modified row). The first problem is returned as an
// *AuditError. Removing rows from the end leaves a valid shorter chain:
// compare the head with one recorded elsewhere to detect that.
func VerifyAudit(ctx context.Context, pool *pgxpool.Pool) (AuditHead, error) {
	rows, err := pool.Query(ctx, "SELECT "+joinCols(auditColumns)+" FROM audit_log ORDER BY seq")
	if err != nil {
		return AuditHead{}, fmt.Errorf("access: read audit log: %w", err)
	}
	defer rows.Close()
	head := AuditHead{Hash: make([]byte, sha256.Size)}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return head, err
		}
		want := head.Rows + 1
		switch {
		case e.Seq != want:
			return head, &AuditError{Seq: want, Problem: fmt.Sprintf("row missing (next row is seq %d)", e.Seq)}
		case !bytes.Equal(e.PrevHash, head.Hash):
			return head, &AuditError{Seq: e.Seq, Problem: "does not follow its predecessor (row deleted, reordered or replaced)"}
		case !bytes.Equal(e.Hash, chainHash(e.PrevHash, e)):
			return head, &AuditError{Seq: e.Seq, Problem: "contents do not match the row's hash (row modified)"}
		}
		head.Rows, head.Hash = e.Seq, e.Hash
	}
	if err := rows.Err(); err != nil {
		return head, fmt.Errorf("access: read audit log: %w", err)
	}
	return head, nil
}

func joinCols(cols []string) string {
	var b bytes.Buffer
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c)
	}
	return b.String()
}

func scanEntry(rows pgx.Rows) (Entry, error) {
	var e Entry
	err := rows.Scan(&e.Seq, &e.Recorded, &e.Category, &e.Action, &e.Outcome, &e.Actor, &e.Roles, &e.OrgID,
		&e.Resource, &e.Reason, &e.TxHash, &e.TxURL, &e.Detail, &e.PrevHash, &e.Hash)
	if err != nil {
		return e, fmt.Errorf("access: scan audit row: %w", err)
	}
	e.Recorded = e.Recorded.UTC()
	return e, nil
}

// AuditEntries calls fn for each audit row with afterSeq < seq, in order,
// streaming from the database.
func AuditEntries(ctx context.Context, pool *pgxpool.Pool, afterSeq int64, fn func(Entry) error) error {
	rows, err := pool.Query(ctx, "SELECT "+joinCols(auditColumns)+" FROM audit_log WHERE seq > $1 ORDER BY seq", afterSeq)
	if err != nil {
		return fmt.Errorf("access: read audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("access: read audit log: %w", err)
	}
	return nil
}
