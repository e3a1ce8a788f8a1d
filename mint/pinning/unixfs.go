package pinning

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// Kubo's defaults for `ipfs add --cid-version=1` (boxo's importer).
const (
	// ChunkSize is the fixed-size chunker's chunk: "size-262144".
	ChunkSize = 256 << 10
	// MaxLinks is the balanced layout's links per node (boxo's
	// DefaultLinksPerBlock: 8192 / 47).
	MaxLinks = 174
)

// link is a child of a UnixFS file node.
type link struct {
	c        cid.Cid
	tsize    uint64 // cumulative block bytes below and including the child
	filesize uint64 // file bytes below the child
}

// builder computes the CID of a UnixFS file as bytes stream through it,
// holding one chunk and at most MaxLinks links per tree level.
//
// The balanced layout fills each node with MaxLinks children before
// starting the next and only then grows the tree a level; closing a level's
// node lazily (when its MaxLinks+1st child arrives, or at the end) builds
// the same tree bottom-up.
type builder struct {
	chunk  []byte
	levels [][]link // levels[i]: children of the open node at height i+1
	n      int64
}

func newBuilder() *builder {
	return &builder{chunk: make([]byte, 0, ChunkSize)}
}

func (b *builder) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		c := copy(b.chunk[len(b.chunk):ChunkSize], p)
		b.chunk = b.chunk[:len(b.chunk)+c]
		p = p[c:]
		if len(b.chunk) == ChunkSize {
			b.leaf()
		}
	}
	b.n += int64(n)
	return n, nil
}

func (b *builder) leaf() {
	b.add(0, link{c: blockCID(cid.Raw, b.chunk), tsize: uint64(len(b.chunk)), filesize: uint64(len(b.chunk))})
	b.chunk = b.chunk[:0]
}

func (b *builder) add(level int, l link) {
	if level == len(b.levels) {
		b.levels = append(b.levels, make([]link, 0, MaxLinks))
	}
	if len(b.levels[level]) == MaxLinks {
		b.add(level+1, fileNode(b.levels[level]))
		b.levels[level] = b.levels[level][:0]
	}
	b.levels[level] = append(b.levels[level], l)
}

// root closes every open node and returns the file's CID. A file of at
// most one chunk is a single raw block (so the empty file is the raw block
// of no bytes, as Kubo makes it).
func (b *builder) root() cid.Cid {
	if len(b.chunk) > 0 || b.n == 0 {
		b.leaf()
	}
	for level := 0; ; level++ {
		top := true
		for _, up := range b.levels[level+1:] {
			if len(up) > 0 {
				top = false
				break
			}
		}
		if top && len(b.levels[level]) == 1 {
			return b.levels[level][0].c
		}
		if len(b.levels[level]) > 0 {
			b.add(level+1, fileNode(b.levels[level]))
			b.levels[level] = b.levels[level][:0]
		}
	}
}

func blockCID(codec uint64, block []byte) cid.Cid {
	sum := sha256.Sum256(block)
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		panic(err) // only for unknown codes
	}
	return cid.NewCidV1(codec, mh)
}

// fileNode encodes a dag-pb node holding a UnixFS File over links and
// returns the link to it.
func fileNode(links []link) link {
	// UnixFS Data (proto2): Type=File(2), filesize, blocksizes (unpacked).
	var fsize uint64
	for _, l := range links {
		fsize += l.filesize
	}
	data := make([]byte, 0, 16+len(links)*5)
	data = appendTag(data, 1, 0)
	data = binary.AppendUvarint(data, 2)
	data = appendTag(data, 3, 0)
	data = binary.AppendUvarint(data, fsize)
	for _, l := range links {
		data = appendTag(data, 4, 0)
		data = binary.AppendUvarint(data, l.filesize)
	}

	// PBNode: Links (field 2) precede Data (field 1), as dag-pb requires.
	// PBLink: Hash (1), Name (2, always present, empty), Tsize (3).
	node := make([]byte, 0, len(links)*48+len(data)+8)
	tsize := uint64(0)
	for _, l := range links {
		h := l.c.Bytes()
		pl := make([]byte, 0, len(h)+16)
		pl = appendTag(pl, 1, 2)
		pl = binary.AppendUvarint(pl, uint64(len(h)))
		pl = append(pl, h...)
		pl = appendTag(pl, 2, 2)
		pl = binary.AppendUvarint(pl, 0)
		pl = appendTag(pl, 3, 0)
		pl = binary.AppendUvarint(pl, l.tsize)

		node = appendTag(node, 2, 2)
		node = binary.AppendUvarint(node, uint64(len(pl)))
		node = append(node, pl...)
		tsize += l.tsize
	}
	node = appendTag(node, 1, 2)
	node = binary.AppendUvarint(node, uint64(len(data)))
	node = append(node, data...)
	return link{c: blockCID(cid.DagProtobuf, node), tsize: tsize + uint64(len(node)), filesize: fsize}
}

// appendTag appends a protobuf field key: field number and wire type
// (0 varint, 2 length-delimited).
func appendTag(b []byte, field, wire uint64) []byte {
	return binary.AppendUvarint(b, field<<3|wire)
}

// CID returns the CID `ipfs add --cid-version=1` gives the bytes of r, and
// their count, without storing anything.
func CID(r io.Reader) (cid.Cid, int64, error) {
	b := newBuilder()
	if _, err := io.Copy(b, r); err != nil {
		return cid.Undef, 0, fmt.Errorf("pinning: %w", err)
	}
	return b.root(), b.n, nil
}
