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
		requestIDs(d.Config.TrustedProxies),
		accessLog(d.Log),
		requestMetrics(d.Metrics),
		recoverPanics(d.Log),
		securityHeaders(portalCSP(ideFrameSource(d.Config.IDEHost), issuerOrigin(d.Config.OIDCIssuer), d.Config.AllowedFrameAncestors), d.Config.PublicURL.Scheme == "https"),
		shedForeignCookies(s.portalHost, config.SecureCookies(d.Config.PublicURL.Scheme, s.portalHost), d.Auth.OwnsCookie),
		// The model endpoint takes long conversations; every other route
		// is held to 1 MiB below.
		middleware.BodyLimit("4MiB"),
		originGuard(origin),
	)
	// Routes that know the portal session: the session store is read only
	// here, so health probes keep answering while Redis is away.
	session := []echo.MiddlewareFunc{middleware.BodyLimit("1MiB"), loadSession(d.Auth), csrfToken}
	signedIn := append(session, requireAPISession)
	admin := append(signedIn[:len(signedIn):len(signedIn)], requireRole(config.RoleAdmin))
	author := append(signedIn[:len(signedIn):len(signedIn)], requireRole(config.RoleAuthor))
	// What runs is the automation role's call: authors save versions,
	// automation puts one live.
	automation := append(signedIn[:len(signedIn):len(signedIn)], requireRole(config.RoleAutomation))
	// Calls from inside a workspace carry its token, worth something only
	// while its owner's edit session lives.
	wsToken := workspaceToken(d.Workspaces, d.Sessions)

	e.GET("/healthz", handleHealthz())
	e.HEAD("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(d.Log, []readinessCheck{
		{"kv", d.KV.Ping},
		{"oidc", d.Auth.Ready},
	}))

	e.GET("/auth/login", d.Auth.Login)
	e.GET("/auth/callback", d.Auth.Callback, session...)
	e.POST("/auth/logout", d.Auth.Logout, session...)
	// Sign-in of a portal framed by another site: the popup hands the
	// frame a one-time code (partitioned cookies are not shared).
	e.POST("/auth/handoff", d.Auth.Handoff, session...)
	e.POST("/auth/handoff/redeem", d.Auth.Redeem, session...)

	e.GET("/api/me", handleMe(), signedIn...)
	e.GET("/api/workspace", handleWorkspaceGet(d.Workspaces), signedIn...)
	e.POST("/api/workspace", handleWorkspaceEnsure(d.Workspaces), signedIn...)
	e.DELETE("/api/workspace", handleWorkspaceStop(d.Workspaces), signedIn...)
	e.GET("/api/admin/workspaces", handleAdminWorkspaces(d.Workspaces), admin...)
	e.DELETE("/api/admin/workspaces/:id", handleAdminWorkspaceStop(d.Workspaces, d.Sessions), admin...)

	e.POST("/api/edit-sessions", handleSessionStart(d.Sessions), author...)
	e.GET("/api/edit-sessions/current", handleSessionCurrent(d.Sessions), signedIn...)
	e.GET("/api/edit-sessions/:id", handleSessionGet(d.Sessions), signedIn...)
	e.DELETE("/api/edit-sessions/:id", handleSessionEnd(d.Sessions), signedIn...)
	e.POST("/api/edit-sessions/:id/heartbeat", handleSessionHeartbeat(d.Sessions), signedIn...)
	e.POST("/api/edit-sessions/:id/save", handleSessionSave(d.Sessions), sessionOrWorkspaceToken(wsToken, author))
	e.POST("/api/edit-sessions/:id/validate", handleSessionValidate(d.Sessions), sessionOrWorkspaceToken(wsToken, author))

	e.GET("/api/playbooks", handlePlaybookList(d.Playbooks), signedIn...)
	e.GET("/api/playbooks/:id", handlePlaybookGet(d.Playbooks, d.Sessions), signedIn...)
	e.GET("/api/playbooks/:id/versions", handlePlaybookVersions(d.Playbooks), signedIn...)
	e.GET("/api/playbooks/:id/versions/:n", handlePlaybookVersion(d.Playbooks), signedIn...)
	e.POST("/api/playbooks/:id/activate", handlePlaybookActivate(d.Playbooks, d.Sessions), automation...)
	e.POST("/api/playbooks/:id/deactivate", handlePlaybookDeactivate(d.Playbooks, d.Sessions), automation...)
	e.DELETE("/api/playbooks/:id", handlePlaybookDelete(d.Playbooks, d.Sessions), author...)

	e.GET("/api/admin/sessions", handleAdminSessions(d.Sessions), admin...)
	e.DELETE("/api/admin/sessions/:id", handleAdminTerminate(d.Sessions), admin...)
	e.GET("/api/admin/audit", handleAdminAudit(d.Audit), admin...)

	// Called from inside a workspace, with its token (the agent extension).
	e.GET("/api/workspace/session", handleWorkspaceSession(), wsToken)
	// The model endpoint, for the agent extension only (its workspace's
	// token: the provider key never leaves the gateway).
	e.POST("/api/llm/v1/chat/completions", handleLLMCompletions(d.LLM, d.Metrics), wsToken)
	e.GET("/api/llm/usage", handleLLMUsage(d.LLM), sessionOrWorkspaceToken(wsToken, signedIn))
	// Integration profiles: anyone signed in (and the agent, with its
	// workspace's token) sees them, never a secret; automation changes them.
	e.GET("/api/integration-profiles", handleIntegrationList(d.Integrations), sessionOrWorkspaceToken(wsToken, signedIn))
	e.GET("/api/integration-profiles/:id", handleIntegrationGet(d.Integrations), signedIn...)
	e.POST("/api/integration-profiles", handleIntegrationCreate(d.Integrations), automation...)
	e.PATCH("/api/integration-profiles/:id", handleIntegrationUpdate(d.Integrations), automation...)
	e.DELETE("/api/integration-profiles/:id", handleIntegrationDelete(d.Integrations), automation...)
	e.POST("/api/integration-profiles/:id/test", handleIntegrationTest(d.Integrations, d.Egress, d.Log), automation...)
	// Runs: anyone signed in reads them; automation starts and cancels.
	e.GET("/api/runs", handleRunList(d.Runs), signedIn...)
	e.GET("/api/runs/:id", handleRunGet(d.Runs), signedIn...)
	e.POST("/api/playbooks/:id/runs", handleRunStart(d.Runs), automation...)
	e.POST("/api/runs/:id/cancel", handleRunCancel(d.Runs), automation...)

	// Alerts, sources and incidents. A SIEM posts with its source's key;
	// an automation user may post with ?source=.
	if d.Alerts != nil {
		al := d.Alerts
		e.POST("/api/alerts", handleAlertPost(al), sessionOrWorkspaceToken(sourceKey(al), automation))
		e.GET("/api/alerts", handleAlertList(al), signedIn...)
		e.GET("/api/alerts/:id", handleAlertGet(al), signedIn...)
		e.PATCH("/api/alerts/:id", handleAlertPatch(al), automation...)
		e.POST("/api/alerts/:id/comments", handleAlertComment(al), signedIn...)
		e.GET("/api/incidents", handleIncidentList(al), signedIn...)
		e.GET("/api/incidents/:id", handleIncidentGet(al), signedIn...)
		e.GET("/api/sources", handleSourceList(al), signedIn...)
		e.GET("/api/admin/sources", handleAdminSourceList(al), admin...)
		e.POST("/api/admin/sources", handleSourceCreate(al), admin...)
		e.DELETE("/api/admin/sources/:id", handleSourceDelete(al), admin...)
		e.POST("/api/admin/sources/:id/keys", handleSourceKeyCreate(al), admin...)
		e.DELETE("/api/admin/sources/:id/keys/:keyId", handleSourceKeyDelete(al), admin...)
	} else {
		for _, p := range []string{"/api/alerts", "/api/alerts/*", "/api/incidents", "/api/incidents/*", "/api/sources", "/api/admin/sources", "/api/admin/sources/*"} {
			e.Any(p, alertsOff, signedIn...)
		}
	}

	// The outer portals the postMessage API talks to (public).
	e.GET("/api/embed-config", handleEmbedConfig(d.Config.AllowedFrameAncestors))
	// Any other API path: 401 without a session, 404 with one.
	e.Any("/api", handleAPINotFound(), signedIn...)
	e.Any("/api/*", handleAPINotFound(), signedIn...)

	shell := shellCSP(ideFrameSource(d.Config.IDEHost), issuerOrigin(d.Config.OIDCIssuer), d.Config.AllowedFrameAncestors)
	page := handlePage(d.Web, shell)
	for _, p := range []string{"/", "/playbooks", "/playbooks/:id", "/playbooks/:id/edit", "/incidents", "/incidents/:id", "/integrations", "/rules", "/sessions"} {
		e.GET(p, page, append(session, requirePageSessionOrFrame)...)
	}
	// The end of a sign-in in a popup (portal framed by an outer portal):
	// it tells the frame that opened it, and closes.
	e.GET("/auth/popup-done", handleStaticPage(d.Web, "popup-done.html", shell))
	// The diagram renderer the playbook page frames (its own CSP).
	e.GET("/render/mermaid", handleStaticPage(d.Web, "render-mermaid.html", diagramCSP(d.Config.AllowedFrameAncestors)))
	e.GET("/assets/*", handleAssets(d.Web))
}

// metricsRoutes lists the routes of the metrics listener (METRICS_ADDR):
// a port of its own, so the public port never answers /metrics whatever a
// proxy in front forwards, and the peer check sees real peers.
func (s *Server) metricsRoutes(d Deps) {
	e := s.metrics
	e.Use(recoverPanics(d.Log), allowPeers(d.Config.MetricsAllow))
	e.GET("/metrics", echo.WrapHandler(d.Metrics.Handler()))
	e.GET("/healthz", handleHealthz())
}

// ideRoutes lists every route of the IDE hosts: the ticket exchange, and
// the proxy to the session's workspace for everything else.
func (s *Server) ideRoutes(d Deps) {
	e := s.ide
	e.Use(
		requestIDs(d.Config.TrustedProxies),
		// The proxy's traffic: its access lines may wait for the next
		// batch (cmd/gateway writes them every 100 ms).
		accessLog(deferredLog(d.Log)),
		requestMetrics(d.Metrics),
		recoverPanics(d.Log),
		securityHeaders(ideCSP(d.Config.PublicURL.Scheme+"://"+s.portalHost, d.Config.AllowedFrameAncestors), d.Config.IDEHost.Scheme == "https"),
	)
	e.GET("/_gw/enter", d.IDE.Enter)
	e.Any("/*", d.IDE.Serve)
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
