package server

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
)

// accessLog writes one JSON line per request. It logs the path, never the
// query: sign-in callbacks carry authorization codes there, and IDE
// entries carry tickets.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			req := c.Request()
			log.LogAttrs(req.Context(), slog.LevelInfo, "request",
				slog.String("request_id", requestID(c)),
				slog.String("method", req.Method),
				slog.String("host", req.Host),
				slog.String("path", req.URL.Path),
				slog.String("route", routeLabel(c)),
				slog.Int("status", c.Response().Status),
				slog.Int64("bytes", c.Response().Size),
				slog.Duration("duration", time.Since(start)),
				slog.String("remote_ip", c.RealIP()),
				slog.String("user", userLabel(c)),
			)
			return nil
		}
	}
}

// deferredLog is log's batched variant when its handler has one (the
// gateway's, see internal/logbuf), else log.
func deferredLog(log *slog.Logger) *slog.Logger {
	if h, ok := log.Handler().(interface{ Deferred() slog.Handler }); ok {
		return slog.New(h.Deferred())
	}
	return log
}

// routeLabel is the route template ("/api/playbooks/:id"), so metrics and
// logs group by route rather than by every id ever seen.
func routeLabel(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "unmatched"
}
