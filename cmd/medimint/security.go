package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/wallet"
)

// Files and keys of authentication.
const (
	// tokenKeyFile, under MEDIMINT_DATA_DIR, holds the ed25519 seed that
	// signs access tokens: losing it signs everyone out, nothing more.
	tokenKeyFile = "token.key"
	// sep10Index is the SEP-5 index of the SEP-10 SIGNING_KEY (3 is free:
	// sponsor 0, issuer 1, registry 2, governors from 10).
	sep10Index uint32 = 3
	// serveActor names serve in the audit log.
	serveActor = "medimint serve"
)

// security is who may do what: authentication, access decisions and the
// audit log they write to.
type security struct {
	auth    *auth.Service
	access  *access.Authorizer
	auditor *access.Auditor
}

// close stops the access cache, then writes what the auditor has queued.
func (s *security) close() {
	s.access.Close()
	s.auditor.Close()
}

// openSecurity sets up authentication (token key under MEDIMINT_DATA_DIR,
// SEP-10 on netw), the audit log and the access cache, the organisation
// this server issues for (and the organisations of the AE allowlist), and
// the issuer's mapping to it. On first start it creates an issuer admin
// with a password and an API key and prints both to out, once.
func openSecurity(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, cust *wallet.Custodian, issuer string,
	netw wallet.Network, out io.Writer, log *slog.Logger) (*security, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	key, err := auth.LoadOrCreateKey(filepath.Join(cfg.DataDir, tokenKeyFile))
	if err != nil {
		return nil, err
	}
	server, err := cust.Account(ctx, sep10Index)
	if err != nil {
		return nil, fmt.Errorf("SEP-10 signing key: %w", err)
	}
	sep10 := &wallet.Authenticator{Network: netw, Server: server, HomeDomain: cfg.HomeDomain, WebAuthDomain: webAuthDomain(cfg)}
	svc, err := auth.New(auth.Config{Pool: pool, Keys: auth.NewKeys("medimint", key), SEP10: sep10, Logger: log})
	if err != nil {
		return nil, err
	}
	orgs := []string{cfg.OrgID}
	for _, o := range cfg.AEAllowlist {
		if !slices.Contains(orgs, o) {
			orgs = append(orgs, o)
		}
	}
	for _, o := range orgs {
		if _, err := pool.Exec(ctx, "INSERT INTO orgs (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING", o); err != nil {
			return nil, fmt.Errorf("organisation %s: %w", o, err)
		}
	}
	var mapped string
	err = pool.QueryRow(ctx, "SELECT org_id FROM org_issuers WHERE issuer = $1", issuer).Scan(&mapped)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := access.SetOrgIssuer(ctx, pool, access.Subject{UserID: serveActor}, cfg.OrgID, issuer); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("org issuer: %w", err)
	case mapped != cfg.OrgID:
		// The issuer's records belong to the organisation they were minted
		// for; moving them is an admin decision, not a restart's.
		log.Warn("the issuer is mapped to another organisation than MEDIMINT_ORG_ID; keeping the mapping",
			"issuer", issuer, "mapped_org", mapped, "org_id", cfg.OrgID)
	}
	if err := bootstrapAdmin(ctx, cfg, pool, svc, out); err != nil {
		return nil, err
	}
	auditor := access.NewAuditor(pool, log, 0)
	az, err := access.NewAuthorizer(ctx, access.Config{Pool: pool, Audit: auditor, Log: log})
	if err != nil {
		auditor.Close()
		return nil, err
	}
	return &security{auth: svc, access: az, auditor: auditor}, nil
}

// webAuthDomain is the host clients reach us at, for SEP-10.
func webAuthDomain(cfg config.Config) string {
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Host != "" {
		return u.Host
	}
	return cfg.HTTPAddr
}

// bootstrapAdmin creates, when the organisation has no issuer admin yet,
// one with a random password and an API key with every scope, and prints
// them to out: the only way in on a fresh install. Only hashes are kept.
func bootstrapAdmin(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, svc *auth.Service, out io.Writer) error {
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM memberships WHERE org_id = $1 AND role = $2", cfg.OrgID, auth.RoleIssuerAdmin).Scan(&n); err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	if n > 0 {
		return nil
	}
	b := make([]byte, 15)
	rand.Read(b)
	pw := base64.RawURLEncoding.EncodeToString(b)
	email := "admin@" + cfg.HomeDomain
	u, err := svc.CreateUser(ctx, auth.NewUser{Email: email, DisplayName: "Administrator", Password: pw,
		Memberships: []auth.Membership{{OrgID: cfg.OrgID, Role: auth.RoleIssuerAdmin}}})
	if errors.Is(err, auth.ErrExists) {
		return nil // another instance starting at the same time made it
	}
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	apiKey, _, err := svc.CreateAPIKey(ctx, cfg.OrgID, "bootstrap", auth.APIKeyScopes, u.ID)
	if err != nil {
		return fmt.Errorf("bootstrap API key: %w", err)
	}
	base := cfg.PublicURL
	if base == "" {
		base = "http://" + cfg.HTTPAddr
		if host, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil && (host == "" || host == "0.0.0.0") {
			base = "http://127.0.0.1:" + port
		}
	}
	fmt.Fprintf(out, `
  First start: an issuer admin for organisation %s (shown this once; only hashes are kept).
    portal   %s/   e-mail %s   password %s
    API key  %s   (scopes %s; modalities and PACS send it as X-API-Key)

`, cfg.OrgID, base, email, pw, apiKey, strings.Join(auth.APIKeyScopes, ", "))
	return nil
}
