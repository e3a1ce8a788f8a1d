package mint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/index"
)

// maxGroup bounds how many instances one index transaction commits.
const maxGroup = 64

// commitTimeout bounds one group's transaction. A group commits other
// callers' rows too, so it does not run under any one caller's context.
const commitTimeout = time.Minute

// committer commits the index rows of concurrent stores together (group
// commit): the stores that queue while a transaction is in flight go in
// the next one, sent in one round trip (index.QueueInsert) and made
// durable by one WAL flush. No goroutine of its own: the first store to
// find no transaction in flight leads, and hands the lead to the first
// waiting store when its group is done.
type committer struct {
	mu      sync.Mutex
	queue   []*commitReq
	leading bool
}

type commitReq struct {
	rec  *index.Record
	w    *written       // the blob, whose Put may still be running
	done chan commitRes // buffered: a lead hand-off, then the result
}

type commitRes struct {
	old index.InstanceRef // the replaced instance (Replaced)
	out Outcome
	err error
	// unsure: the commit failed in a way that leaves its outcome
	// unknown, so the blob must stay.
	unsure bool
	lead   bool // not a result: the receiver leads the next group
}

// commit indexes rec with the other stores queued meanwhile and returns
// once its row is committed (after its blob's Put completed) or has
// failed.
func (c *committer) commit(ctx context.Context, p *Pipeline, rec *index.Record, w *written) commitRes {
	req := &commitReq{rec: rec, w: w, done: make(chan commitRes, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if !lead {
		if r := <-req.done; !r.lead {
			return r
		}
	}
	c.mu.Lock()
	n := min(len(c.queue), maxGroup)
	group := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()

	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	p.commitGroup(gctx, group)
	cancel()

	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- commitRes{lead: true}
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	return <-req.done
}

// commitGroup commits the group's rows in one transaction, all or none:
// the rows go to the server while the blobs' fsyncs run, and COMMIT
// follows once every Put is done, so a committed row always has its
// blob. If that fails (a duplicate, a conflict, a failed Put, a lost
// connection), each record is committed on its own so that each gets its
// own outcome.
func (p *Pipeline) commitGroup(ctx context.Context, group []*commitReq) {
	var b pgx.Batch
	b.BeginTx(pgx.TxOptions{})
	queued := group[:0:0]
	for _, req := range group {
		if err := p.ix.QueueInsert(&b, req.rec); err != nil {
			req.done <- commitRes{err: indexError(req.rec, err)}
			continue
		}
		p.outbox.queueTouch(&b, req.rec.Dataset.String(dicom.TagStudyInstanceUID), p.cfg.StableAge)
		queued = append(queued, req)
	}
	if len(queued) == 0 {
		return
	}
	err := func() error {
		br := p.cfg.Pool.SendBatch(ctx, &b)
		tx := br.Tx()
		err := br.Close()
		if tx == nil {
			if err == nil {
				err = errors.New("no transaction")
			}
			return err
		}
		if err != nil {
			tx.Rollback(ctx)
			return err
		}
		for _, req := range queued {
			if err := req.w.waitPut(); err != nil {
				tx.Rollback(ctx)
				return err
			}
		}
		return tx.Commit(ctx)
	}()
	if err == nil {
		for _, req := range queued {
			req.done <- commitRes{out: Created}
		}
		return
	}
	for _, req := range queued {
		req.done <- p.commitAlone(ctx, req)
	}
}

// commitAlone commits one record in its own transaction, applying the
// duplicate policy.
func (p *Pipeline) commitAlone(ctx context.Context, req *commitReq) commitRes {
	for attempt := 0; ; attempt++ {
		r := p.commit(ctx, req.rec, req.w)
		// A concurrent store of the same SOP instance can slip past the
		// duplicate check; the unique index stops it, and a second round
		// applies the policy against the winner.
		if errors.Is(r.err, index.ErrDuplicate) && attempt == 0 {
			continue
		}
		return r
	}
}

// commit writes the index rows and the outbox row in one transaction,
// applying the duplicate policy. A row already there with rec's blob key
// is rec's own, committed by a group whose COMMIT reply was lost.
func (p *Pipeline) commit(ctx context.Context, rec *index.Record, w *written) (res commitRes) {
	if err := w.waitPut(); err != nil {
		return commitRes{err: fmt.Errorf("mint: store blob: %w", err)}
	}
	sop := rec.Dataset.String(dicom.TagSOPInstanceUID)
	tx, err := p.cfg.Pool.Begin(ctx)
	if err != nil {
		return commitRes{err: indexError(rec, err)}
	}
	err = func() error {
		prev, err := index.Lookup(ctx, tx, sop, true)
		switch {
		case errors.Is(err, index.ErrNotFound):
			res.out = Created
		case err != nil:
			return err
		case prev.BlobKey == rec.BlobKey:
			res.out = Created
			return nil
		case p.cfg.Duplicates == OverwriteDuplicates:
			if _, err := p.ix.Delete(ctx, tx, sop, "overwritten"); err != nil {
				return err
			}
			res.old, res.out = prev, Replaced
		case p.cfg.Duplicates == IgnoreIdenticalDuplicates:
			same, err := p.sameContent(ctx, prev, rec)
			if err != nil {
				return err
			}
			if !same {
				return fmt.Errorf("%w: %s", ErrDuplicate, sop)
			}
			res.out = Unchanged
			return nil
		default:
			return fmt.Errorf("%w: %s", ErrDuplicate, sop)
		}
		if err := p.ix.Insert(ctx, tx, rec); err != nil {
			return err
		}
		return p.outbox.touch(ctx, tx, rec.Dataset.String(dicom.TagStudyInstanceUID), p.cfg.StableAge)
	}()
	if err != nil {
		tx.Rollback(ctx)
		return commitRes{err: indexError(rec, err)}
	}
	if err := tx.Commit(ctx); err != nil {
		// The commit may have happened: the blob stays (Sweep removes it
		// if no row refers to it).
		return commitRes{err: indexError(rec, err), unsure: true}
	}
	return res
}

// indexError maps index errors to the pipeline's.
func indexError(rec *index.Record, err error) error {
	switch {
	case errors.Is(err, index.ErrMissingUID):
		err = fmt.Errorf("%w: %w", ErrMissingUID, err)
	case errors.Is(err, index.ErrConflict):
		err = fmt.Errorf("%w: %w", ErrMismatch, err)
	case errors.Is(err, index.ErrDuplicate):
		err = fmt.Errorf("%w: %w", ErrDuplicate, err)
	}
	if !errors.Is(err, index.ErrDuplicate) && !errors.Is(err, ErrDuplicate) {
		err = fmt.Errorf("mint: index %s: %w", rec.Dataset.String(dicom.TagSOPInstanceUID), err)
	}
	return err
}

// sameContent reports whether the stored instance prev and the one just
// written for rec are byte for byte the same, comparing their decrypted
// streams. Only a resend under IgnoreIdenticalDuplicates asks, so the
// pipeline keeps no content hash that every store would pay for.
func (p *Pipeline) sameContent(ctx context.Context, prev index.InstanceRef, rec *index.Record) (bool, error) {
	if prev.Size != rec.Size {
		return false, nil
	}
	a, err := p.OpenRef(ctx, prev)
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := p.OpenRef(ctx, index.InstanceRef{
		StudyInstanceUID: rec.Dataset.String(dicom.TagStudyInstanceUID),
		SOPInstanceUID:   rec.Dataset.String(dicom.TagSOPInstanceUID),
		BlobKey:          rec.BlobKey,
	})
	if err != nil {
		return false, err
	}
	defer b.Close()
	return sameStream(a, b)
}

// sameStream reports whether a and b yield the same bytes.
func sameStream(a, b io.Reader) (bool, error) {
	const n = 64 << 10
	bufA, bufB := make([]byte, n), make([]byte, n)
	for {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		endA := errA == io.EOF || errA == io.ErrUnexpectedEOF
		endB := errB == io.EOF || errB == io.ErrUnexpectedEOF
		switch {
		case errA != nil && !endA:
			return false, errA
		case errB != nil && !endB:
			return false, errB
		case !bytes.Equal(bufA[:na], bufB[:nb]):
			return false, nil
		case endA || endB:
			return endA == endB, nil
		}
	}
}
