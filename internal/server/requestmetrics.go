package server

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/metrics"
)

// requestMetrics counts requests by route and status and times them. An
// error is rendered here (c.Error) rather than further out, so the status
// counted is the one the client gets.
func requestMetrics(m *metrics.Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			route := routeLabel(c)
			m.Requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(c.Response().Status)).Inc()
			m.Latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}
