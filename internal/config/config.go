// Package config reads the gateway's one typed Config from flags and the
// environment and validates it once, at start, with errors that name the
// setting at fault.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is everything the gateway can be told. Field comments name the
// environment variable; every variable has a flag of the same name in
// lower case with dashes (OIDC_ISSUER → -oidc-issuer).
type Config struct {
	ListenAddr string   // LISTEN_ADDR: where the gateway listens
	PublicURL  *url.URL // PUBLIC_URL: the portal's external URL
	// IDEURLTemplate is IDE_URL_TEMPLATE, e.g. http://{session}.ide.localhost:8080.
	IDEURLTemplate string
	IDEHost        HostPattern // derived from IDEURLTemplate
	// IDEProxyEngine is IDE_PROXY_ENGINE: relay | stdlib (ideproxy.Config.Engine).
	IDEProxyEngine string
	// Per edit session caps and idle timeouts of the IDE proxy
	// (ideproxy.Config).
	IDEMaxWebSockets        int           // IDE_MAX_WEBSOCKETS_PER_SESSION
	IDEMaxRequests          int           // IDE_MAX_REQUESTS_PER_SESSION
	IDEWebSocketIdleTimeout time.Duration // IDE_WEBSOCKET_IDLE_TIMEOUT
	IDEBackendIdleTimeout   time.Duration // IDE_BACKEND_IDLE_TIMEOUT

	OIDCIssuer        string              // OIDC_ISSUER
	OIDCClientID      string              // OIDC_CLIENT_ID
	OIDCClientSecret  string              // OIDC_CLIENT_SECRET (never logged)
	OIDCScopes        []string            // OIDC_SCOPES
	OIDCTenantClaim   string              // OIDC_TENANT_CLAIM: claim path; empty means one tenant
	OIDCDefaultTenant string              // OIDC_DEFAULT_TENANT
	OIDCRolesClaim    string              // OIDC_ROLES_CLAIM: claim path, dots for nesting
	OIDCRoleMap       map[string][]string // OIDC_ROLE_MAP: provider role → our roles
	OIDCDefaultRoles  []string            // OIDC_DEFAULT_ROLES: roles every signed-in user has
	OIDCGroupsClaim   string              // OIDC_GROUPS_CLAIM: claim path of the user's groups
	SessionMaxAge     time.Duration       // SESSION_MAX_AGE: portal session lifetime
	SessionSecret     []byte              // SESSION_SECRET: key material for encrypted cookies
	CookieCrossSite   bool                // COOKIE_CROSS_SITE: SameSite=None; Secure; Partitioned

	RedisURL string // REDIS_URL: unset keeps shared state in memory
	DataDir  string // DATA_DIR

	WorkspaceRuntime      string        // WORKSPACE_RUNTIME: local | docker
	CodeServerBin         string        // CODE_SERVER_BIN: code-server for the local runtime
	WorkspaceExtension    string        // WORKSPACE_EXTENSION: .vsix preinstalled in local workspaces
	WorkspaceGatewayURL   string        // WORKSPACE_GATEWAY_URL: the gateway as workspaces reach it
	WorkspaceSandbox      string        // WORKSPACE_SANDBOX: bwrap | none (local runtime)
	WorkspaceNetwork      string        // WORKSPACE_NETWORK: none | host (local runtime)
	WorkspaceUIDBase      int           // WORKSPACE_UID_BASE
	WorkspaceReadyTimeout time.Duration // WORKSPACE_READY_TIMEOUT
	WorkspaceImage        string        // WORKSPACE_IMAGE
	DockerHost            string        // DOCKER_HOST
	DockerMode            string        // WORKSPACE_DOCKER_MODE: socket | publish | network
	DockerGateway         string        // WORKSPACE_DOCKER_GATEWAY_CONTAINER
	DockerInternalNets    bool          // WORKSPACE_DOCKER_INTERNAL_NETWORKS
	DockerEgress          bool          // WORKSPACE_DOCKER_EGRESS
	DockerAPIAddr         string        // WORKSPACE_DOCKER_API_ADDR
	WorkspaceTmpfsSize    int64         // WORKSPACE_TMPFS_SIZE (bytes)
	WorkspaceVolumeSize   int64         // WORKSPACE_VOLUME_SIZE (bytes, 0: none)
	WorkspaceMemory       int64         // WORKSPACE_MEMORY (bytes)
	WorkspaceNanoCPUs     int64         // WORKSPACE_CPUS (×1e9)
	WorkspacePidsLimit    int64         // WORKSPACE_PIDS_LIMIT
	WorkspaceIdleTimeout  time.Duration // WORKSPACE_IDLE_TIMEOUT
	MaxConcurrentSpawns   int           // MAX_CONCURRENT_SPAWNS
	EditSessionTTL        time.Duration // EDIT_SESSION_TTL

	AllowedFrameAncestors []string     // ALLOWED_FRAME_ANCESTORS: origins, space or comma separated
	TrustedProxies        []*net.IPNet // TRUSTED_PROXIES: CIDRs whose X-Forwarded-For is believed
	MetricsAllow          []*net.IPNet // METRICS_ALLOW: peers that may read /metrics
	MetricsAddr           string       // METRICS_ADDR: the listener of /metrics, never the public port

	LLMBaseURL          string // LLM_BASE_URL
	LLMAPIKey           string // LLM_API_KEY (never logged)
	LLMModel            string // LLM_MODEL
	LLMDailyTokenBudget int64  // LLM_DAILY_TOKEN_BUDGET
	LLMMaxTokens        int64  // LLM_MAX_TOKENS: completion tokens one call may ask for (and reserves)
	PlaybookLimit       int    // PLAYBOOK_LIMIT
	IntegrationLimit    int    // INTEGRATION_LIMIT
	ValidatorPython     string // VALIDATOR_PYTHON: python3 that parses playbooks (never runs them)

	// The master key of integration secrets (never logged): at most one of
	// SecretsKey and SecretsKeyFile; neither: DATA_DIR/secrets.key. The
	// previous key still opens during a rotation.
	SecretsKey             string // SECRETS_KEY
	SecretsKeyFile         string // SECRETS_KEY_FILE
	SecretsKeyPrevious     string // SECRETS_KEY_PREVIOUS
	SecretsKeyPreviousFile string // SECRETS_KEY_PREVIOUS_FILE

	// The egress of integration calls (internal/egress).
	EgressAllowCIDRs       []*net.IPNet  // EGRESS_ALLOW_CIDRS: private/loopback ranges integration calls may reach
	EgressTimeout          time.Duration // EGRESS_TIMEOUT
	EgressMaxResponseBytes int64         // EGRESS_MAX_RESPONSE_BYTES

	// The playbook runner (internal/runner).
	RunTimeout     time.Duration // RUN_TIMEOUT
	RunConcurrency int           // RUN_CONCURRENCY
	RunMemory      int64         // RUN_MEMORY: RLIMIT_AS of a run (bytes)
	RunMaxProcs    int           // RUN_MAX_PROCS: RLIMIT_NPROC of a run's uid
	RunFileSize    int64         // RUN_FILE_SIZE: RLIMIT_FSIZE (bytes)
	RunTmpSize     int64         // RUN_TMP_SIZE: the run's /tmp tmpfs (bytes)
	RunUIDBase     int           // RUN_UID_BASE
	RunPython      string        // RUN_PYTHON

	LogLevel string // LOG_LEVEL: debug | info | warn | error
}

// Setting describes one configuration knob: its environment name, default
// and meaning. The README's configuration table is checked against this
// list by a test, so the two cannot drift apart.
type Setting struct {
	Env     string
	Default string
	Help    string
}

// Settings lists every setting in the order the README shows them.
func Settings() []Setting {
	return []Setting{
		{"LISTEN_ADDR", "127.0.0.1:8080", "address the gateway listens on"},
		{"PUBLIC_URL", "http://playbooks.localhost:8080", "the portal's external URL (scheme, host, port); plain http://localhost:8080 redirects here"},
		{"IDE_URL_TEMPLATE", "http://{session}.ide.playbooks.localhost:8080", "external URL of an IDE host; {session} is replaced by the edit session id. Keep it on the portal's site (a subdomain of the portal's registrable domain) so the framed IDE keeps its cookies and storage"},
		{"IDE_PROXY_ENGINE", "relay", "how the IDE proxy reaches workspaces: relay (WebSockets in epoll event loops over the raw sockets) or stdlib (WebSockets through Go's httputil.ReverseProxy too); HTTP goes through ReverseProxy either way; both apply the same checks"},
		{"IDE_MAX_WEBSOCKETS_PER_SESSION", "64", "WebSockets one edit session may hold open through the IDE proxy; more are refused with 429 (a VS Code window uses a handful)"},
		{"IDE_MAX_REQUESTS_PER_SESSION", "256", "HTTP requests one edit session may have in flight to its workspace; more get 429 with Retry-After (a browser sends at most six at a time to a host over HTTP/1.1)"},
		{"IDE_WEBSOCKET_IDLE_TIMEOUT", "1h", "an IDE WebSocket that carries nothing either way for this long is closed (at least 1m: VS Code's own sockets send a keep-alive every 5 s)"},
		{"IDE_BACKEND_IDLE_TIMEOUT", "90s", "a kept-alive connection from the IDE proxy to a workspace unused for this long is closed"},
		{"OIDC_ISSUER", "http://localhost:8081", "the OpenID provider's issuer URL"},
		{"OIDC_CLIENT_ID", "playbook-studio", "the client id registered at the provider"},
		{"OIDC_CLIENT_SECRET", "dev-secret", "the client secret (never logged)"},
		{"OIDC_SCOPES", "openid profile email", "scopes asked for at sign-in"},
		{"OIDC_TENANT_CLAIM", "", "claim holding the tenant (e.g. tid for Entra ID); empty: everyone is in OIDC_DEFAULT_TENANT"},
		{"OIDC_DEFAULT_TENANT", "default", "tenant used when OIDC_TENANT_CLAIM is empty"},
		{"OIDC_ROLES_CLAIM", "roles", "claim holding the user's roles; dots reach into objects (realm_access.roles for Keycloak)"},
		{"OIDC_ROLE_MAP", "author=author,automation=automation,admin=admin", "provider role → Playbook Studio role (author, automation, admin), comma separated"},
		{"OIDC_DEFAULT_ROLES", "", "roles every signed-in user gets in addition to mapped ones"},
		{"OIDC_GROUPS_CLAIM", "groups", "claim holding the user's groups (dots reach into objects); a source with groups may be targeted only by users sharing one; empty: no groups"},
		{"SESSION_MAX_AGE", "8h", "how long a portal sign-in lasts"},
		{"SESSION_SECRET", "", "32+ bytes (hex or text) to encrypt sign-in cookies; required with REDIS_URL so replicas agree; empty: random at start"},
		{"COOKIE_CROSS_SITE", "false", "set cookies SameSite=None; Secure; Partitioned for an outer portal on another site (needs https)"},
		{"REDIS_URL", "", "Redis for sessions, locks and counters (redis://host:6379/0); empty: in memory"},
		{"DATA_DIR", "./data", "where the gateway keeps its database and local workspaces"},
		{"WORKSPACE_RUNTIME", "local", "local (code-server processes) or docker"},
		{"CODE_SERVER_BIN", ".cache/code-server/node_modules/.bin/code-server", "code-server for the local runtime (make run installs it there)"},
		{"WORKSPACE_EXTENSION", ".cache/playbook-agent.vsix", "the agent extension preinstalled in local workspaces (make run builds it); empty: none"},
		{"WORKSPACE_GATEWAY_URL", "", "the gateway as workspaces reach it (PLAYBOOK_GATEWAY_URL inside them); its host answers the workspace API. Empty: http://127.0.0.1:PORT of LISTEN_ADDR for the local runtime, PUBLIC_URL otherwise"},
		{"WORKSPACE_SANDBOX", "bwrap", "local runtime: bwrap (each workspace in a bubblewrap sandbox with a uid of its own; see Workspace containment) or none (plain processes of the gateway's user: a single developer's machine only)"},
		{"WORKSPACE_NETWORK", "none", "local runtime, sandboxed: none (only the workspace's loopback, on which the gateway's workspace API is forwarded) or host (the host's network, its loopback services included)"},
		{"WORKSPACE_UID_BASE", "3000000", "local runtime, gateway as root: the first host uid given to a workspace (one per workspace, upwards)"},
		{"WORKSPACE_READY_TIMEOUT", "60s", "how long a workspace may take to become ready before it counts as failed"},
		{"WORKSPACE_IMAGE", "localhost/playbook-workspace:latest", "the workspace image for the docker runtime"},
		{"DOCKER_HOST", "", "the Docker Engine API (empty: the Docker default)"},
		{"WORKSPACE_DOCKER_MODE", "socket", "docker runtime: socket (no network in the workspace: it reaches code-server and the gateway's API through sockets; gateway as root on the engine's host), publish (each workspace's guard port on 127.0.0.1; no egress control) or network (gateway in a container joining each workspace's internal network)"},
		{"WORKSPACE_DOCKER_GATEWAY_CONTAINER", "", "network mode: the gateway's container name (empty: this container's hostname)"},
		{"WORKSPACE_DOCKER_INTERNAL_NETWORKS", "false", "network mode: kept for older configurations; workspace networks are internal unless WORKSPACE_DOCKER_EGRESS is set"},
		{"WORKSPACE_DOCKER_EGRESS", "false", "network mode: give workspace networks a route off the host (default: they reach the gateway and nothing else)"},
		{"WORKSPACE_DOCKER_API_ADDR", "", "socket mode: loopback host:port where workspaces' API connections are carried (empty: the host and port of WORKSPACE_GATEWAY_URL)"},
		{"WORKSPACE_TMPFS_SIZE", "256m", "docker runtime: size of each writable tmpfs of a workspace (its home, /tmp); the root file system is read-only"},
		{"WORKSPACE_VOLUME_SIZE", "0", "docker runtime: size limit of a new project volume (0: none; needs Podman with its storage on XFS with project quotas)"},
		{"WORKSPACE_MEMORY", "2g", "docker runtime: memory limit of a workspace (bytes, or with k, m, g)"},
		{"WORKSPACE_CPUS", "1", "docker runtime: CPUs of a workspace (may be fractional)"},
		{"WORKSPACE_PIDS_LIMIT", "512", "docker runtime: process limit of a workspace"},
		{"WORKSPACE_IDLE_TIMEOUT", "30m", "idle time before a workspace is stopped"},
		{"MAX_CONCURRENT_SPAWNS", "4", "workspace starts at once; more get 429"},
		{"EDIT_SESSION_TTL", "2m", "how long an edit session lives without heartbeats"},
		{"ALLOWED_FRAME_ANCESTORS", "", "origins (space or comma separated) that may frame the portal and the IDE, besides the portal"},
		{"TRUSTED_PROXIES", "", "CIDRs of reverse proxies whose X-Forwarded-For is trusted; empty: none"},
		{"METRICS_ALLOW", "127.0.0.0/8,::1/128", "CIDRs of peers (direct, not forwarded) that may read /metrics"},
		{"METRICS_ADDR", "127.0.0.1:9464", "address of the listener serving /metrics (and /healthz for probes): its own port, never the public one; port 0 picks a free one"},
		{"LLM_BASE_URL", "", "OpenAI-compatible model provider base URL; empty: no model"},
		{"LLM_API_KEY", "", "the model provider's key (never logged, never sent to a workspace)"},
		{"LLM_MODEL", "", "the model name"},
		{"LLM_DAILY_TOKEN_BUDGET", "8000000", "AI tokens per tenant per UTC day"},
		{"LLM_MAX_TOKENS", "8192", "completion tokens one AI call may ask for: a larger max_tokens is lowered to it, a call without one gets it; each call reserves this plus an estimate of its prompt from the day's budget until the provider reports its real use"},
		{"PLAYBOOK_LIMIT", "100", "playbooks per tenant"},
		{"INTEGRATION_LIMIT", "500", "integration profiles per tenant"},
		{"SECRETS_KEY", "", "the master key that wraps integration secrets' data keys: 32 bytes as base64 or hex (openssl rand -hex 32; never logged). Empty with SECRETS_KEY_FILE empty: DATA_DIR/secrets.key, created (mode 0600) on first start"},
		{"SECRETS_KEY_FILE", "", "a file holding the master key instead (base64 or hex; must not be readable by group or others)"},
		{"SECRETS_KEY_PREVIOUS", "", "during a master key rotation: the previous key, which still opens data keys until gateway secrets rotate has re-wrapped them"},
		{"SECRETS_KEY_PREVIOUS_FILE", "", "the previous key from a file instead"},
		{"VALIDATOR_PYTHON", "python3", "the Python 3.10+ that checks saved playbooks: it parses them and lists the standard library's modules, never runs them"},
		{"EGRESS_ALLOW_CIDRS", "", "CIDRs that integration calls may reach although they are private, loopback, link-local or otherwise internal (e.g. 10.20.0.0/16 for an on-premises ticketing system); checked on the address actually dialled. Empty: public addresses only"},
		{"EGRESS_TIMEOUT", "30s", "how long one integration call (and its OAuth2 token request) may take, answer included"},
		{"EGRESS_MAX_RESPONSE_BYTES", "5m", "largest integration answer body kept (bytes, or with k, m, g); a longer one is cut and marked truncated. Also the largest request body a call may send"},
		{"RUN_TIMEOUT", "10m", "how long one playbook run may take; a run still going then is killed with all its processes and ends timed_out"},
		{"RUN_CONCURRENCY", "2", "playbook runs this gateway executes at once; more wait queued (a queued run wakes a free runner at once)"},
		{"RUN_MEMORY", "512m", "address space (RLIMIT_AS) of a playbook run's processes (bytes, or with k, m, g)"},
		{"RUN_MAX_PROCS", "64", "processes a playbook run may have (RLIMIT_NPROC of its uid; gateway as root only)"},
		{"RUN_FILE_SIZE", "16m", "largest file a playbook run may write (RLIMIT_FSIZE)"},
		{"RUN_TMP_SIZE", "64m", "size of a playbook run's /tmp (a tmpfs, the only writable folder it has)"},
		{"RUN_UID_BASE", "2900000", "gateway as root: the host uid of the first runner slot (one uid per RUN_CONCURRENCY slot, upwards; keep clear of WORKSPACE_UID_BASE's range)"},
		{"RUN_PYTHON", "/usr/bin/python3", "the Python 3 that runs playbooks inside the sandbox; must live under /usr (the only system folder the sandbox binds)"},
		{"LOG_LEVEL", "info", "debug, info, warn or error"},
	}
}

// Load parses args (flags) over getenv (environment) over the defaults and
// validates the result. Flags win over the environment.
func Load(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	values := make(map[string]*string, len(Settings()))
	for _, s := range Settings() {
		def := s.Default
		if v := getenv(s.Env); v != "" {
			def = v
		}
		values[s.Env] = fs.String(flagName(s.Env), def, s.Help+" ($"+s.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	get := func(env string) string { return strings.TrimSpace(*values[env]) }
	return parse(get)
}

func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(env), "_", "-")
}

// parse turns raw strings into a Config, collecting every problem so the
// operator sees all of them at once rather than one per restart.
func parse(get func(string) string) (*Config, error) {
	var errs []error
	bad := func(env string, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, a...)))
	}
	c := &Config{
		ListenAddr:          get("LISTEN_ADDR"),
		IDEURLTemplate:      get("IDE_URL_TEMPLATE"),
		IDEProxyEngine:      strings.ToLower(get("IDE_PROXY_ENGINE")),
		OIDCIssuer:          get("OIDC_ISSUER"),
		OIDCClientID:        get("OIDC_CLIENT_ID"),
		OIDCClientSecret:    get("OIDC_CLIENT_SECRET"),
		OIDCScopes:          strings.Fields(get("OIDC_SCOPES")),
		OIDCTenantClaim:     get("OIDC_TENANT_CLAIM"),
		OIDCDefaultTenant:   get("OIDC_DEFAULT_TENANT"),
		OIDCRolesClaim:      get("OIDC_ROLES_CLAIM"),
		OIDCGroupsClaim:     get("OIDC_GROUPS_CLAIM"),
		RedisURL:            get("REDIS_URL"),
		DataDir:             get("DATA_DIR"),
		WorkspaceRuntime:    get("WORKSPACE_RUNTIME"),
		CodeServerBin:       get("CODE_SERVER_BIN"),
		WorkspaceExtension:  get("WORKSPACE_EXTENSION"),
		WorkspaceGatewayURL: get("WORKSPACE_GATEWAY_URL"),
		WorkspaceSandbox:    strings.ToLower(get("WORKSPACE_SANDBOX")),
		WorkspaceNetwork:    strings.ToLower(get("WORKSPACE_NETWORK")),
		WorkspaceImage:      get("WORKSPACE_IMAGE"),
		DockerHost:          get("DOCKER_HOST"),
		LLMBaseURL:          get("LLM_BASE_URL"),
		LLMAPIKey:           get("LLM_API_KEY"),
		LLMModel:            get("LLM_MODEL"),
		ValidatorPython:     get("VALIDATOR_PYTHON"),
		LogLevel:            strings.ToLower(get("LOG_LEVEL")),
	}

	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		bad("LISTEN_ADDR", "want host:port, got %q", c.ListenAddr)
	}
	if u, err := parseOrigin(get("PUBLIC_URL")); err != nil {
		bad("PUBLIC_URL", "%v", err)
	} else {
		c.PublicURL = u
	}
	if hp, err := ParseHostPattern(c.IDEURLTemplate); err != nil {
		bad("IDE_URL_TEMPLATE", "%v", err)
	} else {
		c.IDEHost = hp
		if c.PublicURL != nil && hp.Matches(c.PublicURL.Host) {
			bad("IDE_URL_TEMPLATE", "IDE hosts must not include the portal host %q: the IDE needs an origin of its own", c.PublicURL.Host)
		}
	}

	switch c.IDEProxyEngine {
	case "relay", "stdlib":
	default:
		bad("IDE_PROXY_ENGINE", "want relay or stdlib, got %q", c.IDEProxyEngine)
	}

	c.IDEMaxWebSockets = int(integer(get, "IDE_MAX_WEBSOCKETS_PER_SESSION", 1, 100_000, bad))
	c.IDEMaxRequests = int(integer(get, "IDE_MAX_REQUESTS_PER_SESSION", 1, 100_000, bad))
	// VS Code's sockets send a keep-alive every 5 s and reconnect after 20 s
	// without one: a minute leaves them a wide margin.
	c.IDEWebSocketIdleTimeout = duration(get, "IDE_WEBSOCKET_IDLE_TIMEOUT", time.Minute, 7*24*time.Hour, bad)
	c.IDEBackendIdleTimeout = duration(get, "IDE_BACKEND_IDLE_TIMEOUT", time.Second, time.Hour, bad)

	if u, err := url.Parse(c.OIDCIssuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("OIDC_ISSUER", "want an absolute http(s) URL, got %q", c.OIDCIssuer)
	}
	if c.OIDCClientID == "" {
		bad("OIDC_CLIENT_ID", "must be set")
	}
	if !contains(c.OIDCScopes, "openid") {
		bad("OIDC_SCOPES", "must include openid, got %q", get("OIDC_SCOPES"))
	}
	if c.OIDCTenantClaim == "" && c.OIDCDefaultTenant == "" {
		bad("OIDC_DEFAULT_TENANT", "must be set when OIDC_TENANT_CLAIM is empty")
	}
	if c.OIDCRolesClaim == "" && get("OIDC_DEFAULT_ROLES") == "" {
		bad("OIDC_ROLES_CLAIM", "set it, or give everyone roles with OIDC_DEFAULT_ROLES")
	}
	if m, err := parseRoleMap(get("OIDC_ROLE_MAP")); err != nil {
		bad("OIDC_ROLE_MAP", "%v", err)
	} else {
		c.OIDCRoleMap = m
	}
	for _, r := range splitList(get("OIDC_DEFAULT_ROLES")) {
		if !IsRole(r) {
			bad("OIDC_DEFAULT_ROLES", "unknown role %q (want author, automation or admin)", r)
		}
		c.OIDCDefaultRoles = append(c.OIDCDefaultRoles, r)
	}

	c.SessionMaxAge = duration(get, "SESSION_MAX_AGE", time.Minute, 30*24*time.Hour, bad)
	c.EditSessionTTL = duration(get, "EDIT_SESSION_TTL", 10*time.Second, 24*time.Hour, bad)
	c.WorkspaceIdleTimeout = duration(get, "WORKSPACE_IDLE_TIMEOUT", time.Minute, 7*24*time.Hour, bad)
	c.WorkspaceReadyTimeout = duration(get, "WORKSPACE_READY_TIMEOUT", time.Second, 30*time.Minute, bad)
	c.MaxConcurrentSpawns = int(integer(get, "MAX_CONCURRENT_SPAWNS", 1, 1000, bad))
	c.PlaybookLimit = int(integer(get, "PLAYBOOK_LIMIT", 1, 1_000_000, bad))
	c.IntegrationLimit = int(integer(get, "INTEGRATION_LIMIT", 1, 1_000_000, bad))
	c.SecretsKey, c.SecretsKeyFile = get("SECRETS_KEY"), get("SECRETS_KEY_FILE")
	c.SecretsKeyPrevious, c.SecretsKeyPreviousFile = get("SECRETS_KEY_PREVIOUS"), get("SECRETS_KEY_PREVIOUS_FILE")
	if c.SecretsKey != "" && c.SecretsKeyFile != "" {
		bad("SECRETS_KEY_FILE", "set SECRETS_KEY or SECRETS_KEY_FILE, not both")
	}
	if c.SecretsKeyPrevious != "" && c.SecretsKeyPreviousFile != "" {
		bad("SECRETS_KEY_PREVIOUS_FILE", "set SECRETS_KEY_PREVIOUS or SECRETS_KEY_PREVIOUS_FILE, not both")
	}
	c.EgressAllowCIDRs = cidrs(get, "EGRESS_ALLOW_CIDRS", bad)
	c.EgressTimeout = duration(get, "EGRESS_TIMEOUT", time.Second, 10*time.Minute, bad)
	c.EgressMaxResponseBytes = byteSize(get, "EGRESS_MAX_RESPONSE_BYTES", 1<<10, 1<<30, bad)
	c.RunTimeout = duration(get, "RUN_TIMEOUT", time.Second, 24*time.Hour, bad)
	c.RunConcurrency = int(integer(get, "RUN_CONCURRENCY", 1, 256, bad))
	c.RunMemory = byteSize(get, "RUN_MEMORY", 64<<20, 64<<30, bad)
	c.RunMaxProcs = int(integer(get, "RUN_MAX_PROCS", 8, 65536, bad))
	c.RunFileSize = byteSize(get, "RUN_FILE_SIZE", 1<<20, 1<<30, bad)
	c.RunTmpSize = byteSize(get, "RUN_TMP_SIZE", 1<<20, 4<<30, bad)
	c.RunUIDBase = int(integer(get, "RUN_UID_BASE", 1000, 1<<31-1<<20, bad))
	c.RunPython = get("RUN_PYTHON")
	if !strings.HasPrefix(c.RunPython, "/usr/") {
		bad("RUN_PYTHON", "must be an absolute path under /usr (the sandbox binds only /usr), got %q", c.RunPython)
	}
	c.LLMDailyTokenBudget = integer(get, "LLM_DAILY_TOKEN_BUDGET", 0, 1<<50, bad)
	c.LLMMaxTokens = integer(get, "LLM_MAX_TOKENS", 1, 1<<20, bad)
	if c.LLMDailyTokenBudget > 0 && c.LLMMaxTokens > c.LLMDailyTokenBudget {
		// Every call reserves LLM_MAX_TOKENS up front: none would fit.
		bad("LLM_MAX_TOKENS", "must not exceed LLM_DAILY_TOKEN_BUDGET (%d), or every AI call is refused", c.LLMDailyTokenBudget)
	}

	if s := get("SESSION_SECRET"); s != "" {
		if len(s) < 32 {
			bad("SESSION_SECRET", "must be at least 32 bytes, got %d", len(s))
		}
		c.SessionSecret = []byte(s)
	} else if c.RedisURL != "" {
		bad("SESSION_SECRET", "must be set when REDIS_URL is set, so every replica can read the sign-in cookies")
	}
	c.CookieCrossSite = boolean(get, "COOKIE_CROSS_SITE", bad)
	if c.CookieCrossSite && c.PublicURL != nil && c.PublicURL.Scheme != "https" {
		bad("COOKIE_CROSS_SITE", "needs an https PUBLIC_URL: browsers drop SameSite=None cookies that are not Secure")
	}

	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			bad("REDIS_URL", "want redis://, rediss:// or unix:// URL")
		}
	}
	for _, p := range []*string{&c.CodeServerBin, &c.WorkspaceExtension} {
		if *p != "" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	if c.DataDir == "" {
		bad("DATA_DIR", "must be set")
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	switch c.WorkspaceRuntime {
	case "local", "docker":
	default:
		bad("WORKSPACE_RUNTIME", "want local or docker, got %q", c.WorkspaceRuntime)
	}
	if c.WorkspaceRuntime == "local" && c.CodeServerBin == "" {
		bad("CODE_SERVER_BIN", "must be set for the local runtime")
	}
	switch c.WorkspaceSandbox {
	case "bwrap", "none":
	default:
		bad("WORKSPACE_SANDBOX", "want bwrap or none, got %q", c.WorkspaceSandbox)
	}
	switch c.WorkspaceNetwork {
	case "none", "host":
	default:
		bad("WORKSPACE_NETWORK", "want none or host, got %q", c.WorkspaceNetwork)
	}
	c.WorkspaceUIDBase = int(integer(get, "WORKSPACE_UID_BASE", 1000, 1<<31-1<<20, bad))
	switch c.DockerMode = get("WORKSPACE_DOCKER_MODE"); c.DockerMode {
	case "socket", "publish", "network":
	default:
		bad("WORKSPACE_DOCKER_MODE", "want socket, publish or network, got %q", c.DockerMode)
	}
	if c.WorkspaceGatewayURL == "" {
		c.WorkspaceGatewayURL = defaultWorkspaceGatewayURL(c)
	} else if u, err := url.Parse(c.WorkspaceGatewayURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("WORKSPACE_GATEWAY_URL", "want an absolute http(s) URL, got %q", c.WorkspaceGatewayURL)
	}
	c.DockerGateway = get("WORKSPACE_DOCKER_GATEWAY_CONTAINER")
	c.DockerInternalNets = boolean(get, "WORKSPACE_DOCKER_INTERNAL_NETWORKS", bad)
	if c.DockerInternalNets && c.DockerMode != "network" {
		bad("WORKSPACE_DOCKER_INTERNAL_NETWORKS", "needs WORKSPACE_DOCKER_MODE=network (ports are not published from internal networks)")
	}
	c.DockerEgress = boolean(get, "WORKSPACE_DOCKER_EGRESS", bad)
	if c.DockerEgress && (c.DockerMode != "network" || c.DockerInternalNets) {
		bad("WORKSPACE_DOCKER_EGRESS", "needs WORKSPACE_DOCKER_MODE=network and WORKSPACE_DOCKER_INTERNAL_NETWORKS unset")
	}
	c.DockerAPIAddr = get("WORKSPACE_DOCKER_API_ADDR")
	if c.DockerAPIAddr != "" {
		if host, _, err := net.SplitHostPort(c.DockerAPIAddr); err != nil || !isLoopback(host) {
			bad("WORKSPACE_DOCKER_API_ADDR", "want a loopback host:port, got %q", c.DockerAPIAddr)
		}
	}
	c.WorkspaceTmpfsSize = byteSize(get, "WORKSPACE_TMPFS_SIZE", 16<<20, 64<<30, bad)
	if get("WORKSPACE_VOLUME_SIZE") != "0" {
		c.WorkspaceVolumeSize = byteSize(get, "WORKSPACE_VOLUME_SIZE", 64<<20, 1<<50, bad)
	}
	c.WorkspaceMemory = byteSize(get, "WORKSPACE_MEMORY", 64<<20, 1<<40, bad)
	if cpus, err := strconv.ParseFloat(get("WORKSPACE_CPUS"), 64); err != nil || cpus < 0.1 || cpus > 64 {
		bad("WORKSPACE_CPUS", "want a number of CPUs from 0.1 to 64, got %q", get("WORKSPACE_CPUS"))
	} else {
		c.WorkspaceNanoCPUs = int64(cpus * 1e9)
	}
	c.WorkspacePidsLimit = integer(get, "WORKSPACE_PIDS_LIMIT", 32, 1<<20, bad)
	if c.WorkspaceRuntime == "docker" && c.WorkspaceImage == "" {
		bad("WORKSPACE_IMAGE", "must be set for the docker runtime")
	}

	for _, o := range splitList(get("ALLOWED_FRAME_ANCESTORS")) {
		u, err := parseOrigin(o)
		if err != nil || u.Path != "" {
			bad("ALLOWED_FRAME_ANCESTORS", "want origins like https://portal.example.com, got %q", o)
			continue
		}
		c.AllowedFrameAncestors = append(c.AllowedFrameAncestors, u.Scheme+"://"+u.Host)
	}
	c.TrustedProxies = cidrs(get, "TRUSTED_PROXIES", bad)
	c.MetricsAllow = cidrs(get, "METRICS_ALLOW", bad)
	c.MetricsAddr = get("METRICS_ADDR")
	if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
		bad("METRICS_ADDR", "want host:port, got %q", c.MetricsAddr)
	} else if c.MetricsAddr == c.ListenAddr {
		bad("METRICS_ADDR", "must differ from LISTEN_ADDR (%s): metrics never share the public port", c.ListenAddr)
	}

	if c.LLMBaseURL != "" {
		if u, err := url.Parse(c.LLMBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("LLM_BASE_URL", "want an absolute http(s) URL")
		}
		if c.LLMModel == "" {
			bad("LLM_MODEL", "must be set with LLM_BASE_URL")
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Roles the product knows.
const (
	RoleAuthor     = "author"
	RoleAutomation = "automation"
	RoleAdmin      = "admin"
)

// IsRole reports whether r is one of the product's roles.
func IsRole(r string) bool {
	return r == RoleAuthor || r == RoleAutomation || r == RoleAdmin
}

func parseRoleMap(s string) (map[string][]string, error) {
	m := map[string][]string{}
	for _, pair := range splitList(s) {
		from, to, ok := strings.Cut(pair, "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("want provider-role=role pairs, got %q", pair)
		}
		if !IsRole(to) {
			return nil, fmt.Errorf("unknown role %q in %q (want author, automation or admin)", to, pair)
		}
		m[from] = append(m[from], to)
	}
	return m, nil
}

// parseOrigin accepts an absolute http(s) URL with no query or fragment and
// returns it with any trailing slash removed from the path.
func parseOrigin(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("want an absolute http(s) URL, got %q", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("must have no query or fragment, got %q", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if u.Path != "" {
		return nil, fmt.Errorf("must be an origin with no path (the gateway serves from /), got %q", s)
	}
	u.Host = stripDefaultPort(u.Scheme, strings.ToLower(u.Host))
	return u, nil
}

// stripDefaultPort drops :80 from http and :443 from https hosts, since
// browsers leave them out of the Host header they send.
func stripDefaultPort(scheme, host string) string {
	if (scheme == "http" && strings.HasSuffix(host, ":80")) || (scheme == "https" && strings.HasSuffix(host, ":443")) {
		return host[:strings.LastIndexByte(host, ':')]
	}
	return host
}

func boolean(get func(string) string, env string, bad func(string, string, ...any)) bool {
	switch v := strings.ToLower(get(env)); v {
	case "", "false", "0", "no":
		return false
	case "true", "1", "yes":
		return true
	default:
		bad(env, "want true or false, got %q", v)
		return false
	}
}

// byteSize reads sizes like 512m, 2g or 1073741824.
func byteSize(get func(string) string, env string, lo, hi int64, bad func(string, string, ...any)) int64 {
	v := strings.ToLower(get(env))
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "k"):
		mult, v = 1<<10, v[:len(v)-1]
	case strings.HasSuffix(v, "m"):
		mult, v = 1<<20, v[:len(v)-1]
	case strings.HasSuffix(v, "g"):
		mult, v = 1<<30, v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		bad(env, "want a size like 512m or 2g, got %q", get(env))
		return 0
	}
	if n*mult < lo || n*mult > hi {
		bad(env, "must be between %d and %d bytes, got %d", lo, hi, n*mult)
	}
	return n * mult
}

func duration(get func(string) string, env string, lo, hi time.Duration, bad func(string, string, ...any)) time.Duration {
	d, err := time.ParseDuration(get(env))
	if err != nil {
		bad(env, "want a duration like 90s or 2m, got %q", get(env))
		return 0
	}
	if d < lo || d > hi {
		bad(env, "must be between %s and %s, got %s", lo, hi, d)
	}
	return d
}

func integer(get func(string) string, env string, lo, hi int64, bad func(string, string, ...any)) int64 {
	n, err := strconv.ParseInt(get(env), 10, 64)
	if err != nil {
		bad(env, "want a whole number, got %q", get(env))
		return 0
	}
	if n < lo || n > hi {
		bad(env, "must be between %d and %d, got %d", lo, hi, n)
	}
	return n
}

// defaultWorkspaceGatewayURL: local workspaces are processes on this
// machine, so they reach the gateway on loopback (a *.localhost portal name
// resolves in browsers, not in Node); containers need a name set for them.
func defaultWorkspaceGatewayURL(c *Config) string {
	// Local workspaces and socket-mode containers reach the gateway on
	// their own loopback (forwarded to its API socket).
	if c.WorkspaceRuntime == "local" || c.DockerMode == "socket" {
		if _, port, err := net.SplitHostPort(c.ListenAddr); err == nil {
			return "http://127.0.0.1:" + port
		}
	}
	if c.PublicURL != nil {
		return c.PublicURL.String()
	}
	return ""
}

func cidrs(get func(string) string, env string, bad func(string, string, ...any)) []*net.IPNet {
	var out []*net.IPNet
	for _, p := range splitList(get(env)) {
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			bad(env, "want CIDRs like 10.0.0.0/8, got %q", p)
			continue
		}
		out = append(out, n)
	}
	return out
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// isLoopback is true for 127.0.0.0/8, ::1 and localhost.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
