package portalapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/auth"
)

// IngestStatus is a study of the admin's organisation and how far it got.
type IngestStatus struct {
	StudyInstanceUID string    `json:"study_instance_uid"`
	Received         time.Time `json:"received"`
	Modalities       []string  `json:"modalities"`
	Instances        int       `json:"instances"`
	// Stage: "receiving" (instances arriving), "completed" (bundle
	// published, mint queued), "minted" (token on chain).
	Stage     string `json:"stage"`
	MintError string `json:"mint_error,omitempty"`
	MintTx    string `json:"mint_tx,omitempty"`
	MintTxURL string `json:"mint_tx_url,omitempty"`
	// PatientRef is the salted reference of the study's patient (no PHI),
	// once the study is complete: what an invitation of the patient
	// names (POST /admin/invitations).
	PatientRef string `json:"patient_ref,omitempty"`
}

func (a *API) ingest(c *fiber.Ctx) error {
	sub := subject(c)
	rows, err := a.pool.Query(c.UserContext(), `SELECT s.study_instance_uid, s.created_at, s.modalities_in_study, s.number_of_instances,
		CASE WHEN mr.tx_hash IS NOT NULL THEN 'minted' WHEN o.id IS NOT NULL THEN 'completed' ELSE 'receiving' END,
		coalesce(o.last_error, ''), coalesce(mr.tx_hash, ''), coalesce(o.payload->>'patient_ref', '')
		FROM studies s
		LEFT JOIN LATERAL (SELECT id, last_error, payload FROM outbox WHERE kind = 'mint' AND subject = s.study_instance_uid ORDER BY id DESC LIMIT 1) o ON true
		LEFT JOIN minted_records mr ON mr.study_ref = o.payload->>'study_ref' AND mr.network_passphrase = $2
		WHERE s.org_id = $1 ORDER BY s.created_at DESC LIMIT 200`, sub.OrgID, a.cfg.Network.Passphrase)
	if err != nil {
		return a.problem(c, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IngestStatus, error) {
		var s IngestStatus
		err := r.Scan(&s.StudyInstanceUID, &s.Received, &s.Modalities, &s.Instances, &s.Stage, &s.MintError, &s.MintTx, &s.PatientRef)
		if s.MintTx != "" && a.cfg.Network.HorizonURL != "" {
			s.MintTxURL = a.cfg.Network.TxURL(s.MintTx)
		}
		return s, err
	})
	if err != nil {
		return a.problem(c, err)
	}
	if out == nil {
		out = []IngestStatus{}
	}
	return c.JSON(out)
}

// Modality is a DICOM application entity of the organisation.
type Modality struct {
	AETitle     string `json:"ae_title"`
	Host        string `json:"host"`
	Port        *int32 `json:"port,omitempty"`
	Description string `json:"description"`
}

func (a *API) modalities(c *fiber.Ctx) error {
	rows, err := a.pool.Query(c.UserContext(), `SELECT ae_title, host, port, description FROM portal_modalities WHERE org_id = $1 ORDER BY ae_title`, subject(c).OrgID)
	if err != nil {
		return a.problem(c, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Modality, error) {
		var m Modality
		err := r.Scan(&m.AETitle, &m.Host, &m.Port, &m.Description)
		return m, err
	})
	if err != nil {
		return a.problem(c, err)
	}
	if out == nil {
		out = []Modality{}
	}
	return c.JSON(out)
}

// validAE: PS3.5 AE VR, 1-16 characters, no backslash or control
// characters, not only spaces.
func validAE(s string) bool {
	if len(s) == 0 || len(s) > 16 || strings.TrimSpace(s) == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\' {
			return false
		}
	}
	return true
}

func (a *API) putModality(c *fiber.Ctx) error {
	ae := c.Params("ae")
	var m Modality
	if err := bodyInto(c, &m); err != nil {
		return err
	}
	if !validAE(ae) {
		return fiber.NewError(http.StatusBadRequest, "an AE title is 1 to 16 printable characters without a backslash")
	}
	if m.Port != nil && (*m.Port < 1 || *m.Port > 65535) {
		return fiber.NewError(http.StatusBadRequest, "port must be 1 to 65535")
	}
	_, err := a.pool.Exec(c.UserContext(), `INSERT INTO portal_modalities (org_id, ae_title, host, port, description) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (org_id, ae_title) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, description = EXCLUDED.description, updated_at = now()`,
		subject(c).OrgID, ae, m.Host, m.Port, m.Description)
	if err != nil {
		return a.problem(c, err)
	}
	m.AETitle = ae
	return c.JSON(m)
}

func (a *API) deleteModality(c *fiber.Ctx) error {
	tag, err := a.pool.Exec(c.UserContext(), `DELETE FROM portal_modalities WHERE org_id = $1 AND ae_title = $2`, subject(c).OrgID, c.Params("ae"))
	if err != nil {
		return a.problem(c, err)
	}
	if tag.RowsAffected() == 0 {
		return fiber.NewError(http.StatusNotFound, "no such AE")
	}
	return c.SendStatus(http.StatusNoContent)
}

func (a *API) staff(c *fiber.Ctx) error {
	us, err := a.auth.Staff(c.UserContext(), subject(c).OrgID)
	if err != nil {
		return a.problem(c, err)
	}
	if us == nil {
		us = []auth.User{}
	}
	return c.JSON(us)
}

type inviteIn struct {
	Email string    `json:"email"`
	Role  auth.Role `json:"role"`
	// PatientRef invites a patient: the study's patient reference (as
	// study_bundles and patient_accounts hold it) of one of the
	// organisation's patients; the invitee signs in as that patient's
	// custodial account.
	PatientRef string `json:"patient_ref,omitempty"`
}

// InvitationOut carries the invitation token to hand to the invitee (no
// mail is sent from here).
type InvitationOut struct {
	Token string `json:"token"`
}

func (a *API) invite(c *fiber.Ctx) error {
	var in inviteIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	if !in.Role.Valid() {
		return fiber.NewError(http.StatusBadRequest, "unknown role")
	}
	sub := subject(c)
	inv := auth.Invitation{OrgID: sub.OrgID, Role: in.Role, Email: in.Email, InvitedBy: sub.UserID}
	if in.PatientRef != "" {
		if in.Role != auth.RolePatient {
			return fiber.NewError(http.StatusBadRequest, "a patient_ref invites role patient")
		}
		// Only a patient this organisation issued for: another
		// organisation's patient is as unknown as a made-up reference.
		err := a.pool.QueryRow(c.UserContext(), `SELECT address, hd_index FROM patient_accounts WHERE org_id = $1 AND patient_ref = $2`,
			sub.OrgID, in.PatientRef).Scan(&inv.Account, &inv.HDIndex)
		if errors.Is(err, pgx.ErrNoRows) {
			return fiber.NewError(http.StatusNotFound, "no patient of this organisation has that reference")
		}
		if err != nil {
			return a.problem(c, err)
		}
	}
	tok, err := a.auth.Invite(c.UserContext(), inv)
	if err != nil {
		return fiber.NewError(http.StatusBadRequest, err.Error())
	}
	return c.Status(http.StatusCreated).JSON(InvitationOut{Token: tok})
}

func (a *API) apiKeys(c *fiber.Ctx) error {
	ks, err := a.auth.APIKeys(c.UserContext(), subject(c).OrgID)
	if err != nil {
		return a.problem(c, err)
	}
	if ks == nil {
		ks = []auth.APIKey{}
	}
	return c.JSON(ks)
}

type apiKeyIn struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// NewAPIKey is shown once: the key itself is never stored.
type NewAPIKey struct {
	auth.APIKey
	Key string `json:"key"`
}

func (a *API) createAPIKey(c *fiber.Ctx) error {
	var in apiKeyIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	sub := subject(c)
	key, k, err := a.auth.CreateAPIKey(c.UserContext(), sub.OrgID, in.Name, in.Scopes, sub.UserID)
	if err != nil {
		return fiber.NewError(http.StatusBadRequest, err.Error())
	}
	return c.Status(http.StatusCreated).JSON(NewAPIKey{APIKey: k, Key: key})
}

func (a *API) revokeAPIKey(c *fiber.Ctx) error {
	if err := a.auth.RevokeAPIKey(c.UserContext(), subject(c).OrgID, c.Params("id")); err != nil {
		return a.problem(c, err)
	}
	return c.SendStatus(http.StatusNoContent)
}
