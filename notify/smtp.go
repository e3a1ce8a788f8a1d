package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"time"
)

// SMTP is where e-mail goes. An empty Addr disables e-mail.
type SMTP struct {
	Addr     string // host:port (MEDIMINT_SMTP_ADDR)
	From     string // sender address (MEDIMINT_SMTP_FROM)
	User     string // MEDIMINT_SMTP_USER; empty: no authentication
	Password string // MEDIMINT_SMTP_PASSWORD
	// TLS configures STARTTLS; nil means the system roots and the host
	// of Addr as server name.
	TLS *tls.Config
	// Hello is the name we give in EHLO; empty: "localhost".
	Hello string
	// Timeout bounds one delivery (connect to QUIT); zero: 30 seconds.
	Timeout time.Duration
}

// ErrInsecureAuth refuses to send a password in clear text.
var ErrInsecureAuth = errors.New("notify: SMTP server offers no STARTTLS; refusing to send the password in clear text")

// send delivers msg to one recipient: STARTTLS when the server offers
// it, PLAIN authentication when a user is configured (net/smtp allows it
// only over TLS or to localhost).
func (s SMTP) send(ctx context.Context, to string, msg []byte) (err error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("notify: SMTP address %q: %w", s.Addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("notify: SMTP connect: %w", err)
	}
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return fmt.Errorf("notify: SMTP: %w", err)
	}
	// net/smtp does no I/O under a context: closing the connection when
	// ctx ends unblocks it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("notify: SMTP greeting: %w", err)
	}
	defer c.Close()
	hello := s.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return fmt.Errorf("notify: SMTP EHLO: %w", err)
	}
	tlsOn := false
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := s.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("notify: SMTP STARTTLS: %w", err)
		}
		tlsOn = true
	}
	if s.User != "" {
		if !tlsOn && !isLoopback(host) {
			return ErrInsecureAuth
		}
		if err := c.Auth(smtp.PlainAuth("", s.User, s.Password, host)); err != nil {
			return fmt.Errorf("notify: SMTP AUTH: %w", err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("notify: SMTP MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("notify: SMTP RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("notify: SMTP DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return fmt.Errorf("notify: SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("notify: SMTP DATA: %w", err)
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
