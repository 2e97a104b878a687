package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/fault"
)

// statuses is the one place where a domain refusal's kind becomes an HTTP
// status: domain packages know kinds, never statuses.
var statuses = map[fault.Kind]int{
	fault.Invalid:        http.StatusBadRequest,
	fault.Rejected:       http.StatusUnprocessableEntity,
	fault.NotFound:       http.StatusNotFound,
	fault.Conflict:       http.StatusConflict,
	fault.Gone:           http.StatusGone,
	fault.Busy:           http.StatusTooManyRequests,
	fault.Unavailable:    http.StatusServiceUnavailable,
	fault.Forbidden:      http.StatusForbidden,
	fault.TooLarge:       http.StatusRequestEntityTooLarge,
	fault.NotImplemented: http.StatusNotImplemented,
}

// statusOf is a kind's status; an unknown kind is a 500.
func statusOf(k fault.Kind) int {
	if s, ok := statuses[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// refusal answers the domain refusal in err's chain in the API's shape:
// its code and message, its details as fields beside the error, and
// Retry-After for Busy; the cause goes only to the log. Any other error is
// handed to otherwise (nil: passed on as it is, a 500).
func refusal(c echo.Context, err error, otherwise func(error) error) error {
	f, ok := fault.As(err)
	if !ok || f.Kind == 0 {
		if otherwise != nil {
			return otherwise(err)
		}
		return err
	}
	he := apierror.New(statusOf(f.Kind), f.Code, f.Message)
	if f.Cause != nil {
		he.SetInternal(f.Cause)
	}
	if len(f.Details) > 0 {
		body := apierror.FromHTTPError(he)
		body.Extra = f.Details
		he.Message = body
	}
	if f.Kind == fault.Busy && f.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+999_999_999)/1_000_000_000)))
	}
	return he
}

// storeRefusal is refusal for a domain backed by a store: anything that
// is not a refusal is the store not answering (503, the cause to the log
// only); what names the domain in the message ("Playbooks").
func storeRefusal(c echo.Context, err error, what string) error {
	return refusal(c, err, func(err error) error {
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", what+" cannot be read or written right now. Try again in a moment.", err)
	})
}

// uuidParam reads the :id of a route whose ids are UUIDs (in their
// 36-character form, lower case as stored), refusing anything else with
// notFound before any look-up.
func uuidParam(c echo.Context, notFound error) (string, error) {
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return "", notFound
	}
	return strings.ToLower(id), nil
}
