package blobstore

// WithoutUnnamedFiles makes s write through named temporary files, the
// path taken where O_TMPFILE is unsupported.
func WithoutUnnamedFiles(s *FS) { s.spare = nil }

// UsesUnnamedFiles reports whether s writes through unnamed files.
func UsesUnnamedFiles(s *FS) bool { return s.spare != nil }
