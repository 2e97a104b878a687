package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// workspaceError maps the manager's errors to the API's.
func workspaceError(c echo.Context, err error) error {
	var tm *workspace.TooManySpawns
	switch {
	case errors.As(err, &tm):
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(tm.RetryAfter/time.Second)))
		return apierror.Wrap(http.StatusTooManyRequests, "too_many_spawns", "Too many workspaces are starting right now. Try again in a few seconds.", err)
	case errors.Is(err, workspace.ErrNotFound):
		return apierror.New(http.StatusNotFound, "no_workspace", "You have no workspace yet; it starts when you open a playbook.")
	}
	return apierror.Wrap(http.StatusServiceUnavailable, "workspace_unavailable", "Your workspace could not be reached. Try again in a moment.", err)
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
			if errors.Is(err, workspace.ErrNotFound) {
				return workspaceError(c, err)
			}
			return apierror.Wrap(http.StatusConflict, "workspace_busy", "Your workspace cannot be stopped right now: "+err.Error(), err)
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
