package portalapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/auth"
)

// mountPasskeySignIn adds passkey sign-in, which needs no session: it
// must come before the session middleware.
func (a *API) mountPasskeySignIn(r fiber.Router) {
	r.Post("/auth/passkey/begin", a.passkeySignInBegin)
	r.Post("/auth/passkey/finish", a.passkeySignInFinish)
}

// mountPasskeys adds the signed-in user's passkey management and
// notifications to p, the group behind the session middleware.
func (a *API) mountPasskeys(p fiber.Router) {
	p.Get("/passkeys", a.passkeyList)
	p.Post("/passkeys/begin", a.passkeyRegisterBegin)
	p.Post("/passkeys/finish", a.passkeyRegisterFinish)
	p.Delete("/passkeys/:id", a.passkeyDelete)
	p.Get("/notifications", a.notifications)
	p.Post("/notifications/read", a.markNotificationsRead)
}

// PasskeyCeremony is the first half of a ceremony: Options go to
// navigator.credentials.create or .get (binary members base64url), and
// Ceremony comes back with the answer.
type PasskeyCeremony struct {
	Ceremony string `json:"ceremony"`
	Options  any    `json:"options"`
}

type passkeyFinish struct {
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"` // PublicKeyCredential.toJSON()
	Name       string          `json:"name"`
	Cookie     bool            `json:"cookie"`
}

func (a *API) passkeys() (*auth.Passkeys, error) {
	if a.cfg.Passkeys == nil {
		return nil, fiber.NewError(http.StatusNotImplemented, "passkeys are not configured on this server (MEDIMINT_PUBLIC_URL)")
	}
	return a.cfg.Passkeys, nil
}

// passkeyProblem maps the ceremony errors; the rest go to problem.
func (a *API) passkeyProblem(c *fiber.Ctx, err error) error {
	switch {
	case errors.Is(err, auth.ErrCeremony):
		return fiber.NewError(http.StatusBadRequest, "this passkey request expired or was already used; try again")
	case errors.Is(err, auth.ErrPasskeyNotAllowed):
		return fiber.NewError(http.StatusForbidden, "passkeys are for accounts the organisation keeps; sign in with your wallet")
	}
	return a.problem(c, err)
}

func (a *API) passkeySignInBegin(c *fiber.Ctx) error {
	pk, err := a.passkeys()
	if err != nil {
		return err
	}
	id, opts, err := pk.BeginSignIn(c.UserContext(), c.IP())
	if err != nil {
		return a.passkeyProblem(c, err)
	}
	return c.JSON(PasskeyCeremony{Ceremony: id, Options: opts})
}

func (a *API) passkeySignInFinish(c *fiber.Ctx) error {
	pk, err := a.passkeys()
	if err != nil {
		return err
	}
	var in passkeyFinish
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	sess, err := pk.FinishSignIn(c.UserContext(), in.Ceremony, in.Credential, c.IP())
	if err != nil {
		return a.passkeyProblem(c, err)
	}
	return a.answerSession(c, sess, in.Cookie)
}

func (a *API) passkeyList(c *fiber.Ctx) error {
	pk, err := a.passkeys()
	if err != nil {
		return err
	}
	list, err := pk.List(c.UserContext(), subject(c).UserID)
	if err != nil {
		return a.problem(c, err)
	}
	return c.JSON(list)
}

func (a *API) passkeyRegisterBegin(c *fiber.Ctx) error {
	pk, err := a.passkeys()
	if err != nil {
		return err
	}
	id, opts, err := pk.BeginRegistration(c.UserContext(), subject(c).UserID)
	if err != nil {
		return a.passkeyProblem(c, err)
	}
	return c.JSON(PasskeyCeremony{Ceremony: id, Options: opts})
}

func (a *API) passkeyRegisterFinish(c *fiber.Ctx) error {
	pk, err := a.passkeys()
	if err != nil {
		return err
	}
	var in passkeyFinish
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	p, err := pk.FinishRegistration(c.UserContext(), subject(c).UserID, in.Ceremony, in.Name, in.Credential)
	if errors.Is(err, auth.ErrBadCredentials) {
		return fiber.NewError(http.StatusBadRequest, "the passkey could not be verified")
	}
	if err != nil {
		return a.passkeyProblem(c, err)
	}
	return c.Status(http.StatusCreated).JSON(p)
}

func (a *API) passkeyDelete(c *fiber.Ctx) error {
	pk, err := a.passkeys()
	if err != nil {
		return err
	}
	if err := pk.Delete(c.UserContext(), subject(c).UserID, c.Params("id")); err != nil {
		return a.problem(c, err)
	}
	return c.SendStatus(http.StatusNoContent)
}
