package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3Config configures an S3 store.
type S3Config struct {
	Bucket string
	// Prefix is prepended to every key, so several stores can share a bucket.
	Prefix string
	// Region defaults to the AWS configuration chain's.
	Region string
	// Endpoint overrides the service endpoint (S3-compatible services).
	Endpoint string
	// PathStyle addresses the bucket in the path, not the host name, as
	// most S3-compatible services need.
	PathStyle bool
	// AccessKey and SecretKey, when set, replace the default credential chain.
	AccessKey, SecretKey string
	// PartSize is the multipart upload part size; objects no larger are
	// sent in one PutObject. Default 16 MiB, minimum 5 MiB (S3's limit).
	PartSize int64
	// Concurrency is how many parts upload at once (default 4); Put
	// holds up to Concurrency part buffers.
	Concurrency int
}

const (
	defaultPartSize = 16 << 20
	minPartSize     = 5 << 20
	maxParts        = 10000
)

// S3 stores objects in an S3 bucket. Put holds at most Concurrency parts
// in memory, so memory use is bounded regardless of object size.
type S3 struct {
	client      *s3.Client
	bucket      string
	prefix      string
	partSize    int64
	concurrency int
}

// NewS3 builds a store from cfg.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("blobstore: s3: bucket required")
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = defaultPartSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("blobstore: s3: part size %d below S3's minimum %d", cfg.PartSize, minPartSize)
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("blobstore: s3 config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Objects written before checksums existed (or by other tools)
		// have none; that is not worth a log line per GET.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &S3{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix, partSize: cfg.PartSize, concurrency: cfg.Concurrency}, nil
}

// Client returns the underlying client, e.g. for bucket administration.
func (s *S3) Client() *s3.Client { return s.client }

func (s *S3) objectKey(key string) (*string, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	return aws.String(s.prefix + key), nil
}

// isNotFound recognises S3's 404s, which arrive typed (NoSuchKey,
// NotFound) or, for HEAD, only as a status code.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var re *awshttp.ResponseError
	return errors.As(err, &nsk) || errors.As(err, &nf) ||
		(errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound)
}

// Put sends objects up to PartSize in one PutObject and larger ones as a
// multipart upload, which is aborted on error so no partial object or
// orphaned parts remain.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, s.partSize)
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.bucket), Key: k,
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
		}
		return int64(n), nil
	case err != nil:
		return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	total, err := s.putMultipart(ctx, k, r, buf)
	if err != nil {
		return 0, fmt.Errorf("blobstore: put %s: %w", key, err)
	}
	return total, nil
}

// abortMultipart aborts the upload and checks that it is gone. A part
// whose request we cancelled may still be landing on the server and
// revive the upload after the abort; S3's documentation says to abort
// again until ListParts finds nothing, so that no orphaned parts remain.
func (s *S3) abortMultipart(ctx context.Context, k, id *string) error {
	for attempt := 0; ; attempt++ {
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: k, UploadId: id})
		var nsu *types.NoSuchUpload
		if err != nil && !errors.As(err, &nsu) {
			return err
		}
		parts, err := s.client.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(s.bucket), Key: k, UploadId: id})
		if errors.As(err, &nsu) || (err == nil && len(parts.Parts) == 0) || (err != nil && isNotFound(err)) {
			return nil
		}
		if attempt == 4 {
			if err == nil {
				err = fmt.Errorf("%d parts still listed after %d aborts", len(parts.Parts), attempt+1)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		}
	}
}

// putMultipart uploads first (a full part) and the rest of r, with up to
// s.concurrency parts in flight, each in its own buffer.
func (s *S3) putMultipart(ctx context.Context, k *string, r io.Reader, first []byte) (total int64, err error) {
	// Every part carries a CRC32C the service verifies; the completed
	// object's checksum is composed from them.
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: k, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	})
	if err != nil {
		return 0, fmt.Errorf("create multipart upload: %w", err)
	}
	defer func() {
		if err != nil {
			// Abort even if ctx is why we are here, but not forever.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if aerr := s.abortMultipart(actx, k, up.UploadId); aerr != nil {
				err = fmt.Errorf("%w (and abort multipart upload: %v)", err, aerr)
			}
		}
	}()

	// In-flight parts run to the end even after a failure: a part whose
	// request is cancelled can still land on the server after the abort
	// and revive the upload (seen with versitygw), leaving parts behind.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		parts    []types.CompletedPart
		firstErr error
	)
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	// free holds buffers for the next part; nil means not yet allocated.
	free := make(chan []byte, s.concurrency)
	for range s.concurrency - 1 {
		free <- nil
	}
	buf, n := first, len(first)
	for num := int32(1); ; num++ {
		if num > maxParts {
			fail(fmt.Errorf("object exceeds %d parts of %d bytes", maxParts, len(buf)))
			break
		}
		total += int64(n)
		wg.Add(1)
		go func(num int32, part []byte) {
			defer wg.Done()
			defer func() { free <- part[:cap(part)] }()
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: aws.String(s.bucket), Key: k, UploadId: up.UploadId,
				PartNumber: aws.Int32(num), Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			})
			if err != nil {
				fail(fmt.Errorf("upload part %d: %w", num, err))
				return
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32C: out.ChecksumCRC32C})
			mu.Unlock()
		}(num, buf[:n])

		if buf = <-free; buf == nil {
			buf = make([]byte, s.partSize)
		}
		if failed() {
			break
		}
		var rerr error
		n, rerr = io.ReadFull(ctxReader{ctx, r}, buf)
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			fail(rerr)
			break
		}
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		return 0, fmt.Errorf("complete multipart upload: %w", err)
	}
	return total, nil
}

// Get streams the object.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.get(ctx, key, nil)
}

func (s *S3) get(ctx context.Context, key string, rng *string) (io.ReadCloser, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: k, Range: rng})
	if isNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: get %s: %w", key, err)
	}
	return out.Body, nil
}

// GetRange streams part of the object with an HTTP Range request.
func (s *S3) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("%w: %s: negative offset", ErrInvalidRange, key)
	}
	// S3 answers 416 for a range starting at or past the end, including
	// the empty range at the end, which this interface allows.
	if n == 0 {
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	rng := fmt.Sprintf("bytes=%d-", off)
	if n > 0 {
		rng = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	}
	rc, err := s.get(ctx, key, &rng)
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
		info, serr := s.Stat(ctx, key)
		if serr != nil {
			return nil, serr
		}
		if off == info.Size {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, fmt.Errorf("%w: %s: offset %d of %d bytes", ErrInvalidRange, key, off, info.Size)
	}
	return rc, err
}

// Stat issues a HEAD request.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if isNotFound(err) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blobstore: stat %s: %w", key, err)
	}
	return Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Delete removes the object; S3 deletes are idempotent.
func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: k}); err != nil && !isNotFound(err) {
		return fmt.Errorf("blobstore: delete %s: %w", key, err)
	}
	return nil
}

// List pages through ListObjectsV2.
func (s *S3) List(ctx context.Context, prefix string, fn func(Info) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("blobstore: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if err := fn(Info{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return fmt.Errorf("blobstore: list %q: %w", prefix, err)
			}
		}
	}
	return nil
}
