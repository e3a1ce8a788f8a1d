package gateway

import (
	"context"
	"io"
	"sync"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dimse"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint"
)

// DIMSE serves the pipeline's DIMSE services gated like DICOMweb. A
// calling AE acts for its organisation (dimse.Config.AllowedCallers, or
// DefaultOrg for callers without a mapping) with the rights of a
// technologist of it: C-STORE stores for that organisation, C-FIND finds
// its studies only (filtered in SQL), C-MOVE and C-GET send only
// instances of studies access.Decide lets it retrieve, each decision
// audited.
type DIMSE struct {
	inner      mint.DIMSE
	ix         *index.Index
	access     *access.Authorizer
	defaultOrg string
}

// NewDIMSE returns the gated handlers; az nil serves ungated.
func NewDIMSE(p *mint.Pipeline, az *access.Authorizer, defaultOrg string) *DIMSE {
	d := &DIMSE{inner: mint.DIMSE{P: p}, ix: p.Index(), access: az, defaultOrg: defaultOrg}
	if az != nil {
		d.inner.StudyFilter = d.findFilter
	}
	return d
}

func (d *DIMSE) org(org string) string {
	if org == "" {
		return d.defaultOrg
	}
	return org
}

// subject is a calling AE as the access rules see it.
func (d *DIMSE) subject(callingAE, org string) access.Subject {
	return access.Subject{UserID: "ae:" + callingAE, OrgID: d.org(org), Roles: []access.Role{access.RoleTechnologist}}
}

// Store stores for the caller's organisation.
func (d *DIMSE) Store(ctx context.Context, req dimse.StoreRequest, data io.Reader) dimse.Status {
	req.Organisation = d.org(req.Organisation)
	st := d.inner.Store(ctx, req, data)
	if st.Code == mint.StatusNotAuthorized && d.access != nil {
		d.access.Record(ctx, d.subject(req.CallingAE, req.Organisation), "store", false, req.SOPInstanceUID,
			"the study belongs to another organisation")
	}
	return st
}

// Find answers C-FIND with the studies the caller may find.
func (d *DIMSE) Find(ctx context.Context, req dimse.FindRequest, emit func(*dicom.Dataset) error) dimse.Status {
	if d.access == nil {
		return d.inner.Find(ctx, req, emit)
	}
	n := 0
	st := d.inner.Find(ctx, req, func(ds *dicom.Dataset) error {
		n++
		return emit(ds)
	})
	d.access.Served(ctx, d.subject(req.CallingAE, req.Organisation), access.Resource{}, "c-find:"+req.Level, n)
	return st
}

func (d *DIMSE) findFilter(_ context.Context, req dimse.FindRequest) (func(string, int) (string, []any), error) {
	f, err := d.access.QueryFilter(d.subject(req.CallingAE, req.Organisation))
	if err != nil {
		return nil, err
	}
	return f.SQL, nil
}

// Retrieve lists the instances of a C-MOVE or C-GET that the caller may
// retrieve: those of studies it is denied are left out, as if absent.
func (d *DIMSE) Retrieve(ctx context.Context, req dimse.RetrieveRequest) ([]dimse.Instance, dimse.Status) {
	insts, st := d.inner.Retrieve(ctx, req)
	if d.access == nil || len(insts) == 0 {
		return insts, st
	}
	sops := make([]string, len(insts))
	for i, in := range insts {
		sops[i] = in.SOPInstanceUID
	}
	refs, err := d.ix.Instances(ctx, index.Instance, sops)
	if err != nil {
		return nil, dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: "index unavailable"}
	}
	studyOf := make(map[string]string, len(refs))
	for _, r := range refs {
		studyOf[r.SOPInstanceUID] = r.StudyInstanceUID
	}
	sub := d.subject(req.CallingAE, req.Organisation)
	allowed := map[string]bool{}
	out := insts[:0]
	for _, in := range insts {
		study := studyOf[in.SOPInstanceUID]
		ok, seen := allowed[study]
		if !seen {
			dec := d.access.Decide(ctx, sub, access.Retrieve, access.Resource{StudyInstanceUID: study})
			if dec.Reason == access.ReasonUnavailable {
				return nil, dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: "access decisions unavailable"}
			}
			ok = study != "" && dec.Allow
			allowed[study] = ok
		}
		if ok {
			in.Open = d.audited(sub, req, study, in.Open)
			out = append(out, in)
		}
	}
	return out, st
}

// audited wraps a sub-operation's Open so that each C-STORE of a C-MOVE
// or C-GET appends one audit row of what it sent, when its data set is
// closed (complete if it was read to the end).
func (d *DIMSE) audited(sub access.Subject, req dimse.RetrieveRequest, study string,
	open func(context.Context) (io.ReadCloser, error)) func(context.Context) (io.ReadCloser, error) {
	service := "c-get"
	if req.MoveDestination != "" {
		service = "c-move"
	}
	return func(ctx context.Context) (io.ReadCloser, error) {
		rc, err := open(ctx)
		if err != nil {
			return nil, err
		}
		return &subOperation{ReadCloser: rc, done: func(n int64, complete bool) {
			d.access.Retrieved(context.WithoutCancel(ctx), sub, access.Resource{StudyInstanceUID: study}, access.Retrieval{
				Service: service, Level: "instance", What: "instances", Instances: 1, Bytes: n, Complete: complete})
		}}, nil
	}
}

// subOperation counts a sub-operation's data set and reports it once.
type subOperation struct {
	io.ReadCloser
	n    int64
	eof  bool
	once sync.Once
	done func(n int64, complete bool)
}

func (s *subOperation) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	s.n += int64(n)
	if err == io.EOF {
		s.eof = true
	}
	return n, err
}

func (s *subOperation) Close() error {
	s.once.Do(func() { s.done(s.n, s.eof) })
	return s.ReadCloser.Close()
}
