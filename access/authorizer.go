package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/contracts"
)

// Config configures an Authorizer.
type Config struct {
	Pool *pgxpool.Pool
	// Audit receives an entry per decision; nil audits nothing (tests and
	// benchmarks of the cache alone).
	Audit *Auditor
	Log   *slog.Logger
	// Now is the clock grants expire by (time.Now if nil).
	Now func() time.Time
	// MaxStudies bounds the cache of Study Instance UID → study facts.
	MaxStudies int
}

// Authorizer makes access decisions from an in-memory cache of the
// watcher's tables, kept current through LISTEN on Channel. It is safe for
// concurrent use.
type Authorizer struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	ready  atomic.Bool // false while the cache may have missed a change
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.RWMutex
	tokens    map[contracts.Token]*tokenState
	byHash    map[string]*tokenState
	byAccount map[string]map[*tokenState]struct{} // holders and grantees
	orgOf     map[string]string                   // issuer → org

	smu     sync.Mutex
	studies map[string]studyFacts // by UID or "h:"+hash; immutable once known
}

// tokenState is one record token as decisions need it; replaced, never
// mutated, when it changes.
type tokenState struct {
	tok       contracts.Token
	holder    string
	studyHash string
	// grants by grantee: active grants written by the current holder.
	grants map[string]grantState
}

type grantState struct {
	scope   contracts.Scope
	expires time.Time
}

type studyFacts struct {
	org, hash string
}

// NewAuthorizer connects its notification listener, loads the cache and
// returns once decisions can be made; Close stops it.
func NewAuthorizer(ctx context.Context, cfg Config) (*Authorizer, error) {
	if cfg.Pool == nil {
		return nil, errors.New("access: no database pool")
	}
	if cfg.MaxStudies <= 0 {
		cfg.MaxStudies = 100_000
	}
	a := &Authorizer{cfg: cfg, log: cfg.Log, now: cfg.Now, done: make(chan struct{}), studies: map[string]studyFacts{}}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	conn, err := a.listen(ctx)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(rctx, conn)
	return a, nil
}

// Close stops listening. Decisions made afterwards deny.
func (a *Authorizer) Close() {
	a.cancel()
	<-a.done
	a.ready.Store(false)
}

// listen opens the dedicated connection, subscribes, then loads
// everything: a change committed during the load is both in the load or
// announced after the LISTEN, so none is missed.
func (a *Authorizer) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, a.cfg.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("access: listener connection: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("access: listen: %w", err)
	}
	if err := a.reload(ctx); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	a.ready.Store(true)
	return conn, nil
}

func (a *Authorizer) run(ctx context.Context, conn *pgx.Conn) {
	defer close(a.done)
	backoff := 100 * time.Millisecond
	for {
		err := a.consume(ctx, conn)
		conn.Close(context.WithoutCancel(ctx))
		a.ready.Store(false) // fail closed until reloaded
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("access: change listener lost; denying until reloaded", slog.Any("err", err))
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff/2 + rand.N(backoff/2)):
			}
			if conn, err = a.listen(ctx); err == nil {
				backoff = 100 * time.Millisecond
				a.log.Info("access: change listener back; cache reloaded")
				break
			}
			backoff = min(2*backoff, 10*time.Second)
			a.log.Warn("access: reconnect listener", slog.Any("err", err))
		}
	}
}

func (a *Authorizer) consume(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var c Change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
			a.log.Warn("access: undecodable change; reloading", slog.String("payload", n.Payload))
			c.Kind = ChangeReload
		}
		if err := a.apply(ctx, c); err != nil {
			return err
		}
	}
}

// apply brings the cache up to date after one change.
func (a *Authorizer) apply(ctx context.Context, c Change) error {
	switch c.Kind {
	case ChangeRecord, ChangeGrant:
		code, issuer, ok := strings.Cut(c.Token, ":")
		if !ok {
			return a.reload(ctx)
		}
		return a.refresh(ctx, contracts.Token{Code: code, Issuer: issuer})
	case ChangeOrg:
		return a.loadOrgs(ctx)
	case ChangeRequest, ChangeIssuer:
		return nil // decisions do not depend on them
	}
	return a.reload(ctx)
}

// Refresh reloads everything from Postgres.
func (a *Authorizer) Refresh(ctx context.Context) error { return a.reload(ctx) }

func (a *Authorizer) reload(ctx context.Context) error {
	tokens := map[contracts.Token]*tokenState{}
	rows, err := a.cfg.Pool.Query(ctx, "SELECT code, issuer, holder, study_hash FROM record_tokens")
	if err != nil {
		return fmt.Errorf("access: load tokens: %w", err)
	}
	for rows.Next() {
		t := &tokenState{grants: map[string]grantState{}}
		if err := rows.Scan(&t.tok.Code, &t.tok.Issuer, &t.holder, &t.studyHash); err != nil {
			rows.Close()
			return fmt.Errorf("access: load tokens: %w", err)
		}
		tokens[t.tok] = t
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("access: load tokens: %w", err)
	}
	rows, err = a.cfg.Pool.Query(ctx, `SELECT g.code, g.issuer, g.grantee, g.scope, g.expires_at FROM grants g
JOIN record_tokens r ON r.code = g.code AND r.issuer = g.issuer AND r.holder = g.holder WHERE g.state = 'active'`)
	if err != nil {
		return fmt.Errorf("access: load grants: %w", err)
	}
	for rows.Next() {
		var tok contracts.Token
		var grantee string
		var g grantState
		var scope int16
		if err := rows.Scan(&tok.Code, &tok.Issuer, &grantee, &scope, &g.expires); err != nil {
			rows.Close()
			return fmt.Errorf("access: load grants: %w", err)
		}
		g.scope = contracts.Scope(scope)
		if t := tokens[tok]; t != nil {
			t.grants[grantee] = g
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("access: load grants: %w", err)
	}
	orgs, err := a.queryOrgs(ctx)
	if err != nil {
		return err
	}
	byHash := make(map[string]*tokenState, len(tokens))
	byAccount := map[string]map[*tokenState]struct{}{}
	for _, t := range tokens {
		byHash[t.studyHash] = t
		index(byAccount, t)
	}
	a.mu.Lock()
	a.tokens, a.byHash, a.byAccount, a.orgOf = tokens, byHash, byAccount, orgs
	a.mu.Unlock()
	return nil
}

func index(byAccount map[string]map[*tokenState]struct{}, t *tokenState) {
	add := func(acct string) {
		m := byAccount[acct]
		if m == nil {
			m = map[*tokenState]struct{}{}
			byAccount[acct] = m
		}
		m[t] = struct{}{}
	}
	add(t.holder)
	for g := range t.grants {
		add(g)
	}
}

func unindex(byAccount map[string]map[*tokenState]struct{}, t *tokenState) {
	del := func(acct string) {
		if m := byAccount[acct]; m != nil {
			delete(m, t)
			if len(m) == 0 {
				delete(byAccount, acct)
			}
		}
	}
	del(t.holder)
	for g := range t.grants {
		del(g)
	}
}

// refresh reloads one token and its grants.
func (a *Authorizer) refresh(ctx context.Context, tok contracts.Token) error {
	t := &tokenState{tok: tok, grants: map[string]grantState{}}
	err := a.cfg.Pool.QueryRow(ctx, "SELECT holder, study_hash FROM record_tokens WHERE code = $1 AND issuer = $2", tok.Code, tok.Issuer).
		Scan(&t.holder, &t.studyHash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		t = nil
	case err != nil:
		return fmt.Errorf("access: refresh %s: %w", tok, err)
	default:
		rows, err := a.cfg.Pool.Query(ctx, `SELECT grantee, scope, expires_at FROM grants
WHERE code = $1 AND issuer = $2 AND holder = $3 AND state = 'active'`, tok.Code, tok.Issuer, t.holder)
		if err != nil {
			return fmt.Errorf("access: refresh grants of %s: %w", tok, err)
		}
		for rows.Next() {
			var grantee string
			var g grantState
			var scope int16
			if err := rows.Scan(&grantee, &scope, &g.expires); err != nil {
				rows.Close()
				return fmt.Errorf("access: refresh grants of %s: %w", tok, err)
			}
			g.scope = contracts.Scope(scope)
			t.grants[grantee] = g
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("access: refresh grants of %s: %w", tok, err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.tokens[tok]; old != nil {
		unindex(a.byAccount, old)
		delete(a.byHash, old.studyHash)
		delete(a.tokens, tok)
	}
	if t != nil {
		a.tokens[tok] = t
		a.byHash[t.studyHash] = t
		index(a.byAccount, t)
	}
	return nil
}

func (a *Authorizer) queryOrgs(ctx context.Context) (map[string]string, error) {
	rows, err := a.cfg.Pool.Query(ctx, "SELECT issuer, org_id FROM org_issuers")
	if err != nil {
		return nil, fmt.Errorf("access: load org issuers: %w", err)
	}
	orgs := map[string]string{}
	for rows.Next() {
		var issuer, org string
		if err := rows.Scan(&issuer, &org); err != nil {
			rows.Close()
			return nil, fmt.Errorf("access: load org issuers: %w", err)
		}
		orgs[issuer] = org
	}
	rows.Close()
	return orgs, rows.Err()
}

func (a *Authorizer) loadOrgs(ctx context.Context) error {
	orgs, err := a.queryOrgs(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.orgOf = orgs
	a.mu.Unlock()
	return nil
}

// SetOrgIssuer records that issuer mints for org (an admin action,
// audited) and tells every cache.
func SetOrgIssuer(ctx context.Context, pool *pgxpool.Pool, actor Subject, org, issuer string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO org_issuers (issuer, org_id) VALUES ($1, $2)
ON CONFLICT (issuer) DO UPDATE SET org_id = EXCLUDED.org_id`, issuer, org); err != nil {
			return fmt.Errorf("access: set org issuer: %w", err)
		}
		if _, err := AppendTx(ctx, tx, Entry{Category: CategoryAdmin, Action: "org.issuer.set", Outcome: OutcomeSuccess,
			Actor: actor.actor(), Roles: actor.roles(), OrgID: actor.OrgID, Resource: issuer, Reason: actor.Reason,
			Detail: mustJSON(map[string]string{"org_id": org})}); err != nil {
			return err
		}
		return NotifyTx(ctx, tx, []Change{{Kind: ChangeOrg, Account: issuer}})
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with maps of strings and numbers
	}
	return string(b)
}

// resolve finds the study a resource names. Only a Study Instance UID or
// a study hash without a token can need the database (once per study).
func (a *Authorizer) resolve(ctx context.Context, r Resource) (study, error) {
	a.mu.RLock()
	var t *tokenState
	switch {
	case r.Token.Code != "":
		t = a.tokens[r.Token]
	case r.StudyHash != "":
		t = a.byHash[r.StudyHash]
	}
	var org string
	if t != nil {
		org = a.orgOf[t.tok.Issuer]
	}
	a.mu.RUnlock()
	switch {
	case r.Token.Code != "":
		return study{exists: t != nil, org: org, token: t}, nil
	case r.StudyHash != "" && t != nil:
		return study{exists: true, org: org, token: t}, nil
	}
	key := r.StudyInstanceUID
	if r.StudyHash != "" {
		key = "h:" + r.StudyHash
	}
	if key == "" {
		return study{}, nil
	}
	f, ok, err := a.studyFacts(ctx, key, r)
	if err != nil || !ok {
		return study{}, err
	}
	st := study{exists: true, org: f.org}
	if f.hash != "" {
		a.mu.RLock()
		st.token = a.byHash[f.hash]
		a.mu.RUnlock()
	}
	return st, nil
}

// studyFacts looks a study up in the instance index: its organisation and
// study hash (study_bundles.study_ref, once the study completed). Facts
// with a hash never change and are cached.
func (a *Authorizer) studyFacts(ctx context.Context, key string, r Resource) (studyFacts, bool, error) {
	a.smu.Lock()
	f, ok := a.studies[key]
	a.smu.Unlock()
	if ok {
		return f, true, nil
	}
	var err error
	if r.StudyHash != "" {
		err = a.cfg.Pool.QueryRow(ctx, `SELECT s.org_id, b.study_ref FROM study_bundles b
JOIN studies s ON s.study_instance_uid = b.study_instance_uid WHERE b.study_ref = $1 LIMIT 1`, r.StudyHash).Scan(&f.org, &f.hash)
	} else {
		err = a.cfg.Pool.QueryRow(ctx, `SELECT s.org_id, COALESCE((SELECT b.study_ref FROM study_bundles b
WHERE b.study_instance_uid = s.study_instance_uid LIMIT 1), '') FROM studies s WHERE s.study_instance_uid = $1`, r.StudyInstanceUID).Scan(&f.org, &f.hash)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return f, false, nil
	}
	if err != nil {
		return f, false, fmt.Errorf("access: look up study: %w", err)
	}
	if f.hash != "" {
		a.smu.Lock()
		if len(a.studies) >= a.cfg.MaxStudies {
			clear(a.studies)
		}
		a.studies[key] = f
		a.smu.Unlock()
	}
	return f, true, nil
}

// Decide decides whether sub may do act on res, and audits the decision:
// break-glass access synchronously (it is returned only once recorded,
// with a notification queued for the holder), everything else through
// the Auditor's queue.
func (a *Authorizer) Decide(ctx context.Context, sub Subject, act Action, res Resource) Decision {
	if !a.ready.Load() {
		a.audit(ctx, sub, act, res, Decision{Reason: ReasonUnavailable}, "cache not in sync", nil)
		return Decision{Reason: ReasonUnavailable}
	}
	st, err := a.resolve(ctx, res)
	if err != nil {
		a.log.ErrorContext(ctx, "access: resolve resource", slog.Any("err", err))
		a.audit(ctx, sub, act, res, Decision{Reason: ReasonUnavailable}, err.Error(), nil)
		return Decision{Reason: ReasonUnavailable}
	}
	allow, reason, why := evaluate(sub, act, st, a.now(), a.cfg.Audit != nil || act == BreakGlass)
	d := Decision{Allow: allow, Reason: reason, BreakGlass: allow && reason == ReasonBreakGlass}
	if d.BreakGlass {
		if err := a.breakGlass(ctx, sub, res, st, why); err != nil {
			a.log.ErrorContext(ctx, "access: break-glass not recorded; denied", slog.Any("err", err))
			return Decision{Reason: ReasonUnavailable}
		}
		return d
	}
	a.audit(ctx, sub, act, res, d, why, st.token)
	return d
}

func (a *Authorizer) entry(sub Subject, act Action, res Resource, d Decision, why string, t *tokenState) Entry {
	outcome := OutcomeDeny
	if d.Allow {
		outcome = OutcomeAllow
	}
	resource := res.String()
	if t != nil {
		resource = t.tok.String()
	}
	detail := ""
	if resource != res.String() {
		detail = mustJSON(map[string]string{"requested": res.String()})
	}
	return Entry{Category: CategoryDecision, Action: act.String(), Outcome: outcome, Actor: sub.actor(), Roles: sub.roles(),
		OrgID: sub.OrgID, Resource: resource, Reason: d.Reason + ": " + why, Detail: detail}
}

func (a *Authorizer) audit(ctx context.Context, sub Subject, act Action, res Resource, d Decision, why string, t *tokenState) {
	if a.cfg.Audit == nil {
		return
	}
	if err := a.cfg.Audit.Log(ctx, a.entry(sub, act, res, d, why, t)); err != nil {
		a.log.ErrorContext(ctx, "access: decision not audited", slog.Any("err", err))
	}
}

// breakGlass records emergency access loudly: a synchronous audit entry
// and a notification for the holder, in one transaction.
func (a *Authorizer) breakGlass(ctx context.Context, sub Subject, res Resource, st study, why string) error {
	e := a.entry(sub, BreakGlass, res, Decision{Allow: true, Reason: ReasonBreakGlass}, why, st.token)
	e.Category = CategoryBreakGlass
	a.log.WarnContext(ctx, "access: BREAK-GLASS access", slog.String("actor", e.Actor), slog.String("org", sub.OrgID),
		slog.String("resource", e.Resource), slog.String("reason", sub.Reason))
	return pgx.BeginFunc(ctx, a.cfg.Pool, func(tx pgx.Tx) error {
		out, err := AppendTx(ctx, tx, e)
		if err != nil {
			return err
		}
		if st.token == nil {
			return nil // not minted: no holder to tell yet
		}
		payload := mustJSON(map[string]string{"token": st.token.tok.String(), "actor": e.Actor, "org_id": sub.OrgID,
			"reason": sub.Reason, "at": out[0].Recorded.Format(time.RFC3339Nano)})
		if _, err := tx.Exec(ctx, `INSERT INTO access_notifications (account, kind, payload, audit_seq) VALUES ($1, 'break-glass', $2, $3)`,
			st.token.holder, payload, out[0].Seq); err != nil {
			return fmt.Errorf("access: queue break-glass notification: %w", err)
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify('medimint_notifications', $1)", st.token.holder)
		return err
	})
}

// Filter is what a subject may find (Query), as QueryFilter computes it
// from the cache: studies of organisations whose staff the subject is in
// a role that may query, and studies whose token it holds or has an
// unexpired query grant for.
type Filter struct {
	OrgIDs      []string
	StudyHashes []string
}

// Empty reports whether the filter lets nothing through.
func (f Filter) Empty() bool { return len(f.OrgIDs) == 0 && len(f.StudyHashes) == 0 }

// SQL returns a condition on the index's studies table (under alias
// studies) for a WHERE clause, using placeholders $next, $next+1; append
// args to the query's.
func (f Filter) SQL(studies string, next int) (cond string, args []any) {
	if f.Empty() {
		return "false", nil
	}
	return fmt.Sprintf(`(%[1]s.org_id = ANY($%[2]d) OR EXISTS (SELECT 1 FROM study_bundles mm_b
WHERE mm_b.study_instance_uid = %[1]s.study_instance_uid AND mm_b.study_ref = ANY($%[3]d)))`, studies, next, next+1),
		[]any{nonNil(f.OrgIDs), nonNil(f.StudyHashes)}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// QueryFilter returns what sub may find, by the same rules and cache as
// Decide(…, Query, …).
func (a *Authorizer) QueryFilter(sub Subject) (Filter, error) {
	if !a.ready.Load() {
		return Filter{}, errors.New("access: cache not in sync")
	}
	var f Filter
	if sub.OrgID != "" {
		for _, r := range sub.Roles {
			for _, act := range staffActions[r] {
				if act == Query {
					f.OrgIDs = []string{sub.OrgID}
				}
			}
		}
	}
	if sub.Account == "" {
		return f, nil
	}
	now := a.now()
	a.mu.RLock()
	defer a.mu.RUnlock()
	for t := range a.byAccount[sub.Account] {
		if t.holder == sub.Account {
			f.StudyHashes = append(f.StudyHashes, t.studyHash)
		} else if g, ok := t.grants[sub.Account]; ok && now.Before(g.expires) && g.scope&contracts.ScopeQuery != 0 {
			f.StudyHashes = append(f.StudyHashes, t.studyHash)
		}
	}
	return f, nil
}

// Ready reports whether the cache is in sync (decisions are being made).
func (a *Authorizer) Ready() bool { return a.ready.Load() }
