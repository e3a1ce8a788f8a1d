package wallet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// Stellar limits a transaction to 100 operations and 20 signatures.
const (
	MaxOperations = 100
	MaxSignatures = 20
)

// SponsorConfig configures a Sponsor.
type SponsorConfig struct {
	Network Network
	// Key is the sponsor account: it pays every fee (CAP-15 fee bumps) and
	// every reserve (CAP-33 sponsorship).
	Key *keypair.Full
	// Channels are channel accounts used as transaction sources so that
	// several transactions can be in flight at once; each keeps its own
	// sequence number. Empty: the sponsor is the only source.
	Channels []*keypair.Full
	// MaxBaseFee caps the fee per operation in stroops (default 10 000,
	// 0.001 XLM).
	MaxBaseFee int64
	// FeePercentile picks the fee from /fee_stats fee_charged: one of 10,
	// 20, …, 90, 95, 99 (default 70).
	FeePercentile int
	// TxTimeout is the validity window of each transaction (default 60s).
	// After it, an unconfirmed transaction is known never to apply.
	TxTimeout time.Duration
	// PollInterval is the wait between checks while an outcome is unknown
	// (default 1s).
	PollInterval time.Duration
	// MaxAttempts bounds rebuilds with fresh sequence numbers (default 5).
	MaxAttempts int
	Logger      *slog.Logger
}

// Sponsor holds the sponsor account and submits transactions for users who
// hold no XLM: the sponsor pays every fee and reserve.
type Sponsor struct {
	net          Network
	key          *keypair.Full
	self         chan *channel // the sponsor as a source, for bootstrapping
	pool         chan *channel
	maxFee       int64
	percentile   int
	timeout      time.Duration
	poll         time.Duration
	maxAttempts  int
	log          *slog.Logger
	channelAddrs []string
}

// channel is a transaction source account with its cached sequence number.
// Whoever holds it (taken from a pool) has exclusive use of it.
type channel struct {
	kp    *keypair.Full
	seq   int64
	known bool
}

// NewSponsor returns a Sponsor. It does not touch the network; channel
// accounts must exist on chain (CreateAccounts) before the first Submit.
func NewSponsor(cfg SponsorConfig) (*Sponsor, error) {
	if cfg.Key == nil {
		return nil, errors.New("wallet: sponsor key is required")
	}
	if cfg.Network.Passphrase == "" || cfg.Network.HorizonURL == "" {
		return nil, errors.New("wallet: sponsor needs a Horizon URL and network passphrase")
	}
	s := &Sponsor{
		net:         cfg.Network,
		key:         cfg.Key,
		maxFee:      cfg.MaxBaseFee,
		percentile:  cfg.FeePercentile,
		timeout:     cfg.TxTimeout,
		poll:        cfg.PollInterval,
		maxAttempts: cfg.MaxAttempts,
		log:         cfg.Logger,
	}
	if s.maxFee == 0 {
		s.maxFee = 10_000
	}
	if s.maxFee < txnbuild.MinBaseFee {
		return nil, fmt.Errorf("wallet: max base fee %d below the minimum %d", s.maxFee, txnbuild.MinBaseFee)
	}
	if s.percentile == 0 {
		s.percentile = 70
	}
	if _, ok := percentileOf(horizon.FeeDistribution{}, s.percentile); !ok {
		return nil, fmt.Errorf("wallet: fee percentile %d not offered by /fee_stats", s.percentile)
	}
	if s.timeout == 0 {
		s.timeout = 60 * time.Second
	}
	if s.timeout < 5*time.Second {
		return nil, fmt.Errorf("wallet: transaction timeout %v too short", s.timeout)
	}
	if s.poll == 0 {
		s.poll = time.Second
	}
	if s.maxAttempts == 0 {
		s.maxAttempts = 5
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.self = make(chan *channel, 1)
	s.self <- &channel{kp: s.key}
	if len(cfg.Channels) == 0 {
		s.pool = s.self
		return s, nil
	}
	s.pool = make(chan *channel, len(cfg.Channels))
	seen := map[string]bool{s.key.Address(): true}
	for _, kp := range cfg.Channels {
		if seen[kp.Address()] {
			return nil, fmt.Errorf("wallet: channel %s listed twice or is the sponsor", kp.Address())
		}
		seen[kp.Address()] = true
		s.pool <- &channel{kp: kp}
		s.channelAddrs = append(s.channelAddrs, kp.Address())
	}
	return s, nil
}

// Address is the sponsor account's address.
func (s *Sponsor) Address() string { return s.key.Address() }

// Network is the network the sponsor submits to.
func (s *Sponsor) Network() Network { return s.net }

// ChannelAddresses lists the channel accounts (empty when the sponsor is
// its own source).
func (s *Sponsor) ChannelAddresses() []string { return append([]string(nil), s.channelAddrs...) }

// BaseFee is the fee per operation to offer now: the configured percentile
// of the fees charged in recent ledgers (/fee_stats), at least the network's
// base fee, at most MaxBaseFee.
func (s *Sponsor) BaseFee(ctx context.Context) (int64, error) {
	fs, err := s.net.Horizon(ctx).FeeStats()
	if err != nil {
		return 0, fmt.Errorf("wallet: fee stats: %w", err)
	}
	fee, _ := percentileOf(fs.FeeCharged, s.percentile)
	fee = max(fee, fs.LastLedgerBaseFee, txnbuild.MinBaseFee)
	return min(fee, s.maxFee), nil
}

func percentileOf(d horizon.FeeDistribution, p int) (int64, bool) {
	switch p {
	case 10:
		return d.P10, true
	case 20:
		return d.P20, true
	case 30:
		return d.P30, true
	case 40:
		return d.P40, true
	case 50:
		return d.P50, true
	case 60:
		return d.P60, true
	case 70:
		return d.P70, true
	case 80:
		return d.P80, true
	case 90:
		return d.P90, true
	case 95:
		return d.P95, true
	case 99:
		return d.P99, true
	}
	return 0, false
}

// Sponsored wraps ops in a CAP-33 sandwich: the sponsor pays the reserves
// of every ledger entry the ops create for account. The closing
// EndSponsoringFutureReserves is account's, so account must sign.
func Sponsored(sponsor, account string, ops ...txnbuild.Operation) []txnbuild.Operation {
	out := make([]txnbuild.Operation, 0, len(ops)+2)
	out = append(out, &txnbuild.BeginSponsoringFutureReserves{SponsoredID: account, SourceAccount: sponsor})
	out = append(out, ops...)
	return append(out, &txnbuild.EndSponsoringFutureReserves{SourceAccount: account})
}

// CreateAccountOps creates account with a 0 XLM balance, its base reserve
// sponsored by sponsor. The new account must sign.
func CreateAccountOps(sponsor, account string) []txnbuild.Operation {
	return Sponsored(sponsor, account, &txnbuild.CreateAccount{
		Destination: account, Amount: "0", SourceAccount: sponsor,
	})
}
