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
	"sync"
)

// tmpPrefix marks files of Puts in progress (or interrupted by a crash);
// ValidKey keeps keys from colliding with them and List skips them.
const tmpPrefix = ".tmp-"

// FS stores objects as files under a root directory, one file per key,
// with key segments as directories.
//
// Where the system allows (Linux: O_TMPFILE and linkat), a Put writes to
// an unnamed file opened ahead of time, so that creating the file — up to
// a millisecond of inode allocation on a busy ext4 — is off the path
// between the first byte and the durable object, and a crash leaves no
// temporary file behind. Elsewhere it writes to a named temporary file
// in the destination directory.
type FS struct {
	root string
	// dirs holds the directories known to exist, so a Put into an
	// existing shard directory costs no stat.
	dirs sync.Map
	// spare holds unnamed files opened ahead for Puts (nil: unsupported).
	spare chan *os.File
	bufs  sync.Pool
}

// spareFiles is how many unnamed files FS keeps open ahead: one per
// concurrent Put it absorbs without opening a file on its path.
const spareFiles = 8

// writeBehind is how many bytes a Put writes before it asks the kernel to
// start writing them back, so the closing fsync finds most of the object
// on disk already.
const writeBehind = 256 << 10

// NewFS returns a store rooted at dir, creating it if needed.
func NewFS(dir string) (*FS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	s := &FS{root: abs}
	s.bufs.New = func() any { b := make([]byte, writeBehind); return &b }
	if unnamedFilesWork(abs) {
		s.spare = make(chan *os.File, spareFiles)
	}
	return s, nil
}

func (s *FS) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes the object to a new file, fsyncs it, gives it its name and
// fsyncs the directory, so the object survives a crash once Put returns
// and is never seen half-written.
func (s *FS) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, err
	}
	dir := filepath.Dir(p)
	if err := s.mkdirs(dir); err != nil {
		return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	if f := s.takeSpare(); f != nil {
		n, err := s.write(ctx, f, r)
		if err == nil {
			err = linkUnnamed(f, p)
			if errors.Is(err, fs.ErrNotExist) {
				// The directory went away behind our back: make it again.
				s.dirs.Delete(dir)
				if err = s.mkdirs(dir); err == nil {
					err = linkUnnamed(f, p)
				}
			}
		}
		f.Close()
		if err == nil {
			err = syncDir(dir)
		}
		if err != nil {
			return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
		}
		return n, nil
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		s.dirs.Delete(dir) // removed behind our back
		if err = s.mkdirs(dir); err == nil {
			f, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
	}
	if err != nil {
		return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	tmp := f.Name()
	n, err := s.write(ctx, f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	return n, nil
}

// write copies r into f and fsyncs it, asking the kernel to start
// writeback every writeBehind bytes on the way.
func (s *FS) write(ctx context.Context, f *os.File, r io.Reader) (int64, error) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	var n, flushed int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := f.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
			if n-flushed >= writeBehind {
				startWriteback(f, flushed, n-flushed)
				flushed = n
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	return n, f.Sync()
}

// takeSpare returns an unnamed file opened ahead, or nil if the system
// has none, and opens its replacement in the background. A Put that finds
// the spares used up opens one itself.
func (s *FS) takeSpare() *os.File {
	if s.spare == nil {
		return nil
	}
	go s.refill()
	select {
	case f := <-s.spare:
		return f
	default:
		f, err := openUnnamed(s.root)
		if err != nil {
			return nil // the named temporary file path still works
		}
		return f
	}
}

func (s *FS) refill() {
	f, err := openUnnamed(s.root)
	if err != nil {
		return
	}
	select {
	case s.spare <- f:
	default:
		f.Close()
	}
}

// MakeDirs makes the directories named by keys (key syntax, without a
// trailing slash) and their parents, with one directory fsync per parent
// rather than one per directory. A store whose keys spread over a known
// set of directories makes them when it opens: on ext4 creating a
// directory can cost a millisecond of CPU, which the first Put into each
// would pay otherwise.
func (s *FS) MakeDirs(ctx context.Context, keys ...string) error {
	parents := map[string]bool{}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := s.path(k)
		if err != nil {
			return fmt.Errorf("blobstore: make dirs: %w", err)
		}
		if _, ok := s.dirs.Load(p); ok {
			continue
		}
		if err := s.mkdirs(filepath.Dir(p)); err != nil {
			return fmt.Errorf("blobstore: make dirs: %w", err)
		}
		switch err := os.Mkdir(p, 0o700); {
		case err == nil:
			parents[filepath.Dir(p)] = true
		case !errors.Is(err, fs.ErrExist):
			return fmt.Errorf("blobstore: make dirs: %w", err)
		}
		s.dirs.Store(p, struct{}{})
	}
	for d := range parents {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("blobstore: make dirs: %w", err)
		}
	}
	return nil
}

// mkdirs creates dir and its missing parents below the root, fsyncing each
// new directory's parent so the new entries are durable too.
func (s *FS) mkdirs(dir string) error {
	if _, ok := s.dirs.Load(dir); ok {
		return nil
	}
	if err := s.mkdirsSlow(dir); err != nil {
		return err
	}
	s.dirs.Store(dir, struct{}{})
	return nil
}

func (s *FS) mkdirsSlow(dir string) error {
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
