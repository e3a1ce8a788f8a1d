package watcher

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/contracts"
)

// applyBatch applies txs, which were read from Horizon right after the
// paging token from, in one Postgres transaction that also moves the
// cursor to the last of them. If the stored cursor is not from (someone
// else moved it), nothing is applied and errCursorMoved is returned: the
// caller starts again from the stored cursor.
func (w *Watcher) applyBatch(ctx context.Context, from string, txs []horizon.Transaction, audit bool) (string, error) {
	last, err := pagingKey(from)
	if err != nil {
		return from, err
	}
	for _, t := range txs {
		k, err := pagingKey(t.PT)
		if err != nil || t.PT == "" || t.Hash == "" {
			return from, fmt.Errorf("watcher: transaction %q has paging token %q: not a Horizon transaction record", t.Hash, t.PT)
		}
		if k <= last {
			return from, fmt.Errorf("watcher: paging token %s after %d: out of order", t.PT, last)
		}
		last = k
	}
	end := txs[len(txs)-1]
	err = pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		var stored string
		if err := tx.QueryRow(ctx, "SELECT paging_token FROM watcher_cursor WHERE stream = $1 FOR UPDATE", Stream).Scan(&stored); err != nil {
			return fmt.Errorf("watcher: lock cursor: %w", err)
		}
		if stored != from {
			return errCursorMoved
		}
		a := &applier{w: w, tx: tx}
		for _, t := range txs {
			if err := a.transaction(ctx, t); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE watcher_cursor SET paging_token = $2, ledger = $3, tx_hash = $4 WHERE stream = $1",
			Stream, end.PT, end.Ledger, end.Hash); err != nil {
			return fmt.Errorf("watcher: move cursor: %w", err)
		}
		if audit && len(a.audit) > 0 {
			if _, err := access.AppendTx(ctx, tx, a.audit...); err != nil {
				return err
			}
		}
		return access.NotifyTx(ctx, tx, a.changes)
	})
	if err != nil {
		return from, err
	}
	w.progress.Add(1)
	return end.PT, nil
}

func pagingKey(pt string) (int64, error) {
	if pt == "" {
		return -1, nil
	}
	k, err := strconv.ParseInt(pt, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("watcher: paging token %q: %w", pt, err)
	}
	return k, nil
}

// applier folds one batch's events into the tables with the rules of
// contracts.Index, collecting notifications and audit entries.
type applier struct {
	w       *Watcher
	tx      pgx.Tx
	changes []access.Change
	audit   []access.Entry
}

func (a *applier) transaction(ctx context.Context, t horizon.Transaction) error {
	if !t.Successful {
		return nil
	}
	evs, err := contracts.Interpret(contracts.Transaction{Hash: t.Hash, Ledger: t.Ledger, CreatedAt: t.LedgerCloseTime.UTC(),
		EnvelopeXDR: t.EnvelopeXdr, ResultXDR: t.ResultXdr})
	if err != nil {
		// Anyone can write mm.* entries on their own account: garbage is
		// recorded and passed over, never allowed to stop the watcher.
		return a.violation(ctx, contracts.Meta{TxHash: t.Hash, Ledger: t.Ledger, CloseTime: t.LedgerCloseTime, Op: -1}, "malformed", err)
	}
	for _, ev := range evs {
		if err := a.event(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// ruleError is an event the rules reject: recorded, not applied.
type ruleError struct {
	rule string
	err  error
}

func (e *ruleError) Error() string { return e.err.Error() }

func broke(rule string, err error) error { return &ruleError{rule: rule, err: err} }

func (a *applier) event(ctx context.Context, ev contracts.Event) error {
	var err error
	switch e := ev.(type) {
	case contracts.IssuerAdded:
		err = a.issuerAdded(ctx, e)
	case contracts.IssuerRemoved:
		err = a.issuerRemoved(ctx, e)
	case contracts.RecordMinted:
		err = a.minted(ctx, e)
	case contracts.RecordTransferred:
		err = a.transferred(ctx, e)
	case contracts.GrantCreated:
		err = a.granted(ctx, e)
	case contracts.GrantRevoked:
		err = a.revoked(ctx, e)
	case contracts.AccessRequested:
		err = a.requested(ctx, e)
	case contracts.AccessAnswered:
		err = a.answered(ctx, e)
	}
	var re *ruleError
	if errors.As(err, &re) {
		return a.violation(ctx, ev.EventMeta(), re.rule, re.err)
	}
	return err
}

func (a *applier) violation(ctx context.Context, m contracts.Meta, rule string, cause error) error {
	if _, err := a.tx.Exec(ctx, `INSERT INTO watcher_violations (tx_hash, op, ledger, rule, detail) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tx_hash, op) DO NOTHING`, m.TxHash, m.Op, m.Ledger, rule, cause.Error()); err != nil {
		return fmt.Errorf("watcher: record violation in %s: %w", m.TxHash, err)
	}
	a.note(m, "protocol.violation", "", "", access.OutcomeFailure, rule, map[string]any{"op": m.Op, "error": cause.Error()})
	return nil
}

// note queues an audit entry for a chain event, linked to its transaction.
func (a *applier) note(m contracts.Meta, action, actor, resource, outcome, reason string, detail map[string]any) {
	d := ""
	if len(detail) > 0 {
		b, _ := json.Marshal(detail) // maps of strings and numbers always encode
		d = string(b)
	}
	a.audit = append(a.audit, access.Entry{
		Recorded: m.CloseTime, Category: access.CategoryChain, Action: action, Outcome: outcome,
		Actor: actor, Resource: resource, Reason: reason, TxHash: m.TxHash, TxURL: a.w.cfg.Network.TxURL(m.TxHash), Detail: d,
	})
}

func (a *applier) change(kind string, tok, account string, ledger int32) {
	a.changes = append(a.changes, access.Change{Kind: kind, Token: tok, Account: account, Ledger: ledger})
}

func (a *applier) issuerAdded(ctx context.Context, e contracts.IssuerAdded) error {
	if e.Registry != a.w.cfg.Registry {
		return nil
	}
	_, err := a.tx.Exec(ctx, `
INSERT INTO registry_issuers (issuer, home_domain, listed, added_tx, added_ledger, added_at) VALUES ($1, $2, true, $3, $4, $5)
ON CONFLICT (issuer) DO UPDATE SET home_domain = EXCLUDED.home_domain, listed = true, added_tx = EXCLUDED.added_tx,
	added_ledger = EXCLUDED.added_ledger, added_at = EXCLUDED.added_at, removed_tx = NULL, removed_ledger = NULL, removed_at = NULL`,
		e.Issuer, e.HomeDomain, e.TxHash, e.Ledger, e.CloseTime)
	if err != nil {
		return fmt.Errorf("watcher: issuer %s added: %w", e.Issuer, err)
	}
	a.change(access.ChangeIssuer, "", e.Issuer, e.Ledger)
	a.note(e.Meta, "issuer.added", e.Registry, e.Issuer, access.OutcomeSuccess, "", map[string]any{"home_domain": e.HomeDomain})
	return nil
}

func (a *applier) issuerRemoved(ctx context.Context, e contracts.IssuerRemoved) error {
	if e.Registry != a.w.cfg.Registry {
		return nil
	}
	tag, err := a.tx.Exec(ctx, `UPDATE registry_issuers SET listed = false, removed_tx = $2, removed_ledger = $3, removed_at = $4
WHERE issuer = $1 AND listed`, e.Issuer, e.TxHash, e.Ledger, e.CloseTime)
	if err != nil {
		return fmt.Errorf("watcher: issuer %s removed: %w", e.Issuer, err)
	}
	if tag.RowsAffected() > 0 {
		a.change(access.ChangeIssuer, "", e.Issuer, e.Ledger)
		a.note(e.Meta, "issuer.removed", e.Registry, e.Issuer, access.OutcomeSuccess, "", nil)
	}
	return nil
}

func (a *applier) holder(ctx context.Context, t contracts.Token) (string, bool, error) {
	var h string
	err := a.tx.QueryRow(ctx, "SELECT holder FROM record_tokens WHERE code = $1 AND issuer = $2", t.Code, t.Issuer).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("watcher: look up %s: %w", t, err)
	}
	return h, true, nil
}

func (a *applier) minted(ctx context.Context, e contracts.RecordMinted) error {
	if _, known, err := a.holder(ctx, e.Token); err != nil {
		return err
	} else if known {
		return broke("duplicate-mint", contracts.ErrDuplicateMint)
	}
	if !e.Recorded() {
		return nil // an issuer payment without a mint record: not one of ours
	}
	var listed bool
	err := a.tx.QueryRow(ctx, "SELECT listed FROM registry_issuers WHERE issuer = $1", e.Issuer).Scan(&listed)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("watcher: look up issuer %s: %w", e.Issuer, err)
	}
	if !listed {
		return broke("untrusted-issuer", contracts.ErrUntrustedIssuer)
	}
	if e.Amount != 1 {
		return broke("supply", contracts.ErrSupply)
	}
	studyHash := hex.EncodeToString(e.StudyHash[:])
	var dup bool
	if err := a.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM record_tokens WHERE study_hash = $1)", studyHash).Scan(&dup); err != nil {
		return fmt.Errorf("watcher: look up study hash: %w", err)
	}
	if dup {
		return broke("duplicate-mint", contracts.ErrDuplicateMint)
	}
	_, err = a.tx.Exec(ctx, `INSERT INTO record_tokens (code, issuer, study_hash, cid, holder, balance_id, minted_tx, minted_ledger, minted_at, holder_tx, holder_ledger)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $7, $8)`, e.Code, e.Issuer, studyHash, e.CID, e.Holder, e.BalanceID, e.TxHash, e.Ledger, e.CloseTime)
	if err != nil {
		return fmt.Errorf("watcher: insert %s: %w", e.Token, err)
	}
	a.change(access.ChangeRecord, e.Token.String(), e.Holder, e.Ledger)
	a.note(e.Meta, "record.minted", e.Issuer, e.Token.String(), access.OutcomeSuccess, "",
		map[string]any{"holder": e.Holder, "cid": e.CID, "study_hash": studyHash, "escrow": e.BalanceID != ""})
	return nil
}

func (a *applier) transferred(ctx context.Context, e contracts.RecordTransferred) error {
	holder, known, err := a.holder(ctx, e.Token)
	switch {
	case err != nil:
		return err
	case !known:
		return nil
	case e.Amount != 1:
		return broke("supply", contracts.ErrSupply)
	case e.From != holder:
		return broke("not-holder", contracts.ErrNotHolder)
	}
	if _, err := a.tx.Exec(ctx, `UPDATE record_tokens SET holder = $3, balance_id = $4, holder_tx = $5, holder_ledger = $6
WHERE code = $1 AND issuer = $2`, e.Code, e.Issuer, e.To, e.BalanceID, e.TxHash, e.Ledger); err != nil {
		return fmt.Errorf("watcher: transfer %s: %w", e.Token, err)
	}
	// Grants are bound to the holder that wrote them.
	grantees, err := a.endGrants(ctx, "'superseded'", "code = $4 AND issuer = $5", e.Meta, e.Code, e.Issuer)
	if err != nil {
		return err
	}
	a.change(access.ChangeRecord, e.Token.String(), e.From, e.Ledger)
	a.change(access.ChangeRecord, e.Token.String(), e.To, e.Ledger)
	for _, g := range grantees {
		a.change(access.ChangeGrant, e.Token.String(), g.grantee, e.Ledger)
	}
	a.note(e.Meta, "record.transferred", e.From, e.Token.String(), access.OutcomeSuccess, "",
		map[string]any{"from": e.From, "to": e.To, "grants_superseded": len(grantees)})
	return nil
}

type ended struct{ grantee, issuer, state string }

// endGrants closes the active grants matching where ($4… are args) with
// state (an SQL expression over the row; $3 is the close time).
func (a *applier) endGrants(ctx context.Context, state, where string, m contracts.Meta, args ...any) ([]ended, error) {
	rows, err := a.tx.Query(ctx, `UPDATE grants SET state = `+state+`, ended_tx = $1, ended_ledger = $2, ended_at = $3
WHERE state = 'active' AND `+where+` RETURNING grantee, issuer, state`, append([]any{m.TxHash, m.Ledger, m.CloseTime}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("watcher: end grants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ended, error) {
		var g ended
		return g, r.Scan(&g.grantee, &g.issuer, &g.state)
	})
	if err != nil {
		return nil, fmt.Errorf("watcher: end grants: %w", err)
	}
	return out, nil
}

func (a *applier) granted(ctx context.Context, e contracts.GrantCreated) error {
	holder, known, err := a.holder(ctx, e.Token)
	switch {
	case err != nil:
		return err
	case !known:
		return nil
	case e.Holder != holder:
		return broke("not-holder", contracts.ErrNotHolder)
	}
	// New terms under the same data entry replace the old ones.
	if _, err := a.endGrants(ctx, "'replaced'", "holder = $4 AND code = $5 AND grantee = $6", e.Meta, e.Holder, e.Code, e.Grantee); err != nil {
		return err
	}
	if _, err := a.tx.Exec(ctx, `INSERT INTO grants (tx_hash, op, code, issuer, holder, grantee, scope, expires_at, ledger, created_at, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active')`,
		e.TxHash, e.Op, e.Code, e.Issuer, e.Holder, e.Grantee, int16(e.Scope), e.Expires, e.Ledger, e.CloseTime); err != nil {
		return fmt.Errorf("watcher: insert grant: %w", err)
	}
	a.change(access.ChangeGrant, e.Token.String(), e.Grantee, e.Ledger)
	a.note(e.Meta, "grant.created", e.Holder, e.Token.String(), access.OutcomeSuccess, "",
		map[string]any{"grantee": e.Grantee, "scope": int(e.Scope), "expires": e.Expires.UTC().Format(time.RFC3339)})
	return nil
}

func (a *applier) revoked(ctx context.Context, e contracts.GrantRevoked) error {
	gs, err := a.endGrants(ctx, "CASE WHEN expires_at <= $3 THEN 'expired' ELSE 'revoked' END",
		"holder = $4 AND code = $5 AND grantee = $6", e.Meta, e.Holder, e.Code, e.Grantee)
	if err != nil {
		return err
	}
	for _, g := range gs {
		tok := contracts.Token{Code: e.Code, Issuer: g.issuer}.String()
		a.change(access.ChangeGrant, tok, e.Grantee, e.Ledger)
		a.note(e.Meta, "grant."+g.state, e.Holder, tok, access.OutcomeSuccess, "", map[string]any{"grantee": e.Grantee})
	}
	return nil
}

func (a *applier) requested(ctx context.Context, e contracts.AccessRequested) error {
	if _, known, err := a.holder(ctx, e.Token); err != nil || !known {
		return err
	}
	_, err := a.tx.Exec(ctx, `
INSERT INTO access_requests (request_tx, op, code, issuer, requester, scope, until, ledger, requested_at, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')
ON CONFLICT (request_tx) DO UPDATE SET op = EXCLUDED.op, code = EXCLUDED.code, issuer = EXCLUDED.issuer,
	requester = EXCLUDED.requester, scope = EXCLUDED.scope, until = EXCLUDED.until`,
		e.TxHash, e.Op, e.Code, e.Issuer, e.Requester, int16(e.Scope), e.Until, e.Ledger, e.CloseTime)
	if err != nil {
		return fmt.Errorf("watcher: insert request: %w", err)
	}
	a.change(access.ChangeRequest, e.Token.String(), e.Requester, e.Ledger)
	a.note(e.Meta, "request.created", e.Requester, e.Token.String(), access.OutcomeSuccess, "",
		map[string]any{"scope": int(e.Scope), "until": e.Until.UTC().Format(time.RFC3339)})
	return nil
}

func (a *applier) answered(ctx context.Context, e contracts.AccessAnswered) error {
	state := "denied"
	if e.Approved {
		state = "approved"
	}
	var code, issuer, requester string
	err := a.tx.QueryRow(ctx, `UPDATE access_requests SET state = $2, answer_tx = $3, answered_by = $4, answered_ledger = $5, answered_at = $6
WHERE request_tx = $1 AND state = 'pending' RETURNING code, issuer, requester`,
		e.RequestTx, state, e.TxHash, e.Holder, e.Ledger, e.CloseTime).Scan(&code, &issuer, &requester)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("watcher: answer request %s: %w", e.RequestTx, err)
	}
	tok := contracts.Token{Code: code, Issuer: issuer}.String()
	a.change(access.ChangeRequest, tok, requester, e.Ledger)
	a.note(e.Meta, "request."+state, e.Holder, tok, access.OutcomeSuccess, "", map[string]any{"requester": requester, "request_tx": e.RequestTx})
	return nil
}
