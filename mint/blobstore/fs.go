package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tmpPrefix marks files of Puts in progress (or interrupted by a crash);
// ValidKey keeps keys from colliding with them and List skips them.
const tmpPrefix = ".tmp-"

// FS stores objects as files under a root directory, one file per key,
// with key segments as directories.
type FS struct {
	root string
}

// NewFS returns a store rooted at dir, creating it if needed.
func NewFS(dir string) (*FS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	return &FS{root: abs}, nil
}

func (s *FS) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes to a temporary file in the destination directory, fsyncs it,
// renames it into place and fsyncs the directory, so the object survives a
// crash once Put returns and is never seen half-written.
func (s *FS) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, err
	}
	dir := filepath.Dir(p)
	if err := s.mkdirs(dir); err != nil {
		return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	tmp := f.Name()
	n, err := func() (int64, error) {
		n, err := io.Copy(f, ctxReader{ctx, r})
		if err != nil {
			f.Close()
			return n, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return n, err
		}
		if err := f.Close(); err != nil {
			return n, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return n, err
		}
		return n, syncDir(dir)
	}()
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	return n, nil
}

// mkdirs creates dir and its missing parents below the root, fsyncing each
// new directory's parent so the new entries are durable too.
func (s *FS) mkdirs(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	rel, err := filepath.Rel(s.root, dir)
	if err != nil {
		return err
	}
	cur := s.root
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, seg)
		err := os.Mkdir(next, 0o700)
		switch {
		case err == nil:
			if err := syncDir(cur); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
		default:
			return err
		}
		cur = next
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get opens the object's file. The returned value is an *os.File, so
// callers may use it as an io.ReaderAt.
func (s *FS) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := s.open(p, key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (s *FS) open(p, key string) (*os.File, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: get %s: %w", key, err)
	}
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return f, nil
}

// GetRange returns a section of the object's file.
func (s *FS) GetRange(_ context.Context, key string, off, n int64) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := s.open(p, key)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blobstore: get %s: %w", key, err)
	}
	if off < 0 || off > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("%w: %s: offset %d of %d bytes", ErrInvalidRange, key, off, fi.Size())
	}
	if n < 0 || off+n > fi.Size() {
		n = fi.Size() - off
	}
	return sectionCloser{io.NewSectionReader(f, off, n), f}, nil
}

type sectionCloser struct {
	*io.SectionReader
	io.Closer
}

// Stat describes the object's file.
func (s *FS) Stat(_ context.Context, key string) (Info, error) {
	p, err := s.path(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) || (err == nil && fi.IsDir()) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blobstore: stat %s: %w", key, err)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object's file and makes the removal durable. Empty
// directories are left in place: removing them would race with a
// concurrent Put into the same directory.
func (s *FS) Delete(_ context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	err = os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blobstore: delete %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("blobstore: delete %s: %w", key, err)
	}
	return nil
}

// List walks the directory that holds prefix's last complete segment.
func (s *FS) List(ctx context.Context, prefix string, fn func(Info) error) error {
	base := s.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
				return nil // prefix names no directory, or it went away mid-walk
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Prune directories that cannot hold a key with the prefix.
			if p != base && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted mid-walk
		}
		if err != nil {
			return err
		}
		return fn(Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("blobstore: list %q: %w", prefix, err)
	}
	return nil
}
