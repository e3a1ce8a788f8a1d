package devnet

import (
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// BenchmarkCloseLedger measures the ledger engine without HTTP: queue
// (validation incl. ed25519 verification) and one ledger close applying
// 100 payments from distinct accounts, history rendering included.
func BenchmarkCloseLedger(b *testing.B) {
	const perLedger = 100
	n, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	kps := make([]*keypair.Full, perLedger)
	for i := range kps {
		kps[i] = keypair.MustRandom()
		n.state.accounts[kps[i].Address()] = &account{ID: kps[i].Address(), Balance: 1e15, Seq: 1 << 32, MasterWeight: 1}
	}
	dest := xdr.MustMuxedAddress(n.RootAddress())
	frames := func(round int) []*txFrame {
		out := make([]*txFrame, perLedger)
		for i, kp := range kps {
			tx := xdr.Transaction{
				SourceAccount: xdr.MustMuxedAddress(kp.Address()), Fee: 100, SeqNum: xdr.SequenceNumber(1<<32 + round + 1),
				Operations: []xdr.Operation{{Body: xdr.OperationBody{Type: xdr.OperationTypePayment,
					PaymentOp: &xdr.PaymentOp{Destination: dest, Asset: xdr.MustNewNativeAsset(), Amount: 1}}}},
			}
			env := xdr.TransactionEnvelope{Type: xdr.EnvelopeTypeEnvelopeTypeTx, V1: &xdr.TransactionV1Envelope{Tx: tx}}
			f, err := newFrame(env, n.Passphrase())
			if err != nil {
				b.Fatal(err)
			}
			sig, _ := kp.SignDecorated(f.hash[:])
			env.V1.Signatures = []xdr.DecoratedSignature{sig}
			if out[i], err = newFrame(env, n.Passphrase()); err != nil {
				b.Fatal(err)
			}
		}
		return out
	}
	b.ResetTimer()
	start := time.Now()
	var applied int
	for round := 0; round < b.N; round++ {
		b.StopTimer()
		fs := frames(round) // client-side signing is not the network's work
		b.StartTimer()
		n.mu.Lock()
		for _, f := range fs {
			if _, rej, _ := n.enqueueLocked(f); rej != nil {
				b.Fatalf("rejected: %+v", rej.codes)
			}
		}
		n.mu.Unlock()
		n.CloseLedger()
		applied += perLedger
	}
	b.ReportMetric(float64(applied)/time.Since(start).Seconds(), "tx/s")
}
