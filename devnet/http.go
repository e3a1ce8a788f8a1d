package devnet

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stellar/go-stellar-sdk/amount"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/strkey"
	"github.com/stellar/go-stellar-sdk/support/render/hal"
	"github.com/stellar/go-stellar-sdk/toid"
	"github.com/stellar/go-stellar-sdk/xdr"
)

const (
	defaultLimit = 10
	maxLimit     = 200
	problemBase  = "https://stellar.org/horizon-errors/"
	sseRetryMS   = 1000
)

// Handler serves Horizon's REST API for this network, plus friendbot.
func (n *Network) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", n.serveRoot)
	mux.HandleFunc("GET /friendbot", n.serveFriendbot)
	mux.HandleFunc("POST /friendbot", n.serveFriendbot)
	mux.HandleFunc("POST /transactions", n.serveSubmit)
	mux.HandleFunc("GET /fee_stats", n.serveFeeStats)

	mux.HandleFunc("GET /accounts/{id}", n.serveAccount)
	mux.HandleFunc("GET /accounts/{id}/data/{key}", n.serveAccountData)
	mux.HandleFunc("GET /transactions/{hash}", n.serveTransaction)
	mux.HandleFunc("GET /operations/{id}", n.serveOperation)
	mux.HandleFunc("GET /ledgers/{seq}", n.serveLedger)
	mux.HandleFunc("GET /claimable_balances/{id}", n.serveClaimableBalance)
	mux.HandleFunc("GET /claimable_balances", n.serveClaimableBalances)

	// Collections, each pageable and streamable.
	for _, kind := range []string{"transactions", "operations", "payments", "effects"} {
		mux.HandleFunc("GET /"+kind, n.collection(kind, scopeAll))
		mux.HandleFunc("GET /accounts/{id}/"+kind, n.collection(kind, scopeAccount))
		mux.HandleFunc("GET /ledgers/{seq}/"+kind, n.collection(kind, scopeLedger))
	}
	mux.HandleFunc("GET /ledgers", n.collection("ledgers", scopeAll))
	mux.HandleFunc("GET /transactions/{hash}/operations", n.collection("operations", scopeTx))
	mux.HandleFunc("GET /transactions/{hash}/payments", n.collection("payments", scopeTx))
	mux.HandleFunc("GET /transactions/{hash}/effects", n.collection("effects", scopeTx))
	mux.HandleFunc("GET /operations/{id}/effects", n.collection("effects", scopeOp))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	return cors(mux)
}

// cors allows browsers (the portal, stellar-sdk in JS) to call us from any
// origin, as Horizon does.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "Date, Latest-Ledger")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			if hdrs := r.Header.Get("Access-Control-Request-Headers"); hdrs != "" {
				h.Set("Access-Control-Allow-Headers", hdrs)
			}
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// baseURL is how the client reached us; links are absolute, as Horizon's.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

// absolutize turns our stored root-relative links into absolute ones.
func absolutize(raw []byte, base string) []byte {
	return bytes.ReplaceAll(raw, []byte(`"href":"/`), []byte(`"href":"`+base+`/`))
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, raw []byte) {
	w.Header().Set("Content-Type", "application/hal+json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(absolutize(raw, baseURL(r)))
}

// problem is Horizon's RFC 7807 error document.
type problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Extras map[string]any `json:"extras,omitempty"`
}

func writeProblem(w http.ResponseWriter, p problem) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(p.Status)
	w.Write(marshal(p))
}

func notFound(w http.ResponseWriter) {
	writeProblem(w, problem{
		Type: problemBase + "not_found", Title: "Resource Missing", Status: http.StatusNotFound,
		Detail: "The resource at the url requested was not found.  This usually occurs for one of two reasons:  " +
			"The url requested is not valid, or no data in our database could be found with the parameters provided.",
	})
}

func badRequest(w http.ResponseWriter, field, reason string) {
	writeProblem(w, problem{
		Type: problemBase + "bad_request", Title: "Bad Request", Status: http.StatusBadRequest,
		Detail: "The request you sent was invalid in some way.",
		Extras: map[string]any{"invalid_field": field, "reason": reason},
	})
}

func txFailed(w http.ResponseWriter, envB64, resultB64 string, codes resultCodes) {
	writeProblem(w, problem{
		Type: problemBase + "transaction_failed", Title: "Transaction Failed", Status: http.StatusBadRequest,
		Detail: "The transaction failed when submitted to the stellar network. The `extras.result_codes` field on this " +
			"response contains further details.  Descriptions of each code can be found at: " +
			"https://developers.stellar.org/docs/data/apis/horizon/api-reference/errors/http-status-codes/horizon-specific/transaction-failed",
		Extras: map[string]any{"envelope_xdr": envB64, "result_xdr": resultB64, "result_codes": codes},
	})
}

func (n *Network) serveRoot(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	last := n.hist.last()
	elder := n.hist.ledgers[0].Seq
	n.mu.Unlock()
	var root horizon.Root
	l := &root.Links
	l.Account = link("/accounts/{account_id}")
	l.Accounts = ptr(link("/accounts{?signer,sponsor,asset,liquidity_pool,cursor,limit,order}"))
	l.AccountTransactions = link("/accounts/{account_id}/transactions{?cursor,limit,order}")
	l.ClaimableBalances = ptr(link("/claimable_balances{?asset,sponsor,claimant,cursor,limit,order}"))
	l.Assets = link("/assets{?asset_code,asset_issuer,cursor,limit,order}")
	l.Effects = link("/effects{?cursor,limit,order}")
	l.FeeStats = link("/fee_stats")
	l.Friendbot = ptr(link("/friendbot{?addr}"))
	l.Ledger = link("/ledgers/{sequence}")
	l.Ledgers = link("/ledgers{?cursor,limit,order}")
	l.Operation = link("/operations/{id}")
	l.Operations = link("/operations{?cursor,limit,order,include_failed}")
	l.OrderBook = link("/order_book{?selling_asset_type,selling_asset_code,selling_asset_issuer,buying_asset_type,buying_asset_code,buying_asset_issuer,limit}")
	l.Payments = link("/payments{?cursor,limit,order,include_failed}")
	l.Self = link("/")
	l.TradeAggregations = link("/trade_aggregations?base_asset_type={base_asset_type}&counter_asset_type={counter_asset_type}")
	l.Trades = link("/trades?base_asset_type={base_asset_type}&counter_asset_type={counter_asset_type}")
	l.Transaction = link("/transactions/{hash}")
	l.Transactions = link("/transactions{?cursor,limit,order}")
	root.HorizonVersion = "medimint-devnet"
	root.StellarCoreVersion = "medimint-devnet (no stellar-core)"
	root.IngestSequence = last.Seq
	root.HorizonSequence = int32(last.Seq)
	root.HorizonLatestClosedAt = time.Unix(last.CloseTime, 0).UTC()
	root.HistoryElderSequence = int32(elder)
	root.CoreSequence = int32(last.Seq)
	root.NetworkPassphrase = n.cfg.NetworkPassphrase
	root.CurrentProtocolVersion = protocolVersion
	root.SupportedProtocolVersion = protocolVersion
	root.CoreSupportedProtocolVersion = protocolVersion
	writeJSON(w, r, http.StatusOK, marshal(root))
}

func ptr[T any](v T) *T { return &v }

func (n *Network) serveSubmit(w http.ResponseWriter, r *http.Request) {
	envB64 := r.PostFormValue("tx")
	if envB64 == "" {
		badRequest(w, "tx", "Transaction envelope is required")
		return
	}
	f, err := decodeFrame(envB64, n.cfg.NetworkPassphrase)
	if err != nil {
		writeProblem(w, problem{
			Type: problemBase + "transaction_malformed", Title: "Transaction Malformed", Status: http.StatusBadRequest,
			Detail: "Horizon could not decode the transaction envelope in this request. A transaction should be an " +
				"XDR-encoded `TransactionEnvelope` struct, which is then base64-encoded.",
			Extras: map[string]any{"envelope_xdr": envB64, "error": err.Error()},
		})
		return
	}
	rec, rej, err := n.submit(r.Context(), f)
	n.respondSubmission(w, r, rec, rej, err)
}

func (n *Network) respondSubmission(w http.ResponseWriter, r *http.Request, rec *txRec, rej *rejection, err error) {
	switch {
	case errors.Is(err, errTimeout):
		writeProblem(w, problem{
			Type: problemBase + "timeout", Title: "Timeout", Status: http.StatusGatewayTimeout,
			Detail: "Your request timed out before completing.  Please try your request again. If you are submitting a " +
				"transaction make sure you are sending exactly the same transaction (with the same sequence number).",
		})
	case err != nil:
		// The client went away; nothing useful can be written.
		n.log.Debug("transaction submission abandoned", "err", err)
	case rej != nil:
		res, encErr := xdr.MarshalBase64(rej.result)
		if encErr != nil {
			n.log.Error("encoding transaction result", "err", encErr)
		}
		txFailed(w, rej.f.envB64, res, rej.codes)
	case !rec.Successful:
		txFailed(w, rec.EnvelopeXDR, rec.ResultXDR, rec.Codes)
	default:
		writeJSON(w, r, http.StatusOK, rec.JSON)
	}
}

func (n *Network) serveFriendbot(w http.ResponseWriter, r *http.Request) {
	addr := r.FormValue("addr")
	if !strkey.IsValidEd25519PublicKey(addr) {
		badRequest(w, "addr", "addr must be a valid G... account address")
		return
	}
	rec, rej, err := n.friendbot(r.Context(), addr)
	if err != nil && !errors.Is(err, errTimeout) {
		writeProblem(w, problem{Type: problemBase + "server_error", Title: "Internal Server Error", Status: 500, Detail: err.Error()})
		return
	}
	n.respondSubmission(w, r, rec, rej, err)
}

func (n *Network) serveAccount(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	raw, ok := n.accountJSONLocked(r.PathValue("id"))
	n.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, r, http.StatusOK, raw)
}

func (n *Network) closeTimeLocked(seq uint32) *time.Time {
	if l := n.hist.ledger(seq); l != nil {
		t := time.Unix(l.CloseTime, 0).UTC()
		return &t
	}
	return nil
}

// accountJSONLocked renders the account resource from the current state.
func (n *Network) accountJSONLocked(id string) (json.RawMessage, bool) {
	a := n.state.accounts[id]
	if a == nil {
		return nil, false
	}
	h := horizon.Account{
		ID: id, AccountID: id, Sequence: a.Seq, SequenceLedger: a.SeqLedger, SubentryCount: int32(a.NumSubEntries),
		HomeDomain: a.HomeDomain, LastModifiedLedger: a.LastModified, LastModifiedTime: n.closeTimeLocked(a.LastModified),
		Thresholds:    horizon.AccountThresholds{LowThreshold: byte(a.Low), MedThreshold: byte(a.Med), HighThreshold: byte(a.High)},
		NumSponsoring: a.NumSponsoring, NumSponsored: a.NumSponsored, Sponsor: a.Sponsor, PT: id,
		Data: map[string]string{},
		Flags: horizon.AccountFlags{
			AuthRequired: a.Flags&flagAuthRequired != 0, AuthRevocable: a.Flags&flagAuthRevocable != 0,
			AuthImmutable: a.Flags&flagAuthImmutable != 0, AuthClawbackEnabled: a.Flags&flagAuthClawbackEnabled != 0,
		},
	}
	if a.SeqTime != 0 {
		h.SequenceTime = strconv.FormatInt(a.SeqTime, 10)
	}
	var lines []*trustline
	for _, t := range n.state.linesOf[id] {
		lines = append(lines, t)
	}
	slices.SortFunc(lines, func(x, y *trustline) int {
		return cmp.Or(cmp.Compare(x.Asset.horizonType(), y.Asset.horizonType()), cmp.Compare(x.Asset.Code, y.Asset.Code), cmp.Compare(x.Asset.Issuer, y.Asset.Issuer))
	})
	for _, t := range lines {
		auth, maintain, clawback := t.authorized(), t.Flags&tlAuthorizedToMaintainLiabs != 0, t.Flags&tlClawbackEnabled != 0
		b := horizon.Balance{
			Balance: amount.StringFromInt64(t.Balance), Limit: amount.StringFromInt64(t.Limit),
			BuyingLiabilities: "0.0000000", SellingLiabilities: "0.0000000", Sponsor: t.Sponsor,
			LastModifiedLedger: t.LastModified, IsAuthorized: &auth, IsAuthorizedToMaintainLiabilities: &maintain,
			Asset: t.Asset.horizon(),
		}
		if clawback {
			b.IsClawbackEnabled = &clawback
		}
		h.Balances = append(h.Balances, b)
	}
	h.Balances = append(h.Balances, horizon.Balance{
		Balance: amount.StringFromInt64(a.Balance), BuyingLiabilities: "0.0000000", SellingLiabilities: "0.0000000",
		Asset: nativeAsset(),
	})
	for _, s := range a.Signers {
		h.Signers = append(h.Signers, horizon.Signer{Weight: int32(s.Weight), Key: s.Key, Type: horizon.MustKeyTypeFromAddress(s.Key), Sponsor: s.Sponsor})
	}
	h.Signers = append(h.Signers, horizon.Signer{Weight: int32(a.MasterWeight), Key: id, Type: "ed25519_public_key"})
	for _, d := range n.state.dataOf[id] {
		h.Data[d.Name] = base64.StdEncoding.EncodeToString(d.Value)
	}
	h.Links.Self = link("/accounts/%s", id)
	h.Links.Transactions = link("/accounts/%s/transactions%s", id, hal.StandardPagingOptions)
	h.Links.Operations = link("/accounts/%s/operations%s", id, hal.StandardPagingOptions)
	h.Links.Payments = link("/accounts/%s/payments%s", id, hal.StandardPagingOptions)
	h.Links.Effects = link("/accounts/%s/effects%s", id, hal.StandardPagingOptions)
	h.Links.Offers = link("/accounts/%s/offers%s", id, hal.StandardPagingOptions)
	h.Links.Trades = link("/accounts/%s/trades%s", id, hal.StandardPagingOptions)
	h.Links.Data = link("/accounts/%s/data/{key}", id)
	return marshal(h), true
}

func (n *Network) serveAccountData(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	d := n.state.data[dataKey(r.PathValue("id"), r.PathValue("key"))]
	n.mu.Unlock()
	if d == nil {
		notFound(w)
		return
	}
	writeJSON(w, r, http.StatusOK, marshal(horizon.AccountData{Value: base64.StdEncoding.EncodeToString(d.Value), Sponsor: d.Sponsor}))
}

func (n *Network) serveTransaction(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	rec := n.hist.txByHash[strings.ToLower(r.PathValue("hash"))]
	n.mu.Unlock()
	if rec == nil {
		notFound(w)
		return
	}
	writeJSON(w, r, http.StatusOK, rec.JSON)
}

func (n *Network) serveOperation(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		badRequest(w, "id", "id must be an operation id")
		return
	}
	n.mu.Lock()
	rec := n.hist.opByID[id]
	n.mu.Unlock()
	if rec == nil {
		notFound(w)
		return
	}
	writeJSON(w, r, http.StatusOK, rec.JSON)
}

func (n *Network) serveLedger(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 32)
	if err != nil {
		badRequest(w, "sequence", "sequence must be a ledger number")
		return
	}
	n.mu.Lock()
	l := n.hist.ledger(uint32(seq))
	n.mu.Unlock()
	if l == nil {
		notFound(w)
		return
	}
	writeJSON(w, r, http.StatusOK, l.JSON)
}

// serveFeeStats summarizes fees per operation over the last five ledgers,
// as Horizon does; with no traffic every figure is the base fee.
func (n *Network) serveFeeStats(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	last := n.hist.last()
	from := toid.New(int32(max(int64(last.Seq)-4, 1)), 0, 0).ToInt64()
	var charged, offered []int64
	var ops int64
	for i := len(n.hist.txs) - 1; i >= 0 && n.hist.txs[i].ID >= from; i-- {
		t := n.hist.txs[i]
		nOps := int64(max(t.NumOps, 1))
		charged = append(charged, t.FeeCharged/nOps)
		offered = append(offered, t.MaxFee/nOps)
		if t.Ledger == last.Seq {
			ops += int64(t.NumOps)
		}
	}
	n.mu.Unlock()
	fs := horizon.FeeStats{
		LastLedger: last.Seq, LastLedgerBaseFee: n.cfg.BaseFee,
		LedgerCapacityUsage: math.Round(float64(ops)/maxTxSetSize*100) / 100,
		FeeCharged:          distribution(charged, n.cfg.BaseFee),
		MaxFee:              distribution(offered, n.cfg.BaseFee),
	}
	writeJSON(w, r, http.StatusOK, marshal(fs))
}

func distribution(v []int64, baseFee int64) horizon.FeeDistribution {
	if len(v) == 0 {
		v = []int64{baseFee}
	}
	slices.Sort(v)
	// Nearest-rank percentiles.
	p := func(q int) int64 { return v[max(0, min(len(v)-1, (len(v)*q+99)/100-1))] }
	counts := map[int64]int{}
	mode := v[0]
	for _, x := range v {
		counts[x]++
		if counts[x] > counts[mode] || counts[x] == counts[mode] && x < mode {
			mode = x
		}
	}
	return horizon.FeeDistribution{
		Max: v[len(v)-1], Min: v[0], Mode: mode, P10: p(10), P20: p(20), P30: p(30), P40: p(40), P50: p(50),
		P60: p(60), P70: p(70), P80: p(80), P90: p(90), P95: p(95), P99: p(99),
	}
}

// claimableBalanceJSONLocked renders a claimable balance resource.
func (n *Network) claimableBalanceJSONLocked(b *claimableBalance) json.RawMessage {
	cb := horizon.ClaimableBalance{
		BalanceID: b.ID, Asset: b.Asset.canonical(), Amount: amount.StringFromInt64(b.Amount), Sponsor: b.Sponsor,
		LastModifiedLedger: b.LastModified, LastModifiedTime: n.closeTimeLocked(b.LastModified),
		Flags: horizon.ClaimableBalanceFlags{ClawbackEnabled: b.Flags&claimableBalanceClawbackFlag != 0},
		PT:    cbPT(b),
	}
	for _, c := range b.Claimants {
		cb.Claimants = append(cb.Claimants, horizon.Claimant{Destination: c.Destination, Predicate: c.Predicate})
	}
	cb.Links.Self = link("/claimable_balances/%s", b.ID)
	cb.Links.Transactions = link("/claimable_balances/%s/transactions%s", b.ID, hal.StandardPagingOptions)
	cb.Links.Operations = link("/claimable_balances/%s/operations%s", b.ID, hal.StandardPagingOptions)
	return marshal(cb)
}

func cbPT(b *claimableBalance) string { return fmt.Sprintf("%d-%s", b.LastModified, b.ID) }

// normalizeBalanceID accepts the hex id Horizon shows and the B... strkey.
func normalizeBalanceID(s string) string {
	if strings.HasPrefix(s, "B") {
		var id xdr.ClaimableBalanceId
		if err := id.DecodeFromStrkey(s); err == nil {
			return balanceIDHex(id)
		}
	}
	return strings.ToLower(s)
}

func (n *Network) serveClaimableBalance(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.state.balances[normalizeBalanceID(r.PathValue("id"))]
	if b == nil {
		notFound(w)
		return
	}
	writeJSON(w, r, http.StatusOK, n.claimableBalanceJSONLocked(b))
}

func (n *Network) serveClaimableBalances(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pg, ok := parsePaging(w, q)
	if !ok {
		return
	}
	claimantF, sponsorF, assetF := q.Get("claimant"), q.Get("sponsor"), q.Get("asset")
	n.mu.Lock()
	var list []*claimableBalance
	for _, b := range n.state.balances {
		if sponsorF != "" && b.Sponsor != sponsorF || assetF != "" && b.Asset.canonical() != assetF {
			continue
		}
		if claimantF != "" && !slices.ContainsFunc(b.Claimants, func(c claimant) bool { return c.Destination == claimantF }) {
			continue
		}
		list = append(list, b)
	}
	order := func(x, y *claimableBalance) int {
		return cmp.Or(cmp.Compare(x.LastModified, y.LastModified), cmp.Compare(x.ID, y.ID))
	}
	slices.SortFunc(list, order)
	if pg.desc {
		slices.Reverse(list)
	}
	var recs []json.RawMessage
	var pts []string
	for _, b := range list {
		if pg.cursor != "" {
			lm, id, _ := strings.Cut(pg.cursor, "-")
			lmN, _ := strconv.ParseUint(lm, 10, 32)
			c := order(b, &claimableBalance{LastModified: uint32(lmN), ID: id})
			if !pg.desc && c <= 0 || pg.desc && c >= 0 {
				continue
			}
		}
		if len(recs) == pg.limit {
			break
		}
		recs = append(recs, n.claimableBalanceJSONLocked(b))
		pts = append(pts, cbPT(b))
	}
	n.mu.Unlock()
	writeJSON(w, r, http.StatusOK, pageJSON(r, pg, recs, pts))
}
