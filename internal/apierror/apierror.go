// Package apierror is the one shape of every error the gateway answers:
// {"error":{"code":"snake_case","message":"a sentence for a person"}}.
// The code and message are public; the cause rides along as the Echo
// error's internal error and reaches only the logs.
package apierror

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Body is the public part of an error.
type Body struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Extra carries fields a route documents next to the error (for
	// example the other session of a 409 user_has_session).
	Extra map[string]any `json:"-"`
}

// New returns an Echo error with a public code and message.
func New(status int, code, message string) *echo.HTTPError {
	return echo.NewHTTPError(status, Body{Code: code, Message: message})
}

// Wrap is New with a private cause for the logs.
func Wrap(status int, code, message string, cause error) *echo.HTTPError {
	return New(status, code, message).SetInternal(cause)
}

// FromHTTPError turns any Echo error into a Body, naming the codes the
// API contract fixes for common statuses.
func FromHTTPError(he *echo.HTTPError) Body {
	if b, ok := he.Message.(Body); ok {
		return b
	}
	msg, _ := he.Message.(string)
	if msg == "" {
		msg = http.StatusText(he.Code)
	}
	return Body{Code: CodeFor(he.Code), Message: msg}
}

// CodeFor is the contract's default code for a status.
func CodeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "internal"
	}
	return "error"
}
