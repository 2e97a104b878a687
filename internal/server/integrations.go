package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
)

// integrationError maps the profiles' refusals to the API's; anything else
// is a store that does not answer (the cause to the log only).
func integrationError(c echo.Context, err error) error {
	return storeRefusal(c, err, "Integration profiles")
}

// integrationID reads :id, refusing what cannot be an id before any
// look-up.
func integrationID(c echo.Context) (string, error) {
	return uuidParam(c, apierror.New(http.StatusNotFound, "integration_not_found", "There is no such integration profile."))
}

func actorOf(c echo.Context) integration.Actor {
	who := sessionOf(c).Identity
	return integration.Actor{Tenant: who.Tenant, UserID: who.ID, UserName: who.Name}
}

// handleIntegrationList answers the portal and, with the workspace token,
// the agent: the same list, which never holds a secret.
func handleIntegrationList(p integration.Profiles) echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := p.List(c.Request().Context(), callerOf(c).Tenant)
		if err != nil {
			return integrationError(c, err)
		}
		if list == nil {
			list = []integration.Profile{}
		}
		return c.JSON(http.StatusOK, map[string]any{"profiles": list})
	}
}

func handleIntegrationGet(p integration.Profiles) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := integrationID(c)
		if err != nil {
			return err
		}
		got, err := p.Get(c.Request().Context(), sessionOf(c).Identity.Tenant, id)
		if err != nil {
			return integrationError(c, err)
		}
		return c.JSON(http.StatusOK, got)
	}
}

func handleIntegrationCreate(p integration.Profiles) echo.HandlerFunc {
	return func(c echo.Context) error {
		var in integration.CreateRequest
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
		created, err := p.Create(c.Request().Context(), actorOf(c), in)
		if err != nil {
			return integrationError(c, err)
		}
		return c.JSON(http.StatusCreated, created)
	}
}

// handleIntegrationUpdate renames, re-describes or replaces the
// credentials of a profile. Its base URL and method never change: a body
// naming either is refused, whatever the value, so nobody believes they
// pointed a profile's secrets at another host.
func handleIntegrationUpdate(p integration.Profiles) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := integrationID(c)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return apierror.Wrap(http.StatusBadRequest, "bad_request", "The request body could not be read.", err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return apierror.Wrap(http.StatusBadRequest, "bad_request", "The request body must be a JSON object.", err)
		}
		for _, f := range []string{"baseUrl", "authMethod"} {
			if _, ok := fields[f]; ok {
				return apierror.New(http.StatusBadRequest, "immutable_field",
					f+" cannot change after a profile is created: create a new profile instead.")
			}
		}
		c.Request().Body = io.NopCloser(bytes.NewReader(raw))
		var in integration.UpdateRequest
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
		updated, err := p.Update(c.Request().Context(), actorOf(c), id, in)
		if err != nil {
			return integrationError(c, err)
		}
		return c.JSON(http.StatusOK, updated)
	}
}

func handleIntegrationDelete(p integration.Profiles) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := integrationID(c)
		if err != nil {
			return err
		}
		if err := p.Delete(c.Request().Context(), actorOf(c), id); err != nil {
			return integrationError(c, err)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// testRequest is the body of POST …/test; both fields are optional.
type testRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// testResult is Test connection's answer.
type testResult struct {
	OK         bool    `json:"ok"`
	Status     int     `json:"status"`
	DurationMS int64   `json:"durationMs"`
	Error      *string `json:"error"`
}

var httpMethod = regexp.MustCompile(`^[A-Z]{1,16}$`)

// handleIntegrationTest makes one call through the egress, the same path
// runs take, and says whether it worked. An egress refusal (an address the
// policy forbids, a token endpoint that said no) is the test's result, not
// an error of this route; only a path the caller got wrong is a 400.
func handleIntegrationTest(p integration.Profiles, out egress.Doer, log *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := integrationID(c)
		if err != nil {
			return err
		}
		var in testRequest
		if c.Request().ContentLength != 0 {
			raw, err := io.ReadAll(c.Request().Body)
			if err != nil {
				return apierror.Wrap(http.StatusBadRequest, "bad_request", "The request body could not be read.", err)
			}
			if len(bytes.TrimSpace(raw)) > 0 {
				c.Request().Body = io.NopCloser(bytes.NewReader(raw))
				if err := decodeJSON(c, &in); err != nil {
					return err
				}
			}
		}
		if in.Method == "" {
			in.Method = http.MethodGet
		}
		in.Method = strings.ToUpper(in.Method)
		if !httpMethod.MatchString(in.Method) {
			return apierror.New(http.StatusBadRequest, "bad_request", "method must be an HTTP method such as GET or HEAD.")
		}
		if in.Path == "" {
			in.Path = "/"
		}
		ctx := c.Request().Context()
		tenant := sessionOf(c).Identity.Tenant
		prof, err := p.Get(ctx, tenant, id)
		if err != nil {
			return integrationError(c, err)
		}
		if out == nil {
			return refusal(c, fault.New(fault.NotImplemented, "not_implemented", "Test connection is not available on this gateway yet: it has no egress."), nil)
		}
		start := time.Now()
		resp, err := out.Do(ctx, egress.Request{Tenant: tenant, Profile: prof.Name, Method: in.Method, Path: in.Path})
		res := testResult{DurationMS: time.Since(start).Milliseconds()}
		if err != nil {
			f, ok := fault.As(err)
			switch {
			case ok && f.Code == "invalid_path":
				return refusal(c, err, nil)
			case ok && f.Kind != 0:
				msg := f.Message
				res.Error = &msg
			default:
				if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
					return err
				}
				// Not a refusal the egress words itself: say so plainly,
				// keep the cause (which may quote a URL) for the log.
				log.Warn("integration test call failed", "profile", prof.ID, "err", err)
				msg := "The call failed before an answer came back."
				res.Error = &msg
			}
			return c.JSON(http.StatusOK, res)
		}
		res.Status = resp.Status
		if resp.Duration > 0 {
			res.DurationMS = resp.Duration.Milliseconds()
		}
		res.OK = resp.Status >= 200 && resp.Status < 300
		if !res.OK {
			msg := "The API answered " + http.StatusText(resp.Status) + " (" + strconv.Itoa(resp.Status) + ")."
			if http.StatusText(resp.Status) == "" {
				msg = "The API answered status " + strconv.Itoa(resp.Status) + "."
			}
			res.Error = &msg
		}
		return c.JSON(http.StatusOK, res)
	}
}
