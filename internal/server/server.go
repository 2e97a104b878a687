// Package server owns the gateway's HTTP surface, wired with Echo. It is
// the only package that knows routes (routes.go lists them all) and the
// only one that turns domain refusals into HTTP statuses (refusals.go);
// each middleware lives in a file of its own.
package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/alert"
	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/auth"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/ideproxy"
	"github.com/playbookstudio/gateway/internal/integration"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/llm"
	"github.com/playbookstudio/gateway/internal/metrics"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/runner"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// Deps are what the server serves with.
type Deps struct {
	Config  *config.Config
	Log     *slog.Logger
	Auth    *auth.Auth
	KV      kv.Store
	Metrics *metrics.Metrics
	Web     fs.FS // the portal's static files (index.html, assets/…)
	// Workspaces is the per-user code-server manager.
	Workspaces *workspace.Manager
	Sessions   *editsession.Service
	IDE        *ideproxy.Proxy
	Audit      audit.Log
	Playbooks  playbook.Store
	LLM        *llm.Gateway
	// Integrations are the tenant's integration profiles.
	Integrations integration.Profiles
	// Egress makes the calls of Test connection; nil until it is wired:
	// the test route then answers 501.
	Egress egress.Doer
	// Alerts are sources, alerts and incidents; nil: those routes answer
	// 501.
	Alerts *alert.Service
	// Runs is the playbook runner; nil until it is wired: the run routes
	// then answer 501.
	Runs *runner.Service
}

// Server answers on two kinds of host: the portal host (portal, /auth,
// /api) and the IDE hosts of IDE_URL_TEMPLATE. They are two Echo instances
// with their own routes and headers, so nothing registered for the portal
// can ever answer on an IDE origin, or the other way round.
type Server struct {
	cfg        *config.Config
	log        *slog.Logger
	portalHost string
	// workspaceHost is the host of WORKSPACE_GATEWAY_URL.
	workspaceHost string
	portal        *echo.Echo
	ide           *echo.Echo
	metrics       *echo.Echo
}

// New validates deps and builds the routes.
func New(d Deps) (*Server, error) {
	if d.Config == nil || d.Log == nil || d.Auth == nil || d.KV == nil || d.Metrics == nil || d.Web == nil || d.Workspaces == nil ||
		d.Sessions == nil || d.IDE == nil || d.Audit == nil || d.Playbooks == nil || d.LLM == nil || d.Integrations == nil {
		return nil, errors.New("server: every dependency is required")
	}
	if _, err := fs.Stat(d.Web, "index.html"); err != nil {
		return nil, fmt.Errorf("server: portal files lack index.html: %w", err)
	}
	s := &Server{
		cfg:           d.Config,
		log:           d.Log,
		portalHost:    strings.ToLower(d.Config.PublicURL.Host),
		workspaceHost: workspaceHostOf(d.Config.WorkspaceGatewayURL),
		portal:        newEcho(d),
		ide:           newEcho(d),
		metrics:       newEcho(d),
	}
	s.portalRoutes(d)
	s.ideRoutes(d)
	s.metricsRoutes(d)
	return s, nil
}

// Metrics is the handler of the metrics listener (METRICS_ADDR).
func (s *Server) Metrics() http.Handler { return s.metrics }

func newEcho(d Deps) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(discard{})
	e.IPExtractor = ipExtractor(d.Config.TrustedProxies)
	e.HTTPErrorHandler = errorHandler(d.Log)
	return e
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// ServeHTTP sends each request to the Echo of its host. Health checks
// answer on any host, since probes rarely send the public host name; any
// other unknown host is refused, which also blunts DNS rebinding.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	switch {
	case host == s.portalHost:
		s.portal.ServeHTTP(w, r)
	case s.cfg.IDEHost.Matches(host):
		s.ide.ServeHTTP(w, r)
	case r.URL.Path == "/healthz" || r.URL.Path == "/readyz":
		s.portal.ServeHTTP(w, r)
	case host == s.workspaceHost && strings.HasPrefix(r.URL.Path, "/api/"):
		// The workspace API (the extension, with its token) on the host
		// workspaces reach the gateway by: only /api, so no portal page
		// or sign-in ever answers there.
		s.portal.ServeHTTP(w, r)
	case s.localAlias(host) && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		http.Redirect(w, r, s.cfg.PublicURL.String()+r.URL.RequestURI(), http.StatusFound)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusMisdirectedRequest)
		fmt.Fprintf(w, "This gateway does not serve this host name. The portal is at %s\n", s.cfg.PublicURL)
	}
}

// localAlias is true for http://localhost:PORT when the portal is a
// *.localhost name on the same port: local runs put the portal on
// playbooks.localhost so that the IDE hosts (*.ide.playbooks.localhost)
// are on the portal's site, and plain localhost leads there.
func (s *Server) localAlias(host string) bool {
	h, port, err := net.SplitHostPort(s.portalHost)
	if err != nil {
		h, port = s.portalHost, ""
	}
	if !strings.HasSuffix(h, ".localhost") {
		return false
	}
	want := "localhost"
	if port != "" {
		want += ":" + port
	}
	return host == want
}

func workspaceHostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}
