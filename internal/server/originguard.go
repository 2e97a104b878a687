package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// originGuard refuses state-changing requests that a browser sent from
// another origin. Browsers send Origin on every cross-origin POST, PUT,
// PATCH and DELETE; when it is absent, Sec-Fetch-Site is checked instead.
// A request with neither comes from a non-browser client, which cannot be
// a cross-site forgery; the CSRF token still applies to cookie sessions.
func originGuard(origin string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if safeMethod(c.Request().Method) {
				return next(c)
			}
			h := c.Request().Header
			if o := h.Get("Origin"); o != "" {
				if o != origin {
					return apierror.Wrap(http.StatusForbidden, "bad_origin", "This request came from another site and was refused.", errors.New("foreign Origin "+truncate(o, 100)))
				}
				return next(c)
			}
			if site := h.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
				return apierror.Wrap(http.StatusForbidden, "bad_origin", "This request came from another site and was refused.", errors.New("Sec-Fetch-Site "+truncate(site, 30)))
			}
			return next(c)
		}
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
