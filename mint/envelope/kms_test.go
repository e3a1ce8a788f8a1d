package envelope

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// tool finds a binary built by scripts/tools-*.sh.
func tool(t *testing.T, name, script string) string {
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

var kmsStarted = regexp.MustCompile(`Local KMS started on [0-9.]*:([0-9]+)`)

// startLocalKMS runs local-kms, a KMS emulator, on a random port and
// returns its endpoint. local-kms binds every interface (it has no bind
// address setting); the test talks to it only over loopback and its keys
// are throwaway.
func startLocalKMS(t *testing.T) string {
	t.Helper()
	bin := tool(t, "local-kms", "scripts/tools-local-kms.sh")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT=0", "KMS_DATA_PATH="+t.TempDir(), "KMS_REGION=us-east-1", "KMS_ACCOUNT_ID=111122223333")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	var log bytes.Buffer
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if m := kmsStarted.FindStringSubmatch(sc.Text()); m != nil {
			go func() { // keep draining so the server never blocks on its log
				for sc.Scan() {
				}
			}()
			return "http://127.0.0.1:" + m[1]
		}
	}
	t.Fatalf("local-kms did not start:\n%s", log.String())
	return ""
}

func TestKMS(t *testing.T) {
	endpoint := startLocalKMS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	ctx := context.Background()
	client, err := NewKMSClient(ctx, "us-east-1", endpoint)
	if err != nil {
		t.Fatal(err)
	}
	newKey := func() string {
		out, err := client.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("medimint test KEK")})
		if err != nil {
			t.Fatalf("create key: %v", err)
		}
		return aws.ToString(out.KeyMetadata.KeyId)
	}
	k1, k2 := NewKMS(client, newKey()), NewKMS(client, newKey())
	if k1.KeyID() == k2.KeyID() {
		t.Fatal("two KMS keys share an id")
	}

	// GenerateDataKey path.
	dek, wrapped, err := NewDEK(ctx, k1)
	if err != nil {
		t.Fatal(err)
	}
	if len(dek) != KeySize || bytes.Contains(wrapped, dek) {
		t.Fatal("bad DEK or DEK visible in wrapped form")
	}
	if got, err := k1.Unwrap(ctx, wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap generated key: %v", err)
	}

	// Encrypt path.
	mine := testKey(t, 9)
	w, err := k1.Wrap(ctx, mine)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k1.Unwrap(ctx, w); err != nil || !bytes.Equal(got, mine) {
		t.Fatalf("unwrap: %v", err)
	}

	// The other key must refuse. AWS KMS says IncorrectKeyException,
	// local-kms InvalidCiphertextException; both are refusals.
	if _, err := k2.Unwrap(ctx, w); !errors.Is(err, ErrWrongKEK) && !errors.Is(err, ErrAuth) {
		t.Errorf("unwrap under other key: %v", err)
	}
	bad := bytes.Clone(w)
	bad[len(bad)-1] ^= 1
	if _, err := k1.Unwrap(ctx, bad); err == nil {
		t.Error("tampered wrapped key accepted")
	}

	// Rotation across implementations: KMS to local KEK and back.
	local, err := OpenLocalKEK(filepath.Join(t.TempDir(), "kek"))
	if err != nil {
		t.Fatal(err)
	}
	toLocal, err := Rewrap(ctx, k1, local, w)
	if err != nil {
		t.Fatal(err)
	}
	toK2, err := Rewrap(ctx, local, k2, toLocal)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Unwrap(ctx, toK2); err != nil || !bytes.Equal(got, mine) {
		t.Fatalf("unwrap after rotation: %v", err)
	}

	// End to end: data encrypted under a KMS-wrapped DEK decrypts after
	// the DEK is unwrapped again.
	var ct bytes.Buffer
	enc, err := NewWriter(&ct, dek, []byte("obj"))
	if err != nil {
		t.Fatal(err)
	}
	enc.Write([]byte("pixel data"))
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := k1.Unwrap(ctx, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decrypt(again, []byte("obj"), ct.Bytes()); err != nil || string(got) != "pixel data" {
		t.Fatalf("decrypt with unwrapped DEK: %q, %v", got, err)
	}
}
