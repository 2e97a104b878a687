package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/runner"
)

// runError maps the runner's refusals; anything else is a store that
// does not answer (the cause to the log only).
func runError(c echo.Context, err error) error {
	return refusal(c, err, func(err error) error {
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Runs cannot be read or queued right now. Try again in a moment.", err)
	})
}

// noRunner answers while the gateway has no runner wired.
func noRunner(c echo.Context) error {
	return refusal(c, fault.New(fault.NotImplemented, "not_implemented", "This gateway does not run playbooks: it has no runner."), nil)
}

func handleRunList(runs *runner.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if runs == nil {
			return noRunner(c)
		}
		q := c.QueryParams()
		f := runner.Filter{AlertID: q.Get("alertId"), PlaybookID: q.Get("playbookId"), Status: runner.Status(q.Get("status"))}
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 500 {
				return apierror.New(http.StatusBadRequest, "invalid_filter", "limit must be a whole number from 1 to 500.")
			}
			f.Limit = n
		}
		list, err := runs.List(c.Request().Context(), sessionOf(c).Identity.Tenant, f)
		if err != nil {
			return runError(c, err)
		}
		return c.JSON(http.StatusOK, map[string]any{"runs": list})
	}
}

func handleRunGet(runs *runner.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if runs == nil {
			return noRunner(c)
		}
		r, err := runs.Get(c.Request().Context(), sessionOf(c).Identity.Tenant, c.Param("id"))
		if err != nil {
			return runError(c, err)
		}
		return c.JSON(http.StatusOK, r)
	}
}

type runRequest struct {
	AlertID string `json:"alertId"`
	Version int    `json:"version"`
}

// handleRunStart queues a manual run of the playbook's active version, or
// of the version the body names.
func handleRunStart(runs *runner.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if runs == nil {
			return noRunner(c)
		}
		id, err := playbookID(c)
		if err != nil {
			return err
		}
		var in runRequest
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
		if strings.TrimSpace(in.AlertID) == "" {
			return apierror.New(http.StatusBadRequest, "invalid_run", "alertId is required: the alert the playbook runs on.")
		}
		who := sessionOf(c).Identity
		by := who.Name
		if by == "" {
			by = who.ID
		}
		r, err := runs.Enqueue(c.Request().Context(), runner.Request{Tenant: who.Tenant, Trigger: runner.TriggerManual,
			AlertID: in.AlertID, PlaybookID: id, Version: in.Version, StartedBy: by})
		if err != nil {
			return runError(c, err)
		}
		return c.JSON(http.StatusAccepted, r)
	}
}

func handleRunCancel(runs *runner.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if runs == nil {
			return noRunner(c)
		}
		r, err := runs.Cancel(c.Request().Context(), sessionOf(c).Identity.Tenant, c.Param("id"))
		if err != nil {
			return runError(c, err)
		}
		return c.JSON(http.StatusOK, r)
	}
}
