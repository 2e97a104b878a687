package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/auth"
)

// meResponse is GET /api/me: the contract's identity fields, plus the
// session's CSRF token for the portal's state-changing calls.
type meResponse struct {
	auth.Identity
	CSRFToken string `json:"csrfToken"`
}

func handleMe() echo.HandlerFunc {
	return func(c echo.Context) error {
		s := sessionOf(c)
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, meResponse{Identity: s.Identity, CSRFToken: s.CSRFToken})
	}
}
