package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// recoverPanics turns a panic in a handler into a 500 and a log line with
// the stack, instead of a dropped connection. http.ErrAbortHandler is let
// through: it is how a proxy deliberately aborts a response.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				r := recover()
				if r == nil {
					return
				}
				if r == http.ErrAbortHandler {
					panic(r)
				}
				log.Error("panic in handler", "request_id", requestID(c), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = apierror.New(http.StatusInternalServerError, "internal", "Something went wrong on our side. Try again.")
			}()
			return next(c)
		}
	}
}
