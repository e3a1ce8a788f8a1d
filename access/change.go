package access

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Channel is the PostgreSQL NOTIFY channel on which changes to the
// chain-derived tables are announced, so that every process's cache
// invalidates at once.
const Channel = "medimint_access"

// Change kinds announced on Channel.
const (
	ChangeRecord  = "record"  // a token was minted or changed holder
	ChangeGrant   = "grant"   // a grant was created or ended
	ChangeRequest = "request" // an access request or answer
	ChangeIssuer  = "issuer"  // the registry listed or delisted an issuer
	ChangeOrg     = "org"     // org_issuers changed
	ChangeReload  = "reload"  // too much changed: reload everything
)

// Change is the JSON payload of a notification on Channel.
type Change struct {
	Kind    string `json:"kind"`
	Token   string `json:"token,omitempty"`   // code:issuer
	Account string `json:"account,omitempty"` // holder, grantee, requester or issuer
	Ledger  int32  `json:"ledger,omitempty"`
}

// maxNotifies bounds the notifications of one transaction; beyond it one
// reload is cheaper for listeners than thousands of invalidations.
const maxNotifies = 256

// NotifyTx announces changes on Channel inside tx: PostgreSQL delivers
// them when (and only if) tx commits. Duplicates are sent once.
func NotifyTx(ctx context.Context, tx pgx.Tx, changes []Change) error {
	seen := make(map[Change]bool, len(changes))
	var uniq []Change
	for _, c := range changes {
		if !seen[c] {
			seen[c] = true
			uniq = append(uniq, c)
		}
	}
	if len(uniq) > maxNotifies {
		uniq = []Change{{Kind: ChangeReload}}
	}
	for _, c := range uniq {
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("access: encode change: %w", err)
		}
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, string(b)); err != nil {
			return fmt.Errorf("access: notify %s: %w", c.Kind, err)
		}
	}
	return nil
}
