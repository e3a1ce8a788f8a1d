package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/medimint/medimint/contracts"
	"github.com/medimint/medimint/wallet"
)

// SEP-5 indexes of the roles wallet does not define (it has the sponsor,
// the issuer, channels from 100 and users from 1000).
const (
	RegistryIndex     uint32 = 2
	GovernorIndexBase uint32 = 10 // governor k at 10+k
	MaxGovernors             = 20
)

// Defaults of a bootstrap.
const (
	DefaultChannels  = 4
	DefaultGovernors = 3
	DefaultThreshold = 2
)

// Roles are the organisation's own keys, all derived from the master seed.
type Roles struct {
	Sponsor   *keypair.Full
	Issuer    *keypair.Full
	Registry  *keypair.Full
	Governors []*keypair.Full
	Channels  []*keypair.Full
}

// DeriveRoles derives the role keys (no network access).
func DeriveRoles(ctx context.Context, c *wallet.Custodian, channels, governors int) (Roles, error) {
	if channels < 0 || channels > int(wallet.MaxChannels) {
		return Roles{}, fmt.Errorf("chain: %d channels, want 0..%d", channels, wallet.MaxChannels)
	}
	if governors < 1 || governors > MaxGovernors {
		return Roles{}, fmt.Errorf("chain: %d governors, want 1..%d", governors, MaxGovernors)
	}
	idx := []uint32{wallet.SponsorIndex, wallet.IssuerIndex, RegistryIndex}
	for k := range governors {
		idx = append(idx, GovernorIndexBase+uint32(k))
	}
	for k := range channels {
		idx = append(idx, wallet.ChannelIndexBase+uint32(k))
	}
	kps, err := c.Accounts(ctx, idx...)
	if err != nil {
		return Roles{}, err
	}
	return Roles{Sponsor: kps[0], Issuer: kps[1], Registry: kps[2],
		Governors: kps[3 : 3+governors], Channels: kps[3+governors:]}, nil
}

// BootstrapConfig configures Bootstrap.
type BootstrapConfig struct {
	Network   wallet.Network
	Custodian *wallet.Custodian
	// HomeDomain is the organisation's domain: the issuer's home_domain
	// and its listing in the registry (1-32 bytes).
	HomeDomain string
	Channels   int   // channel accounts (default DefaultChannels)
	Governors  int   // registry governors (default DefaultGovernors)
	Threshold  uint8 // governors needed to change the registry (default DefaultThreshold)
	// Pool, when set, records the deployment in chain_deployments.
	Pool *pgxpool.Pool
	// TxTimeout and PollInterval tune the sponsor (wallet.SponsorConfig).
	TxTimeout    time.Duration
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Deployment is an organisation's set-up accounts on one network.
type Deployment struct {
	Network    wallet.Network
	Sponsor    *wallet.Sponsor
	Issuer     *keypair.Full
	Registry   string
	Governors  []string
	HomeDomain string
	// TxTimeout is the validity window of every transaction the sponsor
	// builds: the minter's in-flight window.
	TxTimeout time.Duration
}

// ErrSponsorUnfunded means the sponsor account does not exist on a network
// without friendbot (pubnet): the operator must fund it.
var ErrSponsorUnfunded = errors.New("chain: sponsor account not funded")

// MinimumSponsorXLM is what the sponsor needs to set up with n channels and
// g governors at pubnet's 0.5 XLM base reserve: its own account (1), the
// channels, registry and issuer (1 each), the registry's signers and
// listing (0.5 each), plus 5 XLM for fees; each study then locks 0.5 XLM
// and each new patient 1 XLM (PROTOCOL.md, cost model).
func MinimumSponsorXLM(channels, governors int) float64 {
	return 1 + float64(channels) + 2 + 0.5*float64(governors+1) + 5
}

// Bootstrap sets the organisation up on the network, idempotently: each
// step first looks at the ledger and does only what is missing.
//
//  1. The sponsor account: funded by friendbot where there is one (devnet,
//     testnet); on pubnet it must exist (ErrSponsorUnfunded says how much
//     to send to which address).
//  2. Channel accounts, the registry and the issuer: 0 XLM, sponsored.
//  3. The registry becomes multisig (governors, threshold; master key
//     off) and the issuer gets AUTH_REQUIRED, AUTH_REVOCABLE and its home
//     domain.
//  4. The registry lists the issuer (governors sign).
func Bootstrap(ctx context.Context, cfg BootstrapConfig) (*Deployment, error) {
	if cfg.Custodian == nil {
		return nil, errors.New("chain: bootstrap needs a Custodian")
	}
	if cfg.Channels == 0 {
		cfg.Channels = DefaultChannels
	}
	if cfg.Governors == 0 {
		cfg.Governors = DefaultGovernors
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = min(DefaultThreshold, uint8(cfg.Governors))
	}
	if cfg.TxTimeout == 0 {
		cfg.TxTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger
	roles, err := DeriveRoles(ctx, cfg.Custodian, cfg.Channels, cfg.Governors)
	if err != nil {
		return nil, err
	}
	net := cfg.Network
	hz := net.Horizon(ctx)

	if _, err := loadAccount(hz, roles.Sponsor.Address()); errors.Is(err, errNoAccount) {
		if net.FriendbotURL == "" {
			return nil, fmt.Errorf("%w: send at least %.1f XLM to %s on %q (%s)", ErrSponsorUnfunded,
				MinimumSponsorXLM(cfg.Channels, cfg.Governors), roles.Sponsor.Address(), net.Passphrase, net.AccountURL(roles.Sponsor.Address()))
		}
		if err := net.Fund(ctx, roles.Sponsor.Address()); err != nil {
			return nil, fmt.Errorf("chain: fund sponsor: %w", err)
		}
		log.InfoContext(ctx, "chain: sponsor funded by friendbot", slog.String("sponsor", roles.Sponsor.Address()))
	} else if err != nil {
		return nil, err
	}

	sponsor, err := wallet.NewSponsor(wallet.SponsorConfig{Network: net, Key: roles.Sponsor, Channels: roles.Channels,
		TxTimeout: cfg.TxTimeout, PollInterval: cfg.PollInterval,
		// One build per Submit: every rebuild would outlive the in-flight
		// window the minter recorded before submitting (mint_attempts).
		MaxAttempts: 1, Logger: log})
	if err != nil {
		return nil, err
	}
	keys := append([]*keypair.Full{roles.Registry, roles.Issuer}, roles.Channels...)
	if _, err := sponsor.CreateAccounts(ctx, keys...); err != nil {
		return nil, fmt.Errorf("chain: create accounts: %w", err)
	}

	var govs []string
	for _, g := range roles.Governors {
		govs = append(govs, g.Address())
	}
	d := &Deployment{Network: net, Sponsor: sponsor, Issuer: roles.Issuer, Registry: roles.Registry.Address(),
		Governors: govs, HomeDomain: cfg.HomeDomain, TxTimeout: cfg.TxTimeout}

	reg, err := loadAccount(hz, d.Registry)
	if err != nil {
		return nil, err
	}
	iss, err := loadAccount(hz, roles.Issuer.Address())
	if err != nil {
		return nil, err
	}
	var setup []contracts.Draft
	if masterWeight(reg) != 0 {
		dr, err := contracts.SetupRegistry(sponsor.Address(), d.Registry, govs, cfg.Threshold)
		if err != nil {
			return nil, err
		}
		setup = append(setup, dr)
	}
	if !iss.Flags.AuthRequired || !iss.Flags.AuthRevocable || iss.HomeDomain != cfg.HomeDomain {
		dr, err := contracts.SetupIssuer(roles.Issuer.Address(), cfg.HomeDomain)
		if err != nil {
			return nil, err
		}
		setup = append(setup, dr)
	}
	if len(setup) > 0 {
		// One transaction: the registry's master key signs while it still
		// counts (signatures are checked before any operation applies).
		var ops []txnbuild.Operation
		for _, dr := range setup {
			ops = append(ops, dr.Operations...)
		}
		res, err := sponsor.Submit(ctx, wallet.Submission{Operations: ops, Signers: []*keypair.Full{roles.Registry, roles.Issuer}})
		if err != nil {
			return nil, fmt.Errorf("chain: set up registry and issuer: %w", err)
		}
		log.InfoContext(ctx, "chain: registry and issuer set up", slog.String("tx", net.TxURL(res.Hash)))
	}

	if _, listed := reg.Data[listingName(roles.Issuer.Address())]; !listed {
		dr, err := contracts.AddIssuer(sponsor.Address(), d.Registry, roles.Issuer.Address(), cfg.HomeDomain)
		if err != nil {
			return nil, err
		}
		res, err := sponsor.Submit(ctx, wallet.Submission{Operations: dr.Operations, Signers: roles.Governors[:cfg.Threshold]})
		if err != nil {
			return nil, fmt.Errorf("chain: list issuer in registry: %w", err)
		}
		log.InfoContext(ctx, "chain: issuer listed in registry", slog.String("tx", net.TxURL(res.Hash)))
	}

	if cfg.Pool != nil {
		if _, err := cfg.Pool.Exec(ctx, `
INSERT INTO chain_deployments (network_passphrase, horizon_url, sponsor, issuer, registry, channels, home_domain)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (network_passphrase) DO UPDATE SET horizon_url = EXCLUDED.horizon_url, sponsor = EXCLUDED.sponsor,
    issuer = EXCLUDED.issuer, registry = EXCLUDED.registry, channels = EXCLUDED.channels, home_domain = EXCLUDED.home_domain`,
			net.Passphrase, net.HorizonURL, sponsor.Address(), roles.Issuer.Address(), d.Registry, sponsor.ChannelAddresses(), cfg.HomeDomain); err != nil {
			return nil, fmt.Errorf("chain: record deployment: %w", err)
		}
	}
	log.InfoContext(ctx, "chain: deployment ready", slog.String("network", net.Passphrase),
		slog.String("sponsor", net.AccountURL(sponsor.Address())), slog.String("issuer", net.AccountURL(roles.Issuer.Address())),
		slog.String("registry", net.AccountURL(d.Registry)), slog.Int("channels", len(roles.Channels)))
	return d, nil
}

// listingName is the registry's data entry that lists an issuer
// (PROTOCOL.md: mm.iss.<issuer G-address>).
func listingName(issuer string) string { return "mm.iss." + issuer }

var errNoAccount = errors.New("chain: no such account")

func loadAccount(hz *horizonclient.Client, addr string) (horizon.Account, error) {
	acc, err := hz.AccountDetail(horizonclient.AccountRequest{AccountID: addr})
	if horizonclient.IsNotFoundError(err) {
		return acc, fmt.Errorf("%w: %s", errNoAccount, addr)
	}
	if err != nil {
		return acc, fmt.Errorf("chain: load account %s: %w", addr, err)
	}
	return acc, nil
}

func masterWeight(acc horizon.Account) int32 {
	for _, s := range acc.Signers {
		if s.Key == acc.AccountID {
			return s.Weight
		}
	}
	return 0
}

// AccountInfo describes one of the deployment's accounts on a network.
type AccountInfo struct {
	Role    string
	Index   uint32 // SEP-5 index
	Address string
	Exists  bool
	XLM     string // native balance
	URL     string // explorer link
}

// Describe looks the role accounts up on the network (for `medimint
// wallet show`); it changes nothing.
func Describe(ctx context.Context, net wallet.Network, r Roles) ([]AccountInfo, error) {
	var out []AccountInfo
	add := func(role string, idx uint32, kp *keypair.Full) {
		out = append(out, AccountInfo{Role: role, Index: idx, Address: kp.Address(), URL: net.AccountURL(kp.Address())})
	}
	add("sponsor", wallet.SponsorIndex, r.Sponsor)
	add("issuer", wallet.IssuerIndex, r.Issuer)
	add("registry", RegistryIndex, r.Registry)
	for k, g := range r.Governors {
		add(fmt.Sprintf("governor %d", k), GovernorIndexBase+uint32(k), g)
	}
	for k, c := range r.Channels {
		add(fmt.Sprintf("channel %d", k), wallet.ChannelIndexBase+uint32(k), c)
	}
	hz := net.Horizon(ctx)
	for i := range out {
		acc, err := loadAccount(hz, out[i].Address)
		if errors.Is(err, errNoAccount) {
			continue
		}
		if err != nil {
			return out, err
		}
		out[i].Exists = true
		out[i].XLM, _ = acc.GetNativeBalance()
	}
	return out, nil
}
