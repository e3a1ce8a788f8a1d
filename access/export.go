package access

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// code is a coded value: DICOM's (csd-code, codeSystemName, originalText)
// and FHIR's Coding (system, code, display).
type code struct{ code, display string }

const (
	dcmSystem  = "http://dicom.nema.org/resources/ontology/DCM"
	dcmSysName = "DCM"
)

// Audit Event IDs (PS3.16 CID 400) and Event Type Codes (CID 401) used.
var (
	evApplicationActivity = code{"110100", "Application Activity"}
	evInstancesAccessed   = code{"110103", "DICOM Instances Accessed"}
	evStudyDeleted        = code{"110105", "DICOM Study Deleted"}
	evPatientRecord       = code{"110110", "Patient Record"}
	evQuery               = code{"110112", "Query"}
	evSecurityAlert       = code{"110113", "Security Alert"}
	typeEmergencyOverride = code{"110127", "Emergency Override Started"}
	typeSecurityAttrs     = code{"110137", "User Security Attributes Changed"}
	idStudyInstanceUID    = code{"110180", "Study Instance UID"}
)

// classify maps an entry to its DICOM event ID, optional event type and
// action code (C create, R read, U update, D delete, E execute).
func classify(e Entry) (id code, typ *code, action string) {
	switch e.Category {
	case CategoryBreakGlass:
		return evSecurityAlert, &typeEmergencyOverride, "E"
	case CategoryRetrieval:
		return evInstancesAccessed, nil, "R"
	case CategoryChain, CategoryGrant:
		switch {
		case strings.HasPrefix(e.Action, "record.minted"):
			return evPatientRecord, nil, "C"
		case strings.HasPrefix(e.Action, "record."):
			return evPatientRecord, nil, "U"
		case strings.HasPrefix(e.Action, "grant"), strings.HasPrefix(e.Action, "request"):
			return evPatientRecord, &typeSecurityAttrs, "U"
		}
		return evApplicationActivity, nil, "E"
	case CategoryDecision:
		switch e.Action {
		case Query.String():
			return evQuery, nil, "E"
		case Retrieve.String(), MetadataOnly.String():
			return evInstancesAccessed, nil, "R"
		case Grant.String(), Revoke.String():
			return evPatientRecord, &typeSecurityAttrs, "U"
		case Delete.String():
			return evStudyDeleted, nil, "D"
		}
	}
	return evApplicationActivity, nil, "E"
}

// outcomeCode is the RFC 3881 / FHIR R4 outcome: 0 success, 4 minor
// failure (a denial), 8 serious failure.
func outcomeCode(e Entry) string {
	switch e.Outcome {
	case OutcomeAllow, OutcomeSuccess:
		return "0"
	case OutcomeDeny:
		return "4"
	}
	return "8"
}

func isUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func rolesOf(e Entry) []string {
	if e.Roles == "" {
		return nil
	}
	return strings.Split(e.Roles, ",")
}

// FHIRAuditEvent renders the entry as a FHIR R4 AuditEvent resource.
func FHIRAuditEvent(e Entry) ([]byte, error) {
	id, typ, action := classify(e)
	coding := func(c code) map[string]string {
		return map[string]string{"system": dcmSystem, "code": c.code, "display": c.display}
	}
	ev := map[string]any{
		"resourceType": "AuditEvent",
		"id":           strconv.FormatInt(e.Seq, 10),
		"type":         coding(id),
		"action":       action,
		"recorded":     e.Recorded.UTC().Format(time.RFC3339Nano),
		"outcome":      outcomeCode(e),
		"outcomeDesc":  e.Reason,
	}
	if typ != nil {
		ev["subtype"] = []any{coding(*typ)}
	}
	if e.Category == CategoryBreakGlass {
		ev["purposeOfEvent"] = []any{map[string]any{"coding": []any{map[string]string{
			"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT", "display": "Emergency Treatment"}}}}
	}
	agent := map[string]any{
		"who":       map[string]any{"identifier": map[string]string{"system": "urn:medimint:actor", "value": e.Actor}},
		"requestor": true,
	}
	if rs := rolesOf(e); len(rs) > 0 {
		var roles []any
		for _, r := range rs {
			roles = append(roles, map[string]string{"text": r})
		}
		agent["role"] = roles
	}
	ev["agent"] = []any{agent}
	ev["source"] = map[string]any{"site": e.OrgID, "observer": map[string]string{"display": "medimint"},
		"type": []any{map[string]string{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}}}
	if e.Resource != "" {
		entity := map[string]any{
			"what": map[string]any{"identifier": map[string]string{"value": e.Resource}},
			"type": map[string]string{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
		}
		var details []any
		add := func(k, v string) {
			if v != "" {
				details = append(details, map[string]string{"type": k, "valueString": v})
			}
		}
		add("tx_hash", e.TxHash)
		add("tx_url", e.TxURL)
		add("detail", e.Detail)
		add("chain_hash", hex.EncodeToString(e.Hash))
		entity["detail"] = details
		ev["entity"] = []any{entity}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("access: FHIR AuditEvent %d: %w", e.Seq, err)
	}
	return b, nil
}

// DICOMAuditMessage renders the entry as a DICOM audit message (PS3.15
// A.5, the RFC 3881 schema) in JSON: the XML elements and attributes of
// AuditMessage as object members.
func DICOMAuditMessage(e Entry) ([]byte, error) {
	id, typ, action := classify(e)
	coded := func(c code) map[string]string {
		return map[string]string{"csd-code": c.code, "codeSystemName": dcmSysName, "originalText": c.display}
	}
	ident := map[string]any{
		"EventID":               coded(id),
		"EventActionCode":       action,
		"EventDateTime":         e.Recorded.UTC().Format(time.RFC3339Nano),
		"EventOutcomeIndicator": outcomeCode(e),
	}
	if typ != nil {
		ident["EventTypeCode"] = []any{coded(*typ)}
	}
	if e.Reason != "" {
		ident["EventOutcomeDescription"] = e.Reason
	}
	participant := map[string]any{"UserID": e.Actor, "UserIsRequestor": true}
	if rs := rolesOf(e); len(rs) > 0 {
		var roles []any
		for _, r := range rs {
			roles = append(roles, map[string]string{"csd-code": r, "codeSystemName": "medimint-role", "originalText": r})
		}
		participant["RoleIDCode"] = roles
	}
	msg := map[string]any{
		"EventIdentification":       ident,
		"ActiveParticipant":         []any{participant},
		"AuditSourceIdentification": map[string]any{"AuditSourceID": "medimint", "AuditEnterpriseSiteID": e.OrgID},
	}
	if e.Resource != "" {
		obj := map[string]any{
			"ParticipantObjectID":       e.Resource,
			"ParticipantObjectTypeCode": "2", // system object
		}
		if isUID(e.Resource) {
			obj["ParticipantObjectIDTypeCode"] = coded(idStudyInstanceUID)
		} else {
			obj["ParticipantObjectIDTypeCode"] = map[string]string{"csd-code": "record-token", "codeSystemName": "medimint", "originalText": "Medimint record token or study hash"}
		}
		// ParticipantObjectDetail values are base64Binary.
		var details []any
		add := func(k, v string) {
			if v != "" {
				details = append(details, map[string]string{"type": k, "value": base64.StdEncoding.EncodeToString([]byte(v))})
			}
		}
		add("TxHash", e.TxHash)
		add("TxURL", e.TxURL)
		add("Detail", e.Detail)
		add("ChainHash", hex.EncodeToString(e.Hash))
		if len(details) > 0 {
			obj["ParticipantObjectDetail"] = details
		}
		msg["ParticipantObjectIdentification"] = []any{obj}
	}
	b, err := json.Marshal(map[string]any{"AuditMessage": msg})
	if err != nil {
		return nil, fmt.Errorf("access: DICOM audit message %d: %w", e.Seq, err)
	}
	return b, nil
}

// Export formats.
const (
	FormatFHIR  = "fhir"  // FHIR R4 AuditEvent, one per line (NDJSON)
	FormatDICOM = "dicom" // DICOM audit message JSON, one per line
)

// ExportAudit streams the audit rows after afterSeq to w as NDJSON in
// format.
func ExportAudit(ctx context.Context, pool *pgxpool.Pool, w io.Writer, format string, afterSeq int64) error {
	render := FHIRAuditEvent
	switch format {
	case FormatFHIR:
	case FormatDICOM:
		render = DICOMAuditMessage
	default:
		return fmt.Errorf("access: export format %q: want %q or %q", format, FormatFHIR, FormatDICOM)
	}
	return AuditEntries(ctx, pool, afterSeq, func(e Entry) error {
		b, err := render(e)
		if err != nil {
			return err
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("access: export: %w", err)
		}
		return nil
	})
}
