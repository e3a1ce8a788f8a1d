package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/access"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/index"
	"github.com/medimint/medimint/mint"
)

// routes mounts the DICOMweb services under Config.BasePath, in the URL
// layout of PS3.18 (Table 10.4.1-1 for WADO-RS, 10.5.1-1 for STOW-RS and
// 10.6.1-1 for QIDO-RS), so that unmodified clients work.
func (s *Server) routes() {
	g := s.app.Group(s.cfg.BasePath, s.needPipeline)

	// Capabilities (PS3.18 8.9): GET or OPTIONS on the base.
	g.Get("/", s.capabilities)
	g.Options("/", s.capabilities)

	// STOW-RS.
	g.Post("/studies", closeUnread, s.authn, s.mayStore, s.stow)
	g.Post("/studies/:study", closeUnread, s.authn, s.mayStore, s.stow)

	// QIDO-RS: results filtered in SQL by what the caller may find.
	g.Get("/studies", s.authn, s.mayQuery, s.search(index.Study))
	g.Get("/series", s.authn, s.mayQuery, s.search(index.Series))
	g.Get("/instances", s.authn, s.mayQuery, s.search(index.Instance))
	g.Get("/studies/:study/series", s.authn, s.mayQuery, s.search(index.Series))
	g.Get("/studies/:study/instances", s.authn, s.mayQuery, s.search(index.Instance))
	g.Get("/studies/:study/series/:series/instances", s.authn, s.mayQuery, s.search(index.Instance))

	// WADO-RS: each request decided on its study.
	inst := "/studies/:study/series/:series/instances/:instance"
	get := func(path string, act access.Action, level index.Level, h fiber.Handler) {
		g.Get(path, s.authn, s.may(act, level), h)
	}
	get("/studies/:study", access.Retrieve, index.Study, s.retrieve(index.Study))
	get("/studies/:study/metadata", access.MetadataOnly, index.Study, s.metadata)
	get("/studies/:study/thumbnail", access.Retrieve, index.Study, s.rendered(index.Study, true))
	get("/studies/:study/series/:series", access.Retrieve, index.Series, s.retrieve(index.Series))
	get("/studies/:study/series/:series/metadata", access.MetadataOnly, index.Series, s.metadata)
	get("/studies/:study/series/:series/thumbnail", access.Retrieve, index.Series, s.rendered(index.Series, true))
	get(inst, access.Retrieve, index.Instance, s.retrieve(index.Instance))
	get(inst+"/metadata", access.MetadataOnly, index.Instance, s.metadata)
	get(inst+"/rendered", access.Retrieve, index.Instance, s.rendered(index.Instance, false))
	get(inst+"/thumbnail", access.Retrieve, index.Instance, s.rendered(index.Instance, true))
	get(inst+"/frames/:frames", access.Retrieve, index.Instance, s.frames)
	get(inst+"/frames/:frames/rendered", access.Retrieve, index.Instance, s.renderedFrames(false))
	get(inst+"/frames/:frames/thumbnail", access.Retrieve, index.Instance, s.renderedFrames(true))
	get(inst+"/bulkdata/*", access.Retrieve, index.Instance, s.bulkdata)

	// Deletion (not part of PS3.18): the operator's admin key, or an
	// issuer_admin of the issuing organisation.
	g.Delete("/studies/:study", s.deleteAuthn, s.may(access.Delete, index.Study), s.delete(index.Study))
	g.Delete("/studies/:study/series/:series", s.deleteAuthn, s.may(access.Delete, index.Series), s.delete(index.Series))
	g.Delete(inst, s.deleteAuthn, s.may(access.Delete, index.Instance), s.delete(index.Instance))
}

// needPipeline answers 503 when the gateway runs without storage.
func (s *Server) needPipeline(c *fiber.Ctx) error {
	if s.pipe == nil || s.ix == nil {
		return problemf(http.StatusServiceUnavailable, "DICOMweb services are not configured on this server")
	}
	return c.Next()
}

// target is the entity a WADO-RS or DELETE path names.
type target struct {
	level                index.Level
	study, series, sopID string
}

// pathTarget reads and validates the UIDs of the path.
func pathTarget(c *fiber.Ctx, level index.Level) (target, error) {
	t := target{level: level, study: c.Params("study"), series: c.Params("series"), sopID: c.Params("instance")}
	check := func(name, v string) error {
		if !dicom.ValidUID(v) {
			return problemf(http.StatusBadRequest, "invalid %s in the path", name)
		}
		return nil
	}
	if err := check("Study Instance UID", t.study); err != nil {
		return t, err
	}
	if level >= index.Series {
		if err := check("Series Instance UID", t.series); err != nil {
			return t, err
		}
	}
	if level >= index.Instance {
		if err := check("SOP Instance UID", t.sopID); err != nil {
			return t, err
		}
	}
	return t, nil
}

func (t target) String() string {
	switch t.level {
	case index.Study:
		return "study " + t.study
	case index.Series:
		return "series " + t.series + " of study " + t.study
	}
	return "instance " + t.sopID + " of series " + t.series + " of study " + t.study
}

// instances returns the instances under t, in the index's order; none is
// a 404 problem. A series or instance filed under another study or series
// than the path says does not exist at that path.
func (s *Server) instances(ctx context.Context, t target) ([]index.InstanceRef, error) {
	var refs []index.InstanceRef
	var err error
	switch t.level {
	case index.Study:
		refs, err = s.ix.Instances(ctx, index.Study, []string{t.study})
	case index.Series:
		refs, err = s.ix.Instances(ctx, index.Series, []string{t.series})
	default:
		refs, err = s.ix.Instances(ctx, index.Instance, []string{t.sopID})
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: instances of %s: %w", t, err)
	}
	out := refs[:0]
	for _, r := range refs {
		if r.StudyInstanceUID == t.study && (t.level < index.Series || r.SeriesInstanceUID == t.series) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, problemf(http.StatusNotFound, "no %s", t)
	}
	return out, nil
}

// notFound maps the index's and the pipeline's ErrNotFound to 404.
func notFound(err error, what string) error {
	if errors.Is(err, index.ErrNotFound) || errors.Is(err, mint.ErrNotFound) {
		return problemf(http.StatusNotFound, "no %s", what)
	}
	return err
}
