package chain

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/medimint/medimint/devnet"
	"github.com/medimint/medimint/devnet/devnettest"
	"github.com/medimint/medimint/wallet"
)

// BenchmarkMinter measures studies minted per minute by the whole worker
// (outbox claim, patient accounts, build, fee-bumped submission,
// confirmation, records) on a devnet closing a ledger every second, as
// testnet/pubnet do every ~5 s. One op is one study; at least 200 are
// minted per run so that the rate means something:
//
//	go test -run '^$' -bench Minter -benchtime 600x ./mint/chain/
func BenchmarkMinter(b *testing.B) {
	mixes := []struct {
		name       string
		perPatient int
	}{
		{"new-patient-per-study", 1},
		{"3-studies-per-patient", 3},
	}
	for _, channels := range []int{1, 4} {
		for _, mix := range mixes {
			b.Run(fmt.Sprintf("channels=%d/%s", channels, mix.name), func(b *testing.B) {
				w := newWorld(b, channels, time.Second)
				n := max(b.N, 200)
				ref := ""
				for i := range n {
					if i%mix.perPatient == 0 {
						ref = randomRef()
					}
					w.queue(job(ref, int64(i)))
				}
				m := w.minter(MinterConfig{Poll: 50 * time.Millisecond})
				ctx, cancel := context.WithCancel(w.ctx)
				done := make(chan struct{})
				b.ResetTimer()
				start := time.Now()
				go func() { m.Run(ctx); close(done) }()
				for w.pendingMints() > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				cancel()
				<-done
				var txs int
				if err := w.pool.QueryRow(w.ctx, `SELECT count(DISTINCT tx_hash) FROM minted_records`).Scan(&txs); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n)/elapsed.Minutes(), "studies/min")
				b.ReportMetric(float64(n)/float64(txs), "studies/tx")
			})
		}
	}
}

// BenchmarkDevnetTxPerSecond measures the devnet itself: plain
// transactions (a no-op BumpSequence each, signed by its own funded
// account) submitted by many accounts in parallel, at 1 s ledgers (what a
// ledger holds) and at 20 ms ledgers (CPU-bound).
func BenchmarkDevnetTxPerSecond(b *testing.B) {
	for _, tc := range []struct {
		interval time.Duration
		accounts int
	}{{time.Second, 400}, {20 * time.Millisecond, 32}} {
		b.Run(fmt.Sprintf("ledger=%v/accounts=%d", tc.interval, tc.accounts), func(b *testing.B) {
			ctx := context.Background()
			url, dn := devnettest.Start(b, devnettest.WithInterval(tc.interval), devnettest.WithConfig(func(c *devnet.Config) { c.Logger = quiet }))
			net := wallet.Network{HorizonURL: url, Passphrase: dn.Passphrase(), FriendbotURL: url + "/friendbot"}
			funder := keypair.MustRandom()
			if err := net.Fund(ctx, funder.Address()); err != nil {
				b.Fatal(err)
			}
			fs, err := wallet.NewSponsor(wallet.SponsorConfig{Network: net, Key: funder, PollInterval: 20 * time.Millisecond, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			accts := make([]*keypair.Full, tc.accounts)
			for i := range accts {
				accts[i] = keypair.MustRandom()
			}
			for i := 0; i < len(accts); i += 100 {
				var ops []txnbuild.Operation
				for _, a := range accts[i:min(i+100, len(accts))] {
					ops = append(ops, &txnbuild.CreateAccount{SourceAccount: funder.Address(), Destination: a.Address(), Amount: "10"})
				}
				if _, err := fs.Submit(ctx, wallet.Submission{Operations: ops}); err != nil {
					b.Fatal(err)
				}
			}
			hz := net.Horizon(ctx)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for _, a := range accts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					acc, err := hz.AccountDetail(horizonclient.AccountRequest{AccountID: a.Address()})
					if err != nil {
						b.Error(err)
						return
					}
					src := txnbuild.SimpleAccount{AccountID: a.Address(), Sequence: acc.Sequence}
					for next.Add(1) <= int64(b.N) {
						tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{SourceAccount: &src, IncrementSequenceNum: true,
							Operations: []txnbuild.Operation{&txnbuild.BumpSequence{BumpTo: 0}}, BaseFee: txnbuild.MinBaseFee,
							Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(60)}})
						if err == nil {
							tx, err = tx.Sign(net.Passphrase, a)
						}
						if err == nil {
							_, err = hz.SubmitTransactionWithOptions(tx, horizonclient.SubmitTxOpts{SkipMemoRequiredCheck: true})
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tx/s")
		})
	}
}
