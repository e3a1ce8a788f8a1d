package mint

import (
	"path"
	"slices"
	"testing"
)

// Every blob key lands in one of BlobDirs, which serve makes ahead.
func TestBlobDirsCoverKeys(t *testing.T) {
	dirs := BlobDirs()
	distinct := slices.Compact(slices.Sorted(slices.Values(dirs)))
	if len(dirs) != 256 || len(distinct) != 256 {
		t.Fatalf("%d dirs, %d distinct", len(dirs), len(distinct))
	}
	for range 2000 {
		k := newBlobKey()
		if !slices.Contains(dirs, path.Dir(k)) {
			t.Fatalf("key %s: directory %s not in BlobDirs", k, path.Dir(k))
		}
	}
}
