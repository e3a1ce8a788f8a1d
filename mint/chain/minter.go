package chain

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/wallet"
)

// MinterConfig configures a Minter.
type MinterConfig struct {
	Pool       *pgxpool.Pool
	Deployment *Deployment
	Patients   *Patients
	// BatchSize caps the jobs a worker claims at once (default 32); what
	// one transaction holds is the real limit.
	BatchSize int
	// Workers run in parallel (default: one per channel account).
	Workers int
	// Lease is how long a claimed job stays with its worker (default 10
	// minutes); a crashed worker's jobs come back after it.
	Lease time.Duration
	// Poll is the pause when no job is due (default 1s).
	Poll time.Duration
	// ClockSkew is allowed between our clock and ledger close times when
	// deciding that an earlier transaction can no longer apply (default
	// 5s).
	ClockSkew time.Duration
	Logger    *slog.Logger
}

// Minter is the chain worker: it mints the record tokens of completed
// studies (outbox jobs of kind mint.KindMint).
type Minter struct {
	cfg    MinterConfig
	d      *Deployment
	net    wallet.Network
	outbox *mint.Outbox
	log    *slog.Logger

	// afterSubmit, if set (tests), runs after a transaction applied and
	// before it is recorded: where a crash hurts most.
	afterSubmit func()

	mu sync.Mutex
	// carry holds jobs claimed (and still leased) that did not fit in the
	// last transaction, or wait for a patient account another worker is
	// creating; the next pass takes them first.
	carry []mint.Job
	// creating: custodial accounts an in-flight transaction creates.
	creating map[string]bool
}

// NewMinter returns a Minter.
func NewMinter(cfg MinterConfig) (*Minter, error) {
	if cfg.Pool == nil || cfg.Deployment == nil || cfg.Patients == nil {
		return nil, errors.New("chain: MinterConfig needs Pool, Deployment and Patients")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 32 // escrow mints: 3 operations each
	}
	if cfg.Workers <= 0 {
		cfg.Workers = max(1, len(cfg.Deployment.Sponsor.ChannelAddresses()))
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Minter{cfg: cfg, d: cfg.Deployment, net: cfg.Deployment.Network, outbox: mint.NewOutbox(cfg.Pool), log: cfg.Logger,
		creating: map[string]bool{}}, nil
}

// Run mints with cfg.Workers workers until ctx ends.
func (m *Minter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range m.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n, err := m.MintDue(ctx)
				if err != nil && ctx.Err() == nil {
					m.log.WarnContext(ctx, "chain: minter", slog.Any("err", err))
				}
				if n == 0 || err != nil {
					t := time.NewTimer(m.cfg.Poll)
					select {
					case <-ctx.Done():
					case <-t.C:
					}
					t.Stop()
				}
			}
		}()
	}
	wg.Wait()
	if jobs := m.takeCarry(); len(jobs) > 0 {
		m.release(ctx, jobs, errors.New("chain: minter stopped"))
	}
}

// MintDue claims due jobs, as many as one transaction can hold (counting
// every new patient at its worst: an account to create), and mints them.
// It returns how many jobs it finished or submitted; 0 means there was
// nothing to do now. Jobs that fail are released for a retry with backoff
// (mint.Backoff); the error is only for failures to reach the outbox.
func (m *Minter) MintDue(ctx context.Context) (int, error) {
	jobs := m.takeCarry()
	est := newEstimate()
	for _, j := range jobs {
		est.add(j)
	}
	for len(jobs) < m.cfg.BatchSize && est.room() {
		j, ok, err := m.outbox.Claim(ctx, mint.KindMint, m.cfg.Lease)
		if err != nil {
			m.release(ctx, jobs, err)
			return 0, err
		}
		if !ok {
			break
		}
		if est.jobs[j.ID] {
			continue // carried and claimed again after its lease lapsed
		}
		jobs = append(jobs, j)
		est.add(j)
	}
	if len(jobs) == 0 {
		return 0, nil
	}
	return m.mintJobs(ctx, jobs), nil
}

// estimate counts a transaction's operations while jobs are claimed,
// before their patients are resolved: the first study of a patient as if
// its account had to be created (8 operations), the others at 5.
type estimate struct {
	ops      int
	patients map[string]bool
	jobs     map[int64]bool
}

func newEstimate() *estimate {
	return &estimate{ops: 2, patients: map[string]bool{}, jobs: map[int64]bool{}}
}

func (e *estimate) add(j mint.Job) {
	e.jobs[j.ID] = true
	var mj mint.MintJob
	_ = json.Unmarshal(j.Payload, &mj) // a bad payload fails later, with its error kept
	k := mj.PatientAccount
	if k == "" {
		k = patientKey(mj).OrgID + "/" + patientKey(mj).Ref
	}
	if e.patients[k] {
		e.ops += 5
		return
	}
	e.patients[k] = true
	e.ops += 8
}

func (e *estimate) room() bool {
	return e.ops+8 <= contracts.MaxOperations && len(e.patients) < contracts.MaxHoldersPerBatch
}

// takeCarry returns the jobs a previous pass claimed but left for the
// next transaction.
func (m *Minter) takeCarry() []mint.Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	jobs := m.carry
	m.carry = nil
	return jobs
}

func (m *Minter) carryOver(items []*item) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range items {
		m.carry = append(m.carry, it.job)
	}
}

// item is one study on its way to the chain.
type item struct {
	job        mint.Job
	mj         mint.MintJob
	hash       [32]byte
	holder     string
	patient    *Patient // nil: not custodial, minted into escrow
	newAccount bool     // custodial account not yet on chain
}

func (it *item) escrow() bool { return it.patient == nil }

var errInFlight = errors.New("chain: an earlier mint transaction may still apply; waiting for its time bounds to pass")

// mintJobs mints one transaction's worth of jobs and carries the rest
// over; it returns how many jobs it finished or submitted.
func (m *Minter) mintJobs(ctx context.Context, jobs []mint.Job) int {
	items := m.decode(ctx, jobs)
	items = m.dropRecorded(ctx, items)
	handled := len(jobs) - len(items)
	if len(items) == 0 {
		return handled
	}
	if err := m.resolveHolders(ctx, items); err != nil {
		m.retry(ctx, items, err)
		return handled
	}
	n := len(items)
	items = m.resolveAttempts(ctx, items)
	handled += n - len(items)
	// A patient whose account another worker is creating right now waits
	// for that transaction: creating it twice would fail one of them.
	m.mu.Lock()
	var ready, wait []*item
	for _, it := range items {
		if it.newAccount && m.creating[it.holder] {
			wait = append(wait, it)
		} else {
			ready = append(ready, it)
		}
	}
	groups := plan(ready)
	if len(groups) > 0 {
		for _, it := range groups[0] {
			if it.newAccount {
				m.creating[it.holder] = true
			}
		}
	}
	m.mu.Unlock()
	m.carryOver(wait)
	if len(groups) == 0 {
		return handled
	}
	for _, g := range groups[1:] {
		m.carryOver(g)
	}
	g := groups[0]
	err := m.submit(ctx, g)
	m.mu.Lock()
	for _, it := range g {
		delete(m.creating, it.holder)
	}
	m.mu.Unlock()
	if err != nil {
		m.log.WarnContext(ctx, "chain: mint failed; will retry", slog.Int("studies", len(g)), slog.Any("err", err))
		m.retry(ctx, g, err)
	}
	return handled + len(g)
}

// decode parses the jobs' payloads and keeps, of several completions of
// one study, the latest.
func (m *Minter) decode(ctx context.Context, jobs []mint.Job) []*item {
	byRef := map[string]*item{}
	var items []*item
	for _, j := range jobs {
		it := &item{job: j}
		err := json.Unmarshal(j.Payload, &it.mj)
		if err == nil {
			err = checkJob(it)
		}
		if err != nil {
			m.log.ErrorContext(ctx, "chain: bad mint job", slog.Int64("job", j.ID), slog.Any("err", err))
			m.retry(ctx, []*item{it}, err)
			continue
		}
		if prev := byRef[it.mj.StudyRef]; prev != nil {
			older, newer := prev, it
			if it.mj.Completion < prev.mj.Completion {
				older, newer = it, prev
			}
			m.log.InfoContext(ctx, "chain: completion superseded by a later one", slog.Int64("job", older.job.ID), slog.Int64("by", newer.job.ID))
			m.done(ctx, older)
			*prev = *newer
			continue
		}
		byRef[it.mj.StudyRef] = it
		items = append(items, it)
	}
	return items
}

func checkJob(it *item) error {
	h, err := hex.DecodeString(it.mj.StudyRef)
	if err != nil || len(h) != 32 {
		return fmt.Errorf("chain: job %d: study_ref %q is not 32 bytes of hex", it.job.ID, it.mj.StudyRef)
	}
	copy(it.hash[:], h)
	if _, err := contracts.ParseCID(it.mj.MetadataCID); err != nil {
		return fmt.Errorf("chain: job %d: %w", it.job.ID, err)
	}
	return nil
}

// dropRecorded finishes the jobs of studies already minted on this
// network. A later completion of a minted study cannot change its token's
// metadata pointer (protocol version 1 has no update), so it ends here
// too, with a warning when its metadata differs.
func (m *Minter) dropRecorded(ctx context.Context, items []*item) []*item {
	refs := make([]string, len(items))
	for i, it := range items {
		refs[i] = it.mj.StudyRef
	}
	minted := map[string]string{}
	rows, err := m.cfg.Pool.Query(ctx, `SELECT study_ref, metadata_cid FROM minted_records WHERE network_passphrase = $1 AND study_ref = ANY($2)`,
		m.net.Passphrase, refs)
	if err == nil {
		for rows.Next() {
			var ref, c string
			if err = rows.Scan(&ref, &c); err != nil {
				break
			}
			minted[ref] = c
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		m.retry(ctx, items, fmt.Errorf("chain: minted records: %w", err))
		return nil
	}
	var out []*item
	for _, it := range items {
		c, ok := minted[it.mj.StudyRef]
		if !ok {
			out = append(out, it)
			continue
		}
		if c != it.mj.MetadataCID {
			m.log.WarnContext(ctx, "chain: study already minted with other metadata; protocol v1 cannot update it",
				slog.String("study_ref", it.mj.StudyRef), slog.String("minted_cid", c), slog.String("new_cid", it.mj.MetadataCID))
		}
		m.done(ctx, it)
	}
	return out
}

// resolveAttempts handles studies whose mint may have been submitted
// before (a crash, a lost answer, a lapsed lease): it looks for the mint
// on chain first and records it if there; else the study may be minted
// only once no earlier transaction can still apply.
func (m *Minter) resolveAttempts(ctx context.Context, items []*item) []*item {
	if len(items) == 0 {
		return nil
	}
	refs := make([]string, len(items))
	for i, it := range items {
		refs[i] = it.mj.StudyRef
	}
	type attempt struct{ first, last time.Time }
	attempts := map[string]attempt{}
	rows, err := m.cfg.Pool.Query(ctx, `SELECT study_ref, first_attempt_at, last_attempt_at FROM mint_attempts
WHERE network_passphrase = $1 AND study_ref = ANY($2)`, m.net.Passphrase, refs)
	if err == nil {
		for rows.Next() {
			var ref string
			var a attempt
			if err = rows.Scan(&ref, &a.first, &a.last); err != nil {
				break
			}
			attempts[ref] = a
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		m.retry(ctx, items, fmt.Errorf("chain: mint attempts: %w", err))
		return nil
	}
	if len(attempts) == 0 {
		return items
	}
	// Read the ledger's time before looking for the mints: a transaction
	// not found after a ledger closed past its time bounds never applies.
	root, err := m.net.Horizon(ctx).Root()
	if err != nil {
		m.retry(ctx, items, fmt.Errorf("chain: horizon root: %w", err))
		return nil
	}
	want := map[[32]byte]*item{}
	since := time.Now()
	for _, it := range items {
		if a, ok := attempts[it.mj.StudyRef]; ok {
			want[it.hash] = it
			if a.first.Before(since) {
				since = a.first
			}
		}
	}
	found, err := m.findMints(ctx, want, since)
	if err != nil {
		m.retry(ctx, items, err)
		return nil
	}
	var out []*item
	for _, it := range items {
		a, tried := attempts[it.mj.StudyRef]
		if !tried {
			out = append(out, it)
			continue
		}
		if f, ok := found[it.hash]; ok {
			m.log.InfoContext(ctx, "chain: found earlier mint on chain", slog.String("study_ref", it.mj.StudyRef), slog.String("tx", f.txHash))
			if err := m.record(ctx, []chainMint{f}, []*item{it}); err != nil {
				m.retry(ctx, []*item{it}, err)
			}
			continue
		}
		if !root.HorizonLatestClosedAt.After(a.last.Add(m.d.TxTimeout + m.cfg.ClockSkew)) {
			m.log.InfoContext(ctx, "chain: earlier mint may still apply; deferring", slog.String("study_ref", it.mj.StudyRef))
			m.retry(ctx, []*item{it}, errInFlight)
			continue
		}
		out = append(out, it)
	}
	return out
}

// chainMint is a mint found in a transaction.
type chainMint struct {
	ev         contracts.RecordMinted
	txHash     string
	ledger     int32
	feeCharged int64
}

// findMints looks through the issuer's transactions, newest first, back
// to since, for recorded mints of the wanted study hashes.
func (m *Minter) findMints(ctx context.Context, want map[[32]byte]*item, since time.Time) (map[[32]byte]chainMint, error) {
	found := map[[32]byte]chainMint{}
	issuer := m.d.Issuer.Address()
	hz := m.net.Horizon(ctx)
	page, err := hz.Transactions(horizonclient.TransactionRequest{ForAccount: issuer, Order: horizonclient.OrderDesc, Limit: 200})
	for ; err == nil && len(page.Embedded.Records) > 0; page, err = hz.NextTransactionsPage(page) {
		for _, tx := range page.Embedded.Records {
			if tx.LedgerCloseTime.Before(since.Add(-m.cfg.ClockSkew)) {
				return found, nil
			}
			if !tx.Successful {
				continue
			}
			evs, ierr := contracts.Interpret(contracts.Transaction{Hash: tx.Hash, Ledger: tx.Ledger, CreatedAt: tx.LedgerCloseTime,
				EnvelopeXDR: tx.EnvelopeXdr, ResultXDR: tx.ResultXdr})
			if ierr != nil {
				continue // not ours to judge here; the watcher flags it
			}
			for _, ev := range evs {
				rm, ok := ev.(contracts.RecordMinted)
				if !ok || !rm.Recorded() || rm.Issuer != issuer || want[rm.StudyHash] == nil {
					continue
				}
				found[rm.StudyHash] = chainMint{ev: rm, txHash: tx.Hash, ledger: tx.Ledger, feeCharged: tx.FeeCharged}
			}
			if len(found) == len(want) {
				return found, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("chain: issuer history: %w", err)
	}
	return found, nil
}

// resolveHolders finds each study's recipient: the patient's linked
// account if it is one of our custodial accounts; a linked account of
// the patient's own (bring-your-own-key) gets the token in escrow; else
// the custodial account of (organisation, patient_ref), created on
// demand.
func (m *Minter) resolveHolders(ctx context.Context, items []*item) error {
	var keys []PatientKey
	for _, it := range items {
		if it.mj.PatientAccount != "" {
			pt, ok, err := m.cfg.Patients.ByAddress(ctx, it.mj.PatientAccount)
			if err != nil {
				return err
			}
			it.holder = it.mj.PatientAccount
			if ok {
				it.patient = &pt
			}
			continue
		}
		keys = append(keys, patientKey(it.mj))
	}
	pts, created, err := m.cfg.Patients.Resolve(ctx, keys)
	if err != nil {
		return err
	}
	var unknown []string
	for _, it := range items {
		if it.mj.PatientAccount == "" {
			k := patientKey(it.mj)
			pt := pts[k]
			it.patient, it.holder, it.newAccount = &pt, pt.Address, created[k]
		}
		if it.patient != nil && !it.newAccount {
			unknown = append(unknown, it.holder)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	rows, err := m.cfg.Pool.Query(ctx, `SELECT address FROM patient_accounts_on_chain WHERE network_passphrase = $1 AND address = ANY($2)`,
		m.net.Passphrase, unknown)
	if err != nil {
		return fmt.Errorf("chain: accounts on chain: %w", err)
	}
	onChain, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("chain: accounts on chain: %w", err)
	}
	exists := map[string]bool{}
	for _, a := range onChain {
		exists[a] = true
	}
	checked := map[string]bool{}
	for _, it := range items {
		if it.patient == nil || it.newAccount || exists[it.holder] {
			continue
		}
		// Mapped earlier but not known on this network: a crashed mint
		// may have created it.
		if !checked[it.holder] {
			ok, err := m.d.Sponsor.AccountExists(ctx, it.holder)
			if err != nil {
				return err
			}
			checked[it.holder], exists[it.holder] = true, ok
		}
		it.newAccount = !exists[it.holder]
	}
	return nil
}

// patientKey is the job's patient; a study without a Patient ID gets an
// account of its own, never one shared with other unidentified patients.
func patientKey(mj mint.MintJob) PatientKey {
	ref := mj.PatientRef
	if ref == "" {
		sum := sha256.Sum256([]byte("medimint unidentified patient\x00" + mj.StudyRef))
		ref = hex.EncodeToString(sum[:])
	}
	return PatientKey{OrgID: mj.OrgID, Ref: ref}
}

// plan groups items into transactions within Stellar's limits, counting
// operations as contracts.MintBatches lays them out (PROTOCOL.md), plus
// one CreateAccount for each custodial account that does not exist yet.
func plan(items []*item) [][]*item {
	items = slices.Clone(items)
	slices.SortStableFunc(items, func(a, b *item) int { return cmp.Compare(a.holder, b.holder) })
	var groups [][]*item
	var cur []*item
	ops, holders := 2, map[string]bool{} // the issuer's sponsorship sandwich
	cost := func(it *item) (int, bool) {
		if it.escrow() {
			return 3, false // claimable balance, mint record written and deleted
		}
		c := 5 // trustline, authorisation, payment, mint record written and deleted
		if holders[it.holder] {
			return c, false
		}
		c += 2 // the holder's sponsorship sandwich
		if it.newAccount {
			c++
		}
		return c, true
	}
	for _, it := range items {
		c, newHolder := cost(it)
		if len(cur) > 0 && (ops+c > contracts.MaxOperations || (newHolder && len(holders) == contracts.MaxHoldersPerBatch)) {
			groups = append(groups, cur)
			cur, ops, holders = nil, 2, map[string]bool{}
			c, newHolder = cost(it)
		}
		if newHolder {
			holders[it.holder] = true
		}
		cur = append(cur, it)
		ops += c
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// withAccounts creates the new custodial accounts inside the mint: a
// CreateAccount of 0 XLM right after the sponsor begins sponsoring the
// account's reserves, so the account, its trustline and its token arrive
// in one transaction (and one ledger). ok is false if it does not fit.
func withAccounts(d contracts.Draft, sponsor string, newAccounts map[string]bool) (contracts.Draft, bool) {
	if len(d.Operations)+len(newAccounts) > contracts.MaxOperations {
		return d, false
	}
	ops := make([]txnbuild.Operation, 0, len(d.Operations)+len(newAccounts))
	done := map[string]bool{}
	for _, op := range d.Operations {
		ops = append(ops, op)
		b, ok := op.(*txnbuild.BeginSponsoringFutureReserves)
		if ok && b.SourceAccount == sponsor && newAccounts[b.SponsoredID] && !done[b.SponsoredID] {
			ops = append(ops, &txnbuild.CreateAccount{SourceAccount: sponsor, Destination: b.SponsoredID, Amount: "0"})
			done[b.SponsoredID] = true
		}
	}
	if len(done) != len(newAccounts) {
		return d, false
	}
	d.Operations = ops
	return d, true
}

// submit mints one group: normally one transaction.
func (m *Minter) submit(ctx context.Context, g []*item) error {
	sponsor, issuer := m.d.Sponsor.Address(), m.d.Issuer.Address()
	var mints []contracts.Mint
	newAccounts := map[string]bool{}
	var custodial []Patient
	seen := map[string]bool{}
	for _, it := range g {
		mints = append(mints, contracts.Mint{StudyHash: it.hash, CID: it.mj.MetadataCID, Holder: it.holder, Escrow: it.escrow()})
		if it.newAccount {
			newAccounts[it.holder] = true
		}
		if it.patient != nil && !seen[it.holder] {
			seen[it.holder] = true
			custodial = append(custodial, *it.patient)
		}
	}
	drafts, err := contracts.MintBatches(sponsor, issuer, mints)
	if err != nil {
		return err
	}
	if len(drafts) == 1 && len(newAccounts) > 0 {
		if d, ok := withAccounts(drafts[0], sponsor, newAccounts); ok {
			drafts[0], newAccounts = d, nil
		}
	}
	keys, err := m.cfg.Patients.Keys(ctx, custodial...)
	if err != nil {
		return err
	}
	byAddr := map[string]*keypair.Full{issuer: m.d.Issuer}
	for _, kp := range keys {
		byAddr[kp.Address()] = kp
	}
	if len(newAccounts) > 0 {
		// Did not fit in the mint: create the accounts first.
		var ks []*keypair.Full
		for a := range newAccounts {
			ks = append(ks, byAddr[a])
		}
		if _, err := m.d.Sponsor.CreateAccounts(ctx, ks...); err != nil {
			return fmt.Errorf("chain: create patient accounts: %w", err)
		}
	}

	refs := make([]string, len(g))
	for i, it := range g {
		refs[i] = it.mj.StudyRef
	}
	for _, d := range drafts {
		var signers []*keypair.Full
		for _, a := range d.Signers {
			kp := byAddr[a]
			if kp == nil {
				return fmt.Errorf("chain: no key for signer %s", a)
			}
			signers = append(signers, kp)
		}
		// Before each build: a retry must know a transaction may be out.
		if _, err := m.cfg.Pool.Exec(ctx, `
INSERT INTO mint_attempts (network_passphrase, study_ref, first_attempt_at, last_attempt_at)
SELECT $1, r, $3, $3 FROM unnest($2::text[]) AS r
ON CONFLICT (network_passphrase, study_ref) DO UPDATE SET last_attempt_at = EXCLUDED.last_attempt_at, attempts = mint_attempts.attempts + 1`,
			m.net.Passphrase, refs, time.Now()); err != nil {
			return fmt.Errorf("chain: record mint attempt: %w", err)
		}
		res, err := m.d.Sponsor.Submit(ctx, wallet.Submission{Operations: d.Operations, Memo: d.Memo, Signers: signers})
		if err != nil {
			return err
		}
		if m.afterSubmit != nil {
			m.afterSubmit()
		}
		evs, err := contracts.Interpret(contracts.Transaction{Hash: res.Hash, Ledger: res.Ledger, EnvelopeXDR: res.EnvelopeXDR, ResultXDR: res.ResultXDR})
		if err != nil {
			return fmt.Errorf("chain: interpret own mint %s: %w", res.Hash, err)
		}
		var mintsIn []chainMint
		var itemsIn []*item
		byHash := map[[32]byte]*item{}
		for _, it := range g {
			byHash[it.hash] = it
		}
		for _, ev := range evs {
			if rm, ok := ev.(contracts.RecordMinted); ok && byHash[rm.StudyHash] != nil {
				mintsIn = append(mintsIn, chainMint{ev: rm, txHash: res.Hash, ledger: res.Ledger, feeCharged: res.FeeCharged})
				itemsIn = append(itemsIn, byHash[rm.StudyHash])
			}
		}
		if err := m.record(ctx, mintsIn, itemsIn); err != nil {
			return err
		}
		m.log.InfoContext(ctx, "chain: minted", slog.Int("studies", len(itemsIn)), slog.String("tx", m.net.TxURL(res.Hash)),
			slog.Int("ledger", int(res.Ledger)), slog.Int64("fee_stroops", res.FeeCharged))
	}
	return nil
}

// record writes minted_records for mints found in the ledger, notes their
// custodial accounts as existing, forgets their attempts, and finishes
// their jobs.
func (m *Minter) record(ctx context.Context, mints []chainMint, items []*item) error {
	if len(mints) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, m.cfg.Pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		var refs []string
		for i, cm := range mints {
			it := items[i]
			refs = append(refs, it.mj.StudyRef)
			b.Queue(`INSERT INTO minted_records (network_passphrase, study_ref, org_id, holder, escrow_balance_id, asset_code, asset_issuer,
    metadata_cid, tx_hash, ledger, explorer_url, fee_charged, outbox_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`,
				m.net.Passphrase, it.mj.StudyRef, it.mj.OrgID, cm.ev.Holder, cm.ev.BalanceID, cm.ev.Code, cm.ev.Issuer,
				it.mj.MetadataCID, cm.txHash, cm.ledger, m.net.TxURL(cm.txHash), cm.feeCharged, it.job.ID)
			if it.patient != nil && cm.ev.Holder == it.holder {
				b.Queue(`INSERT INTO patient_accounts_on_chain (network_passphrase, address, ledger) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING`, m.net.Passphrase, it.holder, cm.ledger)
			}
		}
		b.Queue(`DELETE FROM mint_attempts WHERE network_passphrase = $1 AND study_ref = ANY($2)`, m.net.Passphrase, refs)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("chain: record mints: %w", err)
	}
	for _, it := range items {
		m.done(ctx, it)
	}
	return nil
}

// done finishes a job. A failure leaves it leased; when the lease ends it
// comes back and finds its record.
func (m *Minter) done(ctx context.Context, it *item) {
	if _, err := m.outbox.Done(ctx, it.job); err != nil {
		m.log.WarnContext(ctx, "chain: outbox done", slog.Int64("job", it.job.ID), slog.Any("err", err))
	}
}

// retry releases jobs for another attempt after mint.Backoff. It also
// runs while shutting down, so it does not use ctx's cancellation.
func (m *Minter) retry(ctx context.Context, items []*item, cause error) {
	jobs := make([]mint.Job, len(items))
	for i, it := range items {
		jobs[i] = it.job
	}
	m.release(ctx, jobs, cause)
}

func (m *Minter) release(ctx context.Context, jobs []mint.Job, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, j := range jobs {
		if err := m.outbox.Retry(ctx, j, cause); err != nil {
			m.log.WarnContext(ctx, "chain: outbox retry", slog.Int64("job", j.ID), slog.Any("err", err))
		}
	}
}
