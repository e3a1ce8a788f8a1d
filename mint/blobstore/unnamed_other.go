//go:build !linux

package blobstore

import (
	"errors"
	"os"
)

func openUnnamed(string) (*os.File, error)  { return nil, errors.ErrUnsupported }
func linkUnnamed(*os.File, string) error    { return errors.ErrUnsupported }
func unnamedFilesWork(string) bool          { return false }
func startWriteback(*os.File, int64, int64) {}
