package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

const (
	// KeySize is the size of a DEK and of a local KEK: AES-256.
	KeySize = 32
	// DefaultChunkSize is the plaintext size of every chunk but the last.
	DefaultChunkSize = 64 << 10
	// MaxChunkSize bounds the memory a reader allocates for a header it has
	// not yet authenticated.
	MaxChunkSize = 16 << 20
	// HeaderSize is the size of the plaintext header before the first chunk.
	HeaderSize = len(magic) + 1 + 4 + noncePrefixSize
	// Overhead is the ciphertext expansion of one chunk (the GCM tag).
	Overhead = 16

	version         = 1
	noncePrefixSize = 7
	nonceSize       = noncePrefixSize + 4 + 1
	maxChunks       = 1 << 32
)

var magic = [4]byte{'M', 'M', 'E', 'V'}

var (
	// ErrAuth reports ciphertext that failed authentication: it was altered,
	// truncated, reordered or extended, or the key or aad is wrong.
	ErrAuth = errors.New("envelope: message authentication failed")
	// ErrFormat reports a header this package cannot read.
	ErrFormat = errors.New("envelope: malformed ciphertext header")
	// ErrKeySize reports a key that is not KeySize bytes.
	ErrKeySize = errors.New("envelope: key must be 32 bytes")
)

// header is the parsed plaintext header.
type header struct {
	chunkSize int
	prefix    [noncePrefixSize]byte
}

func (h header) marshal() []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, magic[:]...)
	b = append(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(h.chunkSize))
	return append(b, h.prefix[:]...)
}

func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: short header (%d bytes)", ErrFormat, len(b))
	}
	if [4]byte(b[:4]) != magic {
		return h, fmt.Errorf("%w: bad magic %q", ErrFormat, b[:4])
	}
	if b[4] != version {
		return h, fmt.Errorf("%w: unsupported version %d", ErrFormat, b[4])
	}
	cs := binary.BigEndian.Uint32(b[5:9])
	if cs == 0 || cs > MaxChunkSize {
		return h, fmt.Errorf("%w: chunk size %d out of range", ErrFormat, cs)
	}
	h.chunkSize = int(cs)
	copy(h.prefix[:], b[9:HeaderSize])
	return h, nil
}

// sealer holds what every chunk's seal or open needs.
type sealer struct {
	aead   cipher.AEAD
	aad    []byte // header || object aad
	prefix [noncePrefixSize]byte
}

func newSealer(dek []byte, h header, hdr, aad []byte) (*sealer, error) {
	if len(dek) != KeySize {
		return nil, ErrKeySize
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	s := &sealer{aead: aead, aad: append(append(make([]byte, 0, len(hdr)+len(aad)), hdr...), aad...)}
	s.prefix = h.prefix
	return s, nil
}

// nonce is STREAM's nonce for chunk i. It is built per call so a sealer is
// safe for concurrent use (ReaderAt).
func (s *sealer) nonce(i uint64, last bool) []byte {
	n := make([]byte, nonceSize)
	copy(n, s.prefix[:])
	binary.BigEndian.PutUint32(n[noncePrefixSize:], uint32(i))
	if last {
		n[nonceSize-1] = 1
	}
	return n
}

func (s *sealer) seal(dst, plain []byte, i uint64, last bool) []byte {
	return s.aead.Seal(dst, s.nonce(i, last), plain, s.aad)
}

func (s *sealer) open(dst, ct []byte, i uint64, last bool) ([]byte, error) {
	p, err := s.aead.Open(dst, s.nonce(i, last), ct, s.aad)
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", i, ErrAuth)
	}
	return p, nil
}

// CiphertextSize returns the ciphertext size of plainSize bytes of plaintext
// written by NewWriter.
func CiphertextSize(plainSize int64) int64 {
	return ciphertextSize(plainSize, DefaultChunkSize)
}

func ciphertextSize(plainSize int64, chunkSize int) int64 {
	chunks := max(1, (plainSize+int64(chunkSize)-1)/int64(chunkSize))
	return int64(HeaderSize) + plainSize + chunks*Overhead
}

// plaintextSize inverts ciphertextSize; ok is false for sizes no
// ciphertext can have.
func plaintextSize(ctSize int64, chunkSize int) (n int64, ok bool) {
	body := ctSize - int64(HeaderSize)
	if body < Overhead {
		return 0, false
	}
	full := int64(chunkSize + Overhead)
	chunks := (body + full - 1) / full
	last := body - (chunks-1)*full
	if last < Overhead || (last == Overhead && chunks > 1) {
		return 0, false // an empty chunk is only valid as the sole chunk
	}
	return body - chunks*Overhead, true
}

// Writer encrypts a stream. It buffers at most one chunk.
type Writer struct {
	w      io.Writer
	s      *sealer
	buf    []byte // plaintext of the pending chunk; cap chunkSize+Overhead
	chunk  int
	i      uint64
	hdr    []byte // unwritten header, nil once written
	err    error
	closed bool
}

// NewWriter returns a writer that encrypts what is written to it under dek
// in DefaultChunkSize chunks, bound to aad (the object's identity), and
// writes the ciphertext to w. Close must be called to write the final
// chunk; it does not close w.
func NewWriter(w io.Writer, dek, aad []byte) (io.WriteCloser, error) {
	return NewWriterSize(w, dek, aad, DefaultChunkSize)
}

// NewWriterSize is NewWriter with a given plaintext chunk size, which the
// reader learns from the header.
func NewWriterSize(w io.Writer, dek, aad []byte, chunkSize int) (*Writer, error) {
	if chunkSize <= 0 || chunkSize > MaxChunkSize {
		return nil, fmt.Errorf("envelope: chunk size %d out of range", chunkSize)
	}
	var prefix [noncePrefixSize]byte
	if _, err := rand.Read(prefix[:]); err != nil {
		return nil, fmt.Errorf("envelope: nonce prefix: %w", err)
	}
	return newWriter(w, dek, aad, chunkSize, prefix)
}

// newWriter is NewWriterSize with a chosen nonce prefix, for reproducible
// test vectors. Everything else must use a random prefix.
func newWriter(w io.Writer, dek, aad []byte, chunkSize int, prefix [noncePrefixSize]byte) (*Writer, error) {
	h := header{chunkSize: chunkSize, prefix: prefix}
	hdr := h.marshal()
	s, err := newSealer(dek, h, hdr, aad)
	if err != nil {
		return nil, err
	}
	var buf []byte
	if chunkSize == DefaultChunkSize {
		buf = (*chunkBufs.Get().(*[]byte))[:0]
	} else {
		buf = make([]byte, 0, chunkSize+Overhead)
	}
	return &Writer{w: w, s: s, buf: buf, chunk: chunkSize, hdr: hdr}, nil
}

// chunkBufs recycles the chunk buffers of Writers of DefaultChunkSize:
// one per stored instance otherwise.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 0, DefaultChunkSize+Overhead); return &b }}

// Write encrypts p. A chunk is sealed only once the next byte arrives,
// because only Close knows which chunk is the last.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("envelope: write after close")
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == w.chunk {
			if err := w.flush(false); err != nil {
				return n, err
			}
		}
		c := copy(w.buf[len(w.buf):w.chunk], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

func (w *Writer) flush(last bool) error {
	if w.i >= maxChunks {
		w.err = errors.New("envelope: too many chunks for one object")
		return w.err
	}
	if w.hdr != nil {
		if _, err := w.w.Write(w.hdr); err != nil {
			w.err = fmt.Errorf("envelope: write header: %w", err)
			return w.err
		}
		w.hdr = nil
	}
	ct := w.s.seal(w.buf[:0], w.buf, w.i, last)
	if _, err := w.w.Write(ct); err != nil {
		w.err = fmt.Errorf("envelope: write chunk %d: %w", w.i, err)
		return w.err
	}
	w.i++
	w.buf = w.buf[:0]
	return nil
}

// Close seals and writes the final chunk. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	err := w.flush(true)
	if cap(w.buf) == DefaultChunkSize+Overhead {
		b := w.buf[:0]
		chunkBufs.Put(&b) // w.w has the sealed chunk: io.Writer keeps no slice
	}
	w.buf = nil
	return err
}

// Reader decrypts a stream written by Writer. Plaintext is released one
// authenticated chunk at a time; the stream as a whole is authentic only
// once Read returns io.EOF (an earlier error means truncation or tampering
// after the bytes already returned).
type Reader struct {
	r     io.Reader
	s     *sealer
	chunk int
	buf   []byte // ciphertext read ahead; cap chunk+Overhead+1
	pbuf  []byte // decrypted chunk; cap chunk
	plain []byte // unread part of pbuf
	i     uint64
	done  bool
	err   error
}

// NewReader reads the header from r and returns a reader of the plaintext.
// dek and aad must be those given to NewWriter.
func NewReader(r io.Reader, dek, aad []byte) (*Reader, error) {
	hdr := make([]byte, HeaderSize)
	if _, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: short header", ErrFormat)
		}
		return nil, fmt.Errorf("envelope: read header: %w", err)
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	s, err := newSealer(dek, h, hdr, aad)
	if err != nil {
		return nil, err
	}
	rd := &Reader{r: r, s: s, chunk: h.chunkSize}
	if h.chunkSize == DefaultChunkSize {
		rd.buf = (*readBufs.Get().(*[]byte))[:0]
		rd.pbuf = (*plainBufs.Get().(*[]byte))[:0]
	} else {
		rd.buf, rd.pbuf = make([]byte, 0, h.chunkSize+Overhead+1), make([]byte, 0, h.chunkSize)
	}
	return rd, nil
}

// readBufs and plainBufs recycle the ciphertext and plaintext buffers of
// Readers of DefaultChunkSize chunks: two per instance retrieved
// otherwise. A Reader gives them back once it has returned io.EOF or an
// error; one dropped before that leaves them to the garbage collector.
var (
	readBufs  = sync.Pool{New: func() any { b := make([]byte, 0, DefaultChunkSize+Overhead+1); return &b }}
	plainBufs = sync.Pool{New: func() any { b := make([]byte, 0, DefaultChunkSize); return &b }}
)

func (r *Reader) release() {
	if cap(r.buf) == DefaultChunkSize+Overhead+1 && cap(r.pbuf) == DefaultChunkSize {
		b, p := r.buf[:0], r.pbuf[:0]
		readBufs.Put(&b)
		plainBufs.Put(&p)
	}
	r.buf, r.pbuf, r.plain = nil, nil, nil
}

func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if err := r.advance(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// advance decrypts the next chunk, or reports the end (io.EOF) or the
// error that stopped the stream, releasing the buffers.
func (r *Reader) advance() error {
	if r.err == nil && r.done {
		r.err = io.EOF
	}
	if r.err == nil {
		r.err = r.next()
		if r.err == nil {
			return nil
		}
	}
	if r.buf != nil {
		r.release()
	}
	return r.err
}

// WriteTo writes the plaintext to w chunk by chunk, straight from the
// decryption buffer (io.Copy would copy it through a buffer of its own).
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.plain) > 0 {
			n, err := w.Write(r.plain)
			total += int64(n)
			r.plain = r.plain[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		if err := r.advance(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
}

// next decrypts the next chunk into r.plain. It reads one byte past a full
// chunk to learn whether the chunk is the last, carrying that byte over.
func (r *Reader) next() error {
	full := r.chunk + Overhead
	have := len(r.buf)
	n, err := io.ReadFull(r.r, r.buf[have:cap(r.buf)])
	r.buf = r.buf[:have+n]
	last := false
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	default:
		return fmt.Errorf("envelope: read chunk %d: %w", r.i, err)
	}
	ctLen := min(len(r.buf), full)
	if ctLen < Overhead {
		return fmt.Errorf("chunk %d: truncated: %w", r.i, ErrAuth)
	}
	if r.i >= maxChunks {
		return fmt.Errorf("chunk %d: %w", r.i, ErrAuth)
	}
	plain, err := r.s.open(r.pbuf[:0], r.buf[:ctLen], r.i, last)
	if err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	r.i++
	r.plain = plain
	if last {
		r.done = true
		return nil
	}
	r.buf = append(r.buf[:0], r.buf[ctLen]) // the read-ahead byte starts the next chunk
	return nil
}
