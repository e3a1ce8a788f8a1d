package devnet

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/stellar/go-stellar-sdk/support/render/hal"
	"github.com/stellar/go-stellar-sdk/toid"
	"github.com/stellar/go-stellar-sdk/xdr"
)

type scope int

const (
	scopeAll scope = iota
	scopeAccount
	scopeLedger
	scopeTx
	scopeOp
)

// paging is Horizon's paging query: cursor, order, limit (and
// include_failed for transactions, operations and payments).
type paging struct {
	cursor        string
	desc          bool
	limit         int
	includeFailed bool
}

func parsePaging(w http.ResponseWriter, q url.Values) (paging, bool) {
	pg := paging{cursor: q.Get("cursor"), limit: defaultLimit}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		pg.desc = true
	default:
		badRequest(w, "order", "order: invalid value; must be asc or desc")
		return pg, false
	}
	if l := q.Get("limit"); l != "" {
		v, err := strconv.Atoi(l)
		if err != nil || v < 1 || v > maxLimit {
			badRequest(w, "limit", fmt.Sprintf("limit: must be between 1 and %d", maxLimit))
			return pg, false
		}
		pg.limit = v
	}
	switch q.Get("include_failed") {
	case "", "false":
	case "true":
		pg.includeFailed = true
	default:
		badRequest(w, "include_failed", "include_failed: must be true or false")
		return pg, false
	}
	return pg, true
}

// view is one collection as an endpoint sees it, in paging order: entry i
// is base record idx(i).
type view struct {
	n    int
	key  func(i int) pagingKey
	rec  func(i int) (json.RawMessage, string) // JSON and paging token
	keep func(i int) bool
}

var paymentTypes = map[xdr.OperationType]bool{
	xdr.OperationTypeCreateAccount: true, xdr.OperationTypePayment: true, xdr.OperationTypeAccountMerge: true,
	xdr.OperationTypePathPaymentStrictReceive: true, xdr.OperationTypePathPaymentStrictSend: true,
}

// viewLocked builds the view for kind within scope; false means the
// scoping resource does not exist (404).
func (n *Network) viewLocked(kind string, sc scope, r *http.Request, pg paging) (view, bool) {
	h := n.hist
	// lo/hi bound the scope in TOID space; idx is an account index.
	lo, hi := pagingKey{-1 << 63, -1 << 63}, pagingKey{maxInt64, maxInt64}
	var idx []int
	switch sc {
	case scopeAccount:
		id := r.PathValue("id")
		if !strkeyAccount(id) {
			return view{}, false
		}
		switch kind {
		case "transactions":
			idx = h.txsByAcc[id]
		case "operations", "payments":
			idx = h.opsByAcc[id]
		case "effects":
			idx = h.effectByAcc[id]
		}
		if idx == nil {
			idx = []int{}
		}
	case scopeLedger:
		seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 32)
		if err != nil || h.ledger(uint32(seq)) == nil {
			return view{}, false
		}
		lo = pagingKey{toid.New(int32(seq), 0, 0).ToInt64(), 0}
		hi = pagingKey{toid.New(int32(seq+1), 0, 0).ToInt64(), 0}
	case scopeTx:
		t := h.txByHash[strings.ToLower(r.PathValue("hash"))]
		if t == nil {
			return view{}, false
		}
		lo, hi = pagingKey{t.ID, 0}, pagingKey{t.ID + 1<<12, 0}
		pg.includeFailed = true
	case scopeOp:
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || h.opByID[id] == nil {
			return view{}, false
		}
		lo, hi = pagingKey{id, 0}, pagingKey{id + 1, 0}
	}

	var v view
	var baseKey func(j int) pagingKey
	var baseN int
	switch kind {
	case "ledgers":
		baseN, baseKey = len(h.ledgers), func(j int) pagingKey { return h.ledgers[j].key() }
		v.rec = func(i int) (json.RawMessage, string) { r := h.ledgers[i]; return r.JSON, r.pt() }
	case "transactions":
		baseN, baseKey = len(h.txs), func(j int) pagingKey { return h.txs[j].key() }
		v.rec = func(i int) (json.RawMessage, string) { r := h.txs[i]; return r.JSON, r.pt() }
		v.keep = func(i int) bool { return pg.includeFailed || h.txs[i].Successful }
	case "operations", "payments":
		baseN, baseKey = len(h.ops), func(j int) pagingKey { return h.ops[j].key() }
		v.rec = func(i int) (json.RawMessage, string) { r := h.ops[i]; return r.JSON, r.pt() }
		payments := kind == "payments"
		v.keep = func(i int) bool {
			o := h.ops[i]
			return (pg.includeFailed || o.Successful) && (!payments || paymentTypes[o.Type])
		}
	case "effects":
		baseN, baseKey = len(h.effects), func(j int) pagingKey { return h.effects[j].key() }
		v.rec = func(i int) (json.RawMessage, string) { r := h.effects[i]; return r.JSON, r.pt() }
	}

	// Map view positions to base records.
	if idx != nil {
		v.n = len(idx)
		v.key = func(i int) pagingKey { return baseKey(idx[i]) }
		rec, keep := v.rec, v.keep
		v.rec = func(i int) (json.RawMessage, string) { return rec(idx[i]) }
		if keep != nil {
			v.keep = func(i int) bool { return keep(idx[i]) }
		}
		return v, true
	}
	start := sort.Search(baseN, func(j int) bool { return !baseKey(j).less(lo) })
	end := sort.Search(baseN, func(j int) bool { return !baseKey(j).less(hi) })
	v.n = end - start
	v.key = func(i int) pagingKey { return baseKey(start + i) }
	rec, keep := v.rec, v.keep
	v.rec = func(i int) (json.RawMessage, string) { return rec(start + i) }
	if keep != nil {
		v.keep = func(i int) bool { return keep(start + i) }
	}
	return v, true
}

func strkeyAccount(id string) bool {
	_, err := xdr.AddressToAccountId(id)
	return err == nil
}

// parseCursor turns a paging token into a key. "now" is the end of the
// last closed ledger, so streams from it only see what comes next.
func (n *Network) parseCursorLocked(c string) (pagingKey, bool, error) {
	switch {
	case c == "":
		return pagingKey{}, false, nil
	case c == "now":
		return pagingKey{toid.New(int32(n.hist.last().Seq+1), 0, 0).ToInt64() - 1, maxInt64}, true, nil
	}
	a, b, isEffect := strings.Cut(c, "-")
	k0, err := strconv.ParseInt(a, 10, 64)
	if err != nil || k0 < 0 {
		return pagingKey{}, false, fmt.Errorf("invalid cursor %q", c)
	}
	k := pagingKey{k0, 0}
	if isEffect {
		if k[1], err = strconv.ParseInt(b, 10, 64); err != nil {
			return pagingKey{}, false, fmt.Errorf("invalid cursor %q", c)
		}
	}
	return k, true, nil
}

// collect returns up to limit records after (asc) or before (desc) the
// cursor, with their paging keys.
func (v view) collect(cur pagingKey, hasCursor, desc bool, limit int) (recs []json.RawMessage, pts []string, keys []pagingKey) {
	add := func(i int) bool {
		if v.keep != nil && !v.keep(i) {
			return true
		}
		raw, pt := v.rec(i)
		recs, pts, keys = append(recs, raw), append(pts, pt), append(keys, v.key(i))
		return len(recs) < limit
	}
	if !desc {
		i := 0
		if hasCursor {
			i = sort.Search(v.n, func(i int) bool { return cur.less(v.key(i)) })
		}
		for ; i < v.n && add(i); i++ {
		}
		return
	}
	i := v.n - 1
	if hasCursor {
		i = sort.Search(v.n, func(i int) bool { return !v.key(i).less(cur) }) - 1
	}
	for ; i >= 0 && add(i); i-- {
	}
	return
}

// halPage is a Horizon collection page.
type halPage struct {
	Links    hal.Links `json:"_links"`
	Embedded struct {
		Records []json.RawMessage `json:"records"`
	} `json:"_embedded"`
}

func pageJSON(r *http.Request, pg paging, recs []json.RawMessage, pts []string) json.RawMessage {
	order, inverse := "asc", "desc"
	if pg.desc {
		order, inverse = "desc", "asc"
	}
	href := func(cursor, order string) hal.Link {
		q := r.URL.Query()
		q.Set("cursor", cursor)
		q.Set("limit", strconv.Itoa(pg.limit))
		q.Set("order", order)
		return hal.Link{Href: r.URL.Path + "?" + q.Encode()}
	}
	var p halPage
	p.Embedded.Records = recs
	if p.Embedded.Records == nil {
		p.Embedded.Records = []json.RawMessage{}
	}
	p.Links.Self = href(pg.cursor, order)
	next, prev := pg.cursor, pg.cursor
	if len(pts) > 0 {
		next, prev = pts[len(pts)-1], pts[0]
	}
	p.Links.Next = href(next, order)
	p.Links.Prev = href(prev, inverse)
	return marshal(p)
}

func wantsStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// collection serves a pageable, streamable collection.
func (n *Network) collection(kind string, sc scope) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pg, ok := parsePaging(w, r.URL.Query())
		if !ok {
			return
		}
		if wantsStream(r) {
			if id := r.Header.Get("Last-Event-ID"); id != "" {
				pg.cursor = id
			}
			n.stream(w, r, kind, sc, pg)
			return
		}
		n.mu.Lock()
		v, found := n.viewLocked(kind, sc, r, pg)
		cur, hasCursor, err := n.parseCursorLocked(pg.cursor)
		var recs []json.RawMessage
		var pts []string
		if found && err == nil {
			recs, pts, _ = v.collect(cur, hasCursor, pg.desc, pg.limit)
		}
		n.mu.Unlock()
		switch {
		case !found:
			notFound(w)
		case err != nil:
			badRequest(w, "cursor", err.Error())
		default:
			writeJSON(w, r, http.StatusOK, pageJSON(r, pg, recs, pts))
		}
	}
}

// stream serves Server-Sent Events as Horizon does: a hello event carrying
// the retry interval, then one event per record (id = paging token),
// pushing new records as ledgers close until the client goes away.
// Unlike Horizon it also writes an SSE comment after each ledger that
// brought nothing new.
func (n *Network) stream(w http.ResponseWriter, r *http.Request, kind string, sc scope, pg paging) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeProblem(w, problem{Type: problemBase + "server_error", Title: "Internal Server Error", Status: 500, Detail: "streaming unsupported"})
		return
	}
	n.mu.Lock()
	_, found := n.viewLocked(kind, sc, r, pg)
	cur, hasCursor, err := n.parseCursorLocked(pg.cursor)
	n.mu.Unlock()
	switch {
	case !found:
		notFound(w)
		return
	case err != nil:
		badRequest(w, "cursor", err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: %d\nevent: open\ndata: \"hello\"\n\n", sseRetryMS)
	flusher.Flush()
	base := baseURL(r)
	first := true
	for {
		n.mu.Lock()
		v, _ := n.viewLocked(kind, sc, r, pg)
		recs, pts, keys := v.collect(cur, hasCursor, false, maxLimit)
		closed := n.closed
		n.mu.Unlock()
		for i, raw := range recs {
			if _, err := fmt.Fprintf(w, "id: %s\ndata: %s\n\n", pts[i], absolutize(raw, base)); err != nil {
				return
			}
			cur, hasCursor = keys[i], true
		}
		if len(recs) == 0 && !first {
			// A comment per quiet ledger: clients ignore it, but it lets
			// them notice their own cancellation (horizonclient only checks
			// between lines) and lets us notice a vanished client.
			if _, err := io.WriteString(w, ": ledger closed\n\n"); err != nil {
				return
			}
		}
		first = false
		flusher.Flush()
		if len(recs) == maxLimit {
			continue
		}
		select {
		case <-closed:
		case <-r.Context().Done():
			return
		}
	}
}
