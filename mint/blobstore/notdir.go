package blobstore

import "syscall"

// errNotDir is what opening "a/b" returns when "a" is a file: for keys it
// means not found.
var errNotDir error = syscall.ENOTDIR
