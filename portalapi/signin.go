package portalapi

import (
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/auth"
)

// sessionMode: a browser (cookie true) gets its tokens in HttpOnly
// cookies only, never in a body script could read; API clients get them
// in the body.
func (a *API) answerSession(c *fiber.Ctx, sess auth.Session, cookie bool) error {
	if cookie {
		auth.SetSessionCookies(c, sess, !a.cfg.InsecureCookies)
		sess.AccessToken, sess.RefreshToken = "", ""
	}
	return c.JSON(sess)
}

type passwordSignIn struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Cookie   bool   `json:"cookie"`
}

func (a *API) signInPassword(c *fiber.Ctx) error {
	var in passwordSignIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	sess, err := a.auth.SignInPassword(c.UserContext(), in.Email, in.Password, c.IP())
	if err != nil {
		return a.problem(c, err)
	}
	return a.answerSession(c, sess, in.Cookie)
}

// Challenge is a SEP-10 challenge for the client to sign.
type Challenge struct {
	Transaction       string `json:"transaction"`
	NetworkPassphrase string `json:"network_passphrase"`
}

func (a *API) sep10Challenge(c *fiber.Ctx) error {
	acct := c.Query("account")
	if acct == "" {
		return fiber.NewError(http.StatusBadRequest, "query parameter account (a Stellar G… address) is required")
	}
	tx, err := a.auth.Challenge(c.UserContext(), acct)
	if errors.Is(err, auth.ErrSEP10Disabled) {
		return a.problem(c, err)
	}
	if err != nil {
		return fiber.NewError(http.StatusBadRequest, "cannot build a challenge for that account")
	}
	return c.JSON(Challenge{Transaction: tx, NetworkPassphrase: a.cfg.Network.Passphrase})
}

type sep10SignIn struct {
	Transaction string `json:"transaction"`
	Cookie      bool   `json:"cookie"`
}

func (a *API) sep10SignIn(c *fiber.Ctx) error {
	var in sep10SignIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	sess, err := a.auth.SignInSEP10(c.UserContext(), in.Transaction, c.IP())
	if err != nil {
		return a.problem(c, err)
	}
	return a.answerSession(c, sess, in.Cookie)
}

type refreshIn struct {
	RefreshToken string `json:"refresh_token"`
}

// refreshToken reads the refresh token from the body, or else from the
// cookie, which (unlike the body) needs the CSRF checks of a cookie
// session: a same-origin request with the double-submit token.
func (a *API) refreshToken(c *fiber.Ctx) (tok string, cookie bool, err error) {
	var in refreshIn
	if len(c.Body()) > 0 {
		if err := bodyInto(c, &in); err != nil {
			return "", false, err
		}
	}
	if in.RefreshToken != "" {
		return in.RefreshToken, false, nil
	}
	tok = c.Cookies(auth.CookieRefresh)
	if tok == "" {
		return "", false, fiber.NewError(http.StatusUnauthorized, "no refresh token")
	}
	origin := c.Get(fiber.HeaderOrigin)
	if (origin != c.BaseURL() && !contains(a.cfg.Origins, origin)) || c.Get(auth.HeaderCSRF) == "" || c.Get(auth.HeaderCSRF) != c.Cookies(auth.CookieCSRF) {
		return "", false, fiber.NewError(http.StatusForbidden, "cross-origin request refused")
	}
	return tok, true, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (a *API) refresh(c *fiber.Ctx) error {
	tok, cookie, err := a.refreshToken(c)
	if err != nil {
		return err
	}
	sess, err := a.auth.Refresh(c.UserContext(), tok)
	if err != nil {
		if cookie {
			auth.ClearSessionCookies(c, !a.cfg.InsecureCookies)
		}
		return a.problem(c, err)
	}
	return a.answerSession(c, sess, cookie)
}

func (a *API) logout(c *fiber.Ctx) error {
	tok, cookie, err := a.refreshToken(c)
	if err != nil {
		return err
	}
	if err := a.auth.SignOut(c.UserContext(), tok); err != nil {
		return a.problem(c, err)
	}
	if cookie {
		auth.ClearSessionCookies(c, !a.cfg.InsecureCookies)
	}
	return c.SendStatus(http.StatusNoContent)
}

type acceptIn struct {
	Token       string `json:"token"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

func (a *API) acceptInvitation(c *fiber.Ctx) error {
	var in acceptIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	u, err := a.auth.AcceptInvitation(c.UserContext(), in.Token, in.Password, in.DisplayName)
	if err != nil {
		return a.problem(c, err)
	}
	return c.Status(http.StatusCreated).JSON(u)
}

// Me is the signed-in user's profile.
type Me struct {
	auth.User
	OrgID       string      `json:"org_id"`
	Roles       []auth.Role `json:"roles"`
	AccountURL  string      `json:"account_url,omitempty"`
	SignsWith   string      `json:"signs_with"` // "custodial" or "wallet"
	Network     string      `json:"network_passphrase"`
	ExplorerURL string      `json:"-"`
}

func (a *API) me(c *fiber.Ctx) error {
	sub := subject(c)
	u, err := a.auth.UserByID(c.UserContext(), sub.UserID)
	if err != nil {
		return a.problem(c, err)
	}
	m := Me{User: u, OrgID: sub.OrgID, Roles: sub.Roles, SignsWith: "wallet", Network: a.cfg.Network.Passphrase}
	if u.Custodial {
		m.SignsWith = "custodial"
	}
	if u.Account != "" && a.cfg.Network.HorizonURL != "" {
		m.AccountURL = a.cfg.Network.AccountURL(u.Account)
	}
	if m.Roles == nil {
		m.Roles = []auth.Role{}
	}
	return c.JSON(m)
}

type profileIn struct {
	DisplayName string `json:"display_name"`
}

func (a *API) updateMe(c *fiber.Ctx) error {
	var in profileIn
	if err := bodyInto(c, &in); err != nil {
		return err
	}
	if err := a.auth.UpdateProfile(c.UserContext(), subject(c).UserID, in.DisplayName); err != nil {
		return a.problem(c, err)
	}
	return a.me(c)
}
