package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ReaderAt reads a stored object at arbitrary offsets, one GetRange per
// ReadAt, so a range of a remote object (e.g. an envelope.ReaderAt over S3
// serving an HTTP Range request) fetches only what it needs.
//
// It holds the context its reads run under because io.ReaderAt has no
// context parameter; use it for one request only.
type ReaderAt struct {
	ctx  context.Context
	s    BlobStore
	key  string
	size int64
}

// NewReaderAt stats key and returns a ReaderAt over it.
func NewReaderAt(ctx context.Context, s BlobStore, key string) (*ReaderAt, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	return &ReaderAt{ctx: ctx, s: s, key: key, size: info.Size}, nil
}

// Size returns the object's size when NewReaderAt ran.
func (r *ReaderAt) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: %s: negative offset", ErrInvalidRange, r.key)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	rc, err := r.s.GetRange(r.ctx, r.key, off, want)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p[:want])
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// The object shrank under us: report what we have.
		return n, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("blobstore: read %s at %d: %w", r.key, off, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
