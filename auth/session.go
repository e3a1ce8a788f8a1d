package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// Session is what a successful sign-in or refresh returns.
type Session struct {
	AccessToken    string    `json:"access_token"`
	TokenType      string    `json:"token_type"` // "Bearer"
	ExpiresIn      int       `json:"expires_in"` // seconds
	RefreshToken   string    `json:"refresh_token,omitempty"`
	RefreshExpires time.Time `json:"refresh_expires"`
	Subject        Subject   `json:"subject"`
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// accessToken signs an API access token for sub.
func (s *Service) accessToken(sub Subject, now time.Time) (string, error) {
	return s.keys.Sign(Claims{
		Subject: sub.UserID, Audience: AudienceAPI, IssuedAt: now.Unix(), NotBefore: now.Unix(),
		Expires: now.Add(s.cfg.AccessTTL).Unix(), ID: newID(),
		Account: sub.Account, Custodial: sub.Custodial, OrgID: sub.OrgID, Roles: sub.Roles, Session: sub.Session,
	})
}

// startSession opens a new refresh token family for u.
func (s *Service) startSession(ctx context.Context, u User) (Session, error) {
	if u.Disabled {
		return Session{}, ErrDisabled
	}
	sub := subjectFor(u)
	var family string
	if err := s.pool.QueryRow(ctx, "SELECT gen_random_uuid()::text").Scan(&family); err != nil {
		return Session{}, fmt.Errorf("auth: session: %w", err)
	}
	sub.Session = family
	return s.issue(ctx, s.pool, sub)
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// issue stores a new refresh token in sub.Session's family and signs an
// access token.
func (s *Service) issue(ctx context.Context, db execer, sub Subject) (Session, error) {
	now := time.Now()
	rt, h := randomToken(32)
	exp := now.Add(s.cfg.RefreshTTL)
	if _, err := db.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, family, user_id, org_id, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, h, sub.Session, sub.UserID, sub.OrgID, exp); err != nil {
		return Session{}, fmt.Errorf("auth: store refresh token: %w", err)
	}
	at, err := s.accessToken(sub, now)
	if err != nil {
		return Session{}, err
	}
	return Session{AccessToken: at, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL / time.Second),
		RefreshToken: rt, RefreshExpires: exp.UTC().Truncate(time.Second), Subject: sub}, nil
}

// Refresh rotates a refresh token: the presented token is spent and a new
// one in the same family is returned with a fresh access token (roles
// reloaded). A token presented a second time means someone else has a
// copy: the whole family is revoked and ErrInvalidToken returned.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	h := hashToken(refreshToken)
	var out Session
	var reused bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var family, userID, org string
		var expires time.Time
		var used, revoked *time.Time
		err := tx.QueryRow(ctx, `SELECT family::text, user_id::text, org_id, expires_at, used_at, revoked_at
			FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`, h).Scan(&family, &userID, &org, &expires, &used, &revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrInvalidToken
		}
		if err != nil {
			return err
		}
		switch {
		case revoked != nil || time.Now().After(expires):
			return ErrInvalidToken
		case used != nil:
			reused = true
			_, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = now() WHERE family::text = $1 AND revoked_at IS NULL`, family)
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1`, h); err != nil {
			return err
		}
		u, err := s.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		if u.Disabled {
			return ErrDisabled
		}
		sub := subjectFor(u)
		sub.Session = family
		out, err = s.issue(ctx, tx, sub)
		return err
	})
	if reused {
		s.log.Warn("refresh token reused; session revoked")
		return Session{}, fmt.Errorf("%w: refresh token already used; session revoked", ErrInvalidToken)
	}
	if err != nil {
		if errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrDisabled) || errors.Is(err, ErrNotFound) {
			return Session{}, ErrInvalidToken
		}
		return Session{}, fmt.Errorf("auth: refresh: %w", err)
	}
	return out, nil
}

// SignOut revokes the session (refresh token family) refreshToken belongs
// to. Unknown tokens are ignored.
func (s *Service) SignOut(ctx context.Context, refreshToken string) error {
	_, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = now()
		WHERE family = (SELECT family FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL`, hashToken(refreshToken))
	if err != nil {
		return fmt.Errorf("auth: sign out: %w", err)
	}
	return nil
}

// RevokeUserSessions revokes every refresh token of a user.
func (s *Service) RevokeUserSessions(ctx context.Context, userID string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = now() WHERE user_id::text = $1 AND revoked_at IS NULL`, userID); err != nil {
		return fmt.Errorf("auth: revoke sessions: %w", err)
	}
	return nil
}

// throttle counts an attempt under key and fails once the window's limit
// is passed.
func (s *Service) throttle(ctx context.Context, key string) error {
	var hits int
	err := s.pool.QueryRow(ctx, `INSERT INTO auth_throttle (key, window_start, hits) VALUES ($1, now(), 1)
		ON CONFLICT (key) DO UPDATE SET
			hits = CASE WHEN auth_throttle.window_start <= now() - $2 * interval '1 microsecond' THEN 1 ELSE auth_throttle.hits + 1 END,
			window_start = CASE WHEN auth_throttle.window_start <= now() - $2 * interval '1 microsecond' THEN now() ELSE auth_throttle.window_start END
		RETURNING hits`, key, s.cfg.ThrottleWindow.Microseconds()).Scan(&hits)
	if err != nil {
		return fmt.Errorf("auth: throttle: %w", err)
	}
	if hits > s.cfg.ThrottleLimit {
		return ErrThrottled
	}
	return nil
}

// SignInPassword signs a user in with e-mail address and password.
// clientIP is throttled along with the address; a locked account fails
// with *LockedError even with the right password.
func (s *Service) SignInPassword(ctx context.Context, email, password, clientIP string) (Session, error) {
	email = normEmail(email)
	if err := s.throttle(ctx, "ip:"+clientIP); err != nil {
		return Session{}, err
	}
	if err := s.throttle(ctx, "email:"+email); err != nil {
		return Session{}, err
	}
	var id, hash string
	var locked *time.Time
	var disabled bool
	err := s.pool.QueryRow(ctx, `SELECT id::text, coalesce(password_hash, ''), locked_until, disabled FROM users WHERE email = $1`, email).
		Scan(&id, &hash, &locked, &disabled)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && hash == "") {
		_, _ = VerifyPassword(dummyHash(), password) // same time as a wrong password
		return Session{}, ErrBadCredentials
	}
	if err != nil {
		return Session{}, fmt.Errorf("auth: sign in: %w", err)
	}
	if locked != nil && locked.After(time.Now()) {
		return Session{}, &LockedError{Until: *locked}
	}
	ok, err := VerifyPassword(hash, password)
	if err != nil {
		return Session{}, fmt.Errorf("auth: sign in: %w", err)
	}
	if !ok {
		var until *time.Time
		err := s.pool.QueryRow(ctx, `UPDATE users SET failed_logins = failed_logins + 1,
			locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + $3 * interval '1 microsecond' END
			WHERE id::text = $1 RETURNING locked_until`, id, s.cfg.MaxFailures, s.cfg.LockoutFor.Microseconds()).Scan(&until)
		if err != nil {
			return Session{}, fmt.Errorf("auth: sign in: %w", err)
		}
		if until != nil {
			s.log.Warn("account locked after failed sign-ins", "user", id, "until", *until)
			return Session{}, &LockedError{Until: *until}
		}
		return Session{}, ErrBadCredentials
	}
	if disabled {
		return Session{}, ErrDisabled
	}
	if _, err := s.pool.Exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id::text = $1`, id); err != nil {
		return Session{}, fmt.Errorf("auth: sign in: %w", err)
	}
	u, err := s.UserByID(ctx, id)
	if err != nil {
		return Session{}, err
	}
	return s.startSession(ctx, u)
}

// Challenge returns a SEP-10 challenge transaction (base64 XDR) for
// account to sign.
func (s *Service) Challenge(ctx context.Context, account string) (string, error) {
	if s.cfg.SEP10 == nil {
		return "", ErrSEP10Disabled
	}
	return s.cfg.SEP10.Challenge(account, nil)
}

// SignInSEP10 verifies a signed SEP-10 challenge and signs its account
// in. A challenge is good for one sign-in. An account seen for the first
// time becomes a user with the patient role and no organisation.
func (s *Service) SignInSEP10(ctx context.Context, signed, clientIP string) (Session, error) {
	if s.cfg.SEP10 == nil {
		return Session{}, ErrSEP10Disabled
	}
	if err := s.throttle(ctx, "ip:"+clientIP); err != nil {
		return Session{}, err
	}
	v, err := s.cfg.SEP10.Verify(ctx, signed)
	if err != nil {
		return Session{}, fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	gtx, err := txnbuild.TransactionFromXDR(signed)
	if err != nil {
		return Session{}, fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	tx, ok := gtx.Transaction()
	if !ok {
		return Session{}, ErrBadCredentials
	}
	hash, err := tx.HashHex(s.cfg.SEP10.Network.Passphrase)
	if err != nil {
		return Session{}, fmt.Errorf("auth: sep-10: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO sep10_used (tx_hash, expires_at) VALUES ($1, to_timestamp($2))
		ON CONFLICT DO NOTHING`, hash, tx.Timebounds().MaxTime)
	if err != nil {
		return Session{}, fmt.Errorf("auth: sep-10: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return Session{}, ErrReplay
	}
	_, _ = s.pool.Exec(ctx, `DELETE FROM sep10_used WHERE expires_at < now() - interval '1 hour'`)
	u, err := s.UserByAccount(ctx, v.Account)
	if errors.Is(err, ErrNotFound) {
		u, err = s.CreateUser(ctx, NewUser{Account: v.Account, Memberships: []Membership{{OrgID: "", Role: RolePatient}}})
		if errors.Is(err, ErrExists) { // a concurrent first sign-in
			u, err = s.UserByAccount(ctx, v.Account)
		}
	}
	if err != nil {
		return Session{}, err
	}
	return s.startSession(ctx, u)
}

// ViewerToken signs a short-lived token that lets a viewer (OHIF) read one
// study over DICOMweb on sub's behalf. It carries no refresh token.
func (s *Service) ViewerToken(sub Subject, study string, ttl time.Duration) (string, error) {
	now := time.Now()
	return s.keys.Sign(Claims{
		Subject: sub.UserID, Audience: AudienceViewer, IssuedAt: now.Unix(), NotBefore: now.Unix(),
		Expires: now.Add(ttl).Unix(), ID: newID(), Account: sub.Account, OrgID: sub.OrgID, Roles: sub.Roles,
		Study: study,
	})
}
