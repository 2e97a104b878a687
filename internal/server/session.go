package server

import (
	"errors"
	"net/http"
	"net/url"

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

// requireAPISession answers 401 JSON to API calls without a session.
func requireAPISession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if sessionOf(c) == nil {
			return apierror.New(http.StatusUnauthorized, "unauthenticated", "Sign in to continue.")
		}
		return next(c)
	}
}

// requirePageSession sends a browser without a session to sign-in, to come
// back to the page it asked for.
func requirePageSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if sessionOf(c) == nil {
			back := c.Request().URL.EscapedPath()
			if q := c.Request().URL.RawQuery; q != "" {
				back += "?" + q
			}
			c.Response().Header().Set("Cache-Control", "no-store")
			return c.Redirect(http.StatusFound, "/auth/login?return_to="+url.QueryEscape(auth.SafeReturnTo(back)))
		}
		return next(c)
	}
}

// requireRole answers 403 to a signed-in user without role.
func requireRole(role string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if s := sessionOf(c); s == nil || !s.Identity.HasRole(role) {
				return apierror.New(http.StatusForbidden, "forbidden", "This needs the "+role+" role.")
			}
			return next(c)
		}
	}
}
