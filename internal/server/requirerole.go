package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

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
