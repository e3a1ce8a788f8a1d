package chain

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/medimint/medimint/wallet"
)

// Patients maps patients to custodial accounts (table patient_accounts):
// (organisation, salted patient reference) → SEP-5 index → address. The
// first study of a patient allocates the next index; the account itself
// is created on chain by the mint that needs it.
type Patients struct {
	pool *pgxpool.Pool
	cust *wallet.Custodian
}

// NewPatients returns the patient mapping in pool's database, deriving
// keys with c.
func NewPatients(pool *pgxpool.Pool, c *wallet.Custodian) *Patients {
	return &Patients{pool: pool, cust: c}
}

// PatientKey identifies a patient: organisation and patient_ref.
type PatientKey struct {
	OrgID string
	Ref   string
}

// Patient is a custodial account.
type Patient struct {
	Index   uint32 // SEP-5 index (wallet.UserIndexBase + n)
	Address string
}

// Resolve returns the custodial account of every key, allocating accounts
// for patients seen for the first time (reported in created).
func (p *Patients) Resolve(ctx context.Context, keys []PatientKey) (out map[PatientKey]Patient, created map[PatientKey]bool, err error) {
	out, created = map[PatientKey]Patient{}, map[PatientKey]bool{}
	if len(keys) == 0 {
		return out, created, nil
	}
	if err := p.lookup(ctx, keys, out); err != nil {
		return nil, nil, err
	}
	var missing []PatientKey
	seen := map[PatientKey]bool{}
	for _, k := range keys {
		if _, ok := out[k]; !ok && !seen[k] {
			seen[k] = true
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return out, created, nil
	}
	rows, err := p.pool.Query(ctx, `SELECT nextval('patient_account_number') FROM generate_series(1, $1)`, len(missing))
	if err != nil {
		return nil, nil, fmt.Errorf("chain: allocate patient accounts: %w", err)
	}
	nums, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, fmt.Errorf("chain: allocate patient accounts: %w", err)
	}
	idx := make([]uint32, len(nums))
	for i, n := range nums {
		if n < 0 || n > int64(wallet.MaxAccountIndex-wallet.UserIndexBase) {
			return nil, nil, fmt.Errorf("chain: patient account number %d out of range", n)
		}
		idx[i] = wallet.UserIndexBase + uint32(n)
	}
	kps, err := p.cust.Accounts(ctx, idx...)
	if err != nil {
		return nil, nil, err
	}
	batch := &pgx.Batch{}
	for i, k := range missing {
		// A concurrent worker may have mapped the same patient meanwhile:
		// its row wins and our index stays unused.
		batch.Queue(`INSERT INTO patient_accounts (org_id, patient_ref, hd_index, address) VALUES ($1, $2, $3, $4)
ON CONFLICT (org_id, patient_ref) DO NOTHING`, k.OrgID, k.Ref, idx[i], kps[i].Address()).Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() == 1 {
				created[k] = true
			}
			return nil
		})
	}
	if err := p.pool.SendBatch(ctx, batch).Close(); err != nil {
		return nil, nil, fmt.Errorf("chain: map patient accounts: %w", err)
	}
	if err := p.lookup(ctx, missing, out); err != nil {
		return nil, nil, err
	}
	for _, k := range missing {
		if _, ok := out[k]; !ok {
			return nil, nil, fmt.Errorf("chain: patient account for %s/%s vanished", k.OrgID, k.Ref)
		}
	}
	return out, created, nil
}

func (p *Patients) lookup(ctx context.Context, keys []PatientKey, into map[PatientKey]Patient) error {
	orgs, refs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		orgs[i], refs[i] = k.OrgID, k.Ref
	}
	rows, err := p.pool.Query(ctx, `SELECT a.org_id, a.patient_ref, a.hd_index, a.address
FROM patient_accounts a JOIN unnest($1::text[], $2::text[]) AS k(org_id, patient_ref) USING (org_id, patient_ref)`, orgs, refs)
	if err != nil {
		return fmt.Errorf("chain: look up patient accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k PatientKey
		var pt Patient
		var idx int64
		if err := rows.Scan(&k.OrgID, &k.Ref, &idx, &pt.Address); err != nil {
			return fmt.Errorf("chain: look up patient accounts: %w", err)
		}
		pt.Index = uint32(idx)
		into[k] = pt
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chain: look up patient accounts: %w", err)
	}
	return nil
}

// ByAddress finds the custodial account with address; ok is false for
// an account that is not ours (bring-your-own-key).
func (p *Patients) ByAddress(ctx context.Context, address string) (pt Patient, ok bool, err error) {
	var idx int64
	err = p.pool.QueryRow(ctx, `SELECT hd_index FROM patient_accounts WHERE address = $1`, address).Scan(&idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return Patient{}, false, nil
	}
	if err != nil {
		return Patient{}, false, fmt.Errorf("chain: patient account %s: %w", address, err)
	}
	return Patient{Index: uint32(idx), Address: address}, true, nil
}

// Keys derives the key pairs of custodial accounts, unsealing the master
// seed once.
func (p *Patients) Keys(ctx context.Context, pts ...Patient) ([]*keypair.Full, error) {
	idx := make([]uint32, len(pts))
	for i, pt := range pts {
		idx[i] = pt.Index
	}
	kps, err := p.cust.Accounts(ctx, idx...)
	if err != nil {
		return nil, err
	}
	for i, kp := range kps {
		if kp.Address() != pts[i].Address {
			return nil, fmt.Errorf("chain: patient account %s is not index %d of this master seed", pts[i].Address, pts[i].Index)
		}
	}
	return kps, nil
}
