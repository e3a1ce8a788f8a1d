package gateway

import (
	"crypto/subtle"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/index"
)

// DeleteResult is the body of a successful DELETE.
type DeleteResult struct {
	Deleted int `json:"deleted"` // instances removed (each leaves a tombstone)
}

// delete removes a study, series or instance from the index in one
// transaction, leaving a tombstone per instance (index.Delete). It is not
// part of PS3.18: it is for holders of Config.AdminKey (the operator) and,
// when requests are gated, for subjects access.Decide allows Delete (the
// issuing organisation's issuer_admin). The encrypted blobs become unreferenced and are
// removed by the pipeline's sweeper.
func (s *Server) delete(level index.Level) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Locals(byAdminKey{}) != nil {
			if s.cfg.AdminKey == "" {
				return problemf(http.StatusForbidden, "deletion is disabled on this server")
			}
			key := c.Get(AdminKeyHeader)
			if key == "" {
				c.Set(fiber.HeaderWWWAuthenticate, AdminKeyHeader)
				return problemf(http.StatusUnauthorized, "deletion needs the %s header", AdminKeyHeader)
			}
			if subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.AdminKey)) != 1 {
				return problemf(http.StatusForbidden, "wrong %s", AdminKeyHeader)
			}
		}
		if s.deps.DB == nil {
			return problemf(http.StatusServiceUnavailable, "no database configured")
		}
		t, err := pathTarget(c, level)
		if err != nil {
			return err
		}
		ctx := c.UserContext()
		refs, err := s.instances(ctx, t)
		if err != nil {
			return err
		}
		tx, err := s.deps.DB.Begin(ctx)
		if err != nil {
			return fmt.Errorf("gateway: delete %s: %w", t, err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit, a no-op
		reason := "DICOMweb DELETE " + c.Path() + " (request " + requestID(c) + ")"
		for _, r := range refs {
			if _, err := s.ix.Delete(ctx, tx, r.SOPInstanceUID, reason); err != nil {
				return notFound(err, "instance "+r.SOPInstanceUID)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("gateway: delete %s: %w", t, err)
		}
		s.log.Info("deleted", "request_id", requestID(c), "target", t.String(), "instances", len(refs))
		return c.JSON(DeleteResult{Deleted: len(refs)})
	}
}
