package access

import (
	"context"
	"log/slog"

	"github.com/medimint/medimint/wallet"
)

// ChainAction is the audit entry for a transaction submitted on sub's
// behalf (a grant, revoke, answer or transfer built by the gateway),
// linked to the transaction and its explorer page. The watcher audits
// the same transaction again when it sees it in a ledger.
func ChainAction(sub Subject, action, resource, txHash string, net wallet.Network, submitErr error) Entry {
	e := Entry{Category: CategoryGrant, Action: action, Outcome: OutcomeSuccess, Actor: sub.actor(), Roles: sub.roles(),
		OrgID: sub.OrgID, Resource: resource, Reason: sub.Reason, TxHash: txHash}
	if txHash != "" {
		e.TxURL = net.TxURL(txHash)
	}
	if submitErr != nil {
		e.Outcome = OutcomeFailure
		e.Detail = mustJSON(map[string]string{"error": submitErr.Error()})
	}
	return e
}

// Served records that data was served after an allowed decision (what:
// e.g. "instances", "frames", "metadata", "rendered"; count of objects).
func (a *Authorizer) Served(ctx context.Context, sub Subject, res Resource, what string, count int) {
	if a.cfg.Audit == nil {
		return
	}
	resource := res.String()
	a.mu.RLock()
	if t := a.byHash[res.StudyHash]; res.StudyHash != "" && t != nil {
		resource = t.tok.String()
	}
	a.mu.RUnlock()
	e := Entry{Category: CategoryRetrieval, Action: what, Outcome: OutcomeSuccess, Actor: sub.actor(), Roles: sub.roles(),
		OrgID: sub.OrgID, Resource: resource, Reason: sub.Reason, Detail: mustJSON(map[string]int{"count": count})}
	if err := a.cfg.Audit.Log(ctx, e); err != nil {
		a.log.ErrorContext(ctx, "access: retrieval not audited", slog.Any("err", err))
	}
}

// Record audits a decision taken before or beside the rules of Decide:
// a credential that cannot do action at all (an API key without the
// scope, a viewer token for another study), or one Decide has no action
// for (storing). resource names what was asked for.
func (a *Authorizer) Record(ctx context.Context, sub Subject, action string, allow bool, resource, why string) {
	if a.cfg.Audit == nil {
		return
	}
	outcome, reason := OutcomeDeny, ReasonDenied
	if allow {
		outcome, reason = OutcomeAllow, "allowed"
	}
	e := Entry{Category: CategoryDecision, Action: action, Outcome: outcome, Actor: sub.actor(), Roles: sub.roles(),
		OrgID: sub.OrgID, Resource: resource, Reason: reason + ": " + why}
	if err := a.cfg.Audit.Log(ctx, e); err != nil {
		a.log.ErrorContext(ctx, "access: decision not audited", slog.Any("err", err))
	}
}

// Retrieval is what one retrieval actually served: the DICOMweb or DIMSE
// service, the level asked for, what was sent, and how much. It names no
// patient: the audit row's resource is the study's token or UID.
type Retrieval struct {
	Service   string // "wado-rs", "c-move", "c-get"
	Level     string // "study", "series", "instance"
	What      string // "instances", "metadata", "frames", "bulkdata", "rendered", "thumbnail"
	Instances int
	Bytes     int64 // bytes of the response body produced; 0 when unknown (DIMSE)
	Complete  bool  // false when the response was cut short
}

// Retrieved appends one audit row for a retrieval that was served after
// an allowed decision, through the batching auditor.
func (a *Authorizer) Retrieved(ctx context.Context, sub Subject, res Resource, r Retrieval) {
	if a.cfg.Audit == nil {
		return
	}
	resource := res.String()
	a.mu.RLock()
	if t := a.byHash[res.StudyHash]; res.StudyHash != "" && t != nil {
		resource = t.tok.String()
	}
	a.mu.RUnlock()
	outcome := OutcomeSuccess
	if !r.Complete {
		outcome = OutcomeFailure
	}
	e := Entry{Category: CategoryRetrieval, Action: r.Service + ":" + r.What, Outcome: outcome, Actor: sub.actor(), Roles: sub.roles(),
		OrgID: sub.OrgID, Resource: resource, Reason: sub.Reason,
		Detail: mustJSON(map[string]any{"level": r.Level, "instances": r.Instances, "bytes": r.Bytes, "complete": r.Complete})}
	if err := a.cfg.Audit.Log(ctx, e); err != nil {
		a.log.ErrorContext(ctx, "access: retrieval not audited", slog.Any("err", err))
	}
}
