package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/wallet"
)

// Role is a user's role in an organisation.
type Role string

// The roles of issue 7.
const (
	RolePatient      Role = "patient"
	RoleClinician    Role = "clinician"
	RoleTechnologist Role = "technologist"
	RoleIssuerAdmin  Role = "issuer_admin"
	RoleAuditor      Role = "auditor"
)

// Roles lists every role.
var Roles = []Role{RolePatient, RoleClinician, RoleTechnologist, RoleIssuerAdmin, RoleAuditor}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Errors of sign-in and session handling. Callers map them to HTTP
// statuses; none says whether an e-mail address is known.
var (
	ErrBadCredentials = errors.New("auth: wrong e-mail address or password")
	ErrThrottled      = errors.New("auth: too many attempts; try again later")
	ErrDisabled       = errors.New("auth: account disabled")
	ErrNotFound       = errors.New("auth: not found")
	ErrExists         = errors.New("auth: already exists")
	ErrSEP10Disabled  = errors.New("auth: SEP-10 sign-in is not configured")
	ErrReplay         = errors.New("auth: challenge already used")
)

// LockedError reports an account locked after repeated failures.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return "auth: account locked after repeated failed sign-ins until " + e.Until.UTC().Format(time.RFC3339)
}

// Config configures a Service.
type Config struct {
	Pool *pgxpool.Pool
	Keys *Keys
	// SEP10 issues and verifies SEP-10 challenges; nil disables wallet
	// sign-in.
	SEP10 *wallet.Authenticator

	AccessTTL  time.Duration // access token lifetime (default 10 minutes)
	RefreshTTL time.Duration // refresh token lifetime (default 14 days)
	// MaxFailures consecutive wrong passwords lock an account for
	// LockoutFor (defaults 5 and 15 minutes).
	MaxFailures int
	LockoutFor  time.Duration
	// At most ThrottleLimit password or SEP-10 sign-in attempts per client
	// address, and per e-mail address, in each ThrottleWindow (defaults
	// 20 per minute).
	ThrottleLimit  int
	ThrottleWindow time.Duration
	Logger         *slog.Logger
}

// Service is authentication on Postgres.
type Service struct {
	cfg  Config
	pool *pgxpool.Pool
	keys *Keys
	log  *slog.Logger

	// keyUses remembers when this process last wrote each API key's
	// last_used_at, so that a busy key costs no database write (nor a
	// round trip) per request.
	keyUses keyUses
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Pool == nil || cfg.Keys == nil {
		return nil, errors.New("auth: Config needs Pool and Keys")
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 10 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 14 * 24 * time.Hour
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.LockoutFor <= 0 {
		cfg.LockoutFor = 15 * time.Minute
	}
	if cfg.ThrottleLimit <= 0 {
		cfg.ThrottleLimit = 20
	}
	if cfg.ThrottleWindow <= 0 {
		cfg.ThrottleWindow = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, pool: cfg.Pool, keys: cfg.Keys, log: cfg.Logger.With(slog.String("component", "auth"))}, nil
}

// Keys returns the token keys.
func (s *Service) Keys() *Keys { return s.keys }

// AccessTTL is the lifetime of access tokens.
func (s *Service) AccessTTL() time.Duration { return s.cfg.AccessTTL }

// RefreshTTL is the lifetime of refresh tokens.
func (s *Service) RefreshTTL() time.Duration { return s.cfg.RefreshTTL }

// Membership is a role in an organisation ("" for none).
type Membership struct {
	OrgID string `json:"org_id"`
	Role  Role   `json:"role"`
}

// User is a person who can sign in.
type User struct {
	ID          string       `json:"id"`
	Email       string       `json:"email,omitempty"`
	DisplayName string       `json:"display_name"`
	Account     string       `json:"account,omitempty"`
	HDIndex     int32        `json:"-"` // custodial key's SEP-5 index; 0: not custodial
	Custodial   bool         `json:"custodial"`
	HasPassword bool         `json:"-"`
	Disabled    bool         `json:"disabled,omitempty"`
	Memberships []Membership `json:"memberships"`
}

// NewUser describes a user to create.
type NewUser struct {
	Email       string
	DisplayName string
	Password    string // empty: no password sign-in
	Account     string // Stellar account, if any
	HDIndex     int32  // custodial key index (>= 1000), with Account
	Memberships []Membership
}

// CreateOrg creates an organisation, or renames it.
func (s *Service) CreateOrg(ctx context.Context, id, name string) error {
	if id == "" {
		return errors.New("auth: empty organisation id")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO orgs (id, name) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name`, id, name)
	if err != nil {
		return fmt.Errorf("auth: create org %s: %w", id, err)
	}
	return nil
}

func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullIndex(i int32) any {
	if i == 0 {
		return nil
	}
	return i
}

// CreateUser creates a user with its memberships.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	var hash string
	if nu.Password != "" {
		h, err := HashPassword(nu.Password)
		if err != nil {
			return User{}, err
		}
		hash = h
	}
	for _, m := range nu.Memberships {
		if !m.Role.Valid() {
			return User{}, fmt.Errorf("auth: unknown role %q", m.Role)
		}
	}
	var id string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO users (email, display_name, account, hd_index, password_hash)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			nullable(normEmail(nu.Email)), nu.DisplayName, nullable(nu.Account), nullIndex(nu.HDIndex), nullable(hash)).Scan(&id); err != nil {
			return err
		}
		for _, m := range nu.Memberships {
			if _, err := tx.Exec(ctx, `INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, id, m.OrgID, m.Role); err != nil {
				return err
			}
		}
		return nil
	})
	if isUnique(err) {
		return User{}, fmt.Errorf("auth: create user: %w", ErrExists)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: create user: %w", err)
	}
	return s.UserByID(ctx, id)
}

func isUnique(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}

const userCols = `id::text, coalesce(email, ''), display_name, coalesce(account, ''), coalesce(hd_index, 0),
	password_hash IS NOT NULL, disabled`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &u.Account, &u.HDIndex, &u.HasPassword, &u.Disabled)
	u.Custodial = u.HDIndex != 0
	return u, err
}

// UserByID loads a user and its memberships.
func (s *Service) UserByID(ctx context.Context, id string) (User, error) {
	return s.userWhere(ctx, "id::text = $1", id)
}

// UserByAccount loads the user whose Stellar account is account.
func (s *Service) UserByAccount(ctx context.Context, account string) (User, error) {
	return s.userWhere(ctx, "account = $1", account)
}

func (s *Service) userWhere(ctx context.Context, where string, arg any) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE "+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: load user: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY org_id, role`, u.ID)
	if err != nil {
		return User{}, fmt.Errorf("auth: load memberships: %w", err)
	}
	u.Memberships, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Membership, error) {
		var m Membership
		err := r.Scan(&m.OrgID, &m.Role)
		return m, err
	})
	if err != nil {
		return User{}, fmt.Errorf("auth: load memberships: %w", err)
	}
	return u, nil
}

// UpdateProfile changes a user's display name.
func (s *Service) UpdateProfile(ctx context.Context, userID, displayName string) error {
	displayName = strings.TrimSpace(displayName)
	if len(displayName) > 200 {
		return errors.New("auth: display name longer than 200 bytes")
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET display_name = $2 WHERE id::text = $1`, userID, displayName)
	if err != nil {
		return fmt.Errorf("auth: update profile: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// SetPassword replaces a user's password and ends all their sessions.
func (s *Service) SetPassword(ctx context.Context, userID, pw string) error {
	h, err := HashPassword(pw)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL WHERE id::text = $1`, userID, h)
	if err != nil {
		return fmt.Errorf("auth: set password: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return s.RevokeUserSessions(ctx, userID)
}

// SetDisabled disables or re-enables a user; disabling ends their
// sessions (access tokens already issued live out their short TTL).
func (s *Service) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	if _, err := s.pool.Exec(ctx, `UPDATE users SET disabled = $2 WHERE id::text = $1`, userID, disabled); err != nil {
		return fmt.Errorf("auth: disable user: %w", err)
	}
	if disabled {
		return s.RevokeUserSessions(ctx, userID)
	}
	return nil
}

// Staff lists the users with a role in org, with their roles there.
func (s *Service) Staff(ctx context.Context, orgID string) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT user_id::text FROM memberships WHERE org_id = $1 ORDER BY 1`, orgID)
	if err != nil {
		return nil, fmt.Errorf("auth: staff: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("auth: staff: %w", err)
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		u, err := s.UserByID(ctx, id)
		if err != nil {
			return nil, err
		}
		ms := u.Memberships[:0]
		for _, m := range u.Memberships {
			if m.OrgID == orgID {
				ms = append(ms, m)
			}
		}
		u.Memberships = ms
		out = append(out, u)
	}
	return out, nil
}

// subjectFor is what a session of u carries: the first organisation u
// has a role in, its roles there and its organisation-less roles.
func subjectFor(u User) Subject {
	sub := Subject{UserID: u.ID, Account: u.Account, Custodial: u.Custodial}
	for _, m := range u.Memberships {
		if m.OrgID != "" && sub.OrgID == "" {
			sub.OrgID = m.OrgID
		}
	}
	for _, m := range u.Memberships {
		if (m.OrgID == "" || m.OrgID == sub.OrgID) && !slices.Contains(sub.Roles, m.Role) {
			sub.Roles = append(sub.Roles, m.Role)
		}
	}
	return sub
}
