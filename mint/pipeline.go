package mint

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/mint/pinning"
)

// DuplicatePolicy says what storing an already stored SOP Instance UID does.
type DuplicatePolicy int

const (
	// RejectDuplicates fails the store with ErrDuplicate (0x0111).
	RejectDuplicates DuplicatePolicy = iota
	// OverwriteDuplicates replaces the stored instance (the old one is
	// tombstoned and its blob deleted).
	OverwriteDuplicates
	// IgnoreIdenticalDuplicates accepts a byte-identical resend (the two
	// instances' decrypted contents are compared) as success without
	// storing it again, and rejects a different instance under the same
	// UID with ErrDuplicate.
	IgnoreIdenticalDuplicates
)

// Defaults for Config.
const (
	DefaultMaxHeader = 16 << 20
	// DefaultMaxInMemory bounds the values of one instance held in memory
	// (Config.MaxInMemory).
	DefaultMaxInMemory = 256 << 20
	DefaultStableAge   = 60 * time.Second
	// BlobPrefix starts every instance blob key; Sweep lists under it.
	BlobPrefix = "i/"
)

// Config assembles a Pipeline.
type Config struct {
	Pool   *pgxpool.Pool
	Blobs  blobstore.BlobStore
	Keys   envelope.KeyWrapper
	Pinner pinning.Pinner // needed by study completion only

	Duplicates DuplicatePolicy
	// MaxHeader bounds the bytes buffered before Pixel Data.
	MaxHeader int64
	// MaxInMemory bounds the bytes of an instance's values held in memory
	// while it is parsed: all but Pixel Data and other binary values over
	// 1 KiB, which stream to the blob store. An instance past it (a huge
	// text value, a deflated data set that inflates without end) is
	// refused with ErrTooLarge rather than exhaust memory.
	MaxInMemory int64
	// StableAge is the quiet period after a study's last instance before
	// the study counts as complete.
	StableAge time.Duration
	// Issuer names the issuer in published NFT metadata (e.g. the
	// issuing Stellar account); it must not identify a patient.
	Issuer string
	Logger *slog.Logger
}

// Pipeline stores and retrieves instances. It is safe for concurrent use.
type Pipeline struct {
	cfg    Config
	ix     *index.Index
	outbox *Outbox
	log    *slog.Logger

	mu   sync.Mutex
	deks map[string][]byte // Study Instance UID -> DEK, bounded by maxCachedDEKs
	salt []byte            // for study_ref; loaded once

	commits  committer
	chunks   sync.Pool // *[]byte of pipeChunk capacity, for aheadPipe
	metadocs metadocs
}

const maxCachedDEKs = 4096

// New returns a Pipeline. The database must have the schema applied.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Pool == nil || cfg.Blobs == nil || cfg.Keys == nil {
		return nil, errors.New("mint: Config needs Pool, Blobs and Keys")
	}
	if cfg.MaxHeader <= 0 {
		cfg.MaxHeader = DefaultMaxHeader
	}
	if cfg.MaxInMemory <= 0 {
		cfg.MaxInMemory = DefaultMaxInMemory
	}
	if cfg.StableAge <= 0 {
		cfg.StableAge = DefaultStableAge
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Pipeline{
		cfg: cfg, ix: index.New(cfg.Pool), outbox: NewOutbox(cfg.Pool), log: cfg.Logger,
		deks: map[string][]byte{},
	}, nil
}

// Index returns the instance index the pipeline writes.
func (p *Pipeline) Index() *index.Index { return p.ix }

// Outbox returns the pipeline's outbox.
func (p *Pipeline) Outbox() *Outbox { return p.outbox }

// Source describes where an instance came from.
type Source struct {
	// OrgID is the issuing organisation, from the calling AE title or
	// the API key.
	OrgID string
	// Transport and Peer are for logs: "dimse" and the calling AE title,
	// "stow" and the remote address.
	Transport string
	Peer      string
}

// Outcome says what a successful store did.
type Outcome int

const (
	// Created: the instance was new.
	Created Outcome = iota
	// Replaced: it overwrote a stored instance (OverwriteDuplicates).
	Replaced
	// Unchanged: an identical instance was already stored
	// (IgnoreIdenticalDuplicates); nothing was written.
	Unchanged
)

// Stored describes a durably stored instance.
type Stored struct {
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUID    string
	SOPClassUID       string
	TransferSyntaxUID string
	Size              int64 // plaintext Part-10 bytes
	Outcome           Outcome
}

// StorePart10 stores a Part-10 stream (STOW-RS). A data set without File
// Meta Information is accepted and given one, so that what is stored is
// always a Part-10 object. It returns only once the instance is durable
// and indexed.
func (p *Pipeline) StorePart10(ctx context.Context, src Source, r io.Reader) (Stored, error) {
	hr := &headerReader{r: r, max: p.cfg.MaxHeader}
	f, err := dicom.Parse(hr, dicom.ReadOptions{StopAtTag: tagAfterUIDs, SkipBulk: true})
	if err != nil {
		return Stored{}, headerError(hr, err)
	}
	ds := &f.Dataset
	sopClass, sopInst := ds.String(dicom.TagSOPClassUID), ds.String(dicom.TagSOPInstanceUID)
	var plain io.Reader
	if f.Meta.Len() > 0 {
		if m := f.Meta.String(dicom.TagMediaStorageSOPInstanceUID); m != "" && sopInst != "" && m != sopInst {
			return Stored{}, invalid(ErrMismatch, "File Meta SOP Instance UID %s, data set %s", m, sopInst)
		}
		if m := f.Meta.String(dicom.TagMediaStorageSOPClassUID); m != "" && sopClass != "" && m != sopClass {
			return Stored{}, invalid(ErrMismatch, "File Meta SOP Class UID %s, data set %s", m, sopClass)
		}
		plain = io.MultiReader(bytes.NewReader(hr.buf.Bytes()), r)
	} else {
		meta, err := fileMeta(sopClass, sopInst, f.TransferSyntax)
		if err != nil {
			return Stored{}, err
		}
		plain = io.MultiReader(bytes.NewReader(meta), bytes.NewReader(hr.buf.Bytes()[f.DatasetOffset:]), r)
	}
	return p.ingest(ctx, src, ds, f.TransferSyntax, plain)
}

// StoreDataset stores a bare data set as received over DIMSE in the
// negotiated transfer syntax ts, for the C-STORE command's SOP Class and
// Instance UIDs. The stored object is File Meta Information
// (dicom.NewFileMeta) followed by the data set bytes exactly as received.
// It returns only once the instance is durable and indexed.
func (p *Pipeline) StoreDataset(ctx context.Context, src Source, ts, sopClass, sopInstance string, r io.Reader) (Stored, error) {
	tsd, ok := dicom.LookupTransferSyntax(ts)
	if !ok {
		return Stored{}, invalid(ErrNotDICOM, "unknown transfer syntax %s", ts)
	}
	hr := &headerReader{r: r, max: p.cfg.MaxHeader}
	ds, err := dicom.ReadDataset(hr, tsd, dicom.ReadOptions{StopAtTag: tagAfterUIDs, SkipBulk: true})
	if err != nil {
		return Stored{}, headerError(hr, err)
	}
	if got := ds.String(dicom.TagSOPClassUID); got != sopClass {
		return Stored{}, invalid(ErrMismatch, "SOP Class UID %q in the data set, %q in the command", got, sopClass)
	}
	if got := ds.String(dicom.TagSOPInstanceUID); got != sopInstance {
		return Stored{}, invalid(ErrMismatch, "SOP Instance UID %q in the data set, %q in the command", got, sopInstance)
	}
	meta, err := fileMeta(sopClass, sopInstance, tsd)
	if err != nil {
		return Stored{}, err
	}
	plain := io.MultiReader(bytes.NewReader(meta), bytes.NewReader(hr.buf.Bytes()), r)
	return p.ingest(ctx, src, ds, tsd, plain)
}

// fileMeta encodes preamble, "DICM" and File Meta Information.
func fileMeta(sopClass, sopInst string, ts dicom.TransferSyntax) ([]byte, error) {
	if sopClass == "" || sopInst == "" {
		return nil, invalid(ErrMissingUID, "SOP Class UID %q, SOP Instance UID %q", sopClass, sopInst)
	}
	metaTS := ts
	metaTS.Deflated = false // only the meta is written here; an empty deflated data set would add bytes
	f := dicom.File{Meta: dicom.NewFileMeta(sopClass, sopInst, ts.UID), TransferSyntax: metaTS}
	var b bytes.Buffer
	if err := f.Write(&b, dicom.WriteOptions{}); err != nil {
		return nil, fmt.Errorf("mint: encode File Meta Information: %w", err)
	}
	return b.Bytes(), nil
}

// tagAfterUIDs stops the header parse once SOP Class, SOP Instance,
// Study Instance and Series Instance UIDs have passed: that is all the
// pipeline needs before encrypting; the full parse runs alongside.
var tagAfterUIDs = dicom.NewTag(0x0020, 0x000F)

// headerReader buffers what the header parse consumes (which, read ahead
// included, is where the full stream must restart) and refuses to buffer
// more than max bytes.
type headerReader struct {
	r   io.Reader
	max int64
	buf bytes.Buffer
	err error
}

var errHeaderCap = errors.New("header cap reached")

func (h *headerReader) Read(p []byte) (int, error) {
	room := h.max - int64(h.buf.Len())
	if room <= 0 {
		h.err = errHeaderCap
		return 0, h.err
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := h.r.Read(p)
	h.buf.Write(p[:n])
	if err != nil && err != io.EOF {
		h.err = err
	}
	return n, err
}

func headerError(hr *headerReader, err error) error {
	switch {
	case errors.Is(hr.err, errHeaderCap):
		return fmt.Errorf("%w: more than %d bytes before Pixel Data", ErrHeaderTooLarge, hr.max)
	case hr.err != nil:
		return fmt.Errorf("mint: read instance: %w", hr.err)
	}
	return fmt.Errorf("%w: %w", ErrNotDICOM, err)
}

// BlobDirs are the key prefixes (directories, for a file system store)
// instance blobs spread over: newBlobKey puts each under one of the 256.
// serve has blobstore.FS make them when it opens (FS.MakeDirs).
func BlobDirs() []string {
	dirs := make([]string, 256)
	for i := range dirs {
		dirs[i] = fmt.Sprintf("%s%02x", BlobPrefix, i)
	}
	return dirs
}

// newBlobKey returns a random key: it reveals nothing of the instance.
func newBlobKey() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return BlobPrefix + h[:2] + "/" + h
}

// ingest encrypts and stores the plaintext Part-10 stream and indexes it.
func (p *Pipeline) ingest(ctx context.Context, src Source, hdr *dicom.Dataset, ts dicom.TransferSyntax, plain io.Reader) (Stored, error) {
	st := Stored{
		StudyInstanceUID:  hdr.String(dicom.TagStudyInstanceUID),
		SeriesInstanceUID: hdr.String(dicom.TagSeriesInstanceUID),
		SOPInstanceUID:    hdr.String(dicom.TagSOPInstanceUID),
		SOPClassUID:       hdr.String(dicom.TagSOPClassUID),
		TransferSyntaxUID: ts.UID,
	}
	switch {
	case st.SOPClassUID == "", st.SOPInstanceUID == "":
		return Stored{}, invalid(ErrMissingUID, "SOP Class UID %q, SOP Instance UID %q", st.SOPClassUID, st.SOPInstanceUID)
	case st.StudyInstanceUID == "", st.SeriesInstanceUID == "":
		return Stored{}, invalid(ErrMissingUID, "Study Instance UID %q, Series Instance UID %q", st.StudyInstanceUID, st.SeriesInstanceUID)
	}
	dek, err := p.studyKey(ctx, st.StudyInstanceUID)
	if err != nil {
		return Stored{}, err
	}
	key := newBlobKey()
	w, err := p.write(ctx, key, dek, plain)
	if err != nil {
		return Stored{}, err
	}
	st.Size = w.size
	// From here on a failure must not leave the blob behind.
	committed := false
	defer func() {
		if !committed && w.waitPut() == nil {
			p.deleteBlob(ctx, key)
		}
	}()
	full := &w.file.Dataset
	if full.String(dicom.TagSOPInstanceUID) != st.SOPInstanceUID || full.String(dicom.TagStudyInstanceUID) != st.StudyInstanceUID {
		return Stored{}, invalid(ErrNotDICOM, "the data set changed between header and full parse")
	}
	rec := &index.Record{
		Dataset: full, TransferSyntaxUID: ts.UID, OrgID: src.OrgID,
		BlobKey: key, BlobSize: w.ctSize, Size: w.size,
	}
	rec.Metadata, rec.Bulk = p.metadata(full, ts, st)
	rec.Frames = framesOf(w.file, ts)

	// The row commits only once the blob is durable; the committer sends
	// the row while the blob's fsync runs and waits for it before COMMIT.
	res := p.commits.commit(ctx, p, rec, w)
	if res.err != nil {
		committed = res.unsure
		return Stored{}, res.err
	}
	st.Outcome = res.out
	if st.Outcome != Unchanged {
		committed = true
		p.touchMetadata(st.SeriesInstanceUID)
	}
	if st.Outcome == Replaced {
		p.deleteBlob(ctx, res.old.BlobKey)
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "mint: stored instance", slog.String("transport", src.Transport),
		slog.String("peer", src.Peer), slog.String("blob", key), slog.Int64("bytes", w.size), slog.Int("outcome", int(st.Outcome)))
	return st, nil
}

func (p *Pipeline) deleteBlob(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := p.cfg.Blobs.Delete(ctx, key); err != nil {
		// Sweep removes it later.
		p.log.WarnContext(ctx, "mint: delete blob", slog.String("blob", key), slog.Any("err", err))
	}
}

// written is the outcome of streaming an instance into the blob store.
// The blob's Put may still be making it durable (fsync, rename); waitPut
// says when it is, so that index work overlaps the fsync.
type written struct {
	file         *dicom.File // full parse, bulk data not loaded
	size, ctSize int64

	put     <-chan error
	putOnce sync.Once
	putErr  error
}

// waitPut waits for the blob's Put and returns its error. It is safe for
// concurrent use (the group committer waits for its members' Puts).
func (w *written) waitPut() error {
	w.putOnce.Do(func() { w.putErr = <-w.put })
	return w.putErr
}

// eofReader closes done once its reader is exhausted (or when the
// consumer gives up), so the ciphertext hash is known complete.
type eofReader struct {
	r    io.Reader
	done chan struct{}
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.signal()
	}
	return n, err
}

func (e *eofReader) signal() { e.once.Do(func() { close(e.done) }) }

// write streams plain through encryption into the blob store under key.
// Nothing is hashed here: SHA-256 (~1.8 GB/s on the machines we measure)
// costs more than the encryption, the ciphertext is hashed once, when the
// study's bundle is published, and the GCM tags already authenticate every
// chunk. The full parse (data set and bulk data offsets) drives the
// stream: every byte it reads passes on to the encryption as it goes by, so
// the instance is read once, without a second parser or a hand-off
// between goroutines for it. The ciphertext crosses a pipe with a few
// chunks of slack to the Put, whose file writes thus overlap the
// encryption on the other core. It returns once the ciphertext is
// handed over whole; the Put's durability is awaited with waitPut. On
// error nothing is left stored.
func (p *Pipeline) write(ctx context.Context, key string, dek []byte, plain io.Reader) (*written, error) {
	pipe := newAheadPipe(pipeDepth, &p.chunks)
	ctr := &eofReader{r: pipe, done: make(chan struct{})}
	putDone := make(chan error, 1)
	go func() {
		_, err := p.cfg.Blobs.Put(ctx, key, ctr)
		ctr.signal()
		if err != nil {
			pipe.CloseRead(err) // fail the writer at once
		} else {
			pipe.CloseRead(io.ErrClosedPipe) // Put returned: nothing more may be written
		}
		putDone <- err
	}()

	w := &written{put: putDone}
	enc, err := envelope.NewWriter(pipe, dek, []byte(key))
	if err != nil {
		pipe.CloseWrite(err)
		w.waitPut()
		return nil, fmt.Errorf("mint: encrypt: %w", err)
	}
	tee := &teeReader{r: plain, w: enc}
	f, parseErr := dicom.Parse(tee, dicom.ReadOptions{SkipBulk: true, MaxInMemory: p.cfg.MaxInMemory})
	if parseErr == nil {
		parseErr = drain(tee) // trailing bytes, if the parser stopped early, are stored too
	}
	var encErr error
	if parseErr == nil && tee.err == nil {
		encErr = enc.Close()
	}
	pipe.CloseWrite(errors.Join(tee.err, parseErr, encErr)) // nil: EOF, the Put completes
	<-ctr.done
	pipe.recycle() // the Put reads no more

	var failed error
	switch {
	case tee.srcErr != nil:
		failed = fmt.Errorf("mint: read instance: %w", tee.srcErr)
	case (tee.err != nil || encErr != nil) && w.waitPut() != nil:
		failed = fmt.Errorf("mint: store blob: %w", w.putErr)
	case tee.err != nil || encErr != nil:
		failed = fmt.Errorf("mint: encrypt: %w", errors.Join(tee.err, encErr))
	case errors.Is(parseErr, dicom.ErrTooLarge):
		failed = fmt.Errorf("%w: %w", ErrTooLarge, parseErr)
	case parseErr != nil:
		failed = fmt.Errorf("%w: %w", ErrNotDICOM, parseErr)
	}
	if failed != nil {
		if w.waitPut() == nil {
			p.deleteBlob(ctx, key) // Put may have completed before the failure surfaced
		}
		return nil, failed
	}
	w.file, w.size = f, tee.n
	w.ctSize = envelope.CiphertextSize(tee.n)
	return w, nil
}

// pipeDepth is how many ciphertext chunks the encryption may run ahead
// of the Put.
const pipeDepth = 16

// pipeChunk is the size of an aheadPipe chunk: one sealed envelope chunk.
const pipeChunk = envelope.DefaultChunkSize + envelope.Overhead

// aheadPipe is a one-writer, one-reader pipe holding up to depth chunks,
// so that its ends run concurrently rather than in lock step as with
// io.Pipe. Memory stays bounded by depth chunks, taken from a pool shared
// by the pipeline's stores.
type aheadPipe struct {
	data chan []byte
	free chan []byte
	done chan struct{} // closed by CloseRead
	once sync.Once
	pool *sync.Pool
	all  []*[]byte // chunks taken from pool (writer side)
	rerr error     // CloseRead's error, set before done closes
	werr error     // CloseWrite's error, set before data closes
	cur  []byte    // unread part of buf (reader side)
	buf  []byte
}

func newAheadPipe(depth int, pool *sync.Pool) *aheadPipe {
	return &aheadPipe{data: make(chan []byte, depth), free: make(chan []byte, depth+1), done: make(chan struct{}), pool: pool}
}

// chunk returns a pooled chunk buffer.
func (p *aheadPipe) chunk() []byte {
	b, _ := p.pool.Get().(*[]byte)
	if b == nil {
		s := make([]byte, 0, pipeChunk)
		b = &s
	}
	p.all = append(p.all, b)
	return (*b)[:0]
}

// recycle returns the chunks to the pool once neither end uses them.
func (p *aheadPipe) recycle() {
	for _, b := range p.all {
		p.pool.Put(b)
	}
	p.all = nil
}

// Write queues a copy of b; it fails once the reader has closed.
func (p *aheadPipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.done:
			return n, p.rerr
		default:
			if len(p.all) < cap(p.data)+1 {
				buf = p.chunk()
				break
			}
			select {
			case buf = <-p.free:
			case <-p.done:
				return n, p.rerr
			}
		}
		c := min(len(b), cap(buf))
		buf = append(buf[:0], b[:c]...)
		select {
		case p.data <- buf:
		case <-p.done:
			return n, p.rerr
		}
		n, b = n+c, b[c:]
	}
	return n, nil
}

// CloseWrite ends the stream: the reader sees err after the queued data,
// or io.EOF if err is nil. The writer calls it once.
func (p *aheadPipe) CloseWrite(err error) {
	p.werr = err
	close(p.data)
}

// Read returns queued data.
func (p *aheadPipe) Read(b []byte) (int, error) {
	if len(p.cur) == 0 {
		if p.buf != nil {
			p.free <- p.buf // room for every chunk there is
			p.buf = nil
		}
		buf, ok := <-p.data
		if !ok {
			if p.werr != nil {
				return 0, p.werr
			}
			return 0, io.EOF
		}
		p.buf, p.cur = buf, buf
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// CloseRead makes further writes fail with err.
func (p *aheadPipe) CloseRead(err error) {
	p.once.Do(func() {
		p.rerr = err
		close(p.done)
	})
}

// teeReader passes what it reads on to w, counting it. A read error is
// the source's (srcErr), a write error the sink's (err); either ends the
// stream.
type teeReader struct {
	r      io.Reader
	w      io.Writer
	n      int64
	srcErr error
	err    error
}

func (t *teeReader) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.r.Read(p)
	if n > 0 {
		if _, werr := t.w.Write(p[:n]); werr != nil {
			t.err = werr
			return 0, werr
		}
		t.n += int64(n)
	}
	if err != nil && err != io.EOF {
		t.srcErr, t.err = err, err
	}
	return n, err
}

// drain reads r to its end.
func drain(r io.Reader) error {
	_, err := io.Copy(io.Discard, r) // usually nothing is left: no buffer of our own
	return err
}
