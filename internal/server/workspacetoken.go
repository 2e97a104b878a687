package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/workspace"
)

const ctxWorkspaceToken = "workspace_token"

// workspaceToken authenticates calls from inside a workspace (the agent
// extension) by the PLAYBOOK_GATEWAY_TOKEN bearer token. It sets no portal
// session: such a caller reaches only the routes that accept a workspace.
func workspaceToken(m *workspace.Manager) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			token, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || token == "" {
				return apierror.New(http.StatusUnauthorized, "unauthenticated", "This call needs the workspace's token.")
			}
			info, err := m.Authenticate(c.Request().Context(), token)
			if errors.Is(err, workspace.ErrBadToken) {
				return apierror.Wrap(http.StatusUnauthorized, "unauthenticated", "This workspace token is not valid (the workspace was restarted or stopped).", err)
			}
			if err != nil {
				return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Workspace tokens cannot be checked right now.", err)
			}
			c.Set(ctxWorkspaceToken, &info)
			return next(c)
		}
	}
}

func workspaceTokenOf(c echo.Context) *workspace.TokenInfo {
	t, _ := c.Get(ctxWorkspaceToken).(*workspace.TokenInfo)
	return t
}

// callerOf is who makes a call on a route that takes either a portal
// session or a workspace token: the user, or the workspace's owner.
func callerOf(c echo.Context) editsession.Identity {
	if tok := workspaceTokenOf(c); tok != nil {
		return editsession.Identity{ID: tok.Owner, Tenant: tok.Tenant}
	}
	return whoOf(sessionOf(c).Identity)
}
