package server

import (
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// csrfToken requires, on every state-changing request made with a portal
// session cookie, the session's CSRF token in X-CSRF-Token or (for plain
// HTML forms) the csrf_token form field. Requests without a session carry
// no ambient authority and pass; routes that need one refuse them anyway.
func csrfToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		s := sessionOf(c)
		if s == nil || safeMethod(c.Request().Method) {
			return next(c)
		}
		got := c.Request().Header.Get("X-CSRF-Token")
		if got == "" && isURLEncodedForm(c.Request().Header.Get(echo.HeaderContentType)) {
			got = c.FormValue("csrf_token")
		}
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRFToken)) != 1 {
			return apierror.Wrap(http.StatusForbidden, "csrf_failed", "This request lacks a valid CSRF token. Reload the page and try again.", errors.New("missing or wrong CSRF token"))
		}
		return next(c)
	}
}

// isURLEncodedForm accepts the form content type with or without
// parameters ("; charset=UTF-8"), as user agents may add them.
func isURLEncodedForm(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == echo.MIMEApplicationForm
}
