package access_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/db"
	"github.com/medimint/medimint/db/dbtest"
)

// fillAudit appends n entries per writer from several writers at once:
// Auditors on two separate pools (as two processes would) and direct
// AppendTx calls.
func fillAudit(t testing.TB, pool *pgxpool.Pool, n int) {
	t.Helper()
	ctx := context.Background()
	other, err := db.Open(ctx, pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	a1, a2 := access.NewAuditor(pool, nil, 64), access.NewAuditor(other, nil, 64)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				e := access.Entry{Category: access.CategoryDecision, Action: "retrieve", Outcome: access.OutcomeAllow,
					Actor: fmt.Sprintf("writer-%d", w), Resource: fmt.Sprintf("1.2.3.%d", i), Reason: "owner", Detail: `{"i":1}`}
				var err error
				switch w % 3 {
				case 0:
					err = a1.Log(ctx, e)
				case 1:
					_, err = a2.Append(ctx, e)
				default:
					err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { _, err := access.AppendTx(ctx, tx, e); return err })
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	a1.Close()
	a2.Close()
}

// TestAuditChain appends from concurrent writers in two "processes" and
// checks the chain, then tampers with it three ways and checks that
// VerifyAudit finds each.
func TestAuditChain(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	const per = 50
	fillAudit(t, pool, per)
	head, err := access.VerifyAudit(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if head.Rows != 6*per {
		t.Fatalf("%d rows, want %d", head.Rows, 6*per)
	}

	tamper := []struct {
		name string
		sql  []string
		seq  int64
	}{
		{"modified", []string{"UPDATE audit_log SET outcome = 'deny' WHERE seq = 17"}, 17},
		{"modified detail", []string{`UPDATE audit_log SET detail = '{"i": 1}' WHERE seq = 40`}, 40},
		{"deleted", []string{"DELETE FROM audit_log WHERE seq = 99"}, 99},
		{"deleted first", []string{"DELETE FROM audit_log WHERE seq = 1"}, 1},
		{"reordered", []string{
			"UPDATE audit_log SET seq = seq + 1000000 WHERE seq IN (120, 121)",
			"UPDATE audit_log SET seq = CASE seq WHEN 1000120 THEN 121 ELSE 120 END WHERE seq > 1000000"}, 120},
		{"deleted and renumbered", []string{
			"DELETE FROM audit_log WHERE seq = 200",
			"UPDATE audit_log SET seq = seq + 1000000 WHERE seq > 200",
			"UPDATE audit_log SET seq = seq - 1000001 WHERE seq > 1000000"}, 200},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			scratch := copyAudit(t, pool)
			for _, s := range tc.sql {
				if _, err := scratch.Exec(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			_, err := access.VerifyAudit(ctx, scratch)
			var ae *access.AuditError
			if !errors.As(err, &ae) || !errors.Is(err, access.ErrAuditBroken) {
				t.Fatalf("VerifyAudit after %s: %v", tc.name, err)
			}
			if ae.Seq != tc.seq {
				t.Errorf("broken at %d (%s), want %d", ae.Seq, ae.Problem, tc.seq)
			}
		})
	}
}

// copyAudit copies the audit log into a scratch database.
func copyAudit(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	scratch := dbtest.New(t)
	cols := []string{"seq", "recorded", "category", "action", "outcome", "actor", "roles", "org_id", "resource", "reason",
		"tx_hash", "tx_url", "detail", "prev_hash", "hash"}
	rows, err := pool.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM audit_log")
	if err != nil {
		t.Fatal(err)
	}
	var all [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, v)
	}
	rows.Close()
	if _, err := scratch.CopyFrom(ctx, pgx.Identifier{"audit_log"}, cols, pgx.CopyFromRows(all)); err != nil {
		t.Fatal(err)
	}
	if _, err := access.VerifyAudit(ctx, scratch); err != nil {
		t.Fatalf("copy: %v", err)
	}
	return scratch
}

// TestAuditExport exports entries as FHIR AuditEvent and DICOM audit
// message NDJSON and checks the coded fields.
func TestAuditExport(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	a := access.NewAuditor(pool, nil, 0)
	out, err := a.Append(ctx,
		access.Entry{Category: access.CategoryBreakGlass, Action: "break-glass", Outcome: access.OutcomeAllow, Actor: "GDOC",
			Roles: "clinician", OrgID: "org-b", Resource: "ABCDEFGHIJKL:GISSUER", Reason: "break-glass: emergency: unconscious patient"},
		access.Entry{Category: access.CategoryDecision, Action: "retrieve", Outcome: access.OutcomeDeny, Actor: "GSTRANGER",
			Resource: "1.2.840.1.2", Reason: "denied"},
		access.Entry{Category: access.CategoryChain, Action: "grant.revoked", Outcome: access.OutcomeSuccess, Actor: "GALICE",
			Resource: "ABCDEFGHIJKL:GISSUER", TxHash: "ab12", TxURL: "https://stellar.expert/explorer/testnet/tx/ab12"},
	)
	a.Close()
	if err != nil || len(out) != 3 || out[2].Seq != 3 {
		t.Fatalf("append: %v %+v", err, out)
	}

	var fhir bytes.Buffer
	if err := access.ExportAudit(ctx, pool, &fhir, access.FormatFHIR, 0); err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	for sc := bufio.NewScanner(&fhir); sc.Scan(); {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, m)
	}
	if len(evs) != 3 {
		t.Fatalf("%d FHIR events", len(evs))
	}
	get := func(m map[string]any, path ...any) any {
		var v any = m
		for _, p := range path {
			switch k := p.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		return v
	}
	checks := []struct {
		got, want any
	}{
		{get(evs[0], "resourceType"), "AuditEvent"},
		{get(evs[0], "type", "code"), "110113"},
		{get(evs[0], "subtype", 0, "code"), "110127"},
		{get(evs[0], "purposeOfEvent", 0, "coding", 0, "code"), "ETREAT"},
		{get(evs[0], "agent", 0, "role", 0, "text"), "clinician"},
		{get(evs[1], "type", "code"), "110103"},
		{get(evs[1], "outcome"), "4"},
		{get(evs[2], "action"), "U"},
		{get(evs[2], "entity", 0, "detail", 1, "valueString"), "https://stellar.expert/explorer/testnet/tx/ab12"},
	}
	for i, c := range checks {
		if c.got != c.want {
			t.Errorf("FHIR check %d: %v, want %v", i, c.got, c.want)
		}
	}

	var dcm bytes.Buffer
	if err := access.ExportAudit(ctx, pool, &dcm, access.FormatDICOM, 1); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(dcm.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d DICOM messages after seq 1", len(lines))
	}
	var m map[string]any
	if err := json.Unmarshal(lines[0], &m); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct{ got, want any }{
		{get(m, "AuditMessage", "EventIdentification", "EventID", "csd-code"), "110103"},
		{get(m, "AuditMessage", "EventIdentification", "EventOutcomeIndicator"), "4"},
		{get(m, "AuditMessage", "ParticipantObjectIdentification", 0, "ParticipantObjectIDTypeCode", "csd-code"), "110180"},
		{get(m, "AuditMessage", "ActiveParticipant", 0, "UserID"), "GSTRANGER"},
	} {
		if c.got != c.want {
			t.Errorf("DICOM check %d: %v, want %v", i, c.got, c.want)
		}
	}
	if err := access.ExportAudit(ctx, pool, &dcm, "xml", 0); err == nil {
		t.Error("unknown format accepted")
	}
}
