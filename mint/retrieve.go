package mint

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
)

// Open returns the plaintext Part-10 bytes of the instance sopUID,
// decrypted as they are read. The stream is authentic only once Read has
// returned io.EOF: an error before that means the stored ciphertext was
// altered or truncated (envelope.ErrAuth).
func (p *Pipeline) Open(ctx context.Context, sopUID string) (io.ReadCloser, index.InstanceRef, error) {
	ref, err := index.Lookup(ctx, p.cfg.Pool, sopUID, false)
	if err != nil {
		return nil, index.InstanceRef{}, p.notFound(err)
	}
	rc, err := p.OpenRef(ctx, ref)
	return rc, ref, err
}

// OpenRef is Open for an instance already looked up (index.Instances).
func (p *Pipeline) OpenRef(ctx context.Context, ref index.InstanceRef) (io.ReadCloser, error) {
	dek, err := p.studyKey(ctx, ref.StudyInstanceUID)
	if err != nil {
		return nil, err
	}
	blob, err := p.cfg.Blobs.Get(ctx, ref.BlobKey)
	if err != nil {
		return nil, fmt.Errorf("mint: open %s: %w", ref.SOPInstanceUID, err)
	}
	r, err := envelope.NewReader(blob, dek, []byte(ref.BlobKey))
	if err != nil {
		blob.Close()
		return nil, fmt.Errorf("mint: open %s: %w", ref.SOPInstanceUID, err)
	}
	return instanceReader{r, blob}, nil
}

// instanceReader is an instance's plaintext; it keeps envelope.Reader's
// WriteTo visible to io.Copy.
type instanceReader struct {
	*envelope.Reader
	io.Closer
}

// ReaderAt returns random access to the instance's plaintext, reading
// and authenticating only the chunks a read touches: HTTP Range requests,
// frames and bulk data.
func (p *Pipeline) ReaderAt(ctx context.Context, ref index.InstanceRef) (*envelope.ReaderAt, error) {
	dek, err := p.studyKey(ctx, ref.StudyInstanceUID)
	if err != nil {
		return nil, err
	}
	ra, err := envelope.NewReaderAt(blobReaderAt{ctx, p.cfg.Blobs, ref.BlobKey}, ref.BlobSize, dek, []byte(ref.BlobKey))
	if err != nil {
		return nil, fmt.Errorf("mint: open %s: %w", ref.SOPInstanceUID, err)
	}
	return ra, nil
}

// OpenSpans returns the concatenated plaintext of spans of the instance.
func (p *Pipeline) OpenSpans(ctx context.Context, ref index.InstanceRef, spans []index.Span) (io.Reader, error) {
	ra, err := p.ReaderAt(ctx, ref)
	if err != nil {
		return nil, err
	}
	rs := make([]io.Reader, len(spans))
	for i, s := range spans {
		if s.Offset < 0 || s.Offset+s.Length > ra.Size() {
			return nil, fmt.Errorf("mint: span %d+%d outside %s", s.Offset, s.Length, ref.SOPInstanceUID)
		}
		rs[i] = io.NewSectionReader(ra, s.Offset, s.Length)
	}
	return io.MultiReader(rs...), nil
}

// Frame returns frame k (0-based) of the instance sopUID as stored (native
// pixel bytes, or the frame's compressed fragments concatenated), with
// the instance's frame description.
func (p *Pipeline) Frame(ctx context.Context, sopUID string, k int) (io.Reader, index.FrameInfo, error) {
	fi, err := p.ix.Frames(ctx, sopUID)
	if err != nil {
		return nil, index.FrameInfo{}, p.notFound(err)
	}
	spans, err := fi.Frame(k)
	if err != nil {
		return nil, fi, p.notFound(err)
	}
	r, err := p.OpenSpans(ctx, fi.InstanceRef, spans)
	return r, fi, err
}

func (p *Pipeline) notFound(err error) error {
	if errors.Is(err, index.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// blobReaderAt reads a blob by ranges.
type blobReaderAt struct {
	ctx   context.Context
	blobs blobstore.BlobStore
	key   string
}

func (b blobReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rc, err := b.blobs.GetRange(b.ctx, b.key, off, int64(len(p)))
	if err != nil {
		if errors.Is(err, blobstore.ErrInvalidRange) {
			return 0, io.EOF
		}
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}
