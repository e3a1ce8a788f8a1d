package devnet_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// BenchmarkSubmitPayments measures devnet's end-to-end throughput: senders
// submit signed payments concurrently through horizonclient, each waiting
// (as Horizon's POST does) for the ledger that includes it. Ledgers close
// every 2ms, so this is bound by validation, application and HTTP.
func BenchmarkSubmitPayments(b *testing.B) {
	for _, senders := range []int{1, 16, 64} {
		b.Run("senders="+itoa(int64(senders)), func(b *testing.B) {
			h := newHarness(b, devnettest.WithInterval(2*time.Millisecond))
			kps := h.fund(senders + 1)
			dest := kps[senders].Address()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for _, kp := range kps[:senders] {
				acc := h.account(kp.Address())
				wg.Add(1)
				go func(kp *keypair.Full) {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						tx := sign(b, h, h.build(&acc, []txnbuild.Operation{native("0.0000001", dest)}, nil), kp)
						if _, err := h.c.SubmitTransactionWithOptions(tx, horizonclient.SubmitTxOpts{SkipMemoRequiredCheck: true}); err != nil {
							b.Errorf("submit: %v %v", err, codes(err))
							return
						}
					}
				}(kp)
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tx/s")
		})
	}
}
