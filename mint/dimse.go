package mint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/dimse"
	"github.com/medimint/medimint/index"
)

// DIMSE serves the DIMSE services from the pipeline and its index:
// C-STORE into StoreDataset, C-FIND from the index (the same answers as
// QIDO-RS), C-MOVE and C-GET from stored instances. It implements
// dimse.StoreHandler, dimse.FindHandler and dimse.RetrieveHandler.
type DIMSE struct {
	P *Pipeline
	// StudyFilter, if set, limits C-FIND to the studies the caller may
	// find: it returns the condition for index.Query.StudyFilter, or an
	// error to refuse the query (access control, package gateway).
	StudyFilter func(ctx context.Context, req dimse.FindRequest) (func(studies string, next int) (string, []any), error)
}

// Store stores one C-STORE data set and answers only once it is durable.
func (d DIMSE) Store(ctx context.Context, req dimse.StoreRequest, data io.Reader) dimse.Status {
	src := Source{OrgID: req.Organisation, Transport: "dimse", Peer: req.CallingAE}
	_, err := d.P.StoreDataset(ctx, src, req.TransferSyntax.UID, req.SOPClassUID, req.SOPInstanceUID, data)
	if err == nil {
		return dimse.Success
	}
	io.Copy(io.Discard, data) // the rest of the data set, if the failure came early
	st := Status(err)
	d.P.log.WarnContext(ctx, "mint: C-STORE failed", slog.String("calling_ae", req.CallingAE),
		slog.String("sop_instance", req.SOPInstanceUID), slog.String("status", fmt.Sprintf("%04X", st)), slog.Any("err", err))
	comment := err.Error()
	switch st {
	case StatusOutOfResources:
		comment = "storage unavailable" // internal detail stays in our log
	case StatusNotAuthorized:
		comment = "study belongs to another organisation"
	}
	if len(comment) > 64 {
		comment = comment[:64] // LO
	}
	return dimse.Status{Code: st, ErrorComment: comment}
}

// checkLevel validates the Query/Retrieve Level against the information
// model (PS3.4 C.3: Study Root has no PATIENT level).
func checkLevel(model, level string) (index.Level, *dimse.Status) {
	lv, err := index.ParseLevel(level)
	if err != nil || level == "INSTANCE" {
		return 0, &dimse.Status{Code: dimse.StatusDataSetDoesNotMatchSOPClass, ErrorComment: "invalid Query/Retrieve Level", OffendingElements: []dicom.Tag{tag.QueryRetrieveLevel}}
	}
	switch model {
	case dicom.StudyRootQueryRetrieveFind, dicom.StudyRootQueryRetrieveMove, dicom.StudyRootQueryRetrieveGet:
		if lv == index.Patient {
			return 0, &dimse.Status{Code: dimse.StatusDataSetDoesNotMatchSOPClass, ErrorComment: "PATIENT level in Study Root", OffendingElements: []dicom.Tag{tag.QueryRetrieveLevel}}
		}
	}
	return lv, nil
}

// Find answers a C-FIND from the index, one pending response per match.
func (d DIMSE) Find(ctx context.Context, req dimse.FindRequest, emit func(*dicom.Dataset) error) dimse.Status {
	if _, st := checkLevel(req.SOPClassUID, req.Level); st != nil {
		return *st
	}
	q, err := index.FromIdentifier(req.Identifier)
	if err != nil {
		return dimse.Status{Code: dimse.StatusDataSetDoesNotMatchSOPClass, ErrorComment: "invalid identifier"}
	}
	if d.StudyFilter != nil {
		f, err := d.StudyFilter(ctx, req)
		if err != nil {
			d.P.log.WarnContext(ctx, "mint: C-FIND refused", slog.String("calling_ae", req.CallingAE), slog.Any("err", err))
			return dimse.Status{Code: dimse.StatusUnableToProcess, ErrorComment: "access decisions unavailable"}
		}
		q.StudyFilter = f
	}
	const page = 500
	q.Limit = page
	for {
		res, err := d.P.ix.Find(ctx, q)
		var qe *index.QueryError
		switch {
		case errors.As(err, &qe):
			return dimse.Status{Code: dimse.StatusDataSetDoesNotMatchSOPClass, ErrorComment: "invalid matching value", OffendingElements: []dicom.Tag{qe.Tag}}
		case err != nil:
			d.P.log.ErrorContext(ctx, "mint: C-FIND", slog.Any("err", err))
			return dimse.Status{Code: dimse.StatusUnableToProcess, ErrorComment: "index unavailable"}
		}
		for _, m := range res.Matches {
			m.Set(dicom.NewStrings(tag.QueryRetrieveLevel, dicom.CS, req.Level))
			if err := emit(m); err != nil {
				return dimse.Status{Code: dimse.StatusCancel}
			}
		}
		if !res.Truncated {
			return dimse.Success
		}
		q.Offset += page
	}
}

// levelKey is the unique key of each level.
var levelKey = map[index.Level]dicom.Tag{
	index.Patient: tag.PatientID, index.Study: tag.StudyInstanceUID,
	index.Series: tag.SeriesInstanceUID, index.Instance: tag.SOPInstanceUID,
}

// Retrieve lists the stored instances a C-MOVE or C-GET identifier names.
func (d DIMSE) Retrieve(ctx context.Context, req dimse.RetrieveRequest) ([]dimse.Instance, dimse.Status) {
	lv, st := checkLevel(req.SOPClassUID, req.Level)
	if st != nil {
		return nil, *st
	}
	key := req.Identifier.Get(levelKey[lv])
	var uids []string
	if key != nil {
		for _, u := range key.Strings() {
			if u != "" {
				uids = append(uids, u)
			}
		}
	}
	if len(uids) == 0 {
		return nil, dimse.Status{Code: dimse.StatusDataSetDoesNotMatchSOPClass, ErrorComment: "no unique key for level " + req.Level, OffendingElements: []dicom.Tag{levelKey[lv]}}
	}
	refs, err := d.P.ix.Instances(ctx, lv, uids)
	if err != nil {
		d.P.log.ErrorContext(ctx, "mint: retrieve", slog.Any("err", err))
		return nil, dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: "index unavailable"}
	}
	out := make([]dimse.Instance, 0, len(refs))
	for _, ref := range refs {
		ts, ok := dicom.LookupTransferSyntax(ref.TransferSyntaxUID)
		if !ok {
			continue
		}
		out = append(out, dimse.Instance{
			SOPClassUID: ref.SOPClassUID, SOPInstanceUID: ref.SOPInstanceUID, TransferSyntax: ts,
			Open: func(ctx context.Context) (io.ReadCloser, error) { return d.P.OpenDataset(ctx, ref) },
		})
	}
	return out, dimse.Success
}

// OpenDataset returns the stored instance's data set bytes without the
// preamble and File Meta Information: what DIMSE sends.
func (p *Pipeline) OpenDataset(ctx context.Context, ref index.InstanceRef) (io.ReadCloser, error) {
	rc, err := p.OpenRef(ctx, ref)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	head, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		rc.Close()
		return nil, fmt.Errorf("mint: open %s: %w", ref.SOPInstanceUID, err)
	}
	f, err := dicom.ParseBytes(head, dicom.ReadOptions{StopAtTag: 1, SkipBulk: true})
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("mint: open %s: File Meta Information: %w", ref.SOPInstanceUID, err)
	}
	if _, err := br.Discard(int(f.DatasetOffset)); err != nil {
		rc.Close()
		return nil, fmt.Errorf("mint: open %s: %w", ref.SOPInstanceUID, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{br, rc}, nil
}
