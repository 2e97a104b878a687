package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// workspaceError maps the manager's refusals to the API's; anything else
// is a workspace that cannot be reached.
func workspaceError(c echo.Context, err error) error {
	return refusal(c, err, func(err error) error {
		return apierror.Wrap(http.StatusServiceUnavailable, "workspace_unavailable", "Your workspace could not be reached. Try again in a moment.", err)
	})
}

// handleWorkspaceGet reports the caller's workspace.
func handleWorkspaceGet(m *workspace.Manager) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := sessionOf(c).Identity
		st, err := m.Status(id.Tenant, id.ID)
		if err != nil {
			return workspaceError(c, err)
		}
		return c.JSON(http.StatusOK, st)
	}
}

// handleWorkspaceEnsure starts the caller's workspace (or finds it
// running) and answers at once: 200 when ready, 202 while it starts; the
// portal polls GET for the phases.
func handleWorkspaceEnsure(m *workspace.Manager) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := sessionOf(c).Identity
		st, err := m.Ensure(c.Request().Context(), id.Tenant, id.ID)
		if err != nil {
			return workspaceError(c, err)
		}
		code := http.StatusAccepted
		if st.State == workspace.PhaseReady {
			code = http.StatusOK
		}
		return c.JSON(code, st)
	}
}

// handleWorkspaceStop stops the caller's workspace; its files stay.
func handleWorkspaceStop(m *workspace.Manager) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := sessionOf(c).Identity
		if err := m.Stop(c.Request().Context(), id.Tenant, id.ID); err != nil {
			return workspaceError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// adminWorkspace is one row of the administrators' workspace list.
type adminWorkspace struct {
	User   string `json:"user"`
	Tenant string `json:"tenant"`
	workspace.Status
}

func handleAdminWorkspaces(m *workspace.Manager) echo.HandlerFunc {
	return func(c echo.Context) error {
		tenant := sessionOf(c).Identity.Tenant
		out := []adminWorkspace{}
		for _, st := range m.List() {
			if st.Tenant == tenant {
				out = append(out, adminWorkspace{User: st.Owner, Tenant: st.Tenant, Status: st})
			}
		}
		return c.JSON(http.StatusOK, map[string]any{"workspaces": out})
	}
}
