package server

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// errorHandler answers every error in the API's JSON shape, or, for a
// browser on a page or sign-in route, as a small HTML page with the same
// message. The private cause goes to the log, never to the client.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var he *echo.HTTPError
		if !errors.As(err, &he) {
			he = apierror.Wrap(http.StatusInternalServerError, "internal", "Something went wrong on our side. Try again.", err)
		}
		body := apierror.FromHTTPError(he)
		level := slog.LevelInfo
		if he.Code >= 500 {
			level = slog.LevelError
		}
		attrs := []any{"request_id", requestID(c), "status", he.Code, "code", body.Code, "path", c.Request().URL.Path}
		if he.Internal != nil {
			attrs = append(attrs, "err", he.Internal.Error())
		}
		log.Log(c.Request().Context(), level, "request refused", attrs...)

		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(he.Code)
			return
		}
		if wantsHTML(c) {
			c.Response().Header().Set("Cache-Control", "no-store")
			c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
			c.Response().WriteHeader(he.Code)
			_ = errorPage.Execute(c.Response(), map[string]any{"Status": he.Code, "Title": http.StatusText(he.Code), "Message": body.Message})
			return
		}
		out := map[string]any{"code": body.Code, "message": body.Message}
		resp := map[string]any{"error": out}
		for k, v := range body.Extra {
			resp[k] = v
		}
		_ = c.JSON(he.Code, resp)
	}
}

// wantsHTML is true for browser navigations outside the API.
func wantsHTML(c echo.Context) bool {
	p := c.Request().URL.Path
	if strings.HasPrefix(p, "/api/") || p == "/api" || p == "/healthz" || p == "/readyz" || p == "/metrics" {
		return false
	}
	return strings.Contains(c.Request().Header.Get("Accept"), "text/html")
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}} · Playbook Studio</title><link rel="stylesheet" href="/assets/app.css"></head>
<body class="error-page"><main class="error-card" role="main">
<h1>{{.Title}}</h1><p data-testid="error-message">{{.Message}}</p>
<p><a href="/">Back to the portal</a> · <a href="/auth/login">Sign in again</a></p>
</main></body></html>
`))
