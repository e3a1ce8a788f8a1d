// Package devnettest runs a devnet Network on an httptest server for tests
// in other packages: short ledger interval, cleaned up with the test.
package devnettest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/medimint/medimint/devnet"
)

// Option adjusts the devnet configuration.
type Option func(*devnet.Config)

// WithInterval sets the ledger close interval (default 20ms).
func WithInterval(d time.Duration) Option { return func(c *devnet.Config) { c.LedgerInterval = d } }

// WithStatePath persists the network to path.
func WithStatePath(path string) Option { return func(c *devnet.Config) { c.StatePath = path } }

// WithConfig edits the whole configuration.
func WithConfig(f func(*devnet.Config)) Option { return Option(f) }

// Start runs a devnet with its Horizon API on a loopback httptest server
// and returns the Horizon URL and the network. Everything stops (and a
// configured state file is written) when the test ends.
func Start(t testing.TB, opts ...Option) (horizonURL string, n *devnet.Network) {
	t.Helper()
	cfg := devnet.Config{LedgerInterval: 20 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	n, err := devnet.New(cfg)
	if err != nil {
		t.Fatalf("devnettest: %v", err)
	}
	srv := httptest.NewServer(n.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		// Streams stay open until their clients leave; drop them first.
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("devnettest: devnet run: %v", err)
		}
	})
	return srv.URL, n
}
