package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/config"
	"github.com/medimint/medimint/dimse"
	"github.com/medimint/medimint/gateway"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/mint/pinning"
)

// Background work of serve.
const (
	completionWorkers = 2
	completionPoll    = 2 * time.Second
	sweepEvery        = 10 * time.Minute
	// sweepGrace must exceed the longest store (Put to commit).
	sweepGrace = time.Hour
)

// buildPipeline assembles the ingest pipeline from the configuration:
// blob store (fs under MEDIMINT_DATA_DIR/blobs, or s3), key wrapper (the
// KEK file, or KMS: openKeys) and pinner (local under
// MEDIMINT_DATA_DIR/ipfs, or kubo); issuer names the minting account in
// published metadata.
func buildPipeline(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, keys envelope.KeyWrapper, issuer string, log *slog.Logger) (*mint.Pipeline, error) {
	var blobs blobstore.BlobStore
	switch cfg.BlobStore {
	case config.BlobStoreS3:
		s3, err := blobstore.NewS3(ctx, blobstore.S3Config{Bucket: cfg.S3.Bucket, Region: cfg.S3.Region, Endpoint: cfg.S3.Endpoint, PathStyle: cfg.S3.PathStyle})
		if err != nil {
			return nil, err
		}
		blobs = s3
	default:
		fs, err := blobstore.NewFS(filepath.Join(cfg.DataDir, "blobs"))
		if err != nil {
			return nil, err
		}
		if err := fs.MakeDirs(ctx, mint.BlobDirs()...); err != nil {
			return nil, err
		}
		blobs = fs
	}
	var pinner pinning.Pinner
	switch cfg.Pinner {
	case config.PinnerKubo:
		pinner = pinning.NewKubo(cfg.IPFSAPI)
	default:
		local, err := pinning.NewLocal(filepath.Join(cfg.DataDir, "ipfs"))
		if err != nil {
			return nil, err
		}
		pinner = local
	}
	return mint.New(mint.Config{Pool: pool, Blobs: blobs, Keys: keys, Pinner: pinner, Issuer: issuer, StableAge: cfg.StudyQuiet, Logger: log})
}

// runPipeline serves DIMSE from the pipeline and runs its background work
// (study completion, orphan sweeping) until ctx ends.
// A calling AE acts for its organisation (MEDIMINT_AE_ALLOWLIST, else
// MEDIMINT_ORG_ID) under the access rules of a technologist (gateway.DIMSE).
func runPipeline(ctx context.Context, cfg config.Config, p *mint.Pipeline, az *access.Authorizer, log *slog.Logger) error {
	h := gateway.NewDIMSE(p, az, cfg.OrgID)
	srv, err := dimse.NewServer(dimse.Config{AETitle: cfg.AETitle, Addr: cfg.DIMSEAddr, Store: h, Find: h, Retrieve: h,
		AllowedCallers: cfg.AEAllowlist, MoveDestinations: cfg.MoveDestinations, Logger: log})
	if err != nil {
		return fmt.Errorf("dimse: %w", err)
	}
	go p.RunCompletion(ctx, completionWorkers, completionPoll)
	go func() {
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := p.Sweep(ctx, sweepGrace); err != nil && ctx.Err() == nil {
					log.Warn("sweep", "err", err)
				}
			}
		}
	}()
	ln, err := net.Listen("tcp", cfg.DIMSEAddr)
	if err != nil {
		return fmt.Errorf("dimse: %w", err)
	}
	// The actual address, for MEDIMINT_DIMSE_ADDR=127.0.0.1:0.
	log.Info("DIMSE listening", "addr", ln.Addr().String(), "ae_title", cfg.AETitle)
	return srv.Serve(ctx, ln)
}
