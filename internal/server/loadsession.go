package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/auth"
)

const ctxSession = "portal_session"

// loadSession finds the portal session named by the cookie, if any, and
// leaves it on the context. It refuses nothing by itself: requireSession
// decides per route. A session store that fails is a 503, not a sign-out.
func loadSession(a *auth.Auth) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			s, err := a.SessionFrom(c.Request())
			switch {
			case err == nil:
				c.Set(ctxSession, s)
			case !errors.Is(err, auth.ErrNoSession):
				return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Sessions cannot be read right now. Try again in a moment.", err)
			}
			return next(c)
		}
	}
}

func sessionOf(c echo.Context) *auth.Session {
	s, _ := c.Get(ctxSession).(*auth.Session)
	return s
}

func userLabel(c echo.Context) string {
	if s := sessionOf(c); s != nil {
		return s.Identity.ID
	}
	return ""
}
