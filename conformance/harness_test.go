//go:build conformance

package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/medimint/medimint/db"
)

// The suite's shared state, set up once by TestMain.
var (
	repoRoot    string // the module root
	medimintBin string // the medimint binary under test
	corpusDir   string // mkcorpus.sh output
	corpus      *Corpus
	adminURL    string // Postgres admin URL
	logsDir     string // server logs are kept here when a test fails
)

// Outcome counters for the summary line.
var passed, failed, skipped atomic.Int64

// track counts t in the summary: call it first in every test and subtest.
func track(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		switch {
		case t.Failed():
			failed.Add(1)
		case t.Skipped():
			skipped.Add(1)
		default:
			passed.Add(1)
		}
	})
}

func TestMain(m *testing.M) {
	flag.Parse()
	code, err := setup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "conformance: setup: %v\n", err)
		fmt.Println("0 passed, 1 failed")
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	fmt.Printf("%d passed, %d failed\n", passed.Load(), failed.Load())
	if n := skipped.Load(); n > 0 {
		fmt.Printf("(%d skipped)\n", n)
	}
	os.Exit(code)
}

// setup builds the binary and the corpus. Missing tools are errors: the
// suite exists to run them.
func setup() (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return 1, err
	}
	repoRoot = filepath.Dir(wd)
	cache := os.Getenv("MEDIMINT_CACHE")
	if cache == "" {
		home, err := os.UserCacheDir()
		if err != nil {
			return 1, err
		}
		cache = filepath.Join(home, "medimint")
	}
	logsDir = filepath.Join(cache, "conformance-logs")
	if err := os.MkdirAll(logsDir, 0o755); err != nil {
		return 1, err
	}

	for _, tool := range []string{"echoscu", "storescu", "findscu", "movescu", "getscu", "storescp", "dump2dcm", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return 1, fmt.Errorf("%s missing (scripts/conformance-deps.sh installs what the suite needs): %w", tool, err)
		}
	}

	medimintBin = os.Getenv("MEDIMINT_BIN")
	if medimintBin == "" {
		medimintBin = filepath.Join(cache, "conformance-bin", "medimint")
		build := exec.Command("go", "build", "-o", medimintBin, "./cmd/medimint")
		build.Dir = repoRoot
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return 1, fmt.Errorf("go build ./cmd/medimint: %w", err)
		}
	}

	corpusDir = os.Getenv("MEDIMINT_CONFORMANCE_CORPUS")
	if corpusDir == "" {
		corpusDir = filepath.Join(cache, "conformance-corpus")
	}
	mk := exec.Command(filepath.Join(wd, "mkcorpus.sh"), corpusDir)
	mk.Stdout, mk.Stderr = os.Stderr, os.Stderr
	if err := mk.Run(); err != nil {
		return 1, fmt.Errorf("mkcorpus.sh: %w", err)
	}
	if corpus, err = LoadCorpus(corpusDir); err != nil {
		return 1, err
	}

	adminURL = os.Getenv("MEDIMINT_TEST_PG")
	if adminURL == "" {
		adminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	return 0, nil
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Server is one running `medimint serve`.
type Server struct {
	HTTP      string // http://127.0.0.1:port
	DIMSEPort int
	AETitle   string
	DataDir   string
	DBURL     string
	Horizon   string // the embedded devnet's Horizon API
	// APIKey is the bootstrap API key (every scope) the first start
	// prints; DICOMweb requests carry it as X-API-Key.
	APIKey string
	cmd    *exec.Cmd
	log    *syncBuffer
}

// DICOMweb is the base URL of the DICOMweb services.
func (s *Server) DICOMweb() string { return s.HTTP + "/dicom-web" }

// Log returns what the server logged so far.
func (s *Server) Log() string {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.log.String()
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec.
type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

// startServer starts medimint serve with a fresh database and data
// directory, waits for /readyz and the DIMSE port, and stops it (SIGTERM)
// and drops its database when t ends.
func startServer(t *testing.T, extraEnv ...string) *Server {
	t.Helper()
	var rnd [6]byte
	rand.Read(rnd[:])
	dbName := "mm_conformance_" + hex.EncodeToString(rnd[:])
	dbURL, err := db.WithDatabase(adminURL, dbName)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &Server{
		HTTP:      fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		DIMSEPort: freePort(t),
		AETitle:   "MEDIMINT",
		DataDir:   filepath.Join(dir, "data"),
		DBURL:     dbURL,
		Horizon:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
	}
	cmd := exec.Command(medimintBin, "serve")
	cmd.Env = append(os.Environ(),
		"MEDIMINT_HTTP_ADDR="+strings.TrimPrefix(s.HTTP, "http://"),
		fmt.Sprintf("MEDIMINT_DIMSE_ADDR=127.0.0.1:%d", s.DIMSEPort),
		"MEDIMINT_AE_TITLE="+s.AETitle,
		"DATABASE_URL="+dbURL,
		"MEDIMINT_DATA_DIR="+s.DataDir,
		"MEDIMINT_KEK_FILE="+filepath.Join(dir, "kek"),
		"MEDIMINT_DEVNET_ADDR="+strings.TrimPrefix(s.Horizon, "http://"),
		"MEDIMINT_LOG_LEVEL=info",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	logw := &syncBuffer{}
	s.log = logw
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s serve: %v", medimintBin, err)
	}
	s.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(45 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("medimint serve did not stop within 45s of SIGTERM")
		}
		if t.Failed() {
			name := filepath.Join(logsDir, strings.ReplaceAll(t.Name(), "/", "_")+".log")
			os.WriteFile(name, []byte(s.Log()), 0o644)
			t.Logf("server log: %s", name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := db.DropDatabase(ctx, adminURL, dbName); err != nil {
			t.Errorf("drop database %s: %v", dbName, err)
		}
	})

	// Ready: /readyz answers 200 and the DIMSE port accepts connections.
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			logw.mu.Lock()
			out := logw.String()
			logw.mu.Unlock()
			t.Fatalf("medimint serve exited before it was ready: %v\n%s", err, out)
		default:
		}
		if ready(s) {
			logw.mu.Lock()
			m := apiKeyLine.FindStringSubmatch(logw.String())
			logw.mu.Unlock()
			if m == nil {
				t.Fatalf("medimint serve printed no bootstrap API key on its first start")
			}
			s.APIKey = m[1]
			apiKeys.Store(strings.TrimPrefix(s.HTTP, "http://"), s.APIKey)
			t.Cleanup(func() { apiKeys.Delete(strings.TrimPrefix(s.HTTP, "http://")) })
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("medimint serve not ready after 90s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiKeyLine finds the bootstrap API key in the first start's output.
var apiKeyLine = regexp.MustCompile(`API key\s+(\S+)`)

// apiKeys maps a server's host:port to its API key; client adds it to
// every request for that host, as a modality or PACS would.
var apiKeys sync.Map

type keyTransport struct{}

func (keyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if k, ok := apiKeys.Load(req.URL.Host); ok && req.Header.Get("X-API-Key") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("X-API-Key", k.(string))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// client is the HTTP client of the suite's DICOMweb requests.
var client = &http.Client{Transport: keyTransport{}}

func ready(s *Server) bool {
	resp, err := http.Get(s.HTTP + "/readyz")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.DIMSEPort), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// dcmtk runs a dcmtk tool with Nagle off (Debian's dcmtk 3.6.7 leaves it
// on unless TCP_NODELAY=1) and returns its combined output.
func dcmtk(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		shown := args
		if len(shown) > 12 {
			shown = append(append(shown[:10:10], fmt.Sprintf("... (%d more)", len(args)-11)), args[len(args)-1])
		}
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(shown, " "), err, out)
	}
	return string(out), nil
}

// mustDcmtk is dcmtk that fails the test on error.
func mustDcmtk(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := dcmtk(t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond every interval until it holds or limit passes; it
// bounds waits for asynchronous work (study completion), never measures.
func waitFor(limit, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("condition not met in time")
		}
		time.Sleep(interval)
	}
}
