package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// bufPipe carries a stream intact whether it is read with Read (small
// buffers) or WriteTo (whole buffers handed to the writer), with writes
// of every size around its buffer's, and reports the producer's error.
func TestBufPipe(t *testing.T) {
	src := make([]byte, 5*streamBufSize+12345)
	for i := range src {
		src[i] = byte(rand.IntN(256))
	}
	boom := errors.New("producer failed")
	for _, tt := range []struct {
		name    string
		max     int
		sizes   []int // write sizes, cycled
		copyOut func(w io.Writer, p *bufPipe) (int64, error)
		fail    bool
	}{
		{"WriteTo", streamBufSize, []int{65552, 1, streamBufSize, 3 * streamBufSize}, func(w io.Writer, p *bufPipe) (int64, error) { return p.WriteTo(w) }, false},
		{"Read", streamBufSize, []int{65552, 7}, func(w io.Writer, p *bufPipe) (int64, error) {
			return io.CopyBuffer(w, struct{ io.Reader }{p}, make([]byte, 4096))
		}, false},
		{"WriteToSmallPipe", 1000, []int{999, 1001, 1}, func(w io.Writer, p *bufPipe) (int64, error) { return p.WriteTo(w) }, false},
		{"WriteToProducerError", streamBufSize, []int{65552}, func(w io.Writer, p *bufPipe) (int64, error) { return p.WriteTo(w) }, true},
		{"ReadProducerError", streamBufSize, []int{65552}, func(w io.Writer, p *bufPipe) (int64, error) {
			return io.CopyBuffer(w, iotest.HalfReader(p), make([]byte, 4096))
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, cancel := context.WithCancel(context.Background())
			p := newBufPipe(tt.max, cancel)
			go func() {
				b := src
				for i := 0; len(b) > 0; i++ {
					n := min(len(b), tt.sizes[i%len(tt.sizes)])
					if _, err := p.Write(b[:n]); err != nil {
						return
					}
					b = b[n:]
				}
				if tt.fail {
					p.closeWrite(boom)
				} else {
					p.closeWrite(nil)
				}
			}()
			var out bytes.Buffer
			_, err := tt.copyOut(&out, p)
			p.Close()
			if tt.fail != errors.Is(err, boom) || (!tt.fail && err != nil) {
				t.Fatalf("error %v, want producer's: %v", err, tt.fail)
			}
			if !bytes.Equal(out.Bytes(), src) {
				t.Fatalf("got %d bytes, want the %d written (first difference at %d)", out.Len(), len(src), firstDiff(out.Bytes(), src))
			}
		})
	}
}

// A consumer that goes away stops the producer: its next Write fails.
func TestBufPipeClosedByReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := newBufPipe(streamBufSize, cancel)
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := p.Write(make([]byte, 65552)); err != nil {
				done <- err
				return
			}
		}
	}()
	if _, err := p.WriteTo(failingWriter{}); err == nil {
		t.Fatal("WriteTo to a failing writer succeeded")
	}
	p.Close()
	if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("producer's Write after Close: %v", err)
	}
	if ctx.Err() == nil {
		t.Fatal("Close did not cancel the producer's context")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("connection reset") }

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
