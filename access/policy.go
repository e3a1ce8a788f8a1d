package access

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/medimint/medimint/contracts"
)

// Role is a staff role in an organisation (the names of auth's
// memberships.role).
type Role string

// Roles.
const (
	RolePatient      Role = "patient"
	RoleClinician    Role = "clinician"
	RoleTechnologist Role = "technologist"
	RoleIssuerAdmin  Role = "issuer_admin"
	RoleAuditor      Role = "auditor"
)

// Subject is who asks: an authenticated caller (package auth builds it).
type Subject struct {
	// Account is the caller's Stellar account (G…), if any: it is what
	// holds record tokens and receives grants.
	Account string
	// UserID, or an API key ID, names the caller in the audit log.
	UserID string
	// OrgID and Roles: the caller's staff roles in that organisation.
	OrgID string
	Roles []Role
	// Reason is why the caller asks; break-glass access requires one.
	Reason string
}

func (s Subject) has(r Role) bool { return slices.Contains(s.Roles, r) }

func (s Subject) actor() string {
	switch {
	case s.UserID != "" && s.Account != "":
		return s.UserID + " (" + s.Account + ")"
	case s.UserID != "":
		return s.UserID
	}
	return s.Account
}

func (s Subject) roles() string {
	r := make([]string, len(s.Roles))
	for i, x := range s.Roles {
		r[i] = string(x)
	}
	return strings.Join(r, ",")
}

// Action is what the subject wants to do with a study.
type Action int

// Actions.
const (
	// Query: find the study (QIDO-RS, C-FIND).
	Query Action = iota + 1
	// Retrieve: the study's instances, frames, bulk data (WADO-RS, C-MOVE,
	// C-GET).
	Retrieve
	// MetadataOnly: the study's metadata without pixel data (WADO-RS
	// …/metadata).
	MetadataOnly
	// Grant and Revoke access to the study (the holder signs on chain).
	Grant
	Revoke
	// Delete the study from this organisation's store.
	Delete
	// BreakGlass: emergency retrieval without a grant.
	BreakGlass
)

// Actions lists every action, for tests and reports.
var Actions = []Action{Query, Retrieve, MetadataOnly, Grant, Revoke, Delete, BreakGlass}

func (a Action) String() string {
	switch a {
	case Query:
		return "query"
	case Retrieve:
		return "retrieve"
	case MetadataOnly:
		return "metadata"
	case Grant:
		return "grant"
	case Revoke:
		return "revoke"
	case Delete:
		return "delete"
	case BreakGlass:
		return "break-glass"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Resource names a study by one of its identifiers.
type Resource struct {
	StudyInstanceUID string
	StudyHash        string // lower-case hex, as record_tokens.study_hash
	Token            contracts.Token
}

func (r Resource) String() string {
	switch {
	case r.Token.Code != "":
		return r.Token.String()
	case r.StudyHash != "":
		return r.StudyHash
	}
	return r.StudyInstanceUID
}

// Decision is the answer to Decide. A denial says only "denied": it does
// not tell a study that exists from one that does not (the audit log has
// the detail).
type Decision struct {
	Allow bool
	// Reason: on allow, the basis (owner, grant, role:<role>,
	// break-glass); on deny, ReasonDenied or ReasonUnavailable.
	Reason string
	// BreakGlass marks emergency access: audited before it is returned and
	// the holder is notified.
	BreakGlass bool
}

// Reasons.
const (
	ReasonOwner       = "owner"
	ReasonGrant       = "grant"
	ReasonBreakGlass  = "break-glass"
	ReasonDenied      = "denied"
	ReasonUnavailable = "unavailable" // the cache is not in sync with Postgres
)

// staffActions are what each staff role of the study's organisation may do.
var staffActions = map[Role][]Action{
	RoleIssuerAdmin:  {Query, MetadataOnly, Delete},
	RoleClinician:    {Query, Retrieve, MetadataOnly},
	RoleTechnologist: {Query, Retrieve, MetadataOnly},
	RoleAuditor:      {Query, MetadataOnly}, // metadata only, never pixel data
}

// ownerActions are what a token's current holder may do.
var ownerActions = []Action{Query, Retrieve, MetadataOnly, Grant, Revoke}

// grantActions is what a grant's scope allows.
func grantActions(s contracts.Scope) []Action {
	var a []Action
	if s&contracts.ScopeQuery != 0 {
		a = append(a, Query)
	}
	if s&contracts.ScopeRetrieve != 0 {
		a = append(a, Retrieve)
	}
	if s != 0 {
		a = append(a, MetadataOnly)
	}
	return a
}

// study is what the rules need to know about a resource.
type study struct {
	exists bool
	org    string // issuing organisation ('' if unknown)
	token  *tokenState
}

// evaluate applies the rules; why is the detail for the audit log, built
// only when explain is set (formatting costs more than deciding).
func evaluate(sub Subject, act Action, st study, now time.Time, explain bool) (allow bool, reason, why string) {
	if !st.exists {
		return false, ReasonDenied, "no such study"
	}
	var whys []string
	note := func(s string) {
		if explain {
			whys = append(whys, s)
		}
	}
	if t := st.token; t != nil && sub.Account != "" {
		if sub.Account == t.holder {
			if slices.Contains(ownerActions, act) {
				if explain {
					why = "holder of " + t.tok.String()
				}
				return true, ReasonOwner, why
			}
			note("holder may not " + act.String())
		} else if g, ok := t.grants[sub.Account]; ok {
			switch {
			case !now.Before(g.expires):
				if explain {
					note("grant expired " + g.expires.UTC().Format(time.RFC3339))
				}
			case slices.Contains(grantActions(g.scope), act):
				if explain {
					why = fmt.Sprintf("grant scope %d from %s until %s", g.scope, t.holder, g.expires.UTC().Format(time.RFC3339))
				}
				return true, ReasonGrant, why
			default:
				if explain {
					note(fmt.Sprintf("grant scope %d does not cover %s", g.scope, act))
				}
			}
		} else {
			note("no grant from the current holder")
		}
	}
	if sub.OrgID != "" && sub.OrgID == st.org {
		for _, r := range sub.Roles {
			if slices.Contains(staffActions[r], act) {
				if explain {
					why = "staff of " + st.org
				}
				return true, "role:" + string(r), why
			}
		}
		note("no role of " + st.org + " allows " + act.String())
	}
	if act == BreakGlass {
		switch {
		case !sub.has(RoleClinician):
			note("break-glass is for clinicians")
		case strings.TrimSpace(sub.Reason) == "":
			note("break-glass needs a reason")
		default:
			return true, ReasonBreakGlass, "emergency: " + sub.Reason
		}
	}
	if !explain {
		return false, ReasonDenied, ""
	}
	if len(whys) == 0 {
		whys = append(whys, "not the holder, no grant, not staff of the issuing organisation")
	}
	return false, ReasonDenied, strings.Join(whys, "; ")
}
