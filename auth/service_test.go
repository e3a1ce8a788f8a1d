package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/wallet"
)

func newService(t testing.TB, tweak func(*Config)) (*Service, *pgxpool.Pool) {
	t.Helper()
	pool := dbtest.New(t)
	cfg := Config{Pool: pool, Keys: NewKeys("medimint", newKey(t)), MaxFailures: 3}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, pool
}

func TestPasswordSignIn(t *testing.T) {
	ctx := context.Background()
	s, pool := newService(t, nil)
	if err := s.CreateOrg(ctx, "org1", "General Hospital"); err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(ctx, NewUser{Email: "Ana@Example.org", DisplayName: "Ana", Password: "correct horse battery",
		Account: keypair.MustRandom().Address(), HDIndex: 1000, Memberships: []Membership{{OrgID: "org1", Role: RolePatient}}})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "ana@example.org" || !u.Custodial {
		t.Errorf("user %+v", u)
	}
	if _, err := s.CreateUser(ctx, NewUser{Email: "ana@example.org"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate e-mail: %v", err)
	}

	sess, err := s.SignInPassword(ctx, " ANA@example.org", "correct horse battery", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.AuthenticateToken(sess.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if sub.UserID != u.ID || sub.OrgID != "org1" || !sub.Has(RolePatient) || !sub.Custodial || sub.Account != u.Account {
		t.Errorf("subject %+v", sub)
	}

	tests := []struct {
		name, email, pw string
		want            error
	}{
		{"unknown address", "bob@example.org", "correct horse battery", ErrBadCredentials},
		{"wrong password 1", "ana@example.org", "wrong password!", ErrBadCredentials},
		{"wrong password 2", "ana@example.org", "wrong password!", ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.SignInPassword(ctx, tt.email, tt.pw, "10.0.0.2"); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// The third failure locks; then even the right password is refused.
	var locked *LockedError
	if _, err := s.SignInPassword(ctx, "ana@example.org", "wrong password!", "10.0.0.2"); !errors.As(err, &locked) {
		t.Fatalf("third failure: %v, want LockedError", err)
	}
	if _, err := s.SignInPassword(ctx, "ana@example.org", "correct horse battery", "10.0.0.2"); !errors.As(err, &locked) {
		t.Fatalf("right password while locked: %v", err)
	}
	// Once the lock has passed, the right password works and resets the count.
	if _, err := pool.Exec(ctx, "UPDATE users SET locked_until = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignInPassword(ctx, "ana@example.org", "correct horse battery", "10.0.0.2"); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	var fails int
	if err := pool.QueryRow(ctx, "SELECT failed_logins FROM users WHERE id = $1", u.ID).Scan(&fails); err != nil || fails != 0 {
		t.Errorf("failed_logins = %d, %v", fails, err)
	}
	if err := s.SetDisabled(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignInPassword(ctx, "ana@example.org", "correct horse battery", "10.0.0.3"); !errors.Is(err, ErrDisabled) {
		t.Errorf("disabled user: %v", err)
	}
	if _, err := s.Refresh(ctx, sess.RefreshToken); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("refresh of a disabled user: %v", err)
	}
}

func TestThrottle(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, func(c *Config) { c.ThrottleLimit = 3; c.ThrottleWindow = time.Hour })
	for i := range 3 {
		if _, err := s.SignInPassword(ctx, "x@example.org", "whatever password", "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := s.SignInPassword(ctx, "y@example.org", "whatever password", "192.0.2.1"); !errors.Is(err, ErrThrottled) {
		t.Errorf("fourth attempt from one address: %v", err)
	}
	if _, err := s.SignInPassword(ctx, "y@example.org", "whatever password", "192.0.2.2"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("another address: %v", err)
	}
}

func TestRefreshRotation(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)
	if _, err := s.CreateUser(ctx, NewUser{Email: "c@example.org", Password: "correct horse battery",
		Memberships: []Membership{{OrgID: "org1", Role: RoleClinician}}}); err != nil {
		t.Fatal(err)
	}
	s1, err := s.SignInPassword(ctx, "c@example.org", "correct horse battery", "::1")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := s.Refresh(ctx, s1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if s2.RefreshToken == s1.RefreshToken || s2.Subject.Session != s1.Subject.Session {
		t.Errorf("rotation: %q -> %q, family %s -> %s", s1.RefreshToken, s2.RefreshToken, s1.Subject.Session, s2.Subject.Session)
	}
	// Reusing the spent token revokes the family, including s2's token.
	if _, err := s.Refresh(ctx, s1.RefreshToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := s.Refresh(ctx, s2.RefreshToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of a revoked family: %v", err)
	}
	// Sign out ends a session; another session survives.
	a, _ := s.SignInPassword(ctx, "c@example.org", "correct horse battery", "::1")
	b, _ := s.SignInPassword(ctx, "c@example.org", "correct horse battery", "::1")
	if err := s.SignOut(ctx, a.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx, a.RefreshToken); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("signed-out session refreshed: %v", err)
	}
	if _, err := s.Refresh(ctx, b.RefreshToken); err != nil {
		t.Errorf("other session: %v", err)
	}
	if _, err := s.Refresh(ctx, "not-a-token"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("unknown token: %v", err)
	}
}

func TestInvitation(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)
	acct := keypair.MustRandom().Address()
	tok, err := s.Invite(ctx, Invitation{OrgID: "org1", Role: RolePatient, Email: "Pat@example.org", Account: acct, HDIndex: 1003})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvitation(ctx, tok, "short", "Pat"); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("weak password: %v", err)
	}
	u, err := s.AcceptInvitation(ctx, tok, "correct horse battery", "Pat")
	if err != nil {
		t.Fatal(err)
	}
	if u.Account != acct || u.HDIndex != 1003 || len(u.Memberships) != 1 || u.Memberships[0] != (Membership{"org1", RolePatient}) {
		t.Errorf("user %+v", u)
	}
	if _, err := s.AcceptInvitation(ctx, tok, "correct horse battery", "Pat"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second use: %v", err)
	}
	// A second invitation to the same address adds a role.
	tok2, _ := s.Invite(ctx, Invitation{OrgID: "org2", Role: RoleAuditor, Email: "pat@example.org"})
	u2, err := s.AcceptInvitation(ctx, tok2, "another long password", "")
	if err != nil {
		t.Fatal(err)
	}
	if u2.ID != u.ID || len(u2.Memberships) != 2 {
		t.Errorf("user after second invitation %+v", u2)
	}
	if _, err := s.SignInPassword(ctx, "pat@example.org", "correct horse battery", "::1"); err != nil {
		t.Errorf("the first password stays: %v", err)
	}
	staff, err := s.Staff(ctx, "org2")
	if err != nil || len(staff) != 1 || staff[0].Memberships[0].Role != RoleAuditor {
		t.Errorf("staff %+v %v", staff, err)
	}
}

func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)
	key, k, err := s.CreateAPIKey(ctx, "org1", "CT scanner", []string{ScopeSTOW}, "")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.AuthenticateAPIKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if sub.APIKeyID != k.ID || sub.OrgID != "org1" || !sub.HasScope(ScopeSTOW) || sub.HasScope(ScopeWADO) {
		t.Errorf("subject %+v", sub)
	}
	// Change the last character to one it is not (appending "A" to a key
	// that already ends in "A" would be the same key).
	last := "A"
	if strings.HasSuffix(key, "A") {
		last = "B"
	}
	// The use is recorded, but not on every request: once this process
	// has written it, the next minute's uses cost no write.
	lastUsed := func() time.Time {
		t.Helper()
		var at time.Time
		if err := s.pool.QueryRow(ctx, `SELECT last_used_at FROM api_keys WHERE id::text = $1`, k.ID).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	if at := lastUsed(); time.Since(at) > time.Minute {
		t.Errorf("last_used_at %v after a use", at)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if _, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id::text = $1`, k.ID, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateAPIKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if at := lastUsed(); !at.Equal(old) {
		t.Errorf("last_used_at written again within the minute: %v", at)
	}
	s2, err := New(s.cfg) // another process: it writes its first use
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.AuthenticateAPIKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if at := lastUsed(); time.Since(at) > time.Minute {
		t.Errorf("last_used_at %v after another process's use", at)
	}

	bad := []string{key[:len(key)-1] + last, "mmk_" + k.Prefix, "mmk_", "", "Bearer " + key, key + "x"}
	for _, b := range bad {
		if _, err := s.AuthenticateAPIKey(ctx, b); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("key %q: %v", b, err)
		}
	}
	if _, _, err := s.CreateAPIKey(ctx, "org1", "x", []string{"admin"}, ""); err == nil {
		t.Error("unknown scope accepted")
	}
	if err := s.RevokeAPIKey(ctx, "org2", k.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke from another org: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, "org1", k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateAPIKey(ctx, key); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("revoked key: %v", err)
	}
	keys, err := s.APIKeys(ctx, "org1")
	if err != nil || len(keys) != 1 || !keys[0].Revoked {
		t.Errorf("keys %+v %v", keys, err)
	}
}

func signXDR(t testing.TB, passphrase, b64xdr string, kps ...*keypair.Full) string {
	t.Helper()
	g, err := txnbuild.TransactionFromXDR(b64xdr)
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := g.Transaction()
	if tx, err = tx.Sign(passphrase, kps...); err != nil {
		t.Fatal(err)
	}
	s, err := tx.Base64()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSEP10SignIn signs in with a wallet against the devnet: a new
// account becomes a patient user, a challenge works once, and only the
// account's own key can sign it.
func TestSEP10SignIn(t *testing.T) {
	ctx := context.Background()
	url, dn := devnettest.Start(t)
	net := wallet.Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"}
	a := &wallet.Authenticator{Network: net, Server: keypair.MustRandom(), HomeDomain: "medimint.test", WebAuthDomain: "127.0.0.1"}
	s, _ := newService(t, func(c *Config) { c.SEP10 = a })

	user, stranger := keypair.MustRandom(), keypair.MustRandom()
	tests := []struct {
		name   string
		signer *keypair.Full
		ok     bool
	}{
		{"stranger's signature", stranger, false},
		{"account's own key", user, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := s.Challenge(ctx, user.Address())
			if err != nil {
				t.Fatal(err)
			}
			signed := signXDR(t, net.Passphrase, ch, tt.signer)
			sess, err := s.SignInSEP10(ctx, signed, "::1")
			if !tt.ok {
				if !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sess.Subject.Account != user.Address() || !sess.Subject.Has(RolePatient) || sess.Subject.Custodial {
				t.Errorf("subject %+v", sess.Subject)
			}
			if _, err := s.SignInSEP10(ctx, signed, "::1"); !errors.Is(err, ErrReplay) {
				t.Errorf("replayed challenge: %v", err)
			}
		})
	}
	// Signing in again finds the same user.
	ch, _ := s.Challenge(ctx, user.Address())
	sess, err := s.SignInSEP10(ctx, signXDR(t, net.Passphrase, ch, user), "::1")
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.UserByAccount(ctx, user.Address())
	if err != nil || u.ID != sess.Subject.UserID {
		t.Errorf("user %+v %v", u, err)
	}
	// A challenge from another server key is refused.
	other := &wallet.Authenticator{Network: net, Server: keypair.MustRandom(), HomeDomain: "medimint.test", WebAuthDomain: "127.0.0.1"}
	foreign, _ := other.Challenge(user.Address(), nil)
	if _, err := s.SignInSEP10(ctx, signXDR(t, net.Passphrase, foreign, user), "::1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("foreign challenge: %v", err)
	}
}

func TestKeyUsesDue(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var u keyUses
	steps := []struct {
		id   string
		at   time.Duration
		want bool
	}{
		{"a", 0, true},
		{"a", 30 * time.Second, false},
		{"b", 30 * time.Second, true},
		{"a", keyUseGranularity, true},
		{"a", keyUseGranularity + time.Second, false},
		{"b", keyUseGranularity + 29*time.Second, false},
		{"b", keyUseGranularity + 30*time.Second, true},
	}
	for i, st := range steps {
		if got := u.due(st.id, t0.Add(st.at)); got != st.want {
			t.Errorf("step %d (%s at %v): due %v, want %v", i, st.id, st.at, got, st.want)
		}
	}
	u.forget("b")
	if !u.due("b", t0.Add(keyUseGranularity+31*time.Second)) {
		t.Error("a forgotten use is not due")
	}
	// The map stays bounded: old entries go first, then all.
	for i := range maxKeyUses + 10 {
		u.due(fmt.Sprint("k", i), t0.Add(10*time.Minute))
	}
	if n := len(u.last); n > maxKeyUses {
		t.Errorf("%d entries, bound %d", n, maxKeyUses)
	}
}
