package pinning

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
)

// pseudo is a deterministic byte stream anyone can regenerate to check the
// known CIDs with Kubo: block i is SHA-256("medimint pinning test" ||
// uint64 big-endian i), concatenated and cut to n bytes.
type pseudo struct {
	i   uint64
	buf []byte
	n   int64
}

func newPseudo(n int64) io.Reader { return &pseudo{n: n} }

func (p *pseudo) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	n := 0
	for n < len(b) {
		if len(p.buf) == 0 {
			in := binary.BigEndian.AppendUint64([]byte("medimint pinning test"), p.i)
			sum := sha256.Sum256(in)
			p.buf = sum[:]
			p.i++
		}
		c := copy(b[n:], p.buf)
		p.buf = p.buf[c:]
		n += c
	}
	p.n -= int64(n)
	return n, nil
}
