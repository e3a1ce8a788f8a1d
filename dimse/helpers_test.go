package dimse

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/medimint/medimint/dicom"
)

const samplesDir = "../../shared/dicom-samples/pydicom"

// requireTool skips the test when tool is missing, unless
// MEDIMINT_REQUIRE_TOOLS is set (CI), where it fails.
func requireTool(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is required (MEDIMINT_REQUIRE_TOOLS is set): %v", tool, err)
			}
			t.Skipf("%s not installed (apt-get install -y dcmtk): %v", tool, err)
		}
	}
}

func sample(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(samplesDir, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
			t.Fatalf("sample %s missing: %v", p, err)
		}
		t.Skipf("sample %s missing: %v", p, err)
	}
	return p
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DIMSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testServer runs a Server on a loopback port until the test ends.
type testServer struct {
	*Server
	addr   string
	port   string
	cancel context.CancelFunc
	done   chan error
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	_, ts.port, _ = net.SplitHostPort(ts.addr)
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	ts.cancel()
	<-ts.done
	ts.done <- nil // stop is idempotent
}

// run runs a dcmtk tool with a deadline and returns its combined output.
func run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// datasetBytes returns the bytes after the File Meta of a Part-10 file.
func datasetBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dicom.ParseBytes(b, dicom.ReadOptions{StopAtTag: dicom.TagFileMetaInformationGroupLength + 0x10000})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b[f.DatasetOffset:]
}

// metaOf parses a Part-10 file's File Meta (and nothing of the data set).
func metaOf(t testing.TB, path string) *dicom.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dicom.ParseBytes(b, dicom.ReadOptions{StopAtTag: dicom.TagFileMetaInformationGroupLength + 0x10000})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// checkNoLeak fails if goroutines started during the test outlive it.
func checkNoLeak(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		for i := 0; i < 200; i++ {
			n = runtime.NumGoroutine()
			if n <= before {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutines: %d before, %d after\n%s", before, n, buf)
	})
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }
