package config

import (
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestFromLookupDefaults(t *testing.T) {
	got, err := FromLookup(lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTPAddr:       "127.0.0.1:8042",
		DIMSEAddr:      "127.0.0.1:11112",
		AETitle:        "MEDIMINT",
		DataDir:        "./var/data",
		BlobStore:      BlobStoreFS,
		S3:             S3{Region: "us-east-1"},
		Pinner:         PinnerLocal,
		IPFSAPI:        "http://127.0.0.1:5001",
		KEKFile:        "./var/kek",
		DevnetAddr:     "127.0.0.1:8000",
		DevnetInterval: time.Second,
		Channels:       4,
		HomeDomain:     "localhost",
		DICOMwebBase:   "/dicom-web",
		LogLevel:       slog.LevelInfo,
		OrgID:          "org1",
		StudyQuiet:     60 * time.Second,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestFromLookup(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr []string // substrings that must all appear in the error
	}{
		{
			name: "overrides",
			env: map[string]string{
				"MEDIMINT_HTTP_ADDR":     "0.0.0.0:80",
				"MEDIMINT_DIMSE_ADDR":    ":104",
				"MEDIMINT_AE_TITLE":      "  PACS_GW ",
				"DATABASE_URL":           "postgres://u:secret@db:5432/mm?sslmode=disable",
				"MEDIMINT_BLOBSTORE":     "s3",
				"S3_ENDPOINT":            "http://127.0.0.1:7070",
				"S3_BUCKET":              "studies",
				"S3_PATH_STYLE":          "true",
				"MEDIMINT_PINNER":        "kubo",
				"IPFS_API":               "http://127.0.0.1:5002",
				"HORIZON_URL":            "https://horizon-testnet.stellar.org",
				"NETWORK_PASSPHRASE":     "Test SDF Network ; September 2015",
				"MEDIMINT_DICOMWEB_BASE": "/wado/",
				"MEDIMINT_LOG_LEVEL":     "DEBUG",
			},
			check: func(t *testing.T, c Config) {
				if c.HTTPAddr != "0.0.0.0:80" || c.DIMSEAddr != ":104" {
					t.Errorf("addrs: %q %q", c.HTTPAddr, c.DIMSEAddr)
				}
				if c.AETitle != "PACS_GW" {
					t.Errorf("AE title %q, want trimmed PACS_GW", c.AETitle)
				}
				if c.BlobStore != BlobStoreS3 || !c.S3.PathStyle || c.S3.Bucket != "studies" {
					t.Errorf("s3: %v %+v", c.BlobStore, c.S3)
				}
				if c.Pinner != PinnerKubo || c.IPFSAPI != "http://127.0.0.1:5002" {
					t.Errorf("pinner: %v %q", c.Pinner, c.IPFSAPI)
				}
				if c.DICOMwebBase != "/wado" {
					t.Errorf("DICOMwebBase %q, want trailing slash trimmed", c.DICOMwebBase)
				}
				if c.LogLevel != slog.LevelDebug {
					t.Errorf("log level %v", c.LogLevel)
				}
			},
		},
		{
			name: "empty value means default",
			env:  map[string]string{"MEDIMINT_BLOBSTORE": "", "MEDIMINT_LOG_LEVEL": "  "},
			check: func(t *testing.T, c Config) {
				if c.BlobStore != BlobStoreFS || c.LogLevel != slog.LevelInfo {
					t.Errorf("got %v %v", c.BlobStore, c.LogLevel)
				}
			},
		},
		{
			name: "root DICOMweb base",
			env:  map[string]string{"MEDIMINT_DICOMWEB_BASE": "/"},
			check: func(t *testing.T, c Config) {
				if c.DICOMwebBase != "/" {
					t.Errorf("got %q", c.DICOMwebBase)
				}
			},
		},
		{
			name: "access settings",
			env: map[string]string{"MEDIMINT_ORG_ID": "st-mary", "MEDIMINT_AE_ALLOWLIST": "CT1=st-mary, MR2 ,PACS=other.org",
				"MEDIMINT_CORS_ORIGINS": "https://viewer.example.org, http://127.0.0.1:3000/", "MEDIMINT_PUBLIC_URL": "https://mm.example.org/",
				"MEDIMINT_ADMIN_KEY": "k"},
			check: func(t *testing.T, c Config) {
				if want := map[string]string{"CT1": "st-mary", "MR2": "st-mary", "PACS": "other.org"}; !reflect.DeepEqual(c.AEAllowlist, want) {
					t.Errorf("allowlist %v, want %v", c.AEAllowlist, want)
				}
				if want := []string{"https://viewer.example.org", "http://127.0.0.1:3000"}; !reflect.DeepEqual(c.CORSOrigins, want) {
					t.Errorf("origins %q, want %q", c.CORSOrigins, want)
				}
				if c.PublicURL != "https://mm.example.org" || c.OrgID != "st-mary" || c.AdminKey != "k" {
					t.Errorf("public URL %q org %q admin key %q", c.PublicURL, c.OrgID, c.AdminKey)
				}
			},
		},
		{
			name: "move destinations",
			env:  map[string]string{"MEDIMINT_MOVE_DESTINATIONS": "VIEWER=127.0.0.1:11113, PACS = pacs.example.org:104"},
			check: func(t *testing.T, c Config) {
				if want := map[string]string{"VIEWER": "127.0.0.1:11113", "PACS": "pacs.example.org:104"}; !reflect.DeepEqual(c.MoveDestinations, want) {
					t.Errorf("move destinations %v, want %v", c.MoveDestinations, want)
				}
			},
		},
		{name: "bad move destination port", env: map[string]string{"MEDIMINT_MOVE_DESTINATIONS": "VIEWER=host:0"}, wantErr: []string{"MEDIMINT_MOVE_DESTINATIONS"}},
		{name: "bad move destination AE", env: map[string]string{"MEDIMINT_MOVE_DESTINATIONS": "=host:104"}, wantErr: []string{"MEDIMINT_MOVE_DESTINATIONS"}},
		{name: "bad move destination address", env: map[string]string{"MEDIMINT_MOVE_DESTINATIONS": "VIEWER"}, wantErr: []string{"MEDIMINT_MOVE_DESTINATIONS"}},
		{name: "bad study quiet", env: map[string]string{"MEDIMINT_STUDY_QUIET": "100ms"}, wantErr: []string{"MEDIMINT_STUDY_QUIET"}},
		{name: "bad org id", env: map[string]string{"MEDIMINT_ORG_ID": "a b"}, wantErr: []string{"MEDIMINT_ORG_ID"}},
		{name: "bad allowlist AE", env: map[string]string{"MEDIMINT_AE_ALLOWLIST": `A\B=org1`}, wantErr: []string{"MEDIMINT_AE_ALLOWLIST"}},
		{name: "bad allowlist org", env: map[string]string{"MEDIMINT_AE_ALLOWLIST": "CT1=a/b"}, wantErr: []string{"MEDIMINT_AE_ALLOWLIST"}},
		{name: "bad CORS origin", env: map[string]string{"MEDIMINT_CORS_ORIGINS": "https://x.org/path"}, wantErr: []string{"MEDIMINT_CORS_ORIGINS"}},
		{name: "bad public URL", env: map[string]string{"MEDIMINT_PUBLIC_URL": "mm.example.org"}, wantErr: []string{"MEDIMINT_PUBLIC_URL"}},
		{name: "unknown blobstore", env: map[string]string{"MEDIMINT_BLOBSTORE": "gcs"}, wantErr: []string{`MEDIMINT_BLOBSTORE="gcs"`, "fs or s3"}},
		{name: "s3 without bucket", env: map[string]string{"MEDIMINT_BLOBSTORE": "s3"}, wantErr: []string{"S3_BUCKET is required"}},
		{name: "bad path style", env: map[string]string{"S3_PATH_STYLE": "yes"}, wantErr: []string{"S3_PATH_STYLE"}},
		{name: "bad s3 endpoint", env: map[string]string{"S3_ENDPOINT": "127.0.0.1:7070"}, wantErr: []string{"S3_ENDPOINT"}},
		{name: "bad channels", env: map[string]string{"MEDIMINT_CHANNELS": "0"}, wantErr: []string{"MEDIMINT_CHANNELS", "1 to 900"}},
		{name: "bad home domain", env: map[string]string{"MEDIMINT_HOME_DOMAIN": "a/b"}, wantErr: []string{"MEDIMINT_HOME_DOMAIN"}},
		{
			name: "devnet interval",
			env:  map[string]string{"MEDIMINT_DEVNET_INTERVAL": "250ms"},
			check: func(t *testing.T, c Config) {
				if c.DevnetInterval != 250*time.Millisecond {
					t.Errorf("DevnetInterval %v, want 250ms", c.DevnetInterval)
				}
			},
		},
		{name: "devnet interval too short", env: map[string]string{"MEDIMINT_DEVNET_INTERVAL": "1ms"}, wantErr: []string{"MEDIMINT_DEVNET_INTERVAL", "10ms to 10m"}},
		{name: "devnet interval not a duration", env: map[string]string{"MEDIMINT_DEVNET_INTERVAL": "5"}, wantErr: []string{"MEDIMINT_DEVNET_INTERVAL"}},
		{name: "devnet interval too long", env: map[string]string{"MEDIMINT_DEVNET_INTERVAL": "1h"}, wantErr: []string{"MEDIMINT_DEVNET_INTERVAL"}},
		{name: "bad devnet addr", env: map[string]string{"MEDIMINT_DEVNET_ADDR": "8000"}, wantErr: []string{"MEDIMINT_DEVNET_ADDR"}},
		{name: "unknown pinner", env: map[string]string{"MEDIMINT_PINNER": "pinata"}, wantErr: []string{"MEDIMINT_PINNER", "local or kubo"}},
		{name: "bad ipfs api", env: map[string]string{"IPFS_API": "/ip4/127.0.0.1/tcp/5001"}, wantErr: []string{"IPFS_API"}},
		{name: "unknown log level", env: map[string]string{"MEDIMINT_LOG_LEVEL": "verbose"}, wantErr: []string{"MEDIMINT_LOG_LEVEL"}},
		{name: "log level offset", env: map[string]string{"MEDIMINT_LOG_LEVEL": "info+2"}, wantErr: []string{"MEDIMINT_LOG_LEVEL"}},
		{name: "http addr without port", env: map[string]string{"MEDIMINT_HTTP_ADDR": "localhost"}, wantErr: []string{"MEDIMINT_HTTP_ADDR"}},
		{name: "dimse port out of range", env: map[string]string{"MEDIMINT_DIMSE_ADDR": "127.0.0.1:70000"}, wantErr: []string{"MEDIMINT_DIMSE_ADDR"}},
		{name: "AE title too long", env: map[string]string{"MEDIMINT_AE_TITLE": "ABCDEFGHIJKLMNOPQ"}, wantErr: []string{"at most 16"}},
		{name: "AE title backslash", env: map[string]string{"MEDIMINT_AE_TITLE": `A\B`}, wantErr: []string{"backslash"}},
		{name: "database keyword DSN", env: map[string]string{"DATABASE_URL": "host=db password=hunter2"}, wantErr: []string{"postgres:// URL"}},
		{name: "horizon without passphrase", env: map[string]string{"HORIZON_URL": "http://127.0.0.1:8000"}, wantErr: []string{"NETWORK_PASSPHRASE is required"}},
		{name: "bad horizon url", env: map[string]string{"HORIZON_URL": "horizon", "NETWORK_PASSPHRASE": "x"}, wantErr: []string{"HORIZON_URL"}},
		{name: "bad friendbot url", env: map[string]string{"FRIENDBOT_URL": "ftp://x"}, wantErr: []string{"FRIENDBOT_URL"}},
		{name: "relative DICOMweb base", env: map[string]string{"MEDIMINT_DICOMWEB_BASE": "dicom-web"}, wantErr: []string{"MEDIMINT_DICOMWEB_BASE"}},
		{
			name:    "all problems reported together",
			env:     map[string]string{"MEDIMINT_PINNER": "x", "MEDIMINT_BLOBSTORE": "y"},
			wantErr: []string{"MEDIMINT_PINNER", "MEDIMINT_BLOBSTORE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromLookup(lookupFrom(tt.env))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("want error containing %q, got config %+v", tt.wantErr, c)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestErrorRedactsPassword(t *testing.T) {
	_, err := FromLookup(lookupFrom(map[string]string{"DATABASE_URL": "mysql://u:hunter2@db/x"}))
	if err == nil {
		t.Fatal("want error for mysql:// URL")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks password: %v", err)
	}
}

func TestLogValueRedactsPassword(t *testing.T) {
	c, err := FromLookup(lookupFrom(map[string]string{"DATABASE_URL": "postgres://u:hunter2@db/x"}))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.LogValue().String(); strings.Contains(s, "hunter2") {
		t.Errorf("LogValue leaks password: %s", s)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("MEDIMINT_AE_TITLE", "FROMENV")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.AETitle != "FROMENV" {
		t.Errorf("AETitle %q", c.AETitle)
	}
}

// The README's configuration table is the users' copy of Vars.
func TestVarsDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range Vars {
		if seen[v.Name] {
			t.Errorf("%s listed twice", v.Name)
		}
		seen[v.Name] = true
		if v.Meaning == "" {
			t.Errorf("%s has no meaning", v.Name)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("reading README: %v", err)
	}
	for _, v := range Vars {
		row := "| `" + v.Name + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no configuration row starting %q", row)
		}
	}
}
