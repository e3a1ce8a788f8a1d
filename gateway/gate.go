package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/auth"
	"github.com/medimint/medimint/index"
)

// BreakGlassHeader carries a clinician's reason for emergency access to a
// study they have no grant for (access.BreakGlass): the access is audited
// before anything is served and the study's holder is notified.
const BreakGlassHeader = "X-Break-Glass-Reason"

// storeRoles are the staff roles that may store over STOW-RS with a user
// session (modalities and PACS use API keys with scope stow).
var storeRoles = []auth.Role{auth.RoleTechnologist, auth.RoleIssuerAdmin, auth.RoleClinician}

// gated reports whether DICOMweb requests are authenticated and
// authorised; without Deps.Auth and Deps.Access the gateway is open (tests
// of the DICOMweb layer alone: serve always gates).
func (s *Server) gated() bool { return s.deps.Auth != nil && s.deps.Access != nil }

// authn authenticates a DICOMweb request: a viewer token in ?token= (for
// links and <img> sources), else whatever auth.Middleware accepts (bearer
// access or viewer token, API key, session cookie).
func (s *Server) authn(c *fiber.Ctx) error {
	if !s.gated() {
		return c.Next()
	}
	if tok := c.Query("token"); tok != "" && c.Get(fiber.HeaderAuthorization) == "" {
		sub, err := s.deps.Auth.AuthenticateToken(tok)
		if err != nil || sub.Via != "viewer" {
			// Only viewer tokens travel in URLs: they are short-lived and
			// bound to one study; access tokens are not.
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="medimint", error="invalid_token"`)
			return problemf(http.StatusUnauthorized, "the token parameter takes a viewer token only")
		}
		c.SetUserContext(auth.WithSubject(c.UserContext(), sub))
		return c.Next()
	}
	return s.authMW(c)
}

// accessSubject is sub as the access rules see it. An API key acts as a
// technologist of its organisation, within its scopes (checked first).
func accessSubject(sub auth.Subject, reason string) access.Subject {
	as := access.Subject{Account: sub.Account, UserID: sub.UserID, OrgID: sub.OrgID, Reason: reason}
	if sub.APIKeyID != "" {
		as.UserID = "apikey:" + sub.APIKeyID
		as.Roles = []access.Role{access.RoleTechnologist}
		return as
	}
	for _, r := range sub.Roles {
		as.Roles = append(as.Roles, access.Role(r))
	}
	return as
}

// may authorises act on the study (series, instance) of the path: the
// rules of access.Decide, after the credential's own limits (an API key's
// scope, a viewer token's study). A denial is answered exactly as a
// study that does not exist, so that nobody can probe for studies.
func (s *Server) may(act access.Action, level index.Level) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !s.gated() || c.Locals(byAdminKey{}) != nil {
			return c.Next()
		}
		t, err := pathTarget(c, level)
		if err != nil {
			return err
		}
		sub, _ := auth.FromCtx(c)
		ctx := c.UserContext()
		reason := strings.TrimSpace(c.Get(BreakGlassHeader))
		as := accessSubject(sub, reason)
		res := access.Resource{StudyInstanceUID: t.study}
		switch {
		case sub.APIKeyID != "" && !sub.HasScope(auth.ScopeWADO):
			s.deps.Access.Record(ctx, as, act.String(), false, t.study, "API key without scope "+auth.ScopeWADO)
			return problemf(http.StatusNotFound, "no %s", t)
		case sub.Via == "viewer" && sub.Study != t.study:
			s.deps.Access.Record(ctx, as, act.String(), false, t.study, "viewer token for study "+sub.Study)
			return problemf(http.StatusNotFound, "no %s", t)
		}
		d := s.deps.Access.Decide(ctx, as, act, res)
		if !d.Allow && d.Reason == access.ReasonDenied && reason != "" && act != access.Delete && sub.Via != "viewer" {
			d = s.deps.Access.Decide(ctx, as, access.BreakGlass, res)
		}
		if !d.Allow {
			return denied(c, d, t)
		}
		if d.BreakGlass {
			c.Set("Warning", `299 medimint: "break-glass access: recorded and the patient notified"`)
		}
		if act == access.Retrieve || act == access.MetadataOnly {
			return s.auditServed(c, as, act, t.study, level)
		}
		return c.Next()
	}
}

// denied answers a denial: as not found, or 503 while decisions cannot be
// made (the same for every study, so it reveals nothing either).
func denied(c *fiber.Ctx, d access.Decision, t target) error {
	if d.Reason == access.ReasonUnavailable {
		c.Set(fiber.HeaderRetryAfter, "5")
		return problemf(http.StatusServiceUnavailable, "access decisions are unavailable for a moment")
	}
	return problemf(http.StatusNotFound, "no %s", t)
}

// queryScope is the key of the QIDO-RS filter in the request's Locals.
type queryScope struct{}

// mayQuery computes what the caller may find (access.QueryFilter) for
// QIDO-RS to apply in SQL: a viewer token finds its one study at most.
func (s *Server) mayQuery(c *fiber.Ctx) error {
	if !s.gated() {
		return c.Next()
	}
	sub, _ := auth.FromCtx(c)
	as := accessSubject(sub, "")
	if sub.APIKeyID != "" && !sub.HasScope(auth.ScopeQIDO) {
		s.deps.Access.Record(c.UserContext(), as, access.Query.String(), false, c.Path(), "API key without scope "+auth.ScopeQIDO)
		return problemf(http.StatusForbidden, "this API key may not search (scope %s)", auth.ScopeQIDO)
	}
	f, err := s.deps.Access.QueryFilter(as)
	if err != nil {
		c.Set(fiber.HeaderRetryAfter, "5")
		return problemf(http.StatusServiceUnavailable, "access decisions are unavailable for a moment")
	}
	study := ""
	if sub.Via == "viewer" {
		study = sub.Study
	}
	c.Locals(queryScope{}, func(studies string, next int) (string, []any) {
		cond, args := f.SQL(studies, next)
		if study != "" {
			cond = fmt.Sprintf("(%s AND %s.study_instance_uid = $%d)", cond, studies, next+len(args))
			args = append(args, study)
		}
		return cond, args
	})
	return c.Next()
}

// studyFilter is the QIDO-RS filter mayQuery set, nil when ungated.
func studyFilter(c *fiber.Ctx) func(string, int) (string, []any) {
	f, _ := c.Locals(queryScope{}).(func(string, int) (string, []any))
	return f
}

// queried audits what a search returned.
func (s *Server) queried(c *fiber.Ctx, level index.Level, n int) {
	if !s.gated() {
		return
	}
	sub, _ := auth.FromCtx(c)
	s.deps.Access.Served(c.UserContext(), accessSubject(sub, ""), access.Resource{StudyInstanceUID: c.Params("study")},
		"qido:"+strings.ToLower(level.String()), n)
}

// bodyTaken marks a request whose body a handler took charge of.
type bodyTaken struct{}

// closeUnread handles a request refused before its handler read the body
// (STOW-RS without credentials): what is left of the body must not be read
// as the next request, so it is drained, or the connection closed.
func closeUnread(c *fiber.Ctx) error {
	err := c.Next()
	if err == nil || c.Locals(bodyTaken{}) != nil {
		return err
	}
	if raw := c.Context().RequestBodyStream(); raw != nil {
		drainOrClose(c, &bodyReader{r: raw})
	}
	return err
}

// orgKey is the key of the storing organisation in the request's Locals.
type orgKey struct{}

// mayStore admits STOW-RS from an API key with scope stow or a staff
// member of an organisation; that organisation issues what is stored.
func (s *Server) mayStore(c *fiber.Ctx) error {
	if !s.gated() {
		return c.Next()
	}
	sub, _ := auth.FromCtx(c)
	as := accessSubject(sub, "")
	ctx := c.UserContext()
	target := c.Params("study")
	var why string
	switch {
	case sub.Via == "viewer":
		why = "viewer tokens only read"
	case sub.APIKeyID != "" && !sub.HasScope(auth.ScopeSTOW):
		why = "API key without scope " + auth.ScopeSTOW
	case sub.APIKeyID == "" && (sub.OrgID == "" || !slices.ContainsFunc(storeRoles, sub.Has)):
		why = "storing needs an API key or a staff role of an organisation"
	}
	if why != "" {
		s.deps.Access.Record(ctx, as, "store", false, target, why)
		return problemf(http.StatusForbidden, "%s", why)
	}
	s.deps.Access.Record(ctx, as, "store", true, target, "stores for "+sub.OrgID)
	c.Locals(orgKey{}, sub.OrgID)
	return c.Next()
}

// storeOrg is the organisation that issues what this request stores.
func (s *Server) storeOrg(c *fiber.Ctx) string {
	if org, ok := c.Locals(orgKey{}).(string); ok {
		return org
	}
	return s.cfg.OrgID
}

// byAdminKey marks a DELETE that presents the operator's admin key: the
// delete handler checks the key, and no access rule applies.
type byAdminKey struct{}

// deleteAuthn lets DELETE through with the admin key header, and
// otherwise authenticates the caller for may(access.Delete).
func (s *Server) deleteAuthn(c *fiber.Ctx) error {
	if c.Get(AdminKeyHeader) != "" || !s.gated() {
		c.Locals(byAdminKey{}, true)
		return c.Next()
	}
	return s.authn(c)
}
