// Command gateway is Playbook Studio's gateway in one process: the portal
// and its API, OpenID sign-in, edit sessions, the workspaces (local
// processes or containers), the IDE origin's authenticated HTTP and
// WebSocket proxy, the model endpoint and the playbook records. main only
// calls run, which builds every part in dependency order from the
// configuration and serves until its context ends.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/playbookstudio/gateway/internal/alert"
	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/auth"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/ideproxy"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/llm"
	"github.com/playbookstudio/gateway/internal/logbuf"
	"github.com/playbookstudio/gateway/internal/metrics"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/sandbox"
	"github.com/playbookstudio/gateway/internal/server"
	"github.com/playbookstudio/gateway/internal/workspace"
	"github.com/playbookstudio/gateway/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run is the real main: everything it needs comes in as arguments, so
// tests start whole gateways in-process and stop them by cancelling ctx.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "secrets" {
		return runSecrets(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	// One JSON line per record. The IDE hosts' access lines (thousands a
	// second under load) are batched, written every 100 ms; everything
	// else goes out at once, after them. Returning writes out the rest.
	out := logbuf.New(stdout, 100*time.Millisecond)
	defer out.Close()
	opts := &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}
	log := slog.New(logbuf.NewHandler(slog.NewJSONHandler(out, opts), slog.NewJSONHandler(out.Deferred(), opts)))

	store, err := newStore(cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	secret := cfg.SessionSecret
	if len(secret) == 0 {
		// Sessions live in this process's memory anyway, so a key that dies
		// with the process loses nothing.
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	m := metrics.New()
	locks, auditLog, err := newLocksAndAudit(store, log)
	if err != nil {
		return err
	}
	workspaces, apiSocket, err := newWorkspaces(ctx, cfg, getenv, store, log)
	if err != nil {
		return err
	}
	defer workspaces.Close()
	records, err := newRecords(cfg)
	if err != nil {
		return err
	}
	defer records.Store.Close()
	integrations, integrationStore, err := newIntegrations(cfg, auditLog, log, playbookUsage(records.Store))
	if err != nil {
		return err
	}
	// Every integration call (Test connection now, playbook runs later)
	// goes out through this one egress: profile secrets added here, never
	// seen by the caller.
	calls, err := egress.New(egress.Config{AllowCIDRs: cfg.EgressAllowCIDRs, Timeout: cfg.EgressTimeout, MaxResponseBytes: cfg.EgressMaxResponseBytes}, integrations, log)
	if err != nil {
		return err
	}
	defer integrationStore.Close()
	sessions, err := editsession.New(editsession.Config{
		TTL:       cfg.EditSessionTTL,
		IDEURL:    cfg.IDEHost.URL,
		LiveGauge: m.LiveSessions,
	}, editsession.Deps{Locks: locks, Workspaces: workspaces, Store: store, Audit: auditLog, Log: log, Records: records})
	if err != nil {
		return err
	}
	defer sessions.Close()
	authn, err := auth.New(auth.Options{
		Issuer:       cfg.OIDCIssuer,
		ClientID:     cfg.OIDCClientID,
		ClientSecret: cfg.OIDCClientSecret,
		Scopes:       cfg.OIDCScopes,
		PublicURL:    cfg.PublicURL,
		Mapping: auth.ClaimMapping{
			TenantClaim:   cfg.OIDCTenantClaim,
			DefaultTenant: cfg.OIDCDefaultTenant,
			RolesClaim:    cfg.OIDCRolesClaim,
			RoleMap:       cfg.OIDCRoleMap,
			DefaultRoles:  cfg.OIDCDefaultRoles,
			GroupsClaim:   cfg.OIDCGroupsClaim,
		},
		SessionMaxAge: cfg.SessionMaxAge,
		CrossSite:     cfg.CookieCrossSite,
		Secret:        secret,
		OnSignIn: func(ctx context.Context, id *auth.Identity, result string) {
			m.SignIns.WithLabelValues(result).Inc()
			if id != nil {
				_ = auditLog.Record(ctx, audit.Event{Tenant: id.Tenant, Actor: id.Name + " (" + id.ID + ")", Action: "sign_in", Target: id.ID})
			}
		},
		// Signing out ends the user's edit session, and with it what their
		// workspace's token may do.
		OnSignOut: func(ctx context.Context, id auth.Identity) {
			if err := sessions.EndOfUser(ctx, editsession.Identity{ID: id.ID, Name: id.Name, Tenant: id.Tenant}, "signed out"); err != nil {
				log.Error("end the edit session at sign-out", "user", id.ID, "err", err)
			}
		},
	}, store, log)
	if err != nil {
		return err
	}
	ide, err := ideproxy.New(ideproxy.Config{Hosts: cfg.IDEHost, CrossSite: cfg.CookieCrossSite, Engine: cfg.IDEProxyEngine,
		MaxWebSockets: cfg.IDEMaxWebSockets, MaxRequests: cfg.IDEMaxRequests,
		WebSocketIdleTimeout: cfg.IDEWebSocketIdleTimeout, BackendIdleTimeout: cfg.IDEBackendIdleTimeout,
		LimitRefused: func(limit string) { m.IDELimitRefusals.WithLabelValues(limit).Inc() }}, sessions, workspaces, store, log)
	if err != nil {
		return err
	}

	files, err := web.Static()
	if err != nil {
		return err
	}
	// Model calls are counted in the metrics (by the API handler), not
	// audited one by one: they would bury sign-ins and activations.
	models, err := llm.New(llm.Config{BaseURL: cfg.LLMBaseURL, APIKey: cfg.LLMAPIKey, Model: cfg.LLMModel,
		DailyBudget: cfg.LLMDailyTokenBudget, MaxTokens: cfg.LLMMaxTokens}, newTokenCounter(store), log)
	if err != nil {
		return err
	}
	alerts, alertStore, err := newAlerts(ctx, cfg, auditLog, log)
	if err != nil {
		return err
	}
	defer alertStore.Close()
	runs, err := newRunner(cfg, log, alerts, records.Store, calls, integrations)
	if err != nil {
		return err
	}
	if runs != nil {
		defer runs.Close()
	}
	srv, err := server.New(server.Deps{LLM: models, Config: cfg, Log: log, Auth: authn, KV: store, Metrics: m, Web: files,
		Workspaces: workspaces, Sessions: sessions, IDE: ide, Audit: auditLog, Playbooks: records.Store,
		Integrations: integrations, Egress: calls, Alerts: alerts, Runs: runs})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	mln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
	}
	ms := &http.Server{Handler: srv.Metrics(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Room for every cookie a browser keeps for the portal's domain
		// (Chromium: 180 cookies of at most 4 KiB, about 720 KiB): an IDE
		// host can set cookies for the parent domain, and a flood of them
		// must not turn every portal request into a 431 (the gateway reads
		// only its own cookies and ignores the rest).
		MaxHeaderBytes: 1 << 20,
		// No WriteTimeout: IDE WebSockets and streamed model answers are
		// long-lived by design; handlers bound their own work.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("gateway listening", "addr", ln.Addr().String(), "metrics", mln.Addr().String(), "portal", cfg.PublicURL.String(),
		"ide_hosts", cfg.IDEURLTemplate, "issuer", cfg.OIDCIssuer, "store", store.Name(), "runtime", cfg.WorkspaceRuntime)

	serveErr := make(chan error, 3)
	go func() { serveErr <- hs.Serve(ln) }()
	go func() { serveErr <- ms.Serve(mln) }()
	if apiSocket != "" {
		// Sandboxed local workspaces have no network: they reach the
		// workspace API through this socket, bound into each of them.
		_ = os.Remove(apiSocket)
		aln, err := net.Listen("unix", apiSocket)
		if err != nil {
			return fmt.Errorf("the workspace API socket %s: %w", apiSocket, err)
		}
		if err := os.Chmod(apiSocket, 0o666); err != nil {
			aln.Close()
			return fmt.Errorf("the workspace API socket %s: %w", apiSocket, err)
		}
		go func() { serveErr <- hs.Serve(aln) }()
	}
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Hijacked WebSockets are not tracked by Shutdown: the proxy drains them.
	hs.RegisterOnShutdown(func() { _ = ide.Close() })
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	_ = ide.Close()
	_ = ms.Shutdown(shutdownCtx)
	for range 2 {
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	if apiSocket != "" {
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	log.Info("stopped")
	return nil
}

// newWorkspaces builds the configured runtime and its manager, adopts the
// workspaces still running from before a restart, and starts the culler.
// apiSocket is where to serve the workspace API for sandboxed local
// workspaces without a network ("" when none need it).
func newWorkspaces(ctx context.Context, cfg *config.Config, getenv func(string) string, store kv.Store, log *slog.Logger) (m *workspace.Manager, apiSocket string, err error) {
	var rt workspace.Runtime
	switch cfg.WorkspaceRuntime {
	case "local":
		vsix := cfg.WorkspaceExtension
		if vsix != "" {
			if _, err := os.Stat(vsix); err != nil {
				log.Warn("the agent extension is not built; workspaces start without it (make run builds it)", "path", vsix)
				vsix = ""
			}
		}
		lc := workspace.LocalConfig{
			CodeServer:    cfg.CodeServerBin,
			Dir:           filepath.Join(cfg.DataDir, "workspaces"),
			ExtensionVSIX: vsix,
			Path:          getenv("PATH"),
			UIDBase:       cfg.WorkspaceUIDBase,
			Network:       cfg.WorkspaceNetwork == "host",
		}
		if cfg.WorkspaceSandbox == "bwrap" {
			sb, err := sandbox.New(sandbox.Config{})
			if err != nil {
				return nil, "", fmt.Errorf("WORKSPACE_SANDBOX=bwrap: %w (or set WORKSPACE_SANDBOX=none on a single developer's machine)", err)
			}
			lc.Sandbox = sb
		}
		local, err := workspace.NewLocal(lc, log)
		if err != nil {
			return nil, "", err
		}
		if sandboxed, network := local.Sandboxed(); sandboxed && !network {
			apiSocket = local.APISocket()
		}
		rt = local
	case "docker":
		d, err := workspace.NewDocker(workspace.DockerConfig{
			Host:             cfg.DockerHost,
			Image:            cfg.WorkspaceImage,
			Memory:           cfg.WorkspaceMemory,
			NanoCPUs:         cfg.WorkspaceNanoCPUs,
			PidsLimit:        cfg.WorkspacePidsLimit,
			Mode:             cfg.DockerMode,
			GatewayContainer: cfg.DockerGateway,
			InternalNetworks: cfg.DockerInternalNets,
			Egress:           cfg.DockerEgress,
			APIAddr:          cfg.DockerAPIAddr,
			TmpfsSize:        cfg.WorkspaceTmpfsSize,
			VolumeSize:       cfg.WorkspaceVolumeSize,
		}, log)
		if err != nil {
			return nil, "", fmt.Errorf("WORKSPACE_RUNTIME=docker: %w", err)
		}
		rt = d
	default:
		return nil, "", fmt.Errorf("WORKSPACE_RUNTIME %q is not available in this build", cfg.WorkspaceRuntime)
	}
	m, err = workspace.NewManager(workspace.Config{
		IdleTimeout:         cfg.WorkspaceIdleTimeout,
		MaxConcurrentSpawns: cfg.MaxConcurrentSpawns,
		ReadyTimeout:        cfg.WorkspaceReadyTimeout,
		GatewayURL:          cfg.WorkspaceGatewayURL,
	}, rt, store, log)
	if err != nil {
		rt.Close()
		return nil, "", err
	}
	if err := m.Reconcile(ctx); err != nil {
		m.Close()
		return nil, "", err
	}
	m.RunCuller(min(cfg.WorkspaceIdleTimeout/4, time.Minute))
	return m, apiSocket, nil
}

// newRecords opens the playbook store (SQLite under DATA_DIR) and the
// validator.
func newRecords(cfg *config.Config) (*editsession.Records, error) {
	store, err := playbook.NewSQLite(filepath.Join(cfg.DataDir, "playbooks.db"), nil)
	if err != nil {
		return nil, fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}
	v, err := playbook.NewValidator(cfg.ValidatorPython)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("VALIDATOR_PYTHON: %w", err)
	}
	return &editsession.Records{Store: store, Validator: v, Limits: playbook.DefaultLimits, PlaybookLimit: cfg.PlaybookLimit}, nil
}

// devIssuer is the dev OpenID provider's address: make run starts it when
// the gateway points there, so it marks a local run.
const devIssuer = "http://localhost:8081"

// newAlerts opens the alert store (DATA_DIR/alerts.db) and builds the
// service. The first start of a single-tenant gateway creates a source
// "default" and writes a key for it to DATA_DIR/default-source.key, so a
// newcomer can post an alert at once (the README's curl line); a local
// run with the dev provider adds two sources restricted to groups.
func newAlerts(ctx context.Context, cfg *config.Config, al audit.Log, log *slog.Logger) (*alert.Service, io.Closer, error) {
	store, err := alert.NewSQLite(filepath.Join(cfg.DataDir, "alerts.db"))
	if err != nil {
		return nil, nil, fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}
	svc, err := alert.New(alert.Config{Store: store, Audit: al, Log: log})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	if cfg.OIDCTenantClaim != "" {
		// Tenants come from sign-in: no tenant is known to seed.
		return svc, store, nil
	}
	seeds := []alert.Seed{{Name: "default"}}
	if cfg.OIDCIssuer == devIssuer {
		seeds = append(seeds, alert.Seed{Name: "sentinel-eu", Groups: []string{"soc-eu"}}, alert.Seed{Name: "sentinel-us", Groups: []string{"soc-us"}})
	}
	keyFile := filepath.Join(cfg.DataDir, "default-source.key")
	wrote, err := svc.EnsureDefaults(ctx, cfg.OIDCDefaultTenant, seeds, keyFile)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("the default alert source: %w", err)
	}
	if wrote {
		log.Info("created the alert source \"default\"; post alerts with the key in this file", "path", keyFile)
	} else if _, err := os.Stat(keyFile); err == nil {
		log.Info("the alert source \"default\"'s key is in this file", "path", keyFile)
	}
	return svc, store, nil
}

// newLocksAndAudit picks the Redis implementations when the store is Redis.
func newLocksAndAudit(store kv.Store, log *slog.Logger) (editlock.Locker, audit.Log, error) {
	if r, ok := store.(*kv.Redis); ok {
		locks, err := editlock.NewRedis(r.Client(), nil)
		if err != nil {
			return nil, nil, err
		}
		al, err := audit.NewRedis(r.Client(), log, nil)
		return locks, al, err
	}
	al, err := audit.NewMemory(log, nil)
	return editlock.NewMemory(nil), al, err
}

func newTokenCounter(store kv.Store) llm.Counter {
	if r, ok := store.(*kv.Redis); ok {
		return llm.NewRedisCounter(r.Client())
	}
	return llm.NewMemoryCounter()
}

func newStore(cfg *config.Config) (kv.Store, error) {
	if cfg.RedisURL == "" {
		return kv.NewMemory(nil), nil
	}
	return kv.NewRedis(cfg.RedisURL, "pbs:")
}

func logLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}
