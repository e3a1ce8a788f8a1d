package blobstore

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// openUnnamed opens a file with no name in dir (O_TMPFILE): it vanishes
// if the process dies before linkUnnamed names it.
func openUnnamed(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), nil
}

// linkUnnamed gives the unnamed file f the name p, replacing what is
// there. linkat through /proc/self/fd needs no privilege (AT_EMPTY_PATH
// would need CAP_DAC_READ_SEARCH).
func linkUnnamed(f *os.File, p string) error {
	src := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, p, unix.AT_SYMLINK_FOLLOW)
	if !errors.Is(err, unix.EEXIST) {
		if err != nil {
			return &os.LinkError{Op: "linkat", Old: src, New: p, Err: err}
		}
		return nil
	}
	// Replacing: link under a temporary name beside p, then rename over.
	tmp := filepath.Join(filepath.Dir(p), tmpPrefix+strconv.FormatUint(uint64(os.Getpid()), 36)+"-"+strconv.Itoa(int(f.Fd())))
	os.Remove(tmp)
	if err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, tmp, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "linkat", Old: src, New: tmp, Err: err}
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// unnamedFilesWork reports whether dir's file system supports O_TMPFILE
// and this process can link such a file into it.
func unnamedFilesWork(dir string) bool {
	f, err := openUnnamed(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	p := filepath.Join(dir, tmpPrefix+"probe-"+strconv.Itoa(os.Getpid()))
	os.Remove(p)
	if err := linkUnnamed(f, p); err != nil {
		return false
	}
	os.Remove(p)
	return true
}

// startWriteback asks the kernel to start writing n bytes from off back
// to disk without waiting (sync_file_range SYNC_FILE_RANGE_WRITE). It is
// only a hint: the fsync that follows is what makes the data durable.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
