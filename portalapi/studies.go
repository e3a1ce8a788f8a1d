package portalapi

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"github.com/medimint/medimint/dicom"
)

// Study is a study as the portal lists it. Nothing here goes on chain.
type Study struct {
	StudyInstanceUID string   `json:"study_instance_uid"`
	StudyDate        string   `json:"study_date"` // YYYYMMDD as received
	Description      string   `json:"description"`
	Modalities       []string `json:"modalities"`
	Series           int      `json:"series"`
	Instances        int      `json:"instances"`
	// Status is "pending" until the record token is seen on chain, then
	// "minted".
	Status     string   `json:"status"`
	Token      string   `json:"token,omitempty"` // code:issuer
	MintTx     string   `json:"mint_tx,omitempty"`
	MintTxURL  string   `json:"mint_tx_url,omitempty"`
	FrameURL   string   `json:"frame_url,omitempty"`  // WADO-RS rendered first frame
	StudyRef   string   `json:"study_ref,omitempty"`  // the salted hash that names it publicly
	Holder     string   `json:"holder,omitempty"`     // for shared studies
	Expires    string   `json:"expires_at,omitempty"` // for shared studies
	GrantScope []string `json:"scope,omitempty"`      // for shared studies
}

// studiesSQL lists the studies whose record token account $1 holds, and
// the studies waiting to be minted for it (custodial patients: matched by
// their patient reference; others: by the account linked to the patient).
const studiesSQL = `
WITH mine AS (
    SELECT DISTINCT ON (b.study_instance_uid) b.study_instance_uid AS uid, 'minted' AS status,
           rt.code || ':' || rt.issuer AS token, rt.minted_tx, rt.study_hash
    FROM record_tokens rt JOIN study_bundles b ON b.study_ref = rt.study_hash
    WHERE rt.holder = $1
    UNION ALL
    SELECT DISTINCT ON (o.subject) o.subject, 'pending', '', '', o.payload->>'study_ref'
    FROM outbox o
    WHERE o.kind = 'mint'
      AND (o.payload->>'patient_account' = $1
           OR o.payload->>'patient_ref' IN (SELECT patient_ref FROM patient_accounts WHERE address = $1))
      AND NOT EXISTS (SELECT 1 FROM record_tokens rt WHERE rt.study_hash = o.payload->>'study_ref')
)
SELECT DISTINCT ON (s.study_instance_uid) s.study_instance_uid, s.study_date_raw, s.study_description,
       s.modalities_in_study, s.number_of_series, s.number_of_instances, m.status, m.token, m.minted_tx, coalesce(m.study_hash, '')
FROM mine m JOIN studies s ON s.study_instance_uid = m.uid
`

func scanStudies(rows pgx.Rows) ([]Study, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Study, error) {
		var s Study
		err := r.Scan(&s.StudyInstanceUID, &s.StudyDate, &s.Description, &s.Modalities, &s.Series, &s.Instances,
			&s.Status, &s.Token, &s.MintTx, &s.StudyRef)
		return s, err
	})
}

func (a *API) decorate(s *Study) {
	if s.MintTx != "" && a.cfg.Network.HorizonURL != "" {
		s.MintTxURL = a.cfg.Network.TxURL(s.MintTx)
	}
	if s.Modalities == nil {
		s.Modalities = []string{}
	}
}

func (a *API) myStudies(c *fiber.Ctx) error {
	sub := subject(c)
	if sub.Account == "" {
		return c.JSON([]Study{})
	}
	rows, err := a.pool.Query(c.UserContext(), studiesSQL+` ORDER BY s.study_instance_uid, (m.status = 'minted') DESC`, sub.Account)
	if err != nil {
		return a.problem(c, err)
	}
	studies, err := scanStudies(rows)
	if err != nil {
		return a.problem(c, err)
	}
	for i := range studies {
		a.decorate(&studies[i])
		studies[i].FrameURL = a.frameURL(c, studies[i].StudyInstanceUID)
	}
	sortStudies(studies)
	return c.JSON(studies)
}

// frameURL is the WADO-RS URL of the study's first instance rendered.
func (a *API) frameURL(c *fiber.Ctx, study string) string {
	var series, sop string
	err := a.pool.QueryRow(c.UserContext(), `SELECT se.series_instance_uid, i.sop_instance_uid
		FROM studies s JOIN instances i ON i.study_pk = s.pk JOIN series se ON se.pk = i.series_pk
		WHERE s.study_instance_uid = $1 AND i.rows IS NOT NULL
		ORDER BY se.series_number NULLS LAST, se.pk, i.instance_number NULLS LAST, i.pk LIMIT 1`, study).Scan(&series, &sop)
	if err != nil {
		return ""
	}
	return a.cfg.DICOMwebBase + "/studies/" + study + "/series/" + series + "/instances/" + sop + "/rendered"
}

// SeriesInfo is one series of a study's detail.
type SeriesInfo struct {
	SeriesInstanceUID string `json:"series_instance_uid"`
	Modality          string `json:"modality"`
	Number            *int32 `json:"number,omitempty"`
	Description       string `json:"description"`
	Instances         int    `json:"instances"`
}

// StudyDetail is GET /api/studies/{study}.
type StudyDetail struct {
	Study
	Series []SeriesInfo `json:"series_list"`
	Grants []Grant      `json:"grants"`
}

func (a *API) ownStudy(c *fiber.Ctx, uid string) (Study, error) {
	sub := subject(c)
	if !dicom.ValidUID(uid) {
		return Study{}, fiber.NewError(http.StatusBadRequest, "not a Study Instance UID")
	}
	if sub.Account == "" {
		return Study{}, fiber.NewError(http.StatusNotFound, "no such study of yours")
	}
	rows, err := a.pool.Query(c.UserContext(), studiesSQL+` WHERE s.study_instance_uid = $2 ORDER BY s.study_instance_uid, (m.status = 'minted') DESC`, sub.Account, uid)
	if err != nil {
		return Study{}, err
	}
	ss, err := scanStudies(rows)
	if err != nil {
		return Study{}, err
	}
	if len(ss) == 0 {
		return Study{}, fiber.NewError(http.StatusNotFound, "no such study of yours")
	}
	a.decorate(&ss[0])
	ss[0].FrameURL = a.frameURL(c, uid)
	return ss[0], nil
}

func (a *API) studyDetail(c *fiber.Ctx) error {
	st, err := a.ownStudy(c, c.Params("study"))
	if err != nil {
		return a.problem(c, err)
	}
	d := StudyDetail{Study: st, Series: []SeriesInfo{}, Grants: []Grant{}}
	rows, err := a.pool.Query(c.UserContext(), `SELECT se.series_instance_uid, se.modality, se.series_number, se.series_description, se.number_of_instances
		FROM series se JOIN studies s ON s.pk = se.study_pk WHERE s.study_instance_uid = $1
		ORDER BY se.series_number NULLS LAST, se.pk`, st.StudyInstanceUID)
	if err != nil {
		return a.problem(c, err)
	}
	d.Series, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SeriesInfo, error) {
		var s SeriesInfo
		err := r.Scan(&s.SeriesInstanceUID, &s.Modality, &s.Number, &s.Description, &s.Instances)
		return s, err
	})
	if err != nil {
		return a.problem(c, err)
	}
	if st.Token != "" {
		gs, err := a.grantsWhere(c, "g.holder = $1 AND g.code || ':' || g.issuer = $2", subject(c).Account, st.Token)
		if err != nil {
			return a.problem(c, err)
		}
		d.Grants = gs
	}
	return c.JSON(d)
}

// sharedSQL lists studies with an active, unexpired grant to $1 from the
// token's current holder.
const sharedSQL = `
SELECT DISTINCT ON (s.study_instance_uid) s.study_instance_uid, s.study_date_raw, s.study_description,
       s.modalities_in_study, s.number_of_series, s.number_of_instances, 'minted', rt.code || ':' || rt.issuer, rt.minted_tx, rt.study_hash,
       rt.holder, g.expires_at, g.scope
FROM grants g
JOIN record_tokens rt ON rt.code = g.code AND rt.issuer = g.issuer AND rt.holder = g.holder
JOIN study_bundles b ON b.study_ref = rt.study_hash
JOIN studies s ON s.study_instance_uid = b.study_instance_uid
WHERE g.grantee = $1 AND g.state = 'active' AND g.expires_at > now()`

func (a *API) sharedStudies(c *fiber.Ctx, extra string, args ...any) ([]Study, error) {
	rows, err := a.pool.Query(c.UserContext(), sharedSQL+extra+` ORDER BY s.study_instance_uid, g.expires_at DESC`, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Study, error) {
		var s Study
		var exp time.Time
		var scope int16
		err := r.Scan(&s.StudyInstanceUID, &s.StudyDate, &s.Description, &s.Modalities, &s.Series, &s.Instances,
			&s.Status, &s.Token, &s.MintTx, &s.StudyRef, &s.Holder, &exp, &scope)
		s.Expires = exp.UTC().Format(time.RFC3339)
		s.GrantScope = scopeNames(scope)
		return s, err
	})
}

func (a *API) shared(c *fiber.Ctx) error {
	sub := subject(c)
	if sub.Account == "" {
		return c.JSON([]Study{})
	}
	ss, err := a.sharedStudies(c, "", sub.Account)
	if err != nil {
		return a.problem(c, err)
	}
	for i := range ss {
		a.decorate(&ss[i])
	}
	sortStudies(ss)
	return c.JSON(ss)
}

// sharedStudy is one study shared with the caller; 403 once the grant is
// revoked or expired (the decision is the watcher's grants table).
func (a *API) sharedStudy(c *fiber.Ctx) error {
	st, err := a.sharedOne(c)
	if err != nil {
		return a.problem(c, err)
	}
	if contains(st.GrantScope, "retrieve") {
		st.FrameURL = a.frameURL(c, st.StudyInstanceUID)
	}
	return c.JSON(st)
}

func (a *API) sharedOne(c *fiber.Ctx) (Study, error) {
	uid := c.Params("study")
	if !dicom.ValidUID(uid) {
		return Study{}, fiber.NewError(http.StatusBadRequest, "not a Study Instance UID")
	}
	sub := subject(c)
	ss, err := a.sharedStudies(c, " AND s.study_instance_uid = $2", sub.Account, uid)
	if err != nil {
		return Study{}, err
	}
	if len(ss) == 0 {
		return Study{}, fiber.NewError(http.StatusForbidden, "you have no current access to this study")
	}
	a.decorate(&ss[0])
	return ss[0], nil
}

// ViewerLink opens a study in the viewer.
type ViewerLink struct {
	URL       string `json:"url"`
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"`
}

const viewerTTL = 15 * time.Minute

func (a *API) viewerLink(c *fiber.Ctx) error {
	st, err := a.sharedOne(c)
	if errors.Is(err, nil) && !contains(st.GrantScope, "retrieve") {
		err = fiber.NewError(http.StatusForbidden, "your access to this study does not include viewing images")
	}
	if err != nil {
		return a.problem(c, err)
	}
	tok, err := a.auth.ViewerToken(subject(c), st.StudyInstanceUID, viewerTTL)
	if err != nil {
		return a.problem(c, err)
	}
	link := ViewerLink{Token: tok, ExpiresIn: int(viewerTTL / time.Second)}
	if a.cfg.ViewerURL != "" {
		q := url.Values{"StudyInstanceUIDs": {st.StudyInstanceUID}}
		// The token rides in the fragment: never sent to servers or logged.
		link.URL = a.cfg.ViewerURL + "?" + q.Encode() + "#token=" + url.QueryEscape(tok)
	}
	return c.JSON(link)
}
