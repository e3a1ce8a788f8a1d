package envelope

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ReaderAt decrypts arbitrary plaintext ranges of a ciphertext written by
// Writer, reading and authenticating only the chunks a range touches. It
// serves HTTP Range requests: io.NewSectionReader(ra, off, n). It is safe
// for concurrent use if the underlying io.ReaderAt is.
//
// It keeps the last chunk it decrypted, so sequential reads smaller than a
// chunk (io.Copy's 32 KiB) fetch and authenticate each chunk once.
type ReaderAt struct {
	r      io.ReaderAt
	s      *sealer
	chunk  int
	ctSize int64
	size   int64 // plaintext
	chunks int64

	mu     sync.Mutex
	cacheK int64  // index of the chunk in cache, -1 if none
	cache  []byte // its plaintext; replaced, never written to
}

// NewReaderAt reads the header of the ctSize-byte ciphertext in r. ctSize
// comes from the store (e.g. a stat). NewReaderAt authenticates the last
// chunk, so Size is trustworthy: a truncated or extended ciphertext is
// refused here, before any range is read.
func NewReaderAt(r io.ReaderAt, ctSize int64, dek, aad []byte) (*ReaderAt, error) {
	hdr := make([]byte, HeaderSize)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: short header", ErrFormat)
		}
		return nil, fmt.Errorf("envelope: read header: %w", err)
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	size, ok := plaintextSize(ctSize, h.chunkSize)
	if !ok {
		return nil, fmt.Errorf("envelope: ciphertext size %d: %w", ctSize, ErrAuth)
	}
	s, err := newSealer(dek, h, hdr, aad)
	if err != nil {
		return nil, err
	}
	ra := &ReaderAt{
		r: r, s: s, chunk: h.chunkSize, ctSize: ctSize, size: size,
		chunks: max(1, (size+int64(h.chunkSize)-1)/int64(h.chunkSize)),
		cacheK: -1,
	}
	if _, err := ra.openChunk(ra.chunks-1, make([]byte, h.chunkSize+Overhead), nil); err != nil {
		return nil, err
	}
	return ra, nil
}

// openChunk reads and authenticates chunk k using ct as scratch space.
func (ra *ReaderAt) openChunk(k int64, ct, dst []byte) ([]byte, error) {
	full := int64(ra.chunk + Overhead)
	ctOff := int64(HeaderSize) + k*full
	ctLen := min(full, ra.ctSize-ctOff)
	if n, err := ra.r.ReadAt(ct[:ctLen], ctOff); err != nil && !(errors.Is(err, io.EOF) && n == int(ctLen)) {
		return nil, fmt.Errorf("envelope: read chunk %d: %w", k, err)
	}
	pt, err := ra.s.open(dst, ct[:ctLen], uint64(k), k == ra.chunks-1)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return pt, nil
}

// Size returns the plaintext size.
func (ra *ReaderAt) Size() int64 { return ra.size }

// ReadAt implements io.ReaderAt over the plaintext.
func (ra *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("envelope: negative offset")
	}
	if off >= ra.size {
		if len(p) == 0 && off == ra.size {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < ra.size {
		k := off / int64(ra.chunk)
		pt, err := ra.chunkAt(k)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], pt[off-k*int64(ra.chunk):])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// chunkAt returns chunk k's plaintext, from the cache if it is there.
func (ra *ReaderAt) chunkAt(k int64) ([]byte, error) {
	ra.mu.Lock()
	if ra.cacheK == k {
		pt := ra.cache
		ra.mu.Unlock()
		return pt, nil
	}
	ra.mu.Unlock()
	pt, err := ra.openChunk(k, make([]byte, ra.chunk+Overhead), nil)
	if err != nil {
		return nil, err
	}
	ra.mu.Lock()
	ra.cacheK, ra.cache = k, pt
	ra.mu.Unlock()
	return pt, nil
}
