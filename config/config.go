package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// BlobStore names the backend that holds encrypted study objects.
type BlobStore string

// Blob store backends.
const (
	BlobStoreFS BlobStore = "fs"
	BlobStoreS3 BlobStore = "s3"
)

// Pinner names the IPFS pinning backend.
type Pinner string

// Pinning backends.
const (
	// PinnerLocal computes CIDs and keeps the blocks in-process/on disk,
	// without a running IPFS node.
	PinnerLocal Pinner = "local"
	// PinnerKubo pins through a Kubo node's RPC API (IPFS_API).
	PinnerKubo Pinner = "kubo"
)

// Config is the validated runtime configuration.
type Config struct {
	HTTPAddr  string // MEDIMINT_HTTP_ADDR: DICOMweb/HTTP listen address
	DIMSEAddr string // MEDIMINT_DIMSE_ADDR: DIMSE (C-STORE SCP) listen address
	AETitle   string // MEDIMINT_AE_TITLE: our Application Entity title

	// DatabaseURL is a postgres:// URL. Empty means "discover a local
	// Postgres and use database medimint" (see db.Discover).
	DatabaseURL string

	DataDir   string    // MEDIMINT_DATA_DIR: root for local state (fs blobs, local pins)
	BlobStore BlobStore // MEDIMINT_BLOBSTORE
	S3        S3

	Pinner  Pinner // MEDIMINT_PINNER
	IPFSAPI string // IPFS_API: Kubo RPC endpoint, used when Pinner is kubo

	KEKFile  string // MEDIMINT_KEK_FILE: local key-encryption key (created if missing)
	KMSKeyID string // MEDIMINT_KMS_KEY_ID: AWS KMS key that wraps study keys instead of KEKFile

	// HorizonURL empty means: run the embedded devnet.
	HorizonURL        string
	NetworkPassphrase string // empty with the devnet: the devnet chooses its own
	FriendbotURL      string
	DevnetAddr        string // MEDIMINT_DEVNET_ADDR: where the embedded devnet's Horizon listens
	// DevnetInterval (MEDIMINT_DEVNET_INTERVAL) is how often the embedded
	// devnet closes a ledger.
	DevnetInterval time.Duration
	Channels       int    // MEDIMINT_CHANNELS: channel accounts minting in parallel
	HomeDomain     string // MEDIMINT_HOME_DOMAIN: the organisation's domain on chain

	DICOMwebBase string     // MEDIMINT_DICOMWEB_BASE: path prefix of the DICOMweb routes
	LogLevel     slog.Level // MEDIMINT_LOG_LEVEL

	// AdminKey (MEDIMINT_ADMIN_KEY) lets operators DELETE from the index
	// with the X-Admin-Key header; empty disables that.
	AdminKey string
	// PublicURL (MEDIMINT_PUBLIC_URL) is the server's URL as clients see
	// it: DICOMweb URLs in responses, the SEP-10 web auth domain, and
	// Secure cookies when it is https. Empty: built from each request.
	PublicURL string
	// OrgID (MEDIMINT_ORG_ID) is the organisation this server issues for:
	// set up at start, and the organisation of callers without a mapping.
	OrgID string
	// CORSOrigins (MEDIMINT_CORS_ORIGINS) may call DICOMweb and the API
	// from browser pages served elsewhere (a viewer such as OHIF).
	CORSOrigins []string
	// StudyQuiet (MEDIMINT_STUDY_QUIET) is how long a study receives
	// nothing before it counts as complete and is published and minted.
	StudyQuiet time.Duration
	// SMTP (MEDIMINT_SMTP_*) is where notification e-mails go; an empty
	// Addr disables e-mail (notifications stay in the portal).
	SMTP SMTP
	// AEAllowlist (MEDIMINT_AE_ALLOWLIST) maps calling AE titles to
	// organisations; empty accepts every caller as OrgID.
	AEAllowlist map[string]string
	// MoveDestinations (MEDIMINT_MOVE_DESTINATIONS) maps C-MOVE
	// destination AE titles to host:port.
	MoveDestinations map[string]string
}

// SMTP configures notification e-mail (package notify).
type SMTP struct {
	Addr     string // MEDIMINT_SMTP_ADDR: host:port
	From     string // MEDIMINT_SMTP_FROM: sender address
	User     string // MEDIMINT_SMTP_USER: empty: no authentication
	Password string // MEDIMINT_SMTP_PASSWORD
}

// S3 configures the s3 blob store.
type S3 struct {
	Endpoint  string // S3_ENDPOINT: empty means AWS's own endpoint for Region
	Region    string // S3_REGION
	Bucket    string // S3_BUCKET
	PathStyle bool   // S3_PATH_STYLE: path-style addressing (MinIO, versitygw)
}

// Var documents one environment variable.
type Var struct {
	Name    string
	Default string
	Meaning string
}

// Vars lists every variable [FromEnv] reads, with its default, in the order
// the README's table shows them.
var Vars = []Var{
	{"MEDIMINT_HTTP_ADDR", "127.0.0.1:8042", "HTTP listen address (DICOMweb, health, API)"},
	{"MEDIMINT_DIMSE_ADDR", "127.0.0.1:11112", "DIMSE listen address (C-ECHO, C-STORE SCP)"},
	{"MEDIMINT_AE_TITLE", "MEDIMINT", "our AE title (1-16 characters, no backslash)"},
	{"DATABASE_URL", "", "postgres:// URL; empty: find a local Postgres (127.0.0.1:5432, then the project cluster on :5433) and use database medimint"},
	{"MEDIMINT_DATA_DIR", "./var/data", "local state: fs blob store, local pins"},
	{"MEDIMINT_BLOBSTORE", "fs", "where encrypted studies are stored: fs or s3"},
	{"S3_ENDPOINT", "", "S3 endpoint URL; empty: AWS for S3_REGION"},
	{"S3_REGION", "us-east-1", "S3 region"},
	{"S3_BUCKET", "", "S3 bucket (required when MEDIMINT_BLOBSTORE=s3)"},
	{"S3_PATH_STYLE", "false", "path-style S3 addressing (true for MinIO, versitygw)"},
	{"MEDIMINT_PINNER", "local", "IPFS pinning: local (CIDs computed, blocks kept on disk) or kubo"},
	{"IPFS_API", "http://127.0.0.1:5001", "Kubo RPC API, used when MEDIMINT_PINNER=kubo"},
	{"MEDIMINT_KEK_FILE", "./var/kek", "key-encryption key file (created on first start)"},
	{"MEDIMINT_KMS_KEY_ID", "", "AWS KMS key id/ARN to wrap study keys with instead of the KEK file"},
	{"HORIZON_URL", "", "Stellar Horizon URL; empty: run the embedded devnet"},
	{"NETWORK_PASSPHRASE", "", "Stellar network passphrase (required with HORIZON_URL)"},
	{"FRIENDBOT_URL", "", "friendbot URL for funding accounts (test networks only)"},
	{"MEDIMINT_DEVNET_ADDR", "127.0.0.1:8000", "loopback address of the embedded devnet's Horizon API (when HORIZON_URL is empty)"},
	{"MEDIMINT_DEVNET_INTERVAL", "1s", "ledger close interval of the embedded devnet (Go duration, 10ms-10m)"},
	{"MEDIMINT_CHANNELS", "4", "channel accounts that mint in parallel (1-900)"},
	{"MEDIMINT_HOME_DOMAIN", "localhost", "the organisation's home domain: its issuer's home_domain and registry listing (1-32 bytes)"},
	{"MEDIMINT_DICOMWEB_BASE", "/dicom-web", "path prefix of the DICOMweb routes"},
	{"MEDIMINT_LOG_LEVEL", "info", "log level: debug, info, warn or error"},
	{"MEDIMINT_ORG_ID", "org1", "the organisation this server issues for; callers without an AE mapping belong to it"},
	{"MEDIMINT_AE_ALLOWLIST", "", "calling AE titles allowed over DIMSE, as AE=org pairs separated by commas (AE alone: MEDIMINT_ORG_ID); empty: any caller, as MEDIMINT_ORG_ID"},
	{"MEDIMINT_MOVE_DESTINATIONS", "", "C-MOVE destinations, as AE=host:port pairs separated by commas; a C-MOVE to any other AE title is refused (A801)"},
	{"MEDIMINT_PUBLIC_URL", "", "the server's URL as clients see it (https://… behind a proxy): URLs in responses, SEP-10 domain, Secure cookies; empty: from each request"},
	{"MEDIMINT_CORS_ORIGINS", "", "comma-separated origins (scheme://host[:port]) whose pages may call DICOMweb and the API, e.g. an OHIF viewer"},
	{"MEDIMINT_STUDY_QUIET", "60s", "quiet period after a study's last instance before it counts as complete and is minted (Go duration, 1s-24h)"},
	{"MEDIMINT_ADMIN_KEY", "", "operator key for DICOMweb DELETE (X-Admin-Key header); empty: DELETE only by the issuing organisation's issuer_admin"},
	{"MEDIMINT_SMTP_ADDR", "", "SMTP server (host:port) for notification e-mails, STARTTLS when offered; empty: no e-mail"},
	{"MEDIMINT_SMTP_FROM", "", "sender address of notification e-mails (required with MEDIMINT_SMTP_ADDR)"},
	{"MEDIMINT_SMTP_USER", "", "SMTP user (AUTH PLAIN, only over TLS or to loopback); empty: no authentication"},
	{"MEDIMINT_SMTP_PASSWORD", "", "SMTP password"},
}

// FromEnv reads the configuration from the process environment.
func FromEnv() (Config, error) {
	return FromLookup(os.LookupEnv)
}

// FromLookup reads the configuration through lookup, which has the
// signature of [os.LookupEnv]. A variable that is set but empty counts as
// unset, so `FOO= medimint serve` gives the default. All problems are
// reported together.
func FromLookup(lookup func(string) (string, bool)) (Config, error) {
	defaults := make(map[string]string, len(Vars))
	for _, v := range Vars {
		defaults[v.Name] = v.Default
	}
	get := func(name string) string {
		d, ok := defaults[name]
		if !ok {
			panic("config: variable " + name + " missing from Vars")
		}
		if s, ok := lookup(name); ok && strings.TrimSpace(s) != "" {
			return strings.TrimSpace(s)
		}
		return d
	}

	var errs []error
	bad := func(name, value, why string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", name, value, why))
	}

	c := Config{
		HTTPAddr:          get("MEDIMINT_HTTP_ADDR"),
		DIMSEAddr:         get("MEDIMINT_DIMSE_ADDR"),
		AETitle:           get("MEDIMINT_AE_TITLE"),
		DatabaseURL:       get("DATABASE_URL"),
		DataDir:           get("MEDIMINT_DATA_DIR"),
		BlobStore:         BlobStore(get("MEDIMINT_BLOBSTORE")),
		Pinner:            Pinner(get("MEDIMINT_PINNER")),
		IPFSAPI:           get("IPFS_API"),
		KEKFile:           get("MEDIMINT_KEK_FILE"),
		KMSKeyID:          get("MEDIMINT_KMS_KEY_ID"),
		HorizonURL:        get("HORIZON_URL"),
		NetworkPassphrase: get("NETWORK_PASSPHRASE"),
		FriendbotURL:      get("FRIENDBOT_URL"),
		DevnetAddr:        get("MEDIMINT_DEVNET_ADDR"),
		HomeDomain:        get("MEDIMINT_HOME_DOMAIN"),
		DICOMwebBase:      get("MEDIMINT_DICOMWEB_BASE"),
		AdminKey:          get("MEDIMINT_ADMIN_KEY"),
		PublicURL:         strings.TrimRight(get("MEDIMINT_PUBLIC_URL"), "/"),
		OrgID:             get("MEDIMINT_ORG_ID"),
		S3: S3{
			Endpoint: get("S3_ENDPOINT"),
			Region:   get("S3_REGION"),
			Bucket:   get("S3_BUCKET"),
		},
	}

	for _, name := range []string{"MEDIMINT_HTTP_ADDR", "MEDIMINT_DIMSE_ADDR", "MEDIMINT_DEVNET_ADDR"} {
		if v := get(name); !validAddr(v) {
			bad(name, v, "want host:port, e.g. 127.0.0.1:8042")
		}
	}
	if why := checkAETitle(c.AETitle); why != "" {
		bad("MEDIMINT_AE_TITLE", c.AETitle, why)
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// Only the URL form: serve derives the admin connection
			// from it to create the database.
			bad("DATABASE_URL", redact(c.DatabaseURL), "want a postgres:// URL")
		}
	}
	switch c.BlobStore {
	case BlobStoreFS:
	case BlobStoreS3:
		if c.S3.Bucket == "" {
			errs = append(errs, errors.New("S3_BUCKET is required when MEDIMINT_BLOBSTORE=s3"))
		}
	default:
		bad("MEDIMINT_BLOBSTORE", string(c.BlobStore), "want fs or s3")
	}
	if c.S3.Endpoint != "" && !validHTTPURL(c.S3.Endpoint) {
		bad("S3_ENDPOINT", c.S3.Endpoint, "want an http(s) URL")
	}
	ps := get("S3_PATH_STYLE")
	pathStyle, err := strconv.ParseBool(ps)
	if err != nil {
		bad("S3_PATH_STYLE", ps, "want true or false")
	}
	c.S3.PathStyle = pathStyle

	switch c.Pinner {
	case PinnerLocal, PinnerKubo:
	default:
		bad("MEDIMINT_PINNER", string(c.Pinner), "want local or kubo")
	}
	if !validHTTPURL(c.IPFSAPI) {
		bad("IPFS_API", c.IPFSAPI, "want an http(s) URL, e.g. http://127.0.0.1:5001")
	}

	if c.HorizonURL != "" {
		if !validHTTPURL(c.HorizonURL) {
			bad("HORIZON_URL", c.HorizonURL, "want an http(s) URL")
		}
		if c.NetworkPassphrase == "" {
			// Signing for the wrong network is silent until Horizon
			// rejects every transaction, so demand it up front.
			errs = append(errs, errors.New("NETWORK_PASSPHRASE is required when HORIZON_URL is set"))
		}
	}
	if c.FriendbotURL != "" && !validHTTPURL(c.FriendbotURL) {
		bad("FRIENDBOT_URL", c.FriendbotURL, "want an http(s) URL")
	}
	ch := get("MEDIMINT_CHANNELS")
	if n, err := strconv.Atoi(ch); err != nil || n < 1 || n > 900 {
		bad("MEDIMINT_CHANNELS", ch, "want a number from 1 to 900")
	} else {
		c.Channels = n
	}
	if len(c.HomeDomain) > 32 || strings.ContainsAny(c.HomeDomain, " /") {
		bad("MEDIMINT_HOME_DOMAIN", c.HomeDomain, "want a domain name of at most 32 bytes")
	}

	if !strings.HasPrefix(c.DICOMwebBase, "/") || strings.ContainsAny(c.DICOMwebBase, "?#") {
		bad("MEDIMINT_DICOMWEB_BASE", c.DICOMwebBase, "want an absolute path such as /dicom-web")
	}
	if len(c.DICOMwebBase) > 1 {
		c.DICOMwebBase = strings.TrimRight(c.DICOMwebBase, "/")
	}

	if c.PublicURL != "" && !validHTTPURL(c.PublicURL) {
		bad("MEDIMINT_PUBLIC_URL", c.PublicURL, "want an http(s) URL such as https://medimint.example.org")
	}
	if !validOrg(c.OrgID) {
		bad("MEDIMINT_ORG_ID", c.OrgID, "want 1-64 letters, digits, '.', '_' or '-'")
	}
	for o := range strings.SplitSeq(get("MEDIMINT_CORS_ORIGINS"), ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if u, err := url.Parse(o); err != nil || !validHTTPURL(o) || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			bad("MEDIMINT_CORS_ORIGINS", o, "want origins such as https://viewer.example.org")
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, strings.TrimRight(o, "/"))
	}
	if al := get("MEDIMINT_AE_ALLOWLIST"); al != "" {
		c.AEAllowlist = map[string]string{}
		for pair := range strings.SplitSeq(al, ",") {
			ae, org, ok := strings.Cut(pair, "=")
			ae, org = strings.TrimSpace(ae), strings.TrimSpace(org)
			if !ok {
				org = c.OrgID
			}
			switch {
			case ae == "" || checkAETitle(ae) != "":
				bad("MEDIMINT_AE_ALLOWLIST", pair, "want AE=org with an AE title of 1-16 printable characters")
			case !validOrg(org):
				bad("MEDIMINT_AE_ALLOWLIST", pair, "want AE=org with an organisation id of letters, digits, '.', '_' or '-'")
			default:
				c.AEAllowlist[ae] = org
			}
		}
	}

	if md := get("MEDIMINT_MOVE_DESTINATIONS"); md != "" {
		c.MoveDestinations = map[string]string{}
		for pair := range strings.SplitSeq(md, ",") {
			ae, addr, _ := strings.Cut(pair, "=")
			ae, addr = strings.TrimSpace(ae), strings.TrimSpace(addr)
			host, port, err := net.SplitHostPort(addr)
			n, perr := strconv.Atoi(port)
			switch {
			case ae == "" || checkAETitle(ae) != "":
				bad("MEDIMINT_MOVE_DESTINATIONS", pair, "want AE=host:port with an AE title of 1-16 printable characters")
			case err != nil || host == "" || perr != nil || n < 1 || n > 65535:
				bad("MEDIMINT_MOVE_DESTINATIONS", pair, "want AE=host:port with a port of 1-65535")
			default:
				c.MoveDestinations[ae] = addr
			}
		}
	}

	c.SMTP = SMTP{Addr: get("MEDIMINT_SMTP_ADDR"), From: get("MEDIMINT_SMTP_FROM"), User: get("MEDIMINT_SMTP_USER"),
		Password: get("MEDIMINT_SMTP_PASSWORD")}
	if c.SMTP.Addr != "" {
		if !validAddr(c.SMTP.Addr) {
			bad("MEDIMINT_SMTP_ADDR", c.SMTP.Addr, "want host:port, e.g. smtp.example.org:587")
		}
		if !strings.Contains(c.SMTP.From, "@") || strings.ContainsAny(c.SMTP.From, "\r\n") {
			bad("MEDIMINT_SMTP_FROM", c.SMTP.From, "want the sender's e-mail address")
		}
	}

	sq := get("MEDIMINT_STUDY_QUIET")
	if d, err := time.ParseDuration(sq); err != nil || d < time.Second || d > 24*time.Hour {
		bad("MEDIMINT_STUDY_QUIET", sq, "want a duration from 1s to 24h, e.g. 60s")
	} else {
		c.StudyQuiet = d
	}

	di := get("MEDIMINT_DEVNET_INTERVAL")
	if d, err := time.ParseDuration(di); err != nil || d < 10*time.Millisecond || d > 10*time.Minute {
		bad("MEDIMINT_DEVNET_INTERVAL", di, "want a duration from 10ms to 10m, e.g. 1s")
	} else {
		c.DevnetInterval = d
	}

	lv := get("MEDIMINT_LOG_LEVEL")
	if err := c.LogLevel.UnmarshalText([]byte(lv)); err != nil || strings.ContainsAny(lv, "+-") {
		// slog also accepts "info+2"; we keep to the four names.
		bad("MEDIMINT_LOG_LEVEL", lv, "want debug, info, warn or error")
	}

	if len(errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}

// checkAETitle applies PS3.5's AE value representation: at most 16
// characters of the default repertoire without backslash or control
// characters, and not only spaces.
func checkAETitle(s string) string {
	if len(s) > 16 {
		return "at most 16 characters"
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return "printable ASCII without backslash only"
		}
	}
	return ""
}

// validOrg accepts organisation ids that read safely in logs, URLs and
// the audit log.
func validOrg(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func validAddr(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// redact hides a password in a URL so that it can go into an error.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparseable)"
}

// LogValue lets the configuration be logged at start-up without leaking the
// database password.
func (c Config) LogValue() slog.Value {
	db := "(discover)"
	if c.DatabaseURL != "" {
		db = redact(c.DatabaseURL)
	}
	horizon := c.HorizonURL
	if horizon == "" {
		horizon = "(embedded devnet)"
	}
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.String("dimse_addr", c.DIMSEAddr),
		slog.String("ae_title", c.AETitle),
		slog.String("database", db),
		slog.String("data_dir", c.DataDir),
		slog.String("blobstore", string(c.BlobStore)),
		slog.String("pinner", string(c.Pinner)),
		slog.Bool("kms", c.KMSKeyID != ""),
		slog.String("horizon", horizon),
		slog.Duration("devnet_interval", c.DevnetInterval),
		slog.Int("channels", c.Channels),
		slog.String("home_domain", c.HomeDomain),
		slog.String("dicomweb_base", c.DICOMwebBase),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("org_id", c.OrgID),
		slog.Int("ae_allowlist", len(c.AEAllowlist)),
		slog.Int("move_destinations", len(c.MoveDestinations)),
		slog.String("public_url", c.PublicURL),
		slog.Any("cors_origins", c.CORSOrigins),
		slog.Bool("admin_key", c.AdminKey != ""),
		slog.String("smtp", c.SMTP.Addr),
	)
}
