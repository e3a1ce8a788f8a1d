package blobstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/blobstore/blobstoretest"
	"github.com/medimint/medimint/mint/envelope"
)

// tool finds a binary built by scripts/tools-*.sh.
func tool(t testing.TB, name, script string) string {
	t.Helper()
	dir := os.Getenv("MEDIMINT_TOOLS")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "medimint", "tools")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s not found in %s (MEDIMINT_REQUIRE_TOOLS is set); run %s", name, dir, script)
		}
		t.Skipf("%s not found in %s; run %s", name, dir, script)
	}
	return p
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startVersityGW runs a real S3 server (versitygw, posix backend) on a
// loopback port for the test's lifetime and returns its endpoint URL.
func startVersityGW(t testing.TB, access, secret string) string {
	t.Helper()
	bin := tool(t, "versitygw", "scripts/tools-versitygw.sh")
	root := t.TempDir()
	addr := freePort(t)
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+access, "ROOT_SECRET_KEY="+secret)
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw exited: %v\n%s", err, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestS3(t *testing.T) {
	const access, secret = "medimint-test", "medimint-test-secret"
	endpoint := startVersityGW(t, access, secret)
	ctx := context.Background()
	newStore := func(prefix string) *blobstore.S3 {
		s, err := blobstore.NewS3(ctx, blobstore.S3Config{
			Bucket: "studies", Prefix: prefix, Region: "us-east-1", Endpoint: endpoint, PathStyle: true,
			AccessKey: access, SecretKey: secret, PartSize: 5 << 20,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newStore("")
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("studies")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	blobstoretest.Run(t, s)

	t.Run("Prefix", func(t *testing.T) {
		p := newStore("tenant-a/")
		if _, err := p.Put(ctx, "k", blobstoretest.Pseudo(10, 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, "tenant-a/k"); err != nil {
			t.Fatalf("prefixed object not at tenant-a/k: %v", err)
		}
		var keys []string
		if err := p.List(ctx, "", func(i blobstore.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(keys) != "[k]" {
			t.Fatalf("List under prefix = %v", keys)
		}
	})

	// The retrieval path for an HTTP Range: ciphertext in S3, decrypted
	// range by range without fetching the whole object.
	t.Run("EnvelopeRange", func(t *testing.T) {
		dek := bytes.Repeat([]byte{7}, envelope.KeySize)
		aad := []byte("1.2.840.1/1.2.840.1.1")
		plain, _ := io.ReadAll(blobstoretest.Pseudo(1<<20+5, 3))
		pr, pw := io.Pipe()
		go func() {
			w, err := envelope.NewWriter(pw, dek, aad)
			if err == nil {
				_, err = w.Write(plain)
			}
			if err == nil {
				err = w.Close()
			}
			pw.CloseWithError(err)
		}()
		n, err := s.Put(ctx, "enc/obj", pr)
		if err != nil {
			t.Fatal(err)
		}
		if n != envelope.CiphertextSize(int64(len(plain))) {
			t.Fatalf("stored %d bytes, CiphertextSize says %d", n, envelope.CiphertextSize(int64(len(plain))))
		}
		ra, err := blobstore.NewReaderAt(ctx, s, "enc/obj")
		if err != nil {
			t.Fatal(err)
		}
		er, err := envelope.NewReaderAt(ra, ra.Size(), dek, aad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(er, 500000, 100000))
		if err != nil || !bytes.Equal(got, plain[500000:600000]) {
			t.Fatalf("decrypted range: %v", err)
		}
	})

	t.Run("NoMultipartLeftovers", func(t *testing.T) {
		out, err := s.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("studies")})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Uploads) != 0 {
			for _, u := range out.Uploads {
				t.Logf("left open: %s %s", aws.ToString(u.Key), aws.ToString(u.UploadId))
			}
			t.Fatalf("%d multipart uploads left open after failed puts", len(out.Uploads))
		}
	})
}

func BenchmarkS3Put(b *testing.B) {
	const access, secret = "medimint-bench", "medimint-bench-secret"
	endpoint := startVersityGW(b, access, secret)
	ctx := context.Background()
	s, err := blobstore.NewS3(ctx, blobstore.S3Config{
		Bucket: "bench", Region: "us-east-1", Endpoint: endpoint, PathStyle: true,
		AccessKey: access, SecretKey: secret, PartSize: 8 << 20,
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	src := make([]byte, 64<<20)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := s.Put(ctx, "bench/obj", bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
}
