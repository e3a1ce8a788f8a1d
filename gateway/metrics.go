package gateway

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metrics holds the gateway's Prometheus metrics, written by hand in the
// text exposition format (version 0.0.4): a handful of counters and one
// histogram do not justify a client library. Labels are bounded: routes
// are patterns, never paths.
type metrics struct {
	mu       sync.Mutex
	requests map[requestKey]uint64
	duration map[string]*histogram // by route
	stored   map[string]uint64     // STOW-RS instances by outcome
	bytesIn  uint64                // STOW-RS part bytes read
	inflight int64
}

type requestKey struct {
	method, route string
	status        int
}

// durationBuckets are upper bounds in seconds.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{
		requests: map[requestKey]uint64{},
		duration: map[string]*histogram{},
		stored:   map[string]uint64{},
	}
}

func (m *metrics) observe(method, route string, status int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[requestKey{method, route, status}]++
	h := m.duration[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(durationBuckets)+1)}
		m.duration[route] = h
	}
	sec := d.Seconds()
	i, _ := slices.BinarySearch(durationBuckets, sec)
	h.counts[i]++
	h.sum += sec
	h.n++
}

func (m *metrics) addInflight(n int64) {
	m.mu.Lock()
	m.inflight += n
	m.mu.Unlock()
}

func (m *metrics) storedInstance(outcome string, bytes int64) {
	m.mu.Lock()
	m.stored[outcome]++
	if bytes > 0 {
		m.bytesIn += uint64(bytes)
	}
	m.mu.Unlock()
}

// write writes every metric in the text exposition format.
func (m *metrics) write(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder

	b.WriteString("# HELP medimint_http_requests_total HTTP requests answered, by method, route and status.\n")
	b.WriteString("# TYPE medimint_http_requests_total counter\n")
	keys := make([]requestKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b requestKey) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		if c := strings.Compare(a.method, b.method); c != 0 {
			return c
		}
		return a.status - b.status
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "medimint_http_requests_total{method=%s,route=%s,status=\"%d\"} %d\n",
			quoteLabel(k.method), quoteLabel(k.route), k.status, m.requests[k])
	}

	b.WriteString("# HELP medimint_http_request_duration_seconds Time to answer an HTTP request (streamed bodies excluded), by route.\n")
	b.WriteString("# TYPE medimint_http_request_duration_seconds histogram\n")
	routes := make([]string, 0, len(m.duration))
	for r := range m.duration {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	for _, r := range routes {
		h := m.duration[r]
		var cum uint64
		for i, ub := range durationBuckets {
			cum += h.counts[i]
			fmt.Fprintf(&b, "medimint_http_request_duration_seconds_bucket{route=%s,le=\"%s\"} %d\n", quoteLabel(r), formatFloat(ub), cum)
		}
		cum += h.counts[len(durationBuckets)]
		fmt.Fprintf(&b, "medimint_http_request_duration_seconds_bucket{route=%s,le=\"+Inf\"} %d\n", quoteLabel(r), cum)
		fmt.Fprintf(&b, "medimint_http_request_duration_seconds_sum{route=%s} %s\n", quoteLabel(r), formatFloat(h.sum))
		fmt.Fprintf(&b, "medimint_http_request_duration_seconds_count{route=%s} %d\n", quoteLabel(r), h.n)
	}

	b.WriteString("# HELP medimint_http_requests_in_flight HTTP requests being handled.\n")
	b.WriteString("# TYPE medimint_http_requests_in_flight gauge\n")
	fmt.Fprintf(&b, "medimint_http_requests_in_flight %d\n", m.inflight)

	b.WriteString("# HELP medimint_stow_instances_total Instances received over STOW-RS, by outcome.\n")
	b.WriteString("# TYPE medimint_stow_instances_total counter\n")
	outcomes := make([]string, 0, len(m.stored))
	for o := range m.stored {
		outcomes = append(outcomes, o)
	}
	slices.Sort(outcomes)
	for _, o := range outcomes {
		fmt.Fprintf(&b, "medimint_stow_instances_total{outcome=%s} %d\n", quoteLabel(o), m.stored[o])
	}
	b.WriteString("# HELP medimint_stow_bytes_total Bytes of instances stored over STOW-RS.\n")
	b.WriteString("# TYPE medimint_stow_bytes_total counter\n")
	fmt.Fprintf(&b, "medimint_stow_bytes_total %d\n", m.bytesIn)

	_, err := io.WriteString(w, b.String())
	return err
}

// quoteLabel quotes a label value as the exposition format escapes it.
func quoteLabel(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
