package pinning

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"
)

// Local is a content store in a directory: each pinned file is kept whole
// under its CID, so content is served by streaming one file. It computes
// the same CIDs as Kubo but does not publish to the IPFS network; content
// can be re-added to a Kubo node later and keep its CID.
type Local struct {
	dir string
}

const localTmpPrefix = ".tmp-"

// NewLocal returns a store in dir, creating it if needed.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pinning: %w", err)
	}
	return &Local{dir: dir}, nil
}

func (l *Local) path(c cid.Cid) (string, error) {
	if !c.Defined() {
		return "", errors.New("pinning: undefined CID")
	}
	// CIDv1 base32 strings are file-name safe and case-insensitive.
	return filepath.Join(l.dir, cid.NewCidV1(c.Type(), c.Hash()).String()), nil
}

// Add streams r into a temporary file while computing its CID, then makes
// the file durable under that CID. Adding content already held is a no-op
// beyond the hashing.
func (l *Local) Add(ctx context.Context, r io.Reader) (cid.Cid, error) {
	f, err := os.CreateTemp(l.dir, localTmpPrefix+"*")
	if err != nil {
		return cid.Undef, fmt.Errorf("pinning: add: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this finds nothing
	b := newBuilder()
	_, err = io.Copy(io.MultiWriter(f, b), ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return cid.Undef, fmt.Errorf("pinning: add: %w", err)
	}
	c := b.root()
	p, _ := l.path(c)
	if err := os.Rename(tmp, p); err != nil {
		return cid.Undef, fmt.Errorf("pinning: add %s: %w", c, err)
	}
	if err := syncDir(l.dir); err != nil {
		return cid.Undef, fmt.Errorf("pinning: add %s: %w", c, err)
	}
	return c, nil
}

// Pinned reports whether c's content is held.
func (l *Local) Pinned(_ context.Context, c cid.Cid) (bool, error) {
	p, err := l.path(c)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("pinning: %w", err)
	}
}

// Unpin deletes c's content.
func (l *Local) Unpin(_ context.Context, c cid.Cid) error {
	p, err := l.path(c)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pinning: unpin %s: %w", c, err)
	}
	return syncDir(l.dir)
}

// Get streams c's content, recomputing the CID as it goes: the final Read
// returns ErrCorrupt instead of io.EOF if the stored bytes have changed.
func (l *Local) Get(_ context.Context, c cid.Cid) (io.ReadCloser, error) {
	p, err := l.path(c)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, c)
	}
	if err != nil {
		return nil, fmt.Errorf("pinning: get %s: %w", c, err)
	}
	return &verifier{f: f, want: c, b: newBuilder()}, nil
}

type verifier struct {
	f    *os.File
	want cid.Cid
	b    *builder
	end  error // io.EOF or ErrCorrupt once the whole file was read
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.end != nil {
		return 0, v.end
	}
	n, err := v.f.Read(p)
	v.b.Write(p[:n])
	if err == io.EOF {
		v.end = io.EOF
		if got := v.b.root(); !got.Equals(v.want) {
			v.end = fmt.Errorf("%w: %s holds %s", ErrCorrupt, v.want, got)
		}
		return n, v.end
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pinning: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pinning: sync %s: %w", dir, err)
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
