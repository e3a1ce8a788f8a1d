package devnet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/stellar/go-stellar-sdk/amount"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/toid"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// DefaultPassphrase identifies the devnet; transactions signed for another
// network fail with tx_bad_auth, as they would on Stellar.
const DefaultPassphrase = "Medimint Devnet ; 2026"

const (
	protocolVersion = 22
	totalCoins      = int64(100_000_000_000) * 10_000_000 // 100 billion lumens, all held by the root account at genesis
	maxTxSetSize    = 1000
	submitTimeout   = 30 * time.Second // Horizon's transaction submission timeout (then 504)

	emptyPersistEvery = 5 * time.Second
)

// Config configures a Network. Zero values take the defaults.
type Config struct {
	NetworkPassphrase string        // default DefaultPassphrase
	LedgerInterval    time.Duration // default 1s
	StatePath         string        // "" = in memory; else persisted (atomically) so a restart keeps state
	BaseFee           int64         // stroops per operation, default 100
	BaseReserve       int64         // stroops, default 5_000_000 (0.5 XLM), as pubnet
	FriendbotAmount   int64         // stroops, default 10_000 XLM
	Logger            *slog.Logger  // default slog.Default()
}

// Network is an in-process Stellar network: ledger state, a transaction
// queue applied at each ledger close, the ingested history, and Horizon's
// HTTP API over them (Handler).
type Network struct {
	cfg  Config
	root *keypair.Full // the network's root account, which funds friendbot
	log  *slog.Logger

	mu          sync.Mutex
	state       *ledgerState
	hist        *history
	feePool     int64
	pending     []*pendingTx
	pendingByID map[[32]byte]*pendingTx
	pendingSeqs map[string]int64 // highest queued sequence number per source account
	closed      chan struct{}    // closed (and replaced) when a ledger closes

	persistMu   sync.Mutex
	lastPersist time.Time // guarded by mu
}

// pendingTx is a submitted transaction waiting for the next ledger.
type pendingTx struct {
	f    *txFrame
	done chan struct{}
	// Set before done is closed: rec if it made it into a ledger, else
	// rejected.
	rec      *txRec
	rejected *rejection
	fee      int64
}

// rejection is a transaction that failed validation and was not applied.
type rejection struct {
	f      *txFrame
	result xdr.TransactionResult
	codes  resultCodes
}

// New creates a network, loading cfg.StatePath when it exists and creating
// the genesis ledger otherwise.
func New(cfg Config) (*Network, error) {
	if cfg.NetworkPassphrase == "" {
		cfg.NetworkPassphrase = DefaultPassphrase
	}
	if cfg.LedgerInterval <= 0 {
		cfg.LedgerInterval = time.Second
	}
	if cfg.BaseFee <= 0 {
		cfg.BaseFee = 100
	}
	if cfg.BaseReserve <= 0 {
		cfg.BaseReserve = 5_000_000
	}
	if cfg.FriendbotAmount <= 0 {
		cfg.FriendbotAmount = 10_000 * 10_000_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Network{
		cfg:         cfg,
		root:        keypair.Root(cfg.NetworkPassphrase),
		log:         cfg.Logger.With("component", "devnet"),
		state:       newLedgerState(),
		hist:        newHistory(),
		pendingByID: map[[32]byte]*pendingTx{},
		pendingSeqs: map[string]int64{},
		closed:      make(chan struct{}),
	}
	if cfg.StatePath != "" {
		loaded, err := n.load()
		if err != nil {
			return nil, fmt.Errorf("devnet: loading %s: %w", cfg.StatePath, err)
		}
		if loaded {
			return n, nil
		}
	}
	n.genesis()
	return n, nil
}

// Passphrase is the network passphrase transactions must be signed for.
func (n *Network) Passphrase() string { return n.cfg.NetworkPassphrase }

// RootAddress is the root account holding all lumens not yet handed out;
// friendbot pays from it.
func (n *Network) RootAddress() string { return n.root.Address() }

func (n *Network) genesis() {
	n.state.accounts[n.root.Address()] = &account{
		ID: n.root.Address(), Balance: totalCoins, MasterWeight: 1, LastModified: 1,
	}
	n.appendLedger(ledgerCtx{seq: 1, closeTime: time.Now().Unix()}, nil)
}

// Run closes a ledger every LedgerInterval until ctx is done, then persists
// a last time. It returns an error only if that final persist fails.
func (n *Network) Run(ctx context.Context) error {
	t := time.NewTicker(n.cfg.LedgerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return n.Persist()
		case <-t.C:
			n.CloseLedger()
		}
	}
}

// CloseLedger closes one ledger now, applying every queued transaction,
// and returns its sequence number. With a StatePath it persists the state
// when the ledger decided any transaction (and at least every 5s
// otherwise).
func (n *Network) CloseLedger() uint32 {
	n.mu.Lock()
	seq, done := n.closeLocked()
	var snap *stateFile
	// Empty ledgers only advance the clock: write them at most every
	// emptyPersistEvery, so short test intervals do not fsync constantly.
	if len(done) > 0 || time.Since(n.lastPersist) >= emptyPersistEvery {
		snap = n.snapshotLocked()
		n.lastPersist = time.Now()
	}
	n.mu.Unlock()
	for _, p := range done {
		close(p.done)
	}
	if err := n.write(snap); err != nil {
		n.log.Error("persisting devnet state", "err", err, "path", n.cfg.StatePath)
	}
	return seq
}

// LatestLedger is the sequence number of the last closed ledger.
func (n *Network) LatestLedger() uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hist.last().Seq
}

// closeLocked applies the queue as stellar-core closes a ledger: drop what
// is no longer valid against the last closed ledger, charge every fee,
// then apply each transaction in order.
func (n *Network) closeLocked() (uint32, []*pendingTx) {
	prev := n.hist.last()
	lc := ledgerCtx{seq: prev.Seq + 1, closeTime: max(time.Now().Unix(), prev.CloseTime)}
	queue := n.pending
	n.pending, n.pendingByID, n.pendingSeqs = nil, map[[32]byte]*pendingTx{}, map[string]int64{}

	lcl := newOverlay(n.state)
	chained := map[string]int64{}
	prevSeq := func(a *account) int64 {
		if s, ok := chained[a.ID]; ok {
			return s
		}
		return a.Seq
	}
	var set []*pendingTx
	for _, p := range queue {
		v, _ := n.validate(lcl, p.f, lc, modeSubmit, prevSeq)
		if !v.ok() {
			p.rejected = n.reject(p.f, v)
			continue
		}
		chained[p.f.source] = p.f.seq
		set = append(set, p)
	}

	fees := newOverlay(n.state)
	for _, p := range set {
		acc := fees.account(p.f.feeSource)
		p.fee = min(n.feeCharged(p.f), acc.Balance)
		acc.Balance -= p.fee
		n.feePool += p.fee
	}
	fees.commit(lc.seq)

	var applied []applied
	for i, p := range set {
		applied = append(applied, n.applyTx(p, lc, i+1))
	}
	n.appendLedger(lc, applied)
	return lc.seq, queue
}

// applied is one transaction as it went into a ledger.
type applied struct {
	p          *pendingTx
	v          verdict
	effects    [][]effect
	opSponsors []string
}

func (n *Network) applyTx(p *pendingTx, lc ledgerCtx, index int) applied {
	f := p.f
	pre := newOverlay(n.state)
	v, _ := n.validate(pre, f, lc, modeApply, nil)
	code := v.code
	if f.feeBump {
		code = v.innerCode
	}
	switch code {
	case xdr.TransactionResultCodeTxTooEarly, xdr.TransactionResultCodeTxTooLate, xdr.TransactionResultCodeTxMissingOperation,
		xdr.TransactionResultCodeTxMalformed, xdr.TransactionResultCodeTxNoAccount, xdr.TransactionResultCodeTxBadSeq:
	default:
		acc := pre.account(f.source)
		acc.Seq, acc.SeqLedger, acc.SeqTime = f.seq, lc.seq, lc.closeTime
	}
	n.removeOneTimeSigners(pre, f)
	pre.commit(lc.seq)
	a := applied{p: p, v: v}
	if !v.ok() {
		return a
	}

	o := newOverlay(n.state)
	c := &opCtx{reserve: n.cfg.BaseReserve, o: o, lc: lc, f: f, sponsors: map[string]string{}}
	outs := make([]opOutcome, len(f.ops))
	a.effects = make([][]effect, len(f.ops))
	a.opSponsors = make([]string, len(f.ops))
	ok := true
	for i, op := range f.ops {
		c.index, c.effects = i, nil
		a.opSponsors[i] = c.sponsors[reserveOwner(f, op)]
		outs[i] = c.apply(op)
		a.effects[i] = c.effects
		ok = ok && outs[i].ok()
	}
	innerCode := xdr.TransactionResultCodeTxSuccess
	switch {
	case !ok:
		innerCode = xdr.TransactionResultCodeTxFailed
	case len(c.sponsors) > 0:
		innerCode, outs = xdr.TransactionResultCodeTxBadSponsorship, nil
	}
	if innerCode == xdr.TransactionResultCodeTxSuccess {
		o.commit(lc.seq)
	} else {
		a.effects = nil
	}
	a.v = verdict{code: innerCode, ops: outs}
	if f.feeBump {
		a.v = verdict{code: xdr.TransactionResultCodeTxFeeBumpInnerSuccess, innerCode: innerCode, ops: outs}
		if innerCode != xdr.TransactionResultCodeTxSuccess {
			a.v.code = xdr.TransactionResultCodeTxFeeBumpInnerFailed
		}
	}
	return a
}

// reserveOwner is the account whose new entry an operation creates, for
// the operation's "sponsor" field: the new account for CreateAccount, else
// the operation's source.
func reserveOwner(f *txFrame, op xdr.Operation) string {
	if op.Body.Type == xdr.OperationTypeCreateAccount {
		return op.Body.MustCreateAccountOp().Destination.Address()
	}
	return f.opSource(op)
}

// removeOneTimeSigners drops pre-auth-tx signers for this transaction from
// every source account, whether or not it succeeds (CAP-0001 semantics as
// stellar-core applies them).
func (n *Network) removeOneTimeSigners(o *overlay, f *txFrame) {
	keys := map[string]string{}
	var raw xdr.Uint256 = f.innerHash
	k := xdr.SignerKey{Type: xdr.SignerKeyTypeSignerKeyTypePreAuthTx, PreAuthTx: &raw}
	keys[f.source] = k.Address()
	for _, op := range f.ops {
		keys[f.opSource(op)] = k.Address()
	}
	if f.feeBump {
		var outer xdr.Uint256 = f.hash
		kf := xdr.SignerKey{Type: xdr.SignerKeyTypeSignerKeyTypePreAuthTx, PreAuthTx: &outer}
		keys[f.feeSource] = kf.Address()
	}
	for id, key := range keys {
		peek := o.peekAccount(id)
		if peek == nil || peek.signerIndex(key) < 0 {
			continue
		}
		acc := o.account(id)
		i := acc.signerIndex(key)
		sp := acc.Signers[i].Sponsor
		acc.Signers = append(acc.Signers[:i], acc.Signers[i+1:]...)
		c := &opCtx{reserve: n.cfg.BaseReserve, o: o}
		c.removeSubentry(acc, sp)
	}
}

func (n *Network) reject(f *txFrame, v verdict) *rejection {
	return &rejection{f: f, result: txResult(f, n.feeCharged(f), v), codes: codesOf(f, v)}
}

// appendLedger records the closed ledger and everything applied in it.
func (n *Network) appendLedger(lc ledgerCtx, txs []applied) {
	var prevHash xdr.Hash
	if len(n.hist.ledgers) > 0 {
		h, err := hexHash(n.hist.last().Hash)
		if err != nil {
			n.log.Error("previous ledger hash", "err", err)
		}
		prevHash = h
	}
	var setHash, resultHash = sha256.New(), sha256.New()
	var okTx, failedTx, okOps, allOps int32
	for i, a := range txs {
		f := a.p.f
		setHash.Write(f.hash[:])
		res := txResult(f, a.p.fee, a.v)
		resB64, err := xdr.MarshalBase64(res)
		if err != nil {
			n.log.Error("encoding transaction result", "err", err)
		}
		resultHash.Write([]byte(resB64))
		id := toid.New(int32(lc.seq), int32(i+1), 0).ToInt64()
		r := &txRec{
			ID: id, Hash: f.hashHex(), Ledger: lc.seq, Successful: a.v.ok(), FeeCharged: a.p.fee, MaxFee: f.fee,
			NumOps: len(f.ops), EnvelopeXDR: f.envB64, ResultXDR: resB64, Codes: codesOf(f, a.v),
		}
		if f.feeBump {
			r.InnerHash = f.innerHashHex()
		}
		accs := []string{f.source, f.feeSource}
		allOps += int32(len(f.ops))
		if r.Successful {
			okTx++
			okOps += int32(len(f.ops))
		} else {
			failedTx++
		}
		var opRecs []*opRec
		for j, op := range f.ops {
			or := &opRec{ID: toid.New(int32(lc.seq), int32(i+1), int32(j+1)).ToInt64(), TxHash: r.Hash, Type: op.Body.Type,
				Successful: r.Successful, Accounts: opParticipants(f, op)}
			var out opOutcome
			if j < len(a.v.ops) {
				out = a.v.ops[j]
			}
			sponsor := ""
			if j < len(a.opSponsors) {
				sponsor = a.opSponsors[j]
			}
			or.JSON = opJSON(or, f, op, out, sponsor, lc.closeTime)
			accs = append(accs, or.Accounts...)
			opRecs = append(opRecs, or)
		}
		r.Accounts = dedupe(accs)
		r.JSON = txJSON(r, f, lc.closeTime, r.Hash)
		n.hist.addTx(r)
		for _, or := range opRecs {
			n.hist.addOp(or)
		}
		for j, effs := range a.effects {
			for k, e := range effs {
				er := &effectRec{OpID: opRecs[j].ID, Index: uint32(k + 1), Account: e.account}
				er.JSON = effectJSON(er, e, lc.closeTime)
				n.hist.addEffect(er)
			}
		}
		a.p.rec = r
	}
	header := xdr.LedgerHeader{
		LedgerVersion:      protocolVersion,
		PreviousLedgerHash: prevHash,
		ScpValue:           xdr.StellarValue{TxSetHash: xdr.Hash(setHash.Sum(nil)), CloseTime: xdr.TimePoint(lc.closeTime)},
		TxSetResultHash:    xdr.Hash(resultHash.Sum(nil)),
		LedgerSeq:          xdr.Uint32(lc.seq),
		TotalCoins:         xdr.Int64(totalCoins),
		FeePool:            xdr.Int64(n.feePool),
		BaseFee:            xdr.Uint32(n.cfg.BaseFee),
		BaseReserve:        xdr.Uint32(n.cfg.BaseReserve),
		MaxTxSetSize:       maxTxSetSize,
	}
	headerB64, err := xdr.MarshalBase64(header)
	if err != nil {
		n.log.Error("encoding ledger header", "err", err)
	}
	raw, _ := header.MarshalBinary()
	hash := fmt.Sprintf("%x", sha256.Sum256(raw))
	l := horizon.Ledger{
		ID: hash, PT: strconv.FormatInt(toid.New(int32(lc.seq), 0, 0).ToInt64(), 10), Hash: hash,
		Sequence: int32(lc.seq), SuccessfulTransactionCount: okTx, FailedTransactionCount: &failedTx,
		OperationCount: okOps, TxSetOperationCount: &allOps, ClosedAt: time.Unix(lc.closeTime, 0).UTC(),
		TotalCoins: amount.StringFromInt64(totalCoins), FeePool: amount.StringFromInt64(n.feePool),
		BaseFee: int32(n.cfg.BaseFee), BaseReserve: int32(n.cfg.BaseReserve), MaxTxSetSize: maxTxSetSize,
		ProtocolVersion: protocolVersion, HeaderXDR: headerB64,
	}
	if prevHash != (xdr.Hash{}) {
		l.PrevHash = fmt.Sprintf("%x", prevHash[:])
	}
	l.Links.Self = link("/ledgers/%d", lc.seq)
	l.Links.Transactions = link("/ledgers/%d/transactions%s", lc.seq, "{?cursor,limit,order}")
	l.Links.Operations = link("/ledgers/%d/operations%s", lc.seq, "{?cursor,limit,order}")
	l.Links.Payments = link("/ledgers/%d/payments%s", lc.seq, "{?cursor,limit,order}")
	l.Links.Effects = link("/ledgers/%d/effects%s", lc.seq, "{?cursor,limit,order}")
	n.hist.ledgers = append(n.hist.ledgers, &ledgerRec{Seq: lc.seq, CloseTime: lc.closeTime, Hash: hash, JSON: marshal(l)})
	close(n.closed)
	n.closed = make(chan struct{})
}

func hexHash(s string) (xdr.Hash, error) {
	var h xdr.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("bad ledger hash %q", s)
	}
	copy(h[:], b)
	return h, nil
}

var errTimeout = errors.New("transaction submission timed out")

// submit queues a transaction and waits for the ledger that decides it, as
// Horizon's synchronous POST /transactions does.
func (n *Network) submit(ctx context.Context, f *txFrame) (*txRec, *rejection, error) {
	n.mu.Lock()
	r, rej, p := n.enqueueLocked(f)
	n.mu.Unlock()
	if p == nil {
		return r, rej, nil
	}
	return wait(ctx, p)
}

// enqueueLocked returns the recorded transaction if this hash already made
// it into a ledger, a rejection if it is not valid now, or its place in
// the queue.
func (n *Network) enqueueLocked(f *txFrame) (*txRec, *rejection, *pendingTx) {
	if r := n.hist.txByHash[f.hashHex()]; r != nil {
		return r, nil, nil
	}
	if p := n.pendingByID[f.hash]; p != nil {
		return nil, nil, p
	}
	lc := ledgerCtx{seq: n.hist.last().Seq + 1, closeTime: time.Now().Unix()}
	v, _ := n.validate(newOverlay(n.state), f, lc, modeSubmit, n.queuedSeq)
	if !v.ok() {
		return nil, n.reject(f, v), nil
	}
	p := &pendingTx{f: f, done: make(chan struct{})}
	n.pending = append(n.pending, p)
	n.pendingByID[f.hash] = p
	n.pendingSeqs[f.source] = f.seq
	return nil, nil, p
}

// queuedSeq is the sequence number the account will have once the
// transactions already queued for it apply, so clients can submit several
// in one ledger.
func (n *Network) queuedSeq(a *account) int64 {
	if s, ok := n.pendingSeqs[a.ID]; ok && s > a.Seq {
		return s
	}
	return a.Seq
}

func wait(ctx context.Context, p *pendingTx) (*txRec, *rejection, error) {
	t := time.NewTimer(submitTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.rec, p.rejected, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-t.C:
		return nil, nil, errTimeout
	}
}

// friendbot creates and funds addr from the root account with a real
// CreateAccount transaction, like Stellar's friendbot.
func (n *Network) friendbot(ctx context.Context, addr string) (*txRec, *rejection, error) {
	dest, err := xdr.AddressToAccountId(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("friendbot: %w", err)
	}
	n.mu.Lock()
	root := n.state.accounts[n.root.Address()]
	tx := xdr.Transaction{
		SourceAccount: xdr.MustMuxedAddress(n.root.Address()),
		Fee:           xdr.Uint32(n.cfg.BaseFee),
		SeqNum:        xdr.SequenceNumber(n.queuedSeq(root) + 1),
		Operations: []xdr.Operation{{Body: xdr.OperationBody{
			Type:            xdr.OperationTypeCreateAccount,
			CreateAccountOp: &xdr.CreateAccountOp{Destination: dest, StartingBalance: xdr.Int64(n.cfg.FriendbotAmount)},
		}}},
	}
	f, err := n.signAsRoot(tx)
	if err != nil {
		n.mu.Unlock()
		return nil, nil, err
	}
	r, rej, p := n.enqueueLocked(f)
	n.mu.Unlock()
	if p == nil {
		return r, rej, nil
	}
	return wait(ctx, p)
}

func (n *Network) signAsRoot(tx xdr.Transaction) (*txFrame, error) {
	env := xdr.TransactionEnvelope{Type: xdr.EnvelopeTypeEnvelopeTypeTx, V1: &xdr.TransactionV1Envelope{Tx: tx}}
	f, err := newFrame(env, n.cfg.NetworkPassphrase)
	if err != nil {
		return nil, fmt.Errorf("friendbot: %w", err)
	}
	sig, err := n.root.SignDecorated(f.hash[:])
	if err != nil {
		return nil, fmt.Errorf("friendbot: signing: %w", err)
	}
	env.V1.Signatures = []xdr.DecoratedSignature{sig}
	return newFrame(env, n.cfg.NetworkPassphrase)
}
