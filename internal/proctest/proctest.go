package proctest

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Medimint is the import path of the medimint command.
const Medimint = "github.com/medimint/medimint/cmd/medimint"

// Build compiles the command at importPath into a temporary directory and
// returns the binary's path.
func Build(t testing.TB, importPath string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(importPath))
	build := exec.Command("go", "build", "-o", bin, importPath)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build %s: %v", importPath, err)
	}
	return bin
}

// Proc is a child process with its standard error log.
type Proc struct {
	Name string // the arguments, for messages
	Cmd  *exec.Cmd

	mu   sync.Mutex
	log  []string
	done chan struct{} // closed once the process has exited and been waited for
	err  error         // Wait's error, after done
}

// Start runs bin with args, env added to this process's environment. The
// process is killed when the test ends if it is still running.
func Start(t testing.TB, bin string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: strings.Join(args, " "), Cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), env...)
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		lines := bufio.NewScanner(stderr)
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			p.mu.Lock()
			p.log = append(p.log, lines.Text())
			p.mu.Unlock()
		}
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Log returns what the process logged so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// WaitLog waits up to limit for a log line matching re and returns its
// submatches; the test fails if the process exits first or time runs out.
func (p *Proc) WaitLog(t testing.TB, re *regexp.Regexp, limit time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		p.mu.Lock()
		for _, l := range p.log {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before logging %s:\n%s", p.Name, p.err, re, p.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %s within %v:\n%s", p.Name, re, limit, p.Log())
		}
	}
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil: status 0), once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits (bounded) for the process to be gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die of SIGKILL: %v", p.Name, p.Cmd.ProcessState)
	}
}

// Terminate sends SIGTERM and waits up to limit for exit status 0.
func (p *Proc) Terminate(t testing.TB, limit time.Duration) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s after SIGTERM: %v\n%s", p.Name, p.err, p.Log())
		}
	case <-time.After(limit):
		t.Fatalf("%s still running %v after SIGTERM:\n%s", p.Name, limit, p.Log())
	}
}

// CaptureStore runs push against dcmtk's storescp, bit-preserving, and
// returns the one file it wrote: the instance exactly as the pushing SCU
// sent it (dcmtk re-encodes group lengths and padding on the way), to
// compare with what a server stored. push gets storescp's address and
// its AE title.
func CaptureStore(t testing.TB, push func(host, port, calledAE string)) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	dir := t.TempDir()
	scp := exec.Command("storescp", "--bit-preserving", "-aet", "CAPTURE", "-od", dir, port)
	if err := scp.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = scp.Process.Kill()
		_ = scp.Wait()
	}()
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("storescp not listening on %s: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	push("127.0.0.1", port, "CAPTURE")
	files, err := os.ReadDir(dir)
	if err != nil || len(files) != 1 {
		t.Fatalf("storescp captured %d files (%v)", len(files), err)
	}
	b, err := os.ReadFile(filepath.Join(dir, files[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
