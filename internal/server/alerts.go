package server

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/alert"
	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/config"
)

const ctxAlertSource = "alert_source"

// alertError maps the alerts' refusals to the API's; anything else is a
// store that does not answer (the cause to the log only).
func alertError(c echo.Context, err error) error { return storeRefusal(c, err, "Alerts") }

func alertActor(c echo.Context) alert.Actor {
	who := sessionOf(c).Identity
	return alert.Actor{Tenant: who.Tenant, ID: who.ID, Name: who.Name}
}

// alertsOff answers every alert route while the gateway runs without the
// alert service.
func alertsOff(c echo.Context) error {
	return apierror.New(http.StatusNotImplemented, "not_implemented", "This gateway does not take alerts.")
}

// sourceKey authenticates POST /api/alerts by a source's ingestion key
// (Authorization: Bearer <key>): the alert joins that source, in the
// key's tenant. No portal session is read, so a SIEM needs no cookie or
// CSRF token.
func sourceKey(svc *alert.Service) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key, _ := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
			src, err := svc.Authenticate(c.Request().Context(), strings.TrimSpace(key))
			if errors.Is(err, alert.ErrBadKey) {
				return apierror.New(http.StatusUnauthorized, "unauthenticated", "This source key is not valid (unknown, revoked, or its source was deleted).")
			}
			if err != nil {
				return alertError(c, err)
			}
			c.Set(ctxAlertSource, &src)
			return next(c)
		}
	}
}

// handleAlertPost takes one alert or {"value":[…]} from a source's key or
// an automation user's session naming ?source=.
func handleAlertPost(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		var src alert.Source
		var by alert.Actor
		if s, ok := c.Get(ctxAlertSource).(*alert.Source); ok {
			src = *s
			by = alert.Actor{Tenant: src.Tenant, ID: src.ID, Name: "source " + src.Name}
		} else {
			id := c.QueryParam("source")
			if id == "" {
				return apierror.New(http.StatusBadRequest, "bad_request", "Name the source the alerts come from: ?source={id}.")
			}
			who := sessionOf(c).Identity
			got, err := svc.Source(ctx, who.Tenant, id)
			if err != nil {
				return alertError(c, err)
			}
			if !alert.Accessible(got, who.HasRole(config.RoleAutomation), who.Groups) {
				return apierror.New(http.StatusForbidden, "source_forbidden", "You may not post to the source "+got.Name+": it is restricted to groups you are not in.")
			}
			src, by = got, alertActor(c)
		}
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, alert.MaxBodyBytes+1))
		if err != nil {
			var tooLarge *echo.HTTPError
			if errors.As(err, &tooLarge) {
				return err
			}
			return apierror.Wrap(http.StatusBadRequest, "bad_request", "The request body could not be read.", err)
		}
		res, err := svc.Ingest(ctx, src, by, body)
		if err != nil {
			return alertError(c, err)
		}
		return c.JSON(http.StatusAccepted, map[string]any{"alerts": res})
	}
}

func handleAlertList(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		f := alert.Filter{Status: c.QueryParam("status"), Severity: c.QueryParam("severity"), SourceID: c.QueryParam("source"), Limit: 100}
		if s := c.QueryParam("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				return apierror.New(http.StatusBadRequest, "bad_request", "limit must be a whole number from 1 to 1000.")
			}
			f.Limit = n
		}
		list, err := svc.List(c.Request().Context(), sessionOf(c).Identity.Tenant, f)
		if err != nil {
			return alertError(c, err)
		}
		return c.JSON(http.StatusOK, map[string]any{"alerts": list})
	}
}

func handleAlertGet(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := svc.View(c.Request().Context(), sessionOf(c).Identity.Tenant, c.Param("id"))
		if err != nil {
			return alertError(c, err)
		}
		return c.JSON(http.StatusOK, v)
	}
}

func handleAlertPatch(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		var u alert.Update
		if err := decodeJSON(c, &u); err != nil {
			return err
		}
		a, err := svc.Update(c.Request().Context(), sessionOf(c).Identity.Tenant, c.Param("id"), alertActor(c), u)
		if err != nil {
			return alertError(c, err)
		}
		return c.JSON(http.StatusOK, a)
	}
}

func handleAlertComment(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		var in struct {
			Text string `json:"text"`
		}
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
		by := alertActor(c)
		if err := svc.Comment(c.Request().Context(), by.Tenant, c.Param("id"), by, in.Text); err != nil {
			return alertError(c, err)
		}
		act, err := svc.Activity(c.Request().Context(), by.Tenant, c.Param("id"))
		if err != nil || len(act) == 0 {
			return c.NoContent(http.StatusCreated)
		}
		return c.JSON(http.StatusCreated, act[len(act)-1])
	}
}

func handleIncidentList(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit := 100
		if s := c.QueryParam("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				return apierror.New(http.StatusBadRequest, "bad_request", "limit must be a whole number from 1 to 1000.")
			}
			limit = n
		}
		list, err := svc.Incidents(c.Request().Context(), sessionOf(c).Identity.Tenant, limit)
		if err != nil {
			return alertError(c, err)
		}
		return c.JSON(http.StatusOK, map[string]any{"incidents": list})
	}
}

func handleIncidentGet(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		inc, err := svc.Incident(c.Request().Context(), sessionOf(c).Identity.Tenant, c.Param("id"))
		if err != nil {
			return alertError(c, err)
		}
		return c.JSON(http.StatusOK, inc)
	}
}

// handleSourceList says, for each source, whether the caller may target
// it (their automation role and groups).
func handleSourceList(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		who := sessionOf(c).Identity
		list, err := svc.Sources(c.Request().Context(), who.Tenant, who.HasRole(config.RoleAutomation), who.Groups)
		if err != nil {
			return alertError(c, err)
		}
		return c.JSON(http.StatusOK, map[string]any{"sources": list})
	}
}

// handleAdminSourceList is the sources with their keys' ids (never a key),
// so an admin can revoke one.
func handleAdminSourceList(svc *alert.Service) echo.HandlerFunc {
	type withKeys struct {
		alert.Source
		Keys []alert.Key `json:"keys"`
	}
	return func(c echo.Context) error {
		ctx, tenant := c.Request().Context(), sessionOf(c).Identity.Tenant
		list, err := svc.Sources(ctx, tenant, true, nil)
		if err != nil {
			return alertError(c, err)
		}
		out := make([]withKeys, 0, len(list))
		for _, s := range list {
			keys, err := svc.Keys(ctx, tenant, s.ID)
			if err != nil {
				return alertError(c, err)
			}
			out = append(out, withKeys{Source: s.Source, Keys: keys})
		}
		return c.JSON(http.StatusOK, map[string]any{"sources": out})
	}
}

func handleSourceCreate(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		var in struct {
			Name   string   `json:"name"`
			Groups []string `json:"groups"`
		}
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
		src, err := svc.CreateSource(c.Request().Context(), alertActor(c), in.Name, in.Groups)
		if err != nil {
			return alertError(c, err)
		}
		return c.JSON(http.StatusCreated, src)
	}
}

func handleSourceDelete(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := svc.DeleteSource(c.Request().Context(), alertActor(c), c.Param("id")); err != nil {
			return alertError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

func handleSourceKeyCreate(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		k, err := svc.CreateKey(c.Request().Context(), alertActor(c), c.Param("id"))
		if err != nil {
			return alertError(c, err)
		}
		// The key is shown this once: no cache may keep it.
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusCreated, k)
	}
}

func handleSourceKeyDelete(svc *alert.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := svc.DeleteKey(c.Request().Context(), alertActor(c), c.Param("id"), c.Param("keyId")); err != nil {
			return alertError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	}
}
