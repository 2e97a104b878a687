package server

import (
	"strings"

	"github.com/labstack/echo/v4"
)

// sessionOrWorkspaceToken accepts either caller of a route both the portal
// and the agent extension use (save): a bearer token means the workspace,
// anything else goes through the portal session's checks (CSRF included).
func sessionOrWorkspaceToken(byToken echo.MiddlewareFunc, signedIn []echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		viaToken := byToken(next)
		viaSession := next
		for i := len(signedIn) - 1; i >= 0; i-- {
			viaSession = signedIn[i](viaSession)
		}
		return func(c echo.Context) error {
			if strings.HasPrefix(c.Request().Header.Get("Authorization"), "Bearer ") {
				return viaToken(c)
			}
			return viaSession(c)
		}
	}
}
