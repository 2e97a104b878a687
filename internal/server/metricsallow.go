package server

import (
	"errors"
	"net"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// allowPeers lets only direct peers in nets through (for /metrics). It
// reads the socket's address, never X-Forwarded-For: a scraper talks to
// the gateway directly.
func allowPeers(nets []*net.IPNet) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
			ip := net.ParseIP(host)
			if err == nil && ip != nil {
				for _, n := range nets {
					if n.Contains(ip) {
						return next(c)
					}
				}
			}
			return apierror.Wrap(http.StatusForbidden, "forbidden", "Metrics are not served to this address.", errors.New("metrics peer "+host+" not in METRICS_ALLOW"))
		}
	}
}
