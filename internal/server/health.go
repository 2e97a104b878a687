package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// readinessCheck is one dependency /readyz asks.
type readinessCheck struct {
	name  string
	check func(context.Context) error
}

func handleHealthz() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

// handleReadyz asks every dependency, in parallel and within two seconds,
// and names the ones that fail. The causes go to the log: the endpoint is
// public, and error texts name internal addresses.
func handleReadyz(log *slog.Logger, checks []readinessCheck) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		type result struct {
			name string
			err  error
		}
		results := make(chan result, len(checks))
		for _, ch := range checks {
			go func() { results <- result{ch.name, ch.check(ctx)} }()
		}
		status := map[string]string{}
		var failing []string
		for range checks {
			r := <-results
			if r.err != nil {
				log.Warn("not ready", "dependency", r.name, "err", r.err)
				status[r.name] = "unavailable"
				failing = append(failing, r.name)
			} else {
				status[r.name] = "ok"
			}
		}
		if len(failing) > 0 {
			return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failing": failing, "checks": status})
		}
		return c.JSON(http.StatusOK, map[string]any{"status": "ok", "checks": status})
	}
}
