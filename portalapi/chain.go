package portalapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/strkey"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/wallet"
)

// Grant is an access grant as the watcher recorded it.
type Grant struct {
	Token       string    `json:"token"`
	Holder      string    `json:"holder"`
	Grantee     string    `json:"grantee"`
	GranteeName string    `json:"grantee_name,omitempty"`
	Scope       []string  `json:"scope"`
	ExpiresAt   time.Time `json:"expires_at"`
	State       string    `json:"state"` // active, revoked, expired, superseded, replaced
	TxHash      string    `json:"tx_hash"`
	TxURL       string    `json:"tx_url,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Study       string    `json:"study_instance_uid,omitempty"`
}

func scopeNames(s int16) []string {
	out := []string{}
	if contracts.Scope(s)&contracts.ScopeQuery != 0 {
		out = append(out, "query")
	}
	if contracts.Scope(s)&contracts.ScopeRetrieve != 0 {
		out = append(out, "retrieve")
	}
	return out
}

func parseScope(names []string) (contracts.Scope, error) {
	var s contracts.Scope
	for _, n := range names {
		switch n {
		case "query":
			s |= contracts.ScopeQuery
		case "retrieve":
			s |= contracts.ScopeRetrieve | contracts.ScopeQuery
		default:
			return 0, fiber.NewError(http.StatusBadRequest, fmt.Sprintf("unknown scope %q (query, retrieve)", n))
		}
	}
	if s == 0 {
		return 0, fiber.NewError(http.StatusBadRequest, "scope must name query and/or retrieve")
	}
	return s, nil
}

func sortStudies(ss []Study) {
	slices.SortStableFunc(ss, func(a, b Study) int { return strings.Compare(b.StudyDate, a.StudyDate) })
}

func (a *API) grantsWhere(c *fiber.Ctx, where string, args ...any) ([]Grant, error) {
	rows, err := a.pool.Query(c.UserContext(), `SELECT g.code || ':' || g.issuer, g.holder, g.grantee, coalesce(u.display_name, ''),
		g.scope, g.expires_at, CASE WHEN g.state = 'active' AND g.expires_at <= now() THEN 'expired' ELSE g.state END,
		g.tx_hash, g.created_at, coalesce((SELECT b.study_instance_uid FROM record_tokens rt JOIN study_bundles b ON b.study_ref = rt.study_hash
			WHERE rt.code = g.code AND rt.issuer = g.issuer LIMIT 1), '')
		FROM grants g LEFT JOIN users u ON u.account = g.grantee
		WHERE `+where+` ORDER BY g.ledger DESC, g.op`, args...)
	if err != nil {
		return nil, err
	}
	gs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Grant, error) {
		var g Grant
		var scope int16
		err := r.Scan(&g.Token, &g.Holder, &g.Grantee, &g.GranteeName, &scope, &g.ExpiresAt, &g.State, &g.TxHash, &g.CreatedAt, &g.Study)
		g.Scope = scopeNames(scope)
		if a.cfg.Network.HorizonURL != "" {
			g.TxURL = a.cfg.Network.TxURL(g.TxHash)
		}
		return g, err
	})
	if gs == nil {
		gs = []Grant{}
	}
	return gs, err
}

func (a *API) myGrants(c *fiber.Ctx) error {
	sub := subject(c)
	if sub.Account == "" {
		return c.JSON([]Grant{})
	}
	where := "g.holder = $1"
	if c.Query("state") != "all" {
		where += " AND g.state = 'active' AND g.expires_at > now()"
	}
	gs, err := a.grantsWhere(c, where, sub.Account)
	if err != nil {
		return a.problem(c, err)
	}
	return c.JSON(gs)
}

// ChainAction is the answer to anything that changes the chain: either
// done (custodial users: signed here and submitted) or waiting for the
// user's wallet to sign Transaction.
type ChainAction struct {
	Status      string `json:"status"` // "preview", "submitted" or "needs_signature"
	Description string `json:"description"`
	TxHash      string `json:"tx_hash,omitempty"`
	TxURL       string `json:"tx_url,omitempty"`
	// For wallet users: the prepared transaction to sign and send back
	// to POST /api/transactions/{id}.
	ID                string `json:"id,omitempty"`
	Transaction       string `json:"transaction,omitempty"`
	NetworkPassphrase string `json:"network_passphrase,omitempty"`
}

func (a *API) needChain() error {
	if a.sponsor() == nil {
		return fiber.NewError(http.StatusServiceUnavailable, "chain actions are not configured on this server")
	}
	return nil
}

// act signs and submits d for a custodial user, or prepares it for a
// wallet user. extra are keys (other than the user's) that must sign.
func (a *API) act(c *fiber.Ctx, kind, description string, d contracts.Draft, extra ...*keypair.Full) error {
	if err := a.needChain(); err != nil {
		return err
	}
	if c.QueryBool("preview") {
		// What the user is about to sign, in plain words, before anything
		// is signed.
		return c.JSON(ChainAction{Status: "preview", Description: description})
	}
	ctx := c.UserContext()
	sub := subject(c)
	u, err := a.auth.UserByID(ctx, sub.UserID)
	if err != nil {
		return a.problem(c, err)
	}
	if u.Account == "" {
		return fiber.NewError(http.StatusConflict, "your account has no Stellar account")
	}
	if !u.Custodial {
		if len(extra) > 0 {
			return fiber.NewError(http.StatusNotImplemented, "this action needs keys only custodial accounts have here")
		}
		return a.prepare(c, u, kind, description, d)
	}
	if a.cfg.Custodian == nil {
		return fiber.NewError(http.StatusServiceUnavailable, "custodial signing is not configured on this server")
	}
	kp, err := a.cfg.Custodian.Account(ctx, uint32(u.HDIndex))
	if err != nil {
		return a.problem(c, err)
	}
	if kp.Address() != u.Account {
		return a.problem(c, fmt.Errorf("custodial key of user %s does not match account %s", u.ID, u.Account))
	}
	signers := append([]*keypair.Full{kp}, extra...)
	var keys []*keypair.Full
	for _, addr := range d.Signers {
		i := slices.IndexFunc(signers, func(k *keypair.Full) bool { return k.Address() == addr })
		if i < 0 {
			return fiber.NewError(http.StatusConflict, "this action needs a signature this server cannot give")
		}
		keys = append(keys, signers[i])
	}
	res, err := a.sponsor().Submit(ctx, wallet.Submission{Operations: d.Operations, Signers: keys})
	if err != nil {
		var te *wallet.TxError
		if errors.As(err, &te) {
			a.log.Warn("chain action refused", "kind", kind, "user", u.ID, "err", err)
			return fiber.NewError(http.StatusConflict, "the network refused the transaction: "+te.Codes.TransactionCode)
		}
		return a.problem(c, err)
	}
	a.auditAction(ctx, sub, kind, description, res.Hash)
	return c.JSON(ChainAction{Status: "submitted", Description: description, TxHash: res.Hash, TxURL: a.cfg.Network.TxURL(res.Hash)})
}

func (a *API) auditAction(ctx context.Context, sub auth.Subject, kind, description, hash string) {
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		_, err := access.AppendTx(ctx, tx, access.Entry{Category: access.CategoryGrant, Action: "portal." + kind,
			Outcome: access.OutcomeSuccess, Actor: sub.Actor(), Roles: sub.RolesString(), OrgID: sub.OrgID,
			Reason: description, TxHash: hash, TxURL: a.cfg.Network.TxURL(hash)})
		return err
	})
	if err != nil {
		a.log.Error("audit of a portal action failed", "kind", kind, "err", err)
	}
}

// preparedTTL is how long a wallet user has to sign.
const preparedTTL = 5 * time.Minute

// prepare builds the unsigned transaction for a wallet user: their
// account is the source (the sponsor fee-bumps it, so it pays nothing).
func (a *API) prepare(c *fiber.Ctx, u auth.User, kind, description string, d contracts.Draft) error {
	ctx := c.UserContext()
	for _, s := range d.Signers {
		if s != u.Account {
			return fiber.NewError(http.StatusNotImplemented, "this action needs co-signers; not available for wallet accounts yet")
		}
	}
	acc, err := a.cfg.Network.Horizon(ctx).AccountDetail(horizonAccount(u.Account))
	if err != nil {
		return fiber.NewError(http.StatusConflict, "your account is not on the network yet")
	}
	seq, err := acc.GetSequenceNumber()
	if err != nil {
		return a.problem(c, err)
	}
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount:        &txnbuild.SimpleAccount{AccountID: u.Account, Sequence: seq},
		IncrementSequenceNum: true,
		Operations:           d.Operations,
		BaseFee:              txnbuild.MinBaseFee,
		Preconditions:        txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(int64(preparedTTL / time.Second))},
	})
	if err != nil {
		return a.problem(c, err)
	}
	hash, err := tx.HashHex(a.cfg.Network.Passphrase)
	if err != nil {
		return a.problem(c, err)
	}
	b64, err := tx.Base64()
	if err != nil {
		return a.problem(c, err)
	}
	var id string
	if err := a.pool.QueryRow(ctx, `INSERT INTO portal_prepared_tx (user_id, account, kind, description, tx_hash, xdr, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text`, u.ID, u.Account, kind, description, hash, b64, time.Now().Add(preparedTTL)).Scan(&id); err != nil {
		return a.problem(c, err)
	}
	return c.JSON(ChainAction{Status: "needs_signature", Description: description, ID: id, Transaction: b64,
		NetworkPassphrase: a.cfg.Network.Passphrase})
}

type signedIn struct {
	Transaction string `json:"transaction"` // the signed envelope, base64 XDR
}

// submitPrepared accepts a wallet user's signature of a prepared
// transaction; only that exact transaction is fee-bumped and submitted.
func (a *API) submitPrepared(c *fiber.Ctx) error {
	if err := a.needChain(); err != nil {
		return err
	}
	ctx := c.UserContext()
	sub := subject(c)
	var in signedIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	var kind, description, want string
	err := a.pool.QueryRow(ctx, `SELECT kind, description, tx_hash FROM portal_prepared_tx
		WHERE id::text = $1 AND user_id::text = $2 AND submitted_at IS NULL AND expires_at > now()`, c.Params("id"), sub.UserID).
		Scan(&kind, &description, &want)
	if errors.Is(err, pgx.ErrNoRows) {
		return fiber.NewError(http.StatusNotFound, "no such transaction waiting for your signature (it may have expired)")
	}
	if err != nil {
		return a.problem(c, err)
	}
	g, err := txnbuild.TransactionFromXDR(in.Transaction)
	if err != nil {
		return fiber.NewError(http.StatusBadRequest, "not a transaction envelope")
	}
	tx, ok := g.Transaction()
	if !ok {
		return fiber.NewError(http.StatusBadRequest, "send the signed transaction, not a fee bump")
	}
	if h, err := tx.HashHex(a.cfg.Network.Passphrase); err != nil || h != want {
		return fiber.NewError(http.StatusBadRequest, "this is not the transaction you were asked to sign")
	}
	sponsor := a.sponsor().Address()
	res, err := a.sponsor().SubmitSigned(ctx, in.Transaction, func(t *txnbuild.Transaction) error {
		// The hash matched what we built, so the sponsor's operations are
		// our own sandwich; check it anyway in case of a bug above.
		for _, op := range t.Operations() {
			if op.GetSourceAccount() == sponsor {
				if _, ok := op.(*txnbuild.BeginSponsoringFutureReserves); !ok {
					return fmt.Errorf("sponsor operation %T", op)
				}
			}
		}
		return nil
	})
	if err != nil {
		var te *wallet.TxError
		switch {
		case errors.As(err, &te):
			return fiber.NewError(http.StatusConflict, "the network refused the transaction: "+te.Codes.TransactionCode)
		case errors.Is(err, wallet.ErrExpired):
			return fiber.NewError(http.StatusGone, "the transaction expired before it was applied; start again")
		}
		return a.problem(c, err)
	}
	if _, err := a.pool.Exec(ctx, `UPDATE portal_prepared_tx SET submitted_tx = $2, submitted_at = now() WHERE id::text = $1`,
		c.Params("id"), res.Hash); err != nil {
		a.log.Error("prepared transaction not marked submitted", "err", err)
	}
	a.auditAction(ctx, sub, kind, description, res.Hash)
	return c.JSON(ChainAction{Status: "submitted", Description: description, TxHash: res.Hash, TxURL: a.cfg.Network.TxURL(res.Hash)})
}

// token is a record token the caller holds, found by its study.
func (a *API) heldToken(c *fiber.Ctx, study string) (contracts.Token, Study, error) {
	st, err := a.ownStudy(c, study)
	if err != nil {
		return contracts.Token{}, st, err
	}
	code, issuer, ok := strings.Cut(st.Token, ":")
	if st.Status != "minted" || !ok {
		return contracts.Token{}, st, fiber.NewError(http.StatusConflict, "this study is not on the chain yet; try again shortly")
	}
	return contracts.Token{Code: code, Issuer: issuer}, st, nil
}

// resolveAccount turns "G…" or a user's e-mail address into a Stellar
// account and a name to show.
func (a *API) resolveAccount(c *fiber.Ctx, who string) (account, name string, err error) {
	who = strings.TrimSpace(who)
	if strkey.IsValidEd25519PublicKey(who) {
		var n string
		_ = a.pool.QueryRow(c.UserContext(), `SELECT coalesce(nullif(display_name, ''), email, '') FROM users WHERE account = $1`, who).Scan(&n)
		return who, n, nil
	}
	var acct, n string
	err = a.pool.QueryRow(c.UserContext(), `SELECT coalesce(account, ''), coalesce(nullif(display_name, ''), email) FROM users WHERE email = $1`,
		strings.ToLower(who)).Scan(&acct, &n)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && acct == "") {
		return "", "", fiber.NewError(http.StatusNotFound, "no one with that e-mail address or Stellar account can receive access")
	}
	return acct, n, err
}

func short(acct string) string {
	if len(acct) < 12 {
		return acct
	}
	return acct[:4] + "…" + acct[len(acct)-4:]
}

func who(name, acct string) string {
	if name != "" {
		return name + " (" + short(acct) + ")"
	}
	return "the account " + short(acct)
}

func studyWords(st Study) string {
	w := "your"
	if len(st.Modalities) > 0 {
		w += " " + strings.Join(st.Modalities, "/")
	}
	w += " study"
	if len(st.StudyDate) == 8 {
		w += " of " + st.StudyDate[:4] + "-" + st.StudyDate[4:6] + "-" + st.StudyDate[6:]
	}
	return w
}

func scopeWords(s contracts.Scope) string {
	if s&contracts.ScopeRetrieve != 0 {
		return "see and download the images of"
	}
	return "see the description of"
}

type grantIn struct {
	Study     string    `json:"study_instance_uid"`
	Grantee   string    `json:"grantee"` // G… or e-mail address
	Scope     []string  `json:"scope"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *API) createGrant(c *fiber.Ctx) error {
	var in grantIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	scope, err := parseScope(in.Scope)
	if err != nil {
		return err
	}
	if !in.ExpiresAt.After(time.Now()) {
		return fiber.NewError(http.StatusBadRequest, "expires_at must be in the future")
	}
	tok, st, err := a.heldToken(c, in.Study)
	if err != nil {
		return a.problem(c, err)
	}
	grantee, name, err := a.resolveAccount(c, in.Grantee)
	if err != nil {
		return a.problem(c, err)
	}
	sub := subject(c)
	if grantee == sub.Account {
		return fiber.NewError(http.StatusBadRequest, "you already have access to your own study")
	}
	d, err := contracts.GrantAccess(a.sponsorAddress(), contracts.Grant{Token: tok, Holder: sub.Account, Grantee: grantee,
		Expires: in.ExpiresAt, Scope: scope})
	if err != nil {
		return fiber.NewError(http.StatusBadRequest, err.Error())
	}
	desc := fmt.Sprintf("Let %s %s %s until %s. You can take this back at any time. It is recorded publicly on the Stellar network without your name or any medical details.",
		who(name, grantee), scopeWords(scope), studyWords(st), in.ExpiresAt.UTC().Format("2 January 2006 15:04 UTC"))
	return a.act(c, "grant", desc, d)
}

func (a *API) sponsorAddress() string {
	if a.sponsor() == nil {
		return ""
	}
	return a.sponsor().Address()
}

func (a *API) revokeGrant(c *fiber.Ctx) error {
	sub := subject(c)
	code, grantee := c.Params("code"), c.Params("grantee")
	var issuer, study string
	err := a.pool.QueryRow(c.UserContext(), `SELECT g.issuer, coalesce(b.study_instance_uid, '') FROM grants g
		JOIN record_tokens rt ON rt.code = g.code AND rt.issuer = g.issuer AND rt.holder = g.holder
		LEFT JOIN study_bundles b ON b.study_ref = rt.study_hash
		WHERE g.holder = $1 AND g.code = $2 AND g.grantee = $3 AND g.state = 'active' LIMIT 1`, sub.Account, code, grantee).Scan(&issuer, &study)
	if errors.Is(err, pgx.ErrNoRows) {
		return fiber.NewError(http.StatusNotFound, "no such active grant of yours")
	}
	if err != nil {
		return a.problem(c, err)
	}
	d, err := contracts.RevokeAccess(sub.Account, code, grantee)
	if err != nil {
		return fiber.NewError(http.StatusBadRequest, err.Error())
	}
	var name string
	_ = a.pool.QueryRow(c.UserContext(), `SELECT coalesce(nullif(display_name, ''), email, '') FROM users WHERE account = $1`, grantee).Scan(&name)
	st, _ := a.ownStudy(c, study)
	desc := fmt.Sprintf("Take back the access of %s to %s, starting now.", who(name, grantee), studyWords(st))
	return a.act(c, "revoke", desc, d)
}

// Request is an access request as the watcher recorded it.
type Request struct {
	RequestTx     string    `json:"request_tx"`
	Token         string    `json:"token"`
	Requester     string    `json:"requester"`
	RequesterName string    `json:"requester_name,omitempty"`
	Scope         []string  `json:"scope"`
	Until         time.Time `json:"until"`
	State         string    `json:"state"` // pending, approved, denied
	RequestedAt   time.Time `json:"requested_at"`
	TxURL         string    `json:"tx_url,omitempty"`
	Study         string    `json:"study_instance_uid,omitempty"` // for the holder only
	Incoming      bool      `json:"incoming"`
}

func (a *API) requests(c *fiber.Ctx) error {
	sub := subject(c)
	if sub.Account == "" {
		return c.JSON([]Request{})
	}
	rows, err := a.pool.Query(c.UserContext(), `SELECT r.request_tx, r.code || ':' || r.issuer, r.requester,
		coalesce(nullif(u.display_name, ''), u.email, ''), r.scope, r.until, r.state, r.requested_at,
		CASE WHEN rt.holder = $1 THEN coalesce((SELECT b.study_instance_uid FROM study_bundles b WHERE b.study_ref = rt.study_hash LIMIT 1), '') ELSE '' END,
		coalesce(rt.holder = $1, false)
		FROM access_requests r
		LEFT JOIN record_tokens rt ON rt.code = r.code AND rt.issuer = r.issuer
		LEFT JOIN users u ON u.account = r.requester
		WHERE rt.holder = $1 OR r.requester = $1
		ORDER BY r.ledger DESC, r.op LIMIT 200`, sub.Account)
	if err != nil {
		return a.problem(c, err)
	}
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Request, error) {
		var q Request
		var scope int16
		err := r.Scan(&q.RequestTx, &q.Token, &q.Requester, &q.RequesterName, &scope, &q.Until, &q.State, &q.RequestedAt, &q.Study, &q.Incoming)
		q.Scope = scopeNames(scope)
		if a.cfg.Network.HorizonURL != "" {
			q.TxURL = a.cfg.Network.TxURL(q.RequestTx)
		}
		return q, err
	})
	if err != nil {
		return a.problem(c, err)
	}
	if rs == nil {
		rs = []Request{}
	}
	return c.JSON(rs)
}

type requestIn struct {
	// StudyRef names the study: the record token's code (12 characters),
	// code:issuer, or the 64-hex study reference.
	StudyRef string    `json:"study_ref"`
	Scope    []string  `json:"scope"`
	Until    time.Time `json:"until"`
	Reason   string    `json:"reason"`
}

func (a *API) createRequest(c *fiber.Ctx) error {
	var in requestIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	scope, err := parseScope(in.Scope)
	if err != nil {
		return err
	}
	if !in.Until.After(time.Now()) {
		return fiber.NewError(http.StatusBadRequest, "until must be in the future")
	}
	ref := strings.TrimSpace(in.StudyRef)
	code, issuer, _ := strings.Cut(ref, ":")
	var tok contracts.Token
	err = a.pool.QueryRow(c.UserContext(), `SELECT code, issuer FROM record_tokens
		WHERE (code = $1 AND ($2 = '' OR issuer = $2)) OR study_hash = lower($3) LIMIT 1`, strings.ToUpper(code), issuer, ref).Scan(&tok.Code, &tok.Issuer)
	if errors.Is(err, pgx.ErrNoRows) {
		return fiber.NewError(http.StatusNotFound, "no study on the chain has that reference")
	}
	if err != nil {
		return a.problem(c, err)
	}
	sub := subject(c)
	d, err := contracts.RequestAccess(a.sponsorAddress(), contracts.Request{Token: tok, Requester: sub.Account, Scope: scope, Until: in.Until})
	if err != nil {
		return fiber.NewError(http.StatusBadRequest, err.Error())
	}
	desc := fmt.Sprintf("Ask the holder of the study %s to let you %s it until %s. The request is recorded publicly on the Stellar network without any medical details.",
		tok.Code, strings.TrimSuffix(scopeWords(scope), " of"), in.Until.UTC().Format("2 January 2006 15:04 UTC"))
	return a.act(c, "request", desc, d)
}

type answerIn struct {
	// ExpiresAt overrides the requested period when approving.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (a *API) answerRequest(approve bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		sub := subject(c)
		var in answerIn
		if len(c.Body()) > 0 {
			if err := bodyInto(c, &in); err != nil {
				return err
			}
		}
		reqTx := c.Params("tx")
		var q Request
		var scope int16
		var tok contracts.Token
		var study string
		err := a.pool.QueryRow(c.UserContext(), `SELECT r.code, r.issuer, r.requester, r.scope, r.until,
			coalesce((SELECT b.study_instance_uid FROM study_bundles b WHERE b.study_ref = rt.study_hash LIMIT 1), '')
			FROM access_requests r JOIN record_tokens rt ON rt.code = r.code AND rt.issuer = r.issuer
			WHERE r.request_tx = $1 AND rt.holder = $2 AND r.state = 'pending'`, reqTx, sub.Account).
			Scan(&tok.Code, &tok.Issuer, &q.Requester, &scope, &q.Until, &study)
		if errors.Is(err, pgx.ErrNoRows) {
			return fiber.NewError(http.StatusNotFound, "no such pending request for a study of yours")
		}
		if err != nil {
			return a.problem(c, err)
		}
		raw, err := hex.DecodeString(reqTx)
		if err != nil || len(raw) != 32 {
			return fiber.NewError(http.StatusBadRequest, "malformed request transaction hash")
		}
		ans := contracts.Answer{Token: tok, Holder: sub.Account, Requester: q.Requester}
		copy(ans.RequestTx[:], raw)
		var name string
		_ = a.pool.QueryRow(c.UserContext(), `SELECT coalesce(nullif(display_name, ''), email, '') FROM users WHERE account = $1`, q.Requester).Scan(&name)
		st, _ := a.ownStudy(c, study)
		desc := fmt.Sprintf("Refuse the request of %s to access %s.", who(name, q.Requester), studyWords(st))
		if approve {
			until := q.Until
			if in.ExpiresAt != nil {
				until = *in.ExpiresAt
			}
			if !until.After(time.Now()) {
				return fiber.NewError(http.StatusBadRequest, "the access period is over; choose a later expiry")
			}
			ans.Grant = &contracts.Grant{Expires: until, Scope: contracts.Scope(scope)}
			desc = fmt.Sprintf("Approve the request of %s: let them %s %s until %s. You can take this back at any time.",
				who(name, q.Requester), scopeWords(contracts.Scope(scope)), studyWords(st), until.UTC().Format("2 January 2006 15:04 UTC"))
		}
		d, err := contracts.AnswerAccess(a.sponsorAddress(), ans)
		if err != nil {
			return fiber.NewError(http.StatusBadRequest, err.Error())
		}
		kind := "deny"
		if approve {
			kind = "approve"
		}
		return a.act(c, kind, desc, d)
	}
}

type transferIn struct {
	Study string `json:"study_instance_uid"`
	To    string `json:"to"` // G… or e-mail address of a custodial user
}

// transfer moves a record to another custodial account of this
// deployment (the new holder's trustline needs its signature, and the
// issuer co-signs).
func (a *API) transfer(c *fiber.Ctx) error {
	if err := a.needChain(); err != nil {
		return err
	}
	var in transferIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	ctx := c.UserContext()
	tok, st, err := a.heldToken(c, in.Study)
	if err != nil {
		return a.problem(c, err)
	}
	to, name, err := a.resolveAccount(c, in.To)
	if err != nil {
		return a.problem(c, err)
	}
	sub := subject(c)
	if to == sub.Account {
		return fiber.NewError(http.StatusBadRequest, "you already hold this study")
	}
	toUser, err := a.auth.UserByAccount(ctx, to)
	if err != nil || !toUser.Custodial || a.cfg.Custodian == nil {
		return fiber.NewError(http.StatusNotImplemented, "transfers go to accounts this organisation keeps for its users only")
	}
	toKey, err := a.cfg.Custodian.Account(ctx, uint32(toUser.HDIndex))
	if err != nil {
		return a.problem(c, err)
	}
	issuerKey, err := a.cfg.Custodian.Account(ctx, wallet.IssuerIndex)
	if err != nil {
		return a.problem(c, err)
	}
	if issuerKey.Address() != tok.Issuer {
		return fiber.NewError(http.StatusNotImplemented, "this study was issued by another organisation; ask it to transfer")
	}
	if _, err := a.sponsor().CreateAccounts(ctx, toKey); err != nil {
		return a.problem(c, err)
	}
	var grantees []string
	rows, err := a.pool.Query(ctx, `SELECT grantee FROM grants WHERE holder = $1 AND code = $2 AND issuer = $3 AND state = 'active'`,
		sub.Account, tok.Code, tok.Issuer)
	if err == nil {
		grantees, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return a.problem(c, err)
	}
	d, err := contracts.TransferRecord(a.sponsorAddress(), contracts.Transfer{Token: tok, From: sub.Account, To: to, Grantees: grantees})
	if err != nil {
		return fiber.NewError(http.StatusBadRequest, err.Error())
	}
	desc := fmt.Sprintf("Give %s to %s. They will hold it instead of you; everyone you shared it with loses access.", studyWords(st), who(name, to))
	return a.act(c, "transfer", desc, d, toKey, issuerKey)
}
