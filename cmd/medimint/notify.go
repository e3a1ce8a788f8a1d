package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/notify"
)

// portalPasskeys returns the portal's passkey ceremonies, or nil (passkey
// routes answer 501) when MEDIMINT_PUBLIC_URL is unset: the Relying Party
// ID must be the host browsers see, which a request's Host cannot be
// trusted to say.
func portalPasskeys(cfg config.Config, a *auth.Service, log *slog.Logger) *auth.Passkeys {
	if cfg.PublicURL == "" {
		log.Info("passkeys disabled: set MEDIMINT_PUBLIC_URL (its host is the WebAuthn Relying Party ID)")
		return nil
	}
	pk, err := auth.NewPasskeys(a, auth.PasskeyConfig{PublicURL: cfg.PublicURL})
	if err != nil {
		log.Error("passkeys disabled", "err", err)
		return nil
	}
	return pk
}

// runNotifier delivers notifications by e-mail (MEDIMINT_SMTP_*) until
// ctx ends; without SMTP it settles them as portal-only.
func runNotifier(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, log *slog.Logger) {
	n, err := notify.New(notify.Config{Pool: pool, PortalURL: cfg.PublicURL, Logger: log,
		SMTP: notify.SMTP{Addr: cfg.SMTP.Addr, From: cfg.SMTP.From, User: cfg.SMTP.User, Password: cfg.SMTP.Password}})
	if err != nil {
		log.Error("notifications disabled", "err", err)
		return
	}
	if err := n.Run(ctx); err != nil {
		log.Error("notifications", "err", err)
	}
}
