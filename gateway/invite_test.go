package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/db/dbtest"
)

// TestInvitePatient: an issuer admin invites the patient of a study the
// organisation issued by its patient reference; accepting with a
// password binds the new user to the patient's custodial account
// (patient_accounts), and the patient signs in as that account. Another
// organisation's admin cannot invite for the reference.
func TestInvitePatient(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	g := newGatedEnv(t, pool, Config{})
	ref := strings.Repeat("ab", 32)
	addr := keypair.MustRandom().Address()
	if _, err := pool.Exec(ctx, `INSERT INTO patient_accounts (org_id, patient_ref, hd_index, address) VALUES ('org-a', $1, 1000, $2)`, ref, addr); err != nil {
		t.Fatal(err)
	}
	admin := func(org string) map[string]string {
		var id string
		if err := pool.QueryRow(ctx, `INSERT INTO users (email, display_name) VALUES ($1, 'admin') RETURNING id::text`, "admin@"+org).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return hdr("Authorization", "Bearer "+g.token(t, auth.Claims{Subject: id, OrgID: org, Roles: []auth.Role{auth.RoleIssuerAdmin}}),
			"Content-Type", "application/json")
	}
	adminA, adminB := admin("org-a"), admin("org-b")
	post := func(h map[string]string, path string, body any) response {
		b, _ := json.Marshal(body)
		return do(t, "POST", g.root+path, h, b)
	}
	inv := map[string]string{"email": "pat@example.org", "role": "patient", "patient_ref": ref}
	post(adminB, "/api/admin/invitations", inv).mustStatus(t, 404)
	post(adminA, "/api/admin/invitations", map[string]string{"email": "pat@example.org", "role": "clinician", "patient_ref": ref}).mustStatus(t, 400)
	r := post(adminA, "/api/admin/invitations", inv).mustStatus(t, 201)
	var out struct{ Token string }
	if err := json.Unmarshal(r.body, &out); err != nil || out.Token == "" {
		t.Fatalf("invitation %s: %v", r.body, err)
	}
	js := hdr("Content-Type", "application/json")
	r = post(js, "/api/auth/invitations/accept", map[string]string{"token": out.Token, "password": "correct horse battery staple", "display_name": "P"}).mustStatus(t, 201)
	var u struct{ Account string }
	if err := json.Unmarshal(r.body, &u); err != nil || u.Account != addr {
		t.Fatalf("accepted user %s (%v), want account %s", r.body, err, addr)
	}
	r = post(js, "/api/auth/password", map[string]string{"email": "pat@example.org", "password": "correct horse battery staple"}).mustStatus(t, 200)
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(r.body, &sess); err != nil || sess.AccessToken == "" {
		t.Fatalf("sign-in %s: %v", r.body, err)
	}
	r = do(t, "GET", g.root+"/api/me", hdr("Authorization", "Bearer "+sess.AccessToken), nil).mustStatus(t, 200)
	var me struct {
		Account string   `json:"account"`
		Roles   []string `json:"roles"`
	}
	if err := json.Unmarshal(r.body, &me); err != nil || me.Account != addr {
		t.Fatalf("/api/me %s (%v), want account %s", r.body, err, addr)
	}
	// The invitation is spent.
	post(js, "/api/auth/invitations/accept", map[string]string{"token": out.Token, "password": "another good passphrase"}).mustStatus(t, 404)
}
