package server

import (
	"bytes"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/playbook"
)

// playbookError maps the store's refusals to the API's; anything else is
// a store that does not answer.
func playbookError(c echo.Context, err error) error { return storeRefusal(c, err, "Playbooks") }

// playbookID reads :id, refusing what cannot be an id before any look-up.
func playbookID(c echo.Context) (string, error) {
	return uuidParam(c, apierror.New(http.StatusNotFound, "not_found", "There is no such playbook."))
}

func handlePlaybookList(store playbook.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := store.List(c.Request().Context(), sessionOf(c).Identity.Tenant)
		if err != nil {
			return playbookError(c, err)
		}
		if list == nil {
			list = []playbook.Playbook{}
		}
		return c.JSON(http.StatusOK, map[string]any{"playbooks": list})
	}
}

// playbookDetail is GET /api/playbooks/{id}: the Playbook, its current
// documentation and flow diagram, and who is editing it now.
type playbookDetail struct {
	playbook.Playbook
	Documentation string             `json:"documentation"`
	FlowDiagram   string             `json:"flowDiagram"`
	Warnings      []playbook.Problem `json:"warnings"`
	EditedBy      *string            `json:"editedBy"`
}

func handlePlaybookGet(store playbook.Store, sessions *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := playbookID(c)
		if err != nil {
			return err
		}
		tenant := sessionOf(c).Identity.Tenant
		p, err := store.Get(c.Request().Context(), tenant, id)
		if err != nil {
			return playbookError(c, err)
		}
		v, _, err := store.Version(c.Request().Context(), tenant, id, p.CurrentVersion)
		if err != nil {
			return playbookError(c, err)
		}
		d := playbookDetail{Playbook: p, Documentation: v.Documentation, FlowDiagram: v.FlowDiagram, Warnings: v.Warnings}
		if d.Warnings == nil {
			d.Warnings = []playbook.Problem{}
		}
		if e, err := sessions.Editing(c.Request().Context(), tenant, p.Name); err == nil && e != nil {
			d.EditedBy = &e.UserName
		}
		return c.JSON(http.StatusOK, d)
	}
}

func handlePlaybookVersions(store playbook.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := playbookID(c)
		if err != nil {
			return err
		}
		vs, err := store.Versions(c.Request().Context(), sessionOf(c).Identity.Tenant, id)
		if err != nil {
			return playbookError(c, err)
		}
		return c.JSON(http.StatusOK, map[string]any{"versions": vs})
	}
}

// versionFile is a file with its content, in GET …/versions/{n}.
type versionFile struct {
	playbook.FileInfo
	Content string `json:"content"`
}

func handlePlaybookVersion(store playbook.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := playbookID(c)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(c.Param("n"))
		if err != nil || n < 1 {
			return apierror.New(http.StatusNotFound, "not_found", "There is no such version.")
		}
		v, files, err := store.Version(c.Request().Context(), sessionOf(c).Identity.Tenant, id, n)
		if err != nil {
			return playbookError(c, err)
		}
		out := make([]versionFile, 0, len(files))
		byPath := map[string]playbook.FileInfo{}
		for _, fi := range v.Files {
			byPath[fi.Path] = fi
		}
		for _, f := range files {
			out = append(out, versionFile{FileInfo: byPath[f.Path], Content: string(f.Content)})
		}
		return c.JSON(http.StatusOK, map[string]any{
			"number": v.Number, "savedAt": v.SavedAt, "savedBy": v.SavedBy, "lines": v.Lines,
			"warnings": v.Warnings, "files": out, "documentation": v.Documentation, "flowDiagram": v.FlowDiagram,
		})
	}
}

// activateRequest is the optional body of POST …/activate.
type activateRequest struct {
	// Version is the version to put live; absent or null: the latest.
	Version *int `json:"version"`
}

// handlePlaybookActivate puts one version of the playbook live: the one
// the body names, or the latest. Saves never do this, so new code runs only
// once someone with the automation role activates it here.
func handlePlaybookActivate(store playbook.Store, sessions *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := playbookID(c)
		if err != nil {
			return err
		}
		var body activateRequest
		if c.Request().ContentLength != 0 {
			raw, err := io.ReadAll(c.Request().Body)
			if err != nil {
				return apierror.Wrap(http.StatusBadRequest, "bad_request", "The request body could not be read.", err)
			}
			if len(bytes.TrimSpace(raw)) > 0 {
				c.Request().Body = io.NopCloser(bytes.NewReader(raw))
				if err := decodeJSON(c, &body); err != nil {
					return err
				}
			}
		}
		version := 0 // the latest
		if body.Version != nil {
			if *body.Version < 1 {
				return apierror.New(http.StatusBadRequest, "bad_request", "version must be a saved version number (1 or more); leave it out to activate the latest.")
			}
			version = *body.Version
		}
		who := sessionOf(c).Identity
		ctx := c.Request().Context()
		p, err := store.Activate(ctx, who.Tenant, id, version, who.Name)
		if err != nil {
			return playbookError(c, err)
		}
		sessions.RecordAudit(ctx, whoOf(who), "playbook.activate", p.ID, map[string]string{
			"name": p.Name, "version": strconv.Itoa(*p.ActiveVersion), "latestVersion": strconv.Itoa(p.LatestVersion),
		})
		return c.JSON(http.StatusOK, p)
	}
}

// handlePlaybookDeactivate stops the playbook running.
func handlePlaybookDeactivate(store playbook.Store, sessions *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := playbookID(c)
		if err != nil {
			return err
		}
		who := sessionOf(c).Identity
		ctx := c.Request().Context()
		// Read first only so the audit entry names the version taken down.
		before, err := store.Get(ctx, who.Tenant, id)
		if err != nil {
			return playbookError(c, err)
		}
		p, err := store.Deactivate(ctx, who.Tenant, id, who.Name)
		if err != nil {
			return playbookError(c, err)
		}
		detail := map[string]string{"name": p.Name}
		if before.ActiveVersion != nil {
			detail["version"] = strconv.Itoa(*before.ActiveVersion)
		}
		sessions.RecordAudit(ctx, whoOf(who), "playbook.deactivate", p.ID, detail)
		return c.JSON(http.StatusOK, p)
	}
}

func handlePlaybookDelete(store playbook.Store, sessions *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := playbookID(c)
		if err != nil {
			return err
		}
		who := sessionOf(c).Identity
		ctx := c.Request().Context()
		p, err := store.Get(ctx, who.Tenant, id)
		if err != nil {
			return playbookError(c, err)
		}
		e, err := sessions.Editing(ctx, who.Tenant, p.Name)
		if err != nil {
			return sessionError(c, err)
		}
		if e != nil {
			return apierror.New(http.StatusConflict, "playbook_locked", "This playbook is being edited by "+e.UserName+"; it can be deleted once the editor is closed.")
		}
		if err := store.Delete(ctx, who.Tenant, id); err != nil {
			return playbookError(c, err)
		}
		sessions.RecordAudit(ctx, whoOf(who), "playbook.delete", p.ID, map[string]string{"name": p.Name})
		return c.NoContent(http.StatusNoContent)
	}
}

// handleSessionSave saves from the portal (the session's owner) or from
// the workspace's extension (its token, bound to the owner).
func handleSessionSave(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := tokenMaySession(c, c.Param("id")); err != nil {
			return err
		}
		saved, err := s.Save(c.Request().Context(), callerOf(c), c.Param("id"))
		if err != nil {
			return sessionError(c, err)
		}
		return c.JSON(http.StatusCreated, saved)
	}
}

// handleSessionValidate runs Save's checks without saving, for the agent's
// validate tool and the portal.
func handleSessionValidate(s *editsession.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := tokenMaySession(c, c.Param("id")); err != nil {
			return err
		}
		report, err := s.Validate(c.Request().Context(), callerOf(c), c.Param("id"))
		if err != nil {
			return sessionError(c, err)
		}
		if report.Errors == nil {
			report.Errors = []playbook.Problem{}
		}
		if report.Warnings == nil {
			report.Warnings = []playbook.Problem{}
		}
		return c.JSON(http.StatusOK, map[string]any{"passed": report.Passed(), "errors": report.Errors, "warnings": report.Warnings, "skipped": report.Skipped, "lines": report.Lines})
	}
}
