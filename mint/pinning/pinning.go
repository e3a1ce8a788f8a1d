package pinning

import (
	"context"
	"errors"
	"io"

	"github.com/ipfs/go-cid"
)

var (
	// ErrNotFound reports content that is not held.
	ErrNotFound = errors.New("pinning: content not found")
	// ErrCorrupt reports stored content whose bytes no longer match its CID.
	ErrCorrupt = errors.New("pinning: content does not match its CID")
)

// Pinner stores content by CID and keeps it pinned.
type Pinner interface {
	// Add stores and pins the bytes of r and returns their CID.
	Add(ctx context.Context, r io.Reader) (cid.Cid, error)
	// Pinned reports whether c is pinned.
	Pinned(ctx context.Context, c cid.Cid) (bool, error)
	// Unpin releases c. Unpinning content that is not pinned is not an
	// error, so sweepers may retry.
	Unpin(ctx context.Context, c cid.Cid) error
	// Get returns the content of the file c. The caller must close it.
	Get(ctx context.Context, c cid.Cid) (io.ReadCloser, error)
}
