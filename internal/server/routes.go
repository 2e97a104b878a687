package server

import (
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/playbookstudio/gateway/internal/config"
)

// portalRoutes lists every route of the portal host.
func (s *Server) portalRoutes(d Deps) {
	e := s.portal
	origin := d.Config.PublicURL.Scheme + "://" + s.portalHost
	e.Use(
		requestIDs(len(d.Config.TrustedProxies) > 0),
		accessLog(d.Log),
		requestMetrics(d.Metrics),
		recoverPanics(d.Log),
		securityHeaders(portalCSP(ideFrameSource(d.Config.IDEHost), issuerOrigin(d.Config.OIDCIssuer), d.Config.AllowedFrameAncestors), d.Config.PublicURL.Scheme == "https"),
		middleware.BodyLimit("1M"),
		originGuard(origin),
		loadSession(d.Auth),
		csrfToken,
	)

	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz([]readinessCheck{
		{"kv", d.KV.Ping},
		{"oidc", d.Auth.Ready},
	}))
	e.GET("/metrics", echo.WrapHandler(d.Metrics.Handler()), allowPeers(d.Config.MetricsAllow))

	e.GET("/auth/login", d.Auth.Login)
	e.GET("/auth/callback", d.Auth.Callback)
	e.POST("/auth/logout", d.Auth.Logout)

	api := e.Group("/api", requireAPISession)
	api.GET("/me", handleMe())

	page := handlePage(d.Web)
	for _, p := range []string{"/", "/playbooks", "/integrations", "/rules", "/sessions"} {
		e.GET(p, page, requirePageSession)
	}
	e.GET("/assets/*", handleAssets(d.Web))
}

// ideRoutes lists every route of the IDE hosts. The IDE proxy comes with
// edit sessions; until then every IDE address says there is nothing there.
func (s *Server) ideRoutes(d Deps) {
	e := s.ide
	e.Use(
		requestIDs(len(d.Config.TrustedProxies) > 0),
		accessLog(d.Log),
		requestMetrics(d.Metrics),
		recoverPanics(d.Log),
		securityHeaders(ideCSP(d.Config.PublicURL.Scheme+"://"+s.portalHost, d.Config.AllowedFrameAncestors), d.Config.IDEHost.Scheme == "https"),
	)
	e.Any("/*", handleIDENotYet())
}

// ideFrameSource is the CSP source matching every IDE host, e.g.
// http://*.ide.localhost:8080.
func ideFrameSource(p config.HostPattern) string {
	return p.Scheme + "://*" + p.Suffix()
}

func issuerOrigin(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
