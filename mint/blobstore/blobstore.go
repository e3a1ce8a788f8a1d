package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

var (
	// ErrNotFound reports a key with no object.
	ErrNotFound = errors.New("blobstore: not found")
	// ErrInvalidKey reports a key outside the portable key syntax.
	ErrInvalidKey = errors.New("blobstore: invalid key")
	// ErrInvalidRange reports a range that starts past the object's end.
	ErrInvalidRange = errors.New("blobstore: invalid range")
)

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// BlobStore stores immutable objects by key.
type BlobStore interface {
	// Put stores the bytes of r under key, replacing any object there, and
	// returns the number of bytes stored. The object is durable and
	// visible whole when Put returns nil, and absent or unchanged if it
	// returns an error.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get returns the object's bytes. The caller must close it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange returns n bytes from off, fewer if the object ends first;
	// n < 0 reads to the end. off beyond the end is ErrInvalidRange.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Stat describes the object.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object. Deleting an absent key is not an error,
	// so sweepers may retry.
	Delete(ctx context.Context, key string) error
	// List calls fn for each object whose key starts with prefix, in no
	// particular order, stopping at fn's first error, which it returns.
	List(ctx context.Context, prefix string, fn func(Info) error) error
}

// ValidKey reports whether key is portable across every BlobStore: non-empty
// slash-separated segments of at most 1024 bytes in all, none empty, none
// starting with "." (which excludes "." and ".." and the stores' temporary
// files), and no NUL or backslash.
func ValidKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w: %q: length %d", ErrInvalidKey, key, len(key))
	}
	if strings.ContainsAny(key, "\x00\\") {
		return fmt.Errorf("%w: %q: NUL or backslash", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("%w: %q: empty segment or segment starting with '.'", ErrInvalidKey, key)
		}
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
