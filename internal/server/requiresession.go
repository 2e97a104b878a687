package server

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/auth"
)

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
