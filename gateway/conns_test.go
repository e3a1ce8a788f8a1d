package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Shutdown closes a connection that never sent a request (fasthttp would
// wait for it until its timeout), but not one whose request is still
// arriving: that request is answered.
func TestShutdownClosesSilentConnections(t *testing.T) {
	s := New(Config{}, Deps{Logger: quietLogger()})
	entered := make(chan struct{})
	s.app.Post("/echo", func(c *fiber.Ctx) error {
		close(entered) // the body is still arriving: it is streamed (StreamRequestBody)
		b, err := io.ReadAll(c.Context().RequestBodyStream())
		if err != nil {
			return err
		}
		return c.SendString(fmt.Sprint(len(b)))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	const size = 64 << 10
	body := strings.Repeat("x", size)
	if _, err := io.WriteString(slow, fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)+body[:size/2]); err != nil {
		t.Fatal(err)
	}
	// Both connections accepted (in order), the slow one's request begun.
	<-entered

	cancel()
	for { // until the listener is closed: shutdown has begun
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
	}
	// The silent connection is closed by the server.
	if err := silent.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("silent connection: read %d bytes, %v; want EOF (closed by the server)", n, err)
	}
	// Past the grace period, the rest of the slow request's body.
	time.Sleep(1500 * time.Millisecond)
	if _, err := io.WriteString(slow, body[size/2:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatalf("slow request: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(b) != fmt.Sprint(size) {
		t.Errorf("slow request: %d %q %v, want 200 %d", resp.StatusCode, b, err, size)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return 10 s after its context ended")
	}
}
