package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/editsession"
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
		m.NameOwner(id.Tenant, id.ID, id.Name)
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

// adminWorkspace is one row of the administrators' workspace list; id is
// what DELETE /api/admin/workspaces/{id} takes.
type adminWorkspace struct {
	ID       string `json:"id"`
	User     string `json:"user"`
	UserName string `json:"userName,omitempty"`
	Tenant   string `json:"tenant"`
	workspace.Status
}

func handleAdminWorkspaces(m *workspace.Manager) echo.HandlerFunc {
	return func(c echo.Context) error {
		tenant := sessionOf(c).Identity.Tenant
		out := []adminWorkspace{}
		for _, st := range m.List() {
			if st.Tenant == tenant {
				out = append(out, adminWorkspace{ID: st.Key, User: st.Owner, UserName: st.OwnerName, Tenant: st.Tenant, Status: st})
			}
		}
		return c.JSON(http.StatusOK, map[string]any{"workspaces": out})
	}
}

// handleAdminWorkspaceStop is an administrator stopping a workspace of
// their tenant: the edit sessions it serves are terminated first (their
// IDE connections cut, their tokens worthless), then it stops; its files
// stay. Audited.
func handleAdminWorkspaceStop(m *workspace.Manager, sessions *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		admin := whoOf(sessionOf(c).Identity)
		ctx := c.Request().Context()
		key := c.Param("id")
		st, err := m.StatusOf(key)
		if err != nil || st.Tenant != admin.Tenant {
			return apierror.New(http.StatusNotFound, "no_workspace", "There is no such workspace in your organisation.")
		}
		live, err := sessions.List(ctx, admin.Tenant)
		if err != nil {
			return sessionError(c, err)
		}
		for _, s := range live {
			if s.WorkspaceKey == key {
				if err := sessions.Terminate(ctx, admin, s.ID); err != nil && !errors.Is(err, editsession.ErrNotFound) {
					return sessionError(c, err)
				}
			}
		}
		if err := m.StopKey(ctx, key, "stopped by an administrator"); err != nil {
			return workspaceError(c, err)
		}
		sessions.RecordAudit(ctx, admin, "workspace.stop", key, map[string]string{"user": st.Owner})
		return c.NoContent(http.StatusNoContent)
	}
}
