package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/auth"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/editsession"
)

func whoOf(id auth.Identity) editsession.Identity {
	return editsession.Identity{ID: id.ID, Name: id.Name, Tenant: id.Tenant, Admin: id.HasRole(config.RoleAdmin)}
}

// sessionError maps the session service's refusals to the API's.
func sessionError(c echo.Context, err error) error { return refusal(c, err, nil) }

func handleSessionStart(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req editsession.StartRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		started, err := s.Start(c.Request().Context(), whoOf(sessionOf(c).Identity), req)
		if err != nil {
			return sessionError(c, err)
		}
		return c.JSON(http.StatusCreated, started)
	}
}

func handleSessionCurrent(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, err := s.Current(c.Request().Context(), whoOf(sessionOf(c).Identity))
		if errors.Is(err, editsession.ErrNotFound) {
			return apierror.New(http.StatusNotFound, "no_session", "You have no live edit session.")
		}
		if err != nil {
			return sessionError(c, err)
		}
		return c.JSON(http.StatusOK, sess)
	}
}

// handleSessionGet and handleSessionHeartbeat let the portal follow its
// session: the workspace's phases while it starts, and why it ended.
func handleSessionGet(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		return sessionStatus(c, s, false)
	}
}

func handleSessionHeartbeat(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		return sessionStatus(c, s, true)
	}
}

func sessionStatus(c echo.Context, s *editsession.Service, beat bool) error {
	id := c.Param("id")
	w := whoOf(sessionOf(c).Identity)
	var sess *editsession.Session
	var err error
	if beat {
		sess, err = s.Heartbeat(c.Request().Context(), w, id)
	} else {
		sess, err = s.Get(c.Request().Context(), w, id)
	}
	if errors.Is(err, editsession.ErrNotFound) {
		if reason := s.EndedReasonFor(id, w); reason != "" {
			return apierror.New(http.StatusGone, "session_ended", "This edit session has ended: "+reason+".")
		}
		return apierror.New(http.StatusNotFound, "no_session", "There is no such live edit session.")
	}
	if err != nil {
		return sessionError(c, err)
	}
	return c.JSON(http.StatusOK, sess)
}

func handleSessionEnd(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.End(c.Request().Context(), whoOf(sessionOf(c).Identity), c.Param("id")); err != nil {
			return sessionError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// handleWorkspaceSession tells the agent extension which edit session its
// workspace serves (the token's middleware found it).
func handleWorkspaceSession() echo.HandlerFunc {
	return func(c echo.Context) error {
		sess := workspaceSessionOf(c)
		return c.JSON(http.StatusOK, map[string]any{"id": sess.ID, "playbookId": sess.PlaybookID, "name": sess.Name, "folder": sess.Folder})
	}
}

// adminSession is one row of GET /api/admin/sessions.
type adminSession struct {
	ID             string    `json:"id"`
	User           string    `json:"user"`
	UserID         string    `json:"userId"`
	PlaybookID     *string   `json:"playbookId"`
	Name           string    `json:"name"`
	StartedAt      time.Time `json:"startedAt"`
	LastActivityAt time.Time `json:"lastActivityAt"`
	Workspace      struct {
		State string `json:"state"`
	} `json:"workspace"`
}

func handleAdminSessions(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := s.List(c.Request().Context(), sessionOf(c).Identity.Tenant)
		if err != nil {
			return sessionError(c, err)
		}
		out := make([]adminSession, 0, len(list))
		for _, x := range list {
			row := adminSession{ID: x.ID, User: x.UserName, UserID: x.UserID, PlaybookID: x.PlaybookID, Name: x.Name, StartedAt: x.StartedAt, LastActivityAt: x.LastActivityAt}
			row.Workspace.State = x.State
			out = append(out, row)
		}
		return c.JSON(http.StatusOK, map[string]any{"sessions": out})
	}
}

func handleAdminTerminate(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.Terminate(c.Request().Context(), whoOf(sessionOf(c).Identity), c.Param("id")); err != nil {
			return sessionError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

func handleAdminAudit(l audit.Log) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit := 100
		if v := c.QueryParam("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > audit.MaxRecent {
				return apierror.New(http.StatusBadRequest, "bad_request", "limit must be a number from 1 to "+strconv.Itoa(audit.MaxRecent)+".")
			}
			limit = n
		}
		events, err := l.Recent(c.Request().Context(), sessionOf(c).Identity.Tenant, limit)
		if err != nil {
			return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "The audit log cannot be read right now.", err)
		}
		return c.JSON(http.StatusOK, map[string]any{"events": events})
	}
}

// decodeJSON reads a JSON body strictly: unknown fields and trailing data
// are refused with a message naming the problem.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apierror.Wrap(http.StatusBadRequest, "bad_request", "The request body is not the JSON this route takes: "+err.Error()+".", err)
	}
	if dec.More() {
		return apierror.New(http.StatusBadRequest, "bad_request", "The request body holds more than one JSON value.")
	}
	return nil
}
