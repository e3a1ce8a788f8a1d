package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/medimint/medimint/dicom"
)

// DirStore is a StoreHandler that writes each instance durably as a
// Part-10 file <Dir>/<SOP Instance UID>.dcm: a File Meta group, then the
// data set bytes exactly as received. The file is written to a temporary
// name, fsynced, renamed and the directory fsynced before Store returns.
type DirStore struct {
	Dir string
	Log *slog.Logger
}

// NewDirStore returns a DirStore writing into dir, which it creates.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("dimse: store directory: %w", err)
	}
	return &DirStore{Dir: dir, Log: slog.Default()}, nil
}

// headLen is how much of the data set DirStore keeps to check the SOP
// class and instance UIDs against the command's.
const headLen = 16 << 10

type headWriter struct {
	w    io.Writer
	head []byte
}

func (h *headWriter) Write(p []byte) (int, error) {
	if len(h.head) < headLen {
		h.head = append(h.head, p[:min(len(p), headLen-len(h.head))]...)
	}
	return h.w.Write(p)
}

// Path returns where the instance sopInstanceUID is stored.
func (s *DirStore) Path(sopInstanceUID string) string {
	return filepath.Join(s.Dir, sopInstanceUID+".dcm")
}

// Store implements StoreHandler.
func (s *DirStore) Store(ctx context.Context, req StoreRequest, data io.Reader) Status {
	if !dicom.ValidUID(req.SOPInstanceUID) {
		io.Copy(io.Discard, data)
		return Status{Code: StatusCannotUnderstand, ErrorComment: "invalid SOP Instance UID"}
	}
	st, err := s.store(ctx, req, data)
	if err != nil {
		s.log().Warn("dimse: store failed", "sop_instance", req.SOPInstanceUID, "err", err)
	}
	return st
}

func (s *DirStore) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

var errMismatch = errors.New("data set does not match the command")

func (s *DirStore) store(ctx context.Context, req StoreRequest, data io.Reader) (st Status, err error) {
	outOfResources := Status{Code: StatusOutOfResources, ErrorComment: "cannot store the instance"}
	f, err := os.CreateTemp(s.Dir, ".incoming-*")
	if err != nil {
		io.Copy(io.Discard, data)
		return outOfResources, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = writeFileMeta(f, req.SOPClassUID, req.SOPInstanceUID, req.TransferSyntax.UID, req.CallingAE); err != nil {
		io.Copy(io.Discard, data)
		return outOfResources, err
	}
	hw := &headWriter{w: f}
	if _, err = io.Copy(hw, data); err != nil {
		// Either the disk failed or the association did; drain what is
		// left so the association can carry on in the first case.
		io.Copy(io.Discard, data)
		return outOfResources, fmt.Errorf("writing %s: %w", tmp, err)
	}
	if class, inst, ok := headerUIDs(hw.head, req.TransferSyntax); ok && (class != req.SOPClassUID || inst != req.SOPInstanceUID) {
		err = fmt.Errorf("%w: data set has %s / %s", errMismatch, class, inst)
		return Status{Code: StatusDataSetDoesNotMatchSOPClass, ErrorComment: "SOP Class/Instance UID differ from the command"}, err
	}
	if err = ctx.Err(); err != nil {
		return outOfResources, err
	}
	if err = f.Sync(); err != nil {
		return outOfResources, err
	}
	if err = f.Close(); err != nil {
		return outOfResources, err
	}
	if err = os.Rename(tmp, s.Path(req.SOPInstanceUID)); err != nil {
		return outOfResources, err
	}
	if err = syncDir(s.Dir); err != nil {
		return outOfResources, err
	}
	return Success, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// headerUIDs reads SOP Class and Instance UID from the start of a data
// set; ok is false when they cannot be found in head.
func headerUIDs(head []byte, ts dicom.TransferSyntax) (class, inst string, ok bool) {
	ds, err := dicom.ReadDataset(bytes.NewReader(head), ts, dicom.ReadOptions{StopAtTag: dicom.TagSOPInstanceUID + 1})
	if err != nil {
		return "", "", false
	}
	c, i := ds.Get(dicom.TagSOPClassUID), ds.Get(dicom.TagSOPInstanceUID)
	if c == nil || i == nil {
		return "", "", false
	}
	return c.String(), i.String(), true
}
