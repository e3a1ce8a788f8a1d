package pinning

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
	shell "github.com/ipfs/go-ipfs-api"
)

// Kubo pins through an IPFS node's RPC API (Kubo's /api/v0).
type Kubo struct {
	sh *shell.Shell
}

// NewKubo returns a pinner for the node whose RPC API listens at addr
// ("host:port", a multiaddr or a URL).
func NewKubo(addr string) *Kubo {
	return &Kubo{sh: shell.NewShell(addr)}
}

// Add adds and pins r. The import parameters are sent explicitly rather
// than left to the node's Import config, so a node configured otherwise
// still gives the CIDs Local computes.
func (k *Kubo) Add(ctx context.Context, r io.Reader) (cid.Cid, error) {
	dir := files.NewSliceDirectory([]files.DirEntry{files.FileEntry("", files.NewReaderFile(r))})
	var out struct{ Hash string }
	err := k.sh.Request("add").
		Option("cid-version", 1).
		Option("raw-leaves", true).
		Option("chunker", fmt.Sprintf("size-%d", ChunkSize)).
		Option("max-file-links", MaxLinks).
		Option("hash", "sha2-256").
		Option("trickle", false).
		Option("inline", false).
		Option("pin", true).
		Option("progress", false).
		Body(files.NewMultiFileReader(dir, true, false)).
		Exec(ctx, &out)
	if err != nil {
		return cid.Undef, fmt.Errorf("pinning: kubo add: %w", err)
	}
	c, err := cid.Decode(out.Hash)
	if err != nil {
		return cid.Undef, fmt.Errorf("pinning: kubo add returned %q: %w", out.Hash, err)
	}
	return c, nil
}

// notPinned recognises Kubo's answers for a CID without a pin.
func notPinned(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not pinned")
}

// Pinned asks for a recursive pin of c.
func (k *Kubo) Pinned(ctx context.Context, c cid.Cid) (bool, error) {
	var out struct {
		Keys map[string]struct{ Type string }
	}
	err := k.sh.Request("pin/ls", c.String()).Option("type", "recursive").Exec(ctx, &out)
	if notPinned(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pinning: kubo pin ls %s: %w", c, err)
	}
	return len(out.Keys) > 0, nil
}

// Unpin removes c's recursive pin; the node's GC reclaims the blocks.
func (k *Kubo) Unpin(ctx context.Context, c cid.Cid) error {
	err := k.sh.Request("pin/rm", c.String()).Option("recursive", true).Exec(ctx, nil)
	if err != nil && !notPinned(err) {
		return fmt.Errorf("pinning: kubo pin rm %s: %w", c, err)
	}
	return nil
}

// Get streams the file c from the node.
func (k *Kubo) Get(ctx context.Context, c cid.Cid) (io.ReadCloser, error) {
	resp, err := k.sh.Request("cat", c.String()).Send(ctx)
	if err != nil {
		return nil, fmt.Errorf("pinning: kubo cat %s: %w", c, err)
	}
	if resp.Error != nil {
		resp.Close()
		if strings.Contains(resp.Error.Error(), "not found") {
			return nil, fmt.Errorf("%w: %s: %w", ErrNotFound, c, resp.Error)
		}
		return nil, fmt.Errorf("pinning: kubo cat %s: %w", c, resp.Error)
	}
	return resp.Output, nil
}
