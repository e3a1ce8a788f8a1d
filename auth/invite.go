package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Invitation invites someone to an organisation in a role.
type Invitation struct {
	OrgID string
	Role  Role
	Email string
	// Account and HDIndex, for a patient, are the custodial account the
	// invitee will act as.
	Account   string
	HDIndex   int32
	InvitedBy string // user ID, if any
	TTL       time.Duration
}

// Invite stores an invitation and returns its token, which only the
// invitee gets (by e-mail, or printed by an admin tool).
func (s *Service) Invite(ctx context.Context, inv Invitation) (string, error) {
	if !inv.Role.Valid() {
		return "", fmt.Errorf("auth: unknown role %q", inv.Role)
	}
	email := normEmail(inv.Email)
	if !strings.Contains(email, "@") {
		return "", fmt.Errorf("auth: invitation needs an e-mail address")
	}
	if inv.TTL <= 0 {
		inv.TTL = 7 * 24 * time.Hour
	}
	tok, h := randomToken(32)
	_, err := s.pool.Exec(ctx, `INSERT INTO invitations (token_hash, org_id, role, email, account, hd_index, invited_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, h, inv.OrgID, inv.Role, email, nullable(inv.Account), nullIndex(inv.HDIndex),
		nullable(inv.InvitedBy), time.Now().Add(inv.TTL))
	if err != nil {
		return "", fmt.Errorf("auth: invite: %w", err)
	}
	return tok, nil
}

// AcceptInvitation redeems an invitation token: it creates the invitee's
// user (with password and display name) or, if a user with that e-mail
// address exists, adds the role to it. The invitation is spent.
func (s *Service) AcceptInvitation(ctx context.Context, token, password, displayName string) (User, error) {
	if err := CheckPassword(password); err != nil {
		return User{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return User{}, err
	}
	var id string
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var org, role, email, account string
		var idx int32
		var stored []byte
		err := tx.QueryRow(ctx, `SELECT token_hash, org_id, role, email, coalesce(account, ''), coalesce(hd_index, 0)
			FROM invitations WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > now() FOR UPDATE`, hashToken(token)).
			Scan(&stored, &org, &role, &email, &account, &idx)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && subtle.ConstantTimeCompare(stored, hashToken(token)) != 1) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT id::text FROM users WHERE email = $1`, email).Scan(&id)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			err = tx.QueryRow(ctx, `INSERT INTO users (email, display_name, account, hd_index, password_hash)
				VALUES ($1, $2, $3, $4, $5) RETURNING id::text`, email, strings.TrimSpace(displayName), nullable(account), nullIndex(idx), hash).Scan(&id)
		case err == nil:
			_, err = tx.Exec(ctx, `UPDATE users SET password_hash = coalesce(password_hash, $2),
				account = coalesce(account, $3), hd_index = coalesce(hd_index, $4) WHERE id::text = $1`, id, hash, nullable(account), nullIndex(idx))
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, id, org, role); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE invitations SET accepted_by = $2, accepted_at = now() WHERE token_hash = $1`, stored, id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("auth: invitation unknown, used or expired: %w", ErrNotFound)
	}
	if isUnique(err) {
		return User{}, fmt.Errorf("auth: accept invitation: %w", ErrExists)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: accept invitation: %w", err)
	}
	return s.UserByID(ctx, id)
}

// GrantRole adds a role in an organisation to a user.
func (s *Service) GrantRole(ctx context.Context, userID string, m Membership) error {
	if !m.Role.Valid() {
		return fmt.Errorf("auth: unknown role %q", m.Role)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		userID, m.OrgID, m.Role); err != nil {
		return fmt.Errorf("auth: grant role: %w", err)
	}
	return nil
}

// RemoveRole removes a role in an organisation from a user.
func (s *Service) RemoveRole(ctx context.Context, userID string, m Membership) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM memberships WHERE user_id::text = $1 AND org_id = $2 AND role = $3`,
		userID, m.OrgID, m.Role); err != nil {
		return fmt.Errorf("auth: remove role: %w", err)
	}
	return nil
}

// API key scopes.
const (
	ScopeSTOW = "stow" // store instances (STOW-RS)
	ScopeQIDO = "qido" // search (QIDO-RS)
	ScopeWADO = "wado" // retrieve (WADO-RS)
)

// APIKeyScopes lists the valid API key scopes.
var APIKeyScopes = []string{ScopeSTOW, ScopeQIDO, ScopeWADO}

// APIKeyPrefix starts every API key, so that leaked keys are recognisable
// by secret scanners.
const APIKeyPrefix = "mmk_"

// APIKey describes a stored key (never its secret).
type APIKey struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Revoked    bool       `json:"revoked"`
}

// CreateAPIKey creates a key for a modality or PACS of org; the returned
// key text is shown once and stored only hashed.
func (s *Service) CreateAPIKey(ctx context.Context, orgID, name string, scopes []string, createdBy string) (key string, k APIKey, err error) {
	if orgID == "" || name == "" || len(scopes) == 0 {
		return "", APIKey{}, errors.New("auth: an API key needs an organisation, a name and scopes")
	}
	for _, sc := range scopes {
		if !slices.Contains(APIKeyScopes, sc) {
			return "", APIKey{}, fmt.Errorf("auth: unknown API key scope %q", sc)
		}
	}
	prefix := newID()[:12]
	secret, h := randomToken(32)
	err = s.pool.QueryRow(ctx, `INSERT INTO api_keys (org_id, name, prefix, secret_hash, scopes, created_by)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id::text, created_at`, orgID, name, prefix, h, scopes, nullable(createdBy)).
		Scan(&k.ID, &k.CreatedAt)
	if err != nil {
		return "", APIKey{}, fmt.Errorf("auth: create API key: %w", err)
	}
	k.OrgID, k.Name, k.Prefix, k.Scopes = orgID, name, prefix, scopes
	return APIKeyPrefix + prefix + "_" + secret, k, nil
}

// APIKeys lists org's keys.
func (s *Service) APIKeys(ctx context.Context, orgID string) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text, org_id, name, prefix, scopes, created_at, last_used_at, revoked_at IS NOT NULL
		FROM api_keys WHERE org_id = $1 ORDER BY created_at`, orgID)
	if err != nil {
		return nil, fmt.Errorf("auth: API keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		err := r.Scan(&k.ID, &k.OrgID, &k.Name, &k.Prefix, &k.Scopes, &k.CreatedAt, &k.LastUsedAt, &k.Revoked)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey revokes one of org's keys.
func (s *Service) RevokeAPIKey(ctx context.Context, orgID, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE org_id = $1 AND id::text = $2 AND revoked_at IS NULL`, orgID, id)
	if err != nil {
		return fmt.Errorf("auth: revoke API key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// AuthenticateAPIKey checks an API key and returns its subject.
func (s *Service) AuthenticateAPIKey(ctx context.Context, key string) (Subject, error) {
	rest, ok := strings.CutPrefix(key, APIKeyPrefix)
	prefix, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(prefix) != 12 || secret == "" {
		return Subject{}, ErrInvalidToken
	}
	var id, org string
	var h []byte
	var scopes []string
	err := s.pool.QueryRow(ctx, `SELECT id::text, org_id, secret_hash, scopes FROM api_keys
		WHERE prefix = $1 AND revoked_at IS NULL`, prefix).Scan(&id, &org, &h, &scopes)
	if errors.Is(err, pgx.ErrNoRows) {
		return Subject{}, ErrInvalidToken
	}
	if err != nil {
		return Subject{}, fmt.Errorf("auth: API key: %w", err)
	}
	if subtle.ConstantTimeCompare(h, hashToken(secret)) != 1 {
		return Subject{}, ErrInvalidToken
	}
	s.noteKeyUse(ctx, id)
	return Subject{APIKeyID: id, OrgID: org, Scopes: scopes}, nil
}

// keyUseGranularity is how precisely last_used_at follows a key's use:
// at most one write a minute per key, not one per request.
const keyUseGranularity = time.Minute

// maxKeyUses bounds keyUses' map; past it, entries older than
// keyUseGranularity are dropped (they would be written again anyway).
const maxKeyUses = 4096

// keyUses is when this process last recorded each API key's use.
type keyUses struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether key id's use should be written now, and if so
// notes it as written.
func (u *keyUses) due(id string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.last[id]; ok && now.Sub(t) < keyUseGranularity {
		return false
	}
	if u.last == nil {
		u.last = map[string]time.Time{}
	}
	if len(u.last) >= maxKeyUses {
		for k, t := range u.last {
			if now.Sub(t) >= keyUseGranularity {
				delete(u.last, k)
			}
		}
		if len(u.last) >= maxKeyUses {
			clear(u.last)
		}
	}
	u.last[id] = now
	return true
}

// forget makes the next use of key id be written again.
func (u *keyUses) forget(id string) {
	u.mu.Lock()
	delete(u.last, id)
	u.mu.Unlock()
}

// noteKeyUse records that API key id was just used. The database
// condition keeps several processes to about one write a minute too.
func (s *Service) noteKeyUse(ctx context.Context, id string) {
	if !s.keyUses.due(id, time.Now()) {
		return
	}
	if _, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = now() WHERE id::text = $1
		AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, id); err != nil {
		s.keyUses.forget(id)
		s.log.Warn("API key last use not recorded", "key", id, "err", err)
	}
}
