package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Errors of passkey ceremonies.
var (
	// ErrPasskeyNotAllowed: only custodial users register passkeys; a
	// user with their own wallet signs in with it.
	ErrPasskeyNotAllowed = errors.New("auth: passkeys are for custodial accounts")
	// ErrCeremony: the ceremony is unknown, used or expired.
	ErrCeremony = errors.New("auth: passkey ceremony unknown or expired")
)

// PasskeyConfig configures passkey (WebAuthn) sign-in.
type PasskeyConfig struct {
	// PublicURL is the server's URL as browsers see it
	// (MEDIMINT_PUBLIC_URL): its host is the Relying Party ID and its
	// origin the only origin ceremonies may come from.
	PublicURL string
	// RPName is shown by authenticators; default "Medimint".
	RPName string
	// Timeout bounds a ceremony; default 5 minutes.
	Timeout time.Duration
}

// Passkeys runs WebAuthn registration and sign-in ceremonies
// (go-webauthn) with credentials and ceremony state in Postgres.
type Passkeys struct {
	s   *Service
	wa  *webauthn.WebAuthn
	ttl time.Duration
}

// Passkey is a registered credential as its owner sees it.
type Passkey struct {
	ID         string     `json:"id"` // credential id, base64url
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// NewPasskeys returns passkey ceremonies for s.
func NewPasskeys(s *Service, cfg PasskeyConfig) (*Passkeys, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return nil, fmt.Errorf("auth: passkeys need the public URL (MEDIMINT_PUBLIC_URL), got %q", cfg.PublicURL)
	}
	if cfg.RPName == "" {
		cfg.RPName = "Medimint"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: cfg.RPName,
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.Timeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.Timeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: passkeys: %w", err)
	}
	return &Passkeys{s: s, wa: wa, ttl: cfg.Timeout}, nil
}

// passkeyUser is a User as go-webauthn sees it. The user handle is the
// user's UUID: random, stable, and nothing personal.
type passkeyUser struct {
	u     User
	creds []webauthn.Credential
}

func (p *passkeyUser) WebAuthnID() []byte {
	id, _ := uuid.Parse(p.u.ID)
	return id[:]
}

func (p *passkeyUser) WebAuthnName() string {
	if p.u.Email != "" {
		return p.u.Email
	}
	return p.u.Account
}

func (p *passkeyUser) WebAuthnDisplayName() string {
	if p.u.DisplayName != "" {
		return p.u.DisplayName
	}
	return p.WebAuthnName()
}

func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

func (k *Passkeys) loadUser(ctx context.Context, userID string) (*passkeyUser, error) {
	u, err := k.s.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	rows, err := k.s.pool.Query(ctx, `SELECT credential FROM passkeys WHERE user_id::text = $1 ORDER BY created_at`, userID)
	if err != nil {
		return nil, fmt.Errorf("auth: load passkeys: %w", err)
	}
	creds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webauthn.Credential, error) {
		var c webauthn.Credential
		var b []byte
		if err := r.Scan(&b); err != nil {
			return c, err
		}
		return c, json.Unmarshal(b, &c)
	})
	if err != nil {
		return nil, fmt.Errorf("auth: load passkeys: %w", err)
	}
	return &passkeyUser{u: u, creds: creds}, nil
}

// saveCeremony stores a ceremony's session data and returns its id;
// expired ceremonies are cleared on the way.
func (k *Passkeys) saveCeremony(ctx context.Context, kind string, userID any, sd *webauthn.SessionData) (string, error) {
	b, err := json.Marshal(sd)
	if err != nil {
		return "", fmt.Errorf("auth: passkey ceremony: %w", err)
	}
	if _, err := k.s.pool.Exec(ctx, `DELETE FROM passkey_ceremonies WHERE expires_at < now()`); err != nil {
		return "", fmt.Errorf("auth: passkey ceremony: %w", err)
	}
	var id string
	err = k.s.pool.QueryRow(ctx, `INSERT INTO passkey_ceremonies (kind, user_id, session, expires_at)
		VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond') RETURNING id::text`, kind, userID, b, k.ttl.Milliseconds()).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("auth: passkey ceremony: %w", err)
	}
	return id, nil
}

// takeCeremony deletes and returns a live ceremony: each is good once.
func (k *Passkeys) takeCeremony(ctx context.Context, id, kind string) (sd webauthn.SessionData, userID string, err error) {
	if _, perr := uuid.Parse(id); perr != nil {
		return sd, "", ErrCeremony
	}
	var b []byte
	var uid *string
	err = k.s.pool.QueryRow(ctx, `DELETE FROM passkey_ceremonies WHERE id = $1 AND kind = $2 AND expires_at > now()
		RETURNING session, user_id::text`, id, kind).Scan(&b, &uid)
	if errors.Is(err, pgx.ErrNoRows) {
		return sd, "", ErrCeremony
	}
	if err != nil {
		return sd, "", fmt.Errorf("auth: passkey ceremony: %w", err)
	}
	if uid != nil {
		userID = *uid
	}
	return sd, userID, json.Unmarshal(b, &sd)
}

// BeginRegistration starts adding a passkey to a signed-in custodial
// user: it returns the ceremony id and the options for
// navigator.credentials.create (a discoverable credential, user
// verification required, the user's existing passkeys excluded).
func (k *Passkeys) BeginRegistration(ctx context.Context, userID string) (ceremony string, options *protocol.CredentialCreation, err error) {
	pu, err := k.loadUser(ctx, userID)
	if err != nil {
		return "", nil, err
	}
	if !pu.u.Custodial {
		return "", nil, ErrPasskeyNotAllowed
	}
	if pu.u.Disabled {
		return "", nil, ErrDisabled
	}
	options, sd, err := k.wa.BeginRegistration(pu,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(webauthn.Credentials(pu.creds).CredentialDescriptors()))
	if err != nil {
		return "", nil, fmt.Errorf("auth: begin passkey registration: %w", err)
	}
	ceremony, err = k.saveCeremony(ctx, "register", userID, sd)
	return ceremony, options, err
}

// FinishRegistration verifies the authenticator's answer
// (PublicKeyCredential as JSON) to a registration ceremony of userID and
// stores the credential under name.
func (k *Passkeys) FinishRegistration(ctx context.Context, userID, ceremony, name string, response []byte) (Passkey, error) {
	sd, owner, err := k.takeCeremony(ctx, ceremony, "register")
	if err != nil {
		return Passkey{}, err
	}
	if owner != userID {
		return Passkey{}, ErrCeremony
	}
	pu, err := k.loadUser(ctx, userID)
	if err != nil {
		return Passkey{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Passkey{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	cred, err := k.wa.CreateCredential(pu, sd, parsed)
	if err != nil {
		return Passkey{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return Passkey{}, fmt.Errorf("auth: store passkey: %w", err)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = "Passkey"
	}
	if len(name) > 64 {
		name = name[:64]
	}
	pk := Passkey{ID: base64.RawURLEncoding.EncodeToString(cred.ID), Name: name}
	err = k.s.pool.QueryRow(ctx, `INSERT INTO passkeys (credential_id, user_id, name, credential) VALUES ($1, $2, $3, $4)
		RETURNING created_at`, cred.ID, userID, name, b).Scan(&pk.CreatedAt)
	if isUnique(err) {
		return Passkey{}, ErrExists
	}
	if err != nil {
		return Passkey{}, fmt.Errorf("auth: store passkey: %w", err)
	}
	k.s.log.Info("passkey registered", "user", userID)
	return pk, nil
}

// BeginSignIn starts a sign-in with a discoverable passkey: the browser
// offers the user's passkeys for this site, no e-mail address asked.
func (k *Passkeys) BeginSignIn(ctx context.Context, clientIP string) (ceremony string, options *protocol.CredentialAssertion, err error) {
	if err := k.s.throttle(ctx, "ip:"+clientIP); err != nil {
		return "", nil, err
	}
	options, sd, err := k.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return "", nil, fmt.Errorf("auth: begin passkey sign-in: %w", err)
	}
	ceremony, err = k.saveCeremony(ctx, "sign-in", nil, sd)
	return ceremony, options, err
}

// FinishSignIn verifies the authenticator's assertion (PublicKeyCredential
// as JSON) for a sign-in ceremony and starts a session for the
// credential's owner. A signature counter that went backwards (a cloned
// authenticator) is refused.
func (k *Passkeys) FinishSignIn(ctx context.Context, ceremony string, response []byte, clientIP string) (Session, error) {
	if err := k.s.throttle(ctx, "ip:"+clientIP); err != nil {
		return Session{}, err
	}
	sd, _, err := k.takeCeremony(ctx, ceremony, "sign-in")
	if err != nil {
		return Session{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Session{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	var owner *passkeyUser
	user, cred, err := k.wa.ValidatePasskeyLogin(func(rawID, handle []byte) (webauthn.User, error) {
		id, err := uuid.FromBytes(handle)
		if err != nil {
			return nil, ErrBadCredentials
		}
		pu, err := k.loadUser(ctx, id.String())
		if err != nil {
			return nil, err
		}
		owner = pu
		return pu, nil
	}, sd, parsed)
	if err != nil {
		return Session{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	if user != webauthn.User(owner) || owner == nil {
		return Session{}, ErrBadCredentials
	}
	if cred.Authenticator.CloneWarning {
		k.s.log.Warn("passkey signature counter went backwards: possible cloned authenticator", "user", owner.u.ID)
		return Session{}, ErrBadCredentials
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return Session{}, fmt.Errorf("auth: passkey: %w", err)
	}
	tag, err := k.s.pool.Exec(ctx, `UPDATE passkeys SET credential = $3, last_used_at = now() WHERE credential_id = $1 AND user_id::text = $2`,
		cred.ID, owner.u.ID, b)
	if err != nil {
		return Session{}, fmt.Errorf("auth: passkey: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return Session{}, ErrBadCredentials
	}
	return k.s.startSession(ctx, owner.u)
}

// List returns a user's passkeys, oldest first.
func (k *Passkeys) List(ctx context.Context, userID string) ([]Passkey, error) {
	rows, err := k.s.pool.Query(ctx, `SELECT credential_id, name, created_at, last_used_at FROM passkeys
		WHERE user_id::text = $1 ORDER BY created_at, credential_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("auth: list passkeys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Passkey, error) {
		var p Passkey
		var id []byte
		err := r.Scan(&id, &p.Name, &p.CreatedAt, &p.LastUsedAt)
		p.ID = base64.RawURLEncoding.EncodeToString(id)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: list passkeys: %w", err)
	}
	if out == nil {
		out = []Passkey{}
	}
	return out, nil
}

// Delete removes one of a user's passkeys (id as List gives it).
func (k *Passkeys) Delete(ctx context.Context, userID, id string) error {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || bytes.Equal(raw, nil) {
		return ErrNotFound
	}
	tag, err := k.s.pool.Exec(ctx, `DELETE FROM passkeys WHERE credential_id = $1 AND user_id::text = $2`, raw, userID)
	if err != nil {
		return fmt.Errorf("auth: delete passkey: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
