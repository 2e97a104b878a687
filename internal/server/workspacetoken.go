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

const (
	ctxWorkspaceToken   = "workspace_token"
	ctxWorkspaceSession = "workspace_session"
)

// workspaceToken authenticates calls from inside a workspace (the agent
// extension) by the PLAYBOOK_GATEWAY_TOKEN bearer token. The token is
// honoured only while its owner has a live edit session served by that
// workspace: once the session ends (closed, taken over, terminated, the
// user signed out) the token is refused, whatever its own lifetime. It
// sets no portal session: such a caller reaches only the routes that
// accept a workspace.
func workspaceToken(m *workspace.Manager, sessions *editsession.Service) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			token, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || token == "" {
				return apierror.New(http.StatusUnauthorized, "unauthenticated", "This call needs the workspace's token.")
			}
			ctx := c.Request().Context()
			info, err := m.Authenticate(ctx, token)
			if errors.Is(err, workspace.ErrBadToken) {
				return apierror.Wrap(http.StatusUnauthorized, "unauthenticated", "This workspace token is not valid (the workspace was restarted or stopped).", err)
			}
			if err != nil {
				return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Workspace tokens cannot be checked right now.", err)
			}
			sess, err := sessions.ForWorkspace(ctx, info.Tenant, info.Owner, info.Key)
			if errors.Is(err, editsession.ErrNotFound) {
				return apierror.New(http.StatusUnauthorized, "no_session", "This workspace has no live edit session. Open a playbook from the portal.")
			}
			if err != nil {
				return sessionError(c, err)
			}
			c.Set(ctxWorkspaceToken, &info)
			c.Set(ctxWorkspaceSession, sess)
			return next(c)
		}
	}
}

func workspaceTokenOf(c echo.Context) *workspace.TokenInfo {
	t, _ := c.Get(ctxWorkspaceToken).(*workspace.TokenInfo)
	return t
}

// workspaceSessionOf is the edit session a workspace token acts for (nil
// for a portal caller).
func workspaceSessionOf(c echo.Context) *editsession.Session {
	s, _ := c.Get(ctxWorkspaceSession).(*editsession.Session)
	return s
}

// callerOf is who makes a call on a route that takes either a portal
// session or a workspace token: the user, or the workspace's owner.
func callerOf(c echo.Context) editsession.Identity {
	if tok := workspaceTokenOf(c); tok != nil {
		return editsession.Identity{ID: tok.Owner, Tenant: tok.Tenant}
	}
	return whoOf(sessionOf(c).Identity)
}

// tokenMaySession refuses a workspace token acting on another session
// than the one it is bound to (its playbook's).
func tokenMaySession(c echo.Context, id string) error {
	if s := workspaceSessionOf(c); s != nil && s.ID != id {
		return apierror.New(http.StatusForbidden, "forbidden", "This workspace's token is bound to its own edit session.")
	}
	return nil
}
