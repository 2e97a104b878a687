package config

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// envOf turns a map into a getenv; unset names read as "".
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func noEnv(string) string { return "" }

func mustLoad(t *testing.T, args []string, env map[string]string) *Config {
	t.Helper()
	c, err := Load(args, envOf(env), io.Discard)
	if err != nil {
		t.Fatalf("Load(%q, %v): %v", args, env, err)
	}
	return c
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("the defaults do not load: %v", err)
	}
	if c.ListenAddr != "127.0.0.1:8080" {
		t.Errorf("ListenAddr = %q", c.ListenAddr)
	}
	if got := c.PublicURL.String(); got != "http://playbooks.localhost:8080" {
		t.Errorf("PublicURL = %q", got)
	}
	if c.IDEURLTemplate != "http://{session}.ide.playbooks.localhost:8080" || c.IDEHost.Scheme != "http" || c.IDEHost.Suffix() != ".ide.playbooks.localhost:8080" {
		t.Errorf("IDE host = %q %+v", c.IDEURLTemplate, c.IDEHost)
	}
	if c.OIDCIssuer != "http://localhost:8081" || c.OIDCClientID != "playbook-studio" || c.OIDCClientSecret != "dev-secret" {
		t.Errorf("OIDC = %q %q %q", c.OIDCIssuer, c.OIDCClientID, c.OIDCClientSecret)
	}
	if !slices.Equal(c.OIDCScopes, []string{"openid", "profile", "email"}) {
		t.Errorf("OIDCScopes = %q", c.OIDCScopes)
	}
	if c.OIDCTenantClaim != "" || c.OIDCDefaultTenant != "default" || c.OIDCRolesClaim != "roles" {
		t.Errorf("claims = %q %q %q", c.OIDCTenantClaim, c.OIDCDefaultTenant, c.OIDCRolesClaim)
	}
	for _, r := range []string{"author", "automation", "admin"} {
		if !slices.Equal(c.OIDCRoleMap[r], []string{r}) {
			t.Errorf("OIDCRoleMap[%q] = %q", r, c.OIDCRoleMap[r])
		}
	}
	if len(c.OIDCRoleMap) != 3 || len(c.OIDCDefaultRoles) != 0 {
		t.Errorf("OIDCRoleMap = %v, OIDCDefaultRoles = %v", c.OIDCRoleMap, c.OIDCDefaultRoles)
	}
	if c.SessionMaxAge != 8*time.Hour || c.EditSessionTTL != 2*time.Minute || c.WorkspaceIdleTimeout != 30*time.Minute {
		t.Errorf("durations = %v %v %v", c.SessionMaxAge, c.EditSessionTTL, c.WorkspaceIdleTimeout)
	}
	if c.SessionSecret != nil || c.CookieCrossSite || c.RedisURL != "" {
		t.Errorf("secret %q, cross-site %v, redis %q", c.SessionSecret, c.CookieCrossSite, c.RedisURL)
	}
	if !filepath.IsAbs(c.DataDir) || filepath.Base(c.DataDir) != "data" {
		t.Errorf("DataDir = %q, want an absolute path ending in data", c.DataDir)
	}
	if c.WorkspaceRuntime != "local" || c.WorkspaceImage != "localhost/playbook-workspace:latest" || c.DockerHost != "" {
		t.Errorf("workspace = %q %q %q", c.WorkspaceRuntime, c.WorkspaceImage, c.DockerHost)
	}
	if c.MaxConcurrentSpawns != 4 || c.PlaybookLimit != 100 || c.LLMDailyTokenBudget != 8_000_000 {
		t.Errorf("numbers = %d %d %d", c.MaxConcurrentSpawns, c.PlaybookLimit, c.LLMDailyTokenBudget)
	}
	if c.AllowedFrameAncestors != nil || c.TrustedProxies != nil {
		t.Errorf("AllowedFrameAncestors = %v, TrustedProxies = %v", c.AllowedFrameAncestors, c.TrustedProxies)
	}
	if !inNets(c.MetricsAllow, "127.0.0.1") || !inNets(c.MetricsAllow, "127.9.9.9") || !inNets(c.MetricsAllow, "::1") || inNets(c.MetricsAllow, "10.0.0.1") {
		t.Errorf("MetricsAllow = %v", c.MetricsAllow)
	}
	if c.LLMBaseURL != "" || c.LLMModel != "" || c.LLMAPIKey != "" {
		t.Errorf("LLM = %q %q %q", c.LLMBaseURL, c.LLMModel, c.LLMAPIKey)
	}
	if c.LogLevel != "info" {
		t.Errorf("LogLevel = %q", c.LogLevel)
	}
	if c.IDEProxyEngine != "relay" {
		t.Errorf("IDEProxyEngine = %q", c.IDEProxyEngine)
	}
}

func inNets(nets []*net.IPNet, ip string) bool {
	for _, n := range nets {
		if n.Contains(net.ParseIP(ip)) {
			return true
		}
	}
	return false
}

func TestEnvBeatsDefaults(t *testing.T) {
	c := mustLoad(t, nil, map[string]string{
		"LISTEN_ADDR":           "0.0.0.0:9000",
		"LOG_LEVEL":             "WARN",
		"MAX_CONCURRENT_SPAWNS": "9",
		"SESSION_MAX_AGE":       "1h",
		"OIDC_SCOPES":           "openid email",
		"TRUSTED_PROXIES":       "10.0.0.0/8, 192.168.1.0/24",
		"LLM_API_KEY":           "sk-test",
	})
	if c.ListenAddr != "0.0.0.0:9000" || c.LogLevel != "warn" || c.MaxConcurrentSpawns != 9 || c.SessionMaxAge != time.Hour {
		t.Errorf("env not applied: %q %q %d %v", c.ListenAddr, c.LogLevel, c.MaxConcurrentSpawns, c.SessionMaxAge)
	}
	if !slices.Equal(c.OIDCScopes, []string{"openid", "email"}) || c.LLMAPIKey != "sk-test" {
		t.Errorf("OIDCScopes = %q, LLMAPIKey = %q", c.OIDCScopes, c.LLMAPIKey)
	}
	if len(c.TrustedProxies) != 2 || !inNets(c.TrustedProxies, "10.1.2.3") || !inNets(c.TrustedProxies, "192.168.1.7") || inNets(c.TrustedProxies, "192.168.2.7") {
		t.Errorf("TrustedProxies = %v", c.TrustedProxies)
	}
	// Values are trimmed.
	c = mustLoad(t, nil, map[string]string{"LOG_LEVEL": "  debug \n"})
	if c.LogLevel != "debug" {
		t.Errorf("LogLevel = %q, want trimmed debug", c.LogLevel)
	}
}

func TestFlagsBeatEnv(t *testing.T) {
	env := map[string]string{"LOG_LEVEL": "warn", "LISTEN_ADDR": "127.0.0.1:9000", "PLAYBOOK_LIMIT": "5"}
	c := mustLoad(t, []string{"-log-level=debug", "--listen-addr", "127.0.0.1:9001"}, env)
	if c.LogLevel != "debug" || c.ListenAddr != "127.0.0.1:9001" {
		t.Errorf("flags lost to env: %q %q", c.LogLevel, c.ListenAddr)
	}
	if c.PlaybookLimit != 5 {
		t.Errorf("env without a flag not applied: PlaybookLimit = %d", c.PlaybookLimit)
	}
	// A flag can set a value the environment cannot: the empty string.
	c = mustLoad(t, []string{"-oidc-client-secret="}, map[string]string{"OIDC_CLIENT_SECRET": "from-env"})
	if c.OIDCClientSecret != "" {
		t.Errorf("OIDCClientSecret = %q, want the flag's empty value", c.OIDCClientSecret)
	}
}

// Every setting has a flag named after it, and each default is valid.
func TestEverySettingHasAFlag(t *testing.T) {
	seen := map[string]bool{}
	var args []string
	for _, s := range Settings() {
		if seen[s.Env] {
			t.Errorf("setting %s listed twice", s.Env)
		}
		seen[s.Env] = true
		if s.Help == "" {
			t.Errorf("setting %s has no help text", s.Env)
		}
		if !regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(s.Env) {
			t.Errorf("setting %q is not an environment name", s.Env)
		}
		args = append(args, "-"+flagName(s.Env)+"="+s.Default)
	}
	if _, err := Load(args, noEnv, io.Discard); err != nil {
		t.Fatalf("setting every flag to its default: %v", err)
	}
	var usage strings.Builder
	if _, err := Load([]string{"-h"}, noEnv, &usage); err == nil {
		t.Fatal("-h: want an error (flag.ErrHelp)")
	}
	for _, s := range Settings() {
		if !strings.Contains(usage.String(), "-"+flagName(s.Env)) || !strings.Contains(usage.String(), "$"+s.Env) {
			t.Errorf("usage lacks -%s / $%s", flagName(s.Env), s.Env)
		}
	}
}

func TestLoadRejectsBadArguments(t *testing.T) {
	if _, err := Load([]string{"-no-such-flag=1"}, noEnv, io.Discard); err == nil {
		t.Error("an unknown flag was accepted")
	}
	if _, err := Load([]string{"extra"}, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Errorf("a positional argument: err = %v", err)
	}
}

func TestValidationErrorsNameTheSetting(t *testing.T) {
	secret := strings.Repeat("s", 32)
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string // the setting the error must name
	}{
		{"listen addr without port", map[string]string{"LISTEN_ADDR": "8080"}, nil, "LISTEN_ADDR"},
		{"public url without scheme", map[string]string{"PUBLIC_URL": "localhost:8080"}, nil, "PUBLIC_URL"},
		{"public url ftp", map[string]string{"PUBLIC_URL": "ftp://portal.example.com"}, nil, "PUBLIC_URL"},
		{"public url with query", map[string]string{"PUBLIC_URL": "https://portal.example.com/?x=1"}, nil, "PUBLIC_URL"},
		{"public url with user", map[string]string{"PUBLIC_URL": "https://me@portal.example.com"}, nil, "PUBLIC_URL"},
		{"ide template without session", map[string]string{"IDE_URL_TEMPLATE": "http://ide.localhost:8080"}, nil, "IDE_URL_TEMPLATE"},
		{"ide template with session twice", map[string]string{"IDE_URL_TEMPLATE": "http://{session}.{session}.localhost:8080"}, nil, "IDE_URL_TEMPLATE"},
		{"ide template with session in the path", map[string]string{"IDE_URL_TEMPLATE": "http://ide.localhost:8080/{session}"}, nil, "IDE_URL_TEMPLATE"},
		{"ide template matching the portal host", map[string]string{"PUBLIC_URL": "https://portal.example.com", "IDE_URL_TEMPLATE": "https://{session}.example.com"}, nil, "IDE_URL_TEMPLATE"},
		{"issuer not a url", map[string]string{"OIDC_ISSUER": "issuer"}, nil, "OIDC_ISSUER"},
		{"client id empty", nil, []string{"-oidc-client-id="}, "OIDC_CLIENT_ID"},
		{"scopes without openid", map[string]string{"OIDC_SCOPES": "profile email"}, nil, "OIDC_SCOPES"},
		{"no tenant claim and no default tenant", nil, []string{"-oidc-default-tenant="}, "OIDC_DEFAULT_TENANT"},
		{"no roles claim and no default roles", nil, []string{"-oidc-roles-claim="}, "OIDC_ROLES_CLAIM"},
		{"role map without =", map[string]string{"OIDC_ROLE_MAP": "admin"}, nil, "OIDC_ROLE_MAP"},
		{"role map to unknown role", map[string]string{"OIDC_ROLE_MAP": "staff=superuser"}, nil, "OIDC_ROLE_MAP"},
		{"role map with empty side", map[string]string{"OIDC_ROLE_MAP": "=admin"}, nil, "OIDC_ROLE_MAP"},
		{"unknown default role", map[string]string{"OIDC_DEFAULT_ROLES": "author,root"}, nil, "OIDC_DEFAULT_ROLES"},
		{"session max age not a duration", map[string]string{"SESSION_MAX_AGE": "eight hours"}, nil, "SESSION_MAX_AGE"},
		{"session max age too short", map[string]string{"SESSION_MAX_AGE": "30s"}, nil, "SESSION_MAX_AGE"},
		{"session max age too long", map[string]string{"SESSION_MAX_AGE": "800h"}, nil, "SESSION_MAX_AGE"},
		{"edit session ttl too short", map[string]string{"EDIT_SESSION_TTL": "1s"}, nil, "EDIT_SESSION_TTL"},
		{"idle timeout negative", map[string]string{"WORKSPACE_IDLE_TIMEOUT": "-5m"}, nil, "WORKSPACE_IDLE_TIMEOUT"},
		{"idle timeout without unit", map[string]string{"WORKSPACE_IDLE_TIMEOUT": "30"}, nil, "WORKSPACE_IDLE_TIMEOUT"},
		{"max concurrent spawns 0", map[string]string{"MAX_CONCURRENT_SPAWNS": "0"}, nil, "MAX_CONCURRENT_SPAWNS"},
		{"max concurrent spawns not a number", map[string]string{"MAX_CONCURRENT_SPAWNS": "many"}, nil, "MAX_CONCURRENT_SPAWNS"},
		{"playbook limit 0", map[string]string{"PLAYBOOK_LIMIT": "0"}, nil, "PLAYBOOK_LIMIT"},
		{"token budget negative", map[string]string{"LLM_DAILY_TOKEN_BUDGET": "-1"}, nil, "LLM_DAILY_TOKEN_BUDGET"},
		{"session secret too short", map[string]string{"SESSION_SECRET": "short"}, nil, "SESSION_SECRET"},
		{"session secret 31 bytes", map[string]string{"SESSION_SECRET": secret[:31]}, nil, "SESSION_SECRET"},
		{"redis url without session secret", map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0"}, nil, "SESSION_SECRET"},
		{"redis url with another scheme", map[string]string{"REDIS_URL": "http://127.0.0.1:6379", "SESSION_SECRET": secret}, nil, "REDIS_URL"},
		{"cookie cross site on http", map[string]string{"COOKIE_CROSS_SITE": "true"}, nil, "COOKIE_CROSS_SITE"},
		{"cookie cross site not a bool", map[string]string{"COOKIE_CROSS_SITE": "maybe"}, nil, "COOKIE_CROSS_SITE"},
		{"data dir empty", nil, []string{"-data-dir="}, "DATA_DIR"},
		{"unknown runtime", map[string]string{"WORKSPACE_RUNTIME": "k8s"}, nil, "WORKSPACE_RUNTIME"},
		{"unknown proxy engine", map[string]string{"IDE_PROXY_ENGINE": "nginx"}, nil, "IDE_PROXY_ENGINE"},
		{"empty proxy engine", nil, []string{"-ide-proxy-engine="}, "IDE_PROXY_ENGINE"},
		{"docker without image", map[string]string{"WORKSPACE_RUNTIME": "docker"}, []string{"-workspace-image="}, "WORKSPACE_IMAGE"},
		{"frame ancestor without scheme", map[string]string{"ALLOWED_FRAME_ANCESTORS": "portal.example.com"}, nil, "ALLOWED_FRAME_ANCESTORS"},
		{"frame ancestor with path", map[string]string{"ALLOWED_FRAME_ANCESTORS": "https://ok.example.com https://portal.example.com/app"}, nil, "ALLOWED_FRAME_ANCESTORS"},
		{"frame ancestor wildcard", map[string]string{"ALLOWED_FRAME_ANCESTORS": "*"}, nil, "ALLOWED_FRAME_ANCESTORS"},
		{"trusted proxy without mask", map[string]string{"TRUSTED_PROXIES": "10.0.0.1"}, nil, "TRUSTED_PROXIES"},
		{"trusted proxy mask too wide", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}, nil, "TRUSTED_PROXIES"},
		{"metrics allow a name", map[string]string{"METRICS_ALLOW": "localhost"}, nil, "METRICS_ALLOW"},
		{"llm base url without model", map[string]string{"LLM_BASE_URL": "https://llm.example.com/v1"}, nil, "LLM_MODEL"},
		{"llm base url not a url", map[string]string{"LLM_BASE_URL": "llm.example.com", "LLM_MODEL": "m"}, nil, "LLM_BASE_URL"},
		{"log level unknown", map[string]string{"LOG_LEVEL": "verbose"}, nil, "LOG_LEVEL"},
		{"log level from a flag", nil, []string{"-log-level=trace"}, "LOG_LEVEL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, envOf(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if c != nil {
				t.Errorf("a Config came back with the error")
			}
			lines := checkErrorLines(t, err)
			found := false
			for _, l := range lines {
				if strings.HasPrefix(l, tc.want+": ") {
					found = true
				}
			}
			if !found {
				t.Errorf("error does not name %s:\n%v", tc.want, err)
			}
			if len(lines) != 1 {
				t.Errorf("want exactly one problem, got %d:\n%v", len(lines), err)
			}
		})
	}
}

// checkErrorLines asserts that every line of a validation error starts
// with the name of a setting, and returns the lines.
func checkErrorLines(t *testing.T, err error) []string {
	t.Helper()
	known := map[string]bool{}
	for _, s := range Settings() {
		known[s.Env] = true
	}
	lines := strings.Split(err.Error(), "\n")
	for _, l := range lines {
		name, _, ok := strings.Cut(l, ": ")
		if !ok || !known[name] {
			t.Errorf("error line %q does not start with a setting's name", l)
		}
	}
	return lines
}

func TestSeveralErrorsAtOnce(t *testing.T) {
	_, err := Load([]string{"-max-concurrent-spawns=0"}, envOf(map[string]string{
		"PUBLIC_URL":      "portal",
		"LOG_LEVEL":       "loud",
		"TRUSTED_PROXIES": "10.0.0.0/8,nonsense,also-nonsense",
		"OIDC_SCOPES":     "email",
	}), io.Discard)
	if err == nil {
		t.Fatal("accepted")
	}
	lines := checkErrorLines(t, err)
	for _, want := range []string{"PUBLIC_URL", "LOG_LEVEL", "MAX_CONCURRENT_SPAWNS", "OIDC_SCOPES"} {
		if !strings.Contains(err.Error(), want+": ") {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "TRUSTED_PROXIES: "); n != 2 {
		t.Errorf("want both bad TRUSTED_PROXIES entries reported, got %d:\n%v", n, err)
	}
	if len(lines) != 6 {
		t.Errorf("want 6 problems, got %d:\n%v", len(lines), err)
	}
}

func TestValidValuesParse(t *testing.T) {
	secret := strings.Repeat("k", 32)
	c := mustLoad(t, nil, map[string]string{
		"PUBLIC_URL":              "HTTPS://Portal.Example.com/",
		"IDE_URL_TEMPLATE":        "https://ide-{session}.example.com",
		"COOKIE_CROSS_SITE":       "yes",
		"REDIS_URL":               "rediss://cache.example.com:6380/1",
		"SESSION_SECRET":          secret,
		"ALLOWED_FRAME_ANCESTORS": "https://outer.example.com, https://Other.example.com:8443/\thttp://localhost:3000",
		"OIDC_ROLE_MAP":           "Editors=author, Editors=automation,Ops=admin",
		"OIDC_DEFAULT_ROLES":      "author",
		"OIDC_TENANT_CLAIM":       "tid",
		"METRICS_ALLOW":           "10.0.0.0/8 fd00::/8",
		"LLM_BASE_URL":            "https://llm.example.com/v1",
		"LLM_MODEL":               "small",
		"WORKSPACE_RUNTIME":       "docker",
		"IDE_PROXY_ENGINE":        "Stdlib",
	})
	if c.IDEProxyEngine != "stdlib" {
		t.Errorf("IDEProxyEngine = %q", c.IDEProxyEngine)
	}
	if got := c.PublicURL.String(); got != "https://portal.example.com" {
		t.Errorf("PublicURL = %q", got)
	}
	if !c.CookieCrossSite || string(c.SessionSecret) != secret || c.RedisURL != "rediss://cache.example.com:6380/1" {
		t.Errorf("cookies/redis = %v %q %q", c.CookieCrossSite, c.SessionSecret, c.RedisURL)
	}
	want := []string{"https://outer.example.com", "https://other.example.com:8443", "http://localhost:3000"}
	if !slices.Equal(c.AllowedFrameAncestors, want) {
		t.Errorf("AllowedFrameAncestors = %q, want %q", c.AllowedFrameAncestors, want)
	}
	if !slices.Equal(c.OIDCRoleMap["Editors"], []string{"author", "automation"}) || !slices.Equal(c.OIDCRoleMap["Ops"], []string{"admin"}) {
		t.Errorf("OIDCRoleMap = %v", c.OIDCRoleMap)
	}
	if !slices.Equal(c.OIDCDefaultRoles, []string{"author"}) || c.OIDCTenantClaim != "tid" {
		t.Errorf("OIDCDefaultRoles = %v, OIDCTenantClaim = %q", c.OIDCDefaultRoles, c.OIDCTenantClaim)
	}
	if !inNets(c.MetricsAllow, "10.2.3.4") || !inNets(c.MetricsAllow, "fd00::1") || inNets(c.MetricsAllow, "127.0.0.1") {
		t.Errorf("MetricsAllow = %v", c.MetricsAllow)
	}
	if id, ok := c.IDEHost.Session("ide-abc.example.com"); !ok || id != "abc" {
		t.Errorf("IDEHost.Session = %q %v", id, ok)
	}
	// Empty default roles are fine when the roles claim is off.
	c = mustLoad(t, []string{"-oidc-roles-claim="}, map[string]string{"OIDC_DEFAULT_ROLES": "author automation"})
	if !slices.Equal(c.OIDCDefaultRoles, []string{"author", "automation"}) {
		t.Errorf("OIDCDefaultRoles = %v", c.OIDCDefaultRoles)
	}
	// Boundaries of the ranges are inclusive.
	c = mustLoad(t, nil, map[string]string{"SESSION_MAX_AGE": "1m", "EDIT_SESSION_TTL": "24h", "MAX_CONCURRENT_SPAWNS": "1", "LLM_DAILY_TOKEN_BUDGET": "0"})
	if c.SessionMaxAge != time.Minute || c.EditSessionTTL != 24*time.Hour || c.MaxConcurrentSpawns != 1 || c.LLMDailyTokenBudget != 0 {
		t.Errorf("boundaries = %v %v %d %d", c.SessionMaxAge, c.EditSessionTTL, c.MaxConcurrentSpawns, c.LLMDailyTokenBudget)
	}
}

func TestIsRole(t *testing.T) {
	for _, r := range []string{RoleAuthor, RoleAutomation, RoleAdmin} {
		if !IsRole(r) {
			t.Errorf("IsRole(%q) = false", r)
		}
	}
	for _, r := range []string{"", "Admin", "root", "author "} {
		if IsRole(r) {
			t.Errorf("IsRole(%q) = true", r)
		}
	}
}

// The README's configuration table must list every setting, so the
// documentation cannot fall behind the code.
func TestReadmeListsEverySetting(t *testing.T) {
	const path = "../../README.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("README.md must exist at the module root and document every setting in a table: %v", err)
	}
	row := regexp.MustCompile("(?m)^\\|\\s*`([A-Z][A-Z0-9_]*)`\\s*\\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		documented[m[1]] = true
	}
	var missing []string
	for _, s := range Settings() {
		if !documented[s.Env] {
			missing = append(missing, s.Env)
		}
	}
	if len(missing) > 0 {
		t.Errorf("README.md's configuration table lacks a row (| `NAME` | default | meaning |) for: %s", strings.Join(missing, ", "))
	}
}

func TestDefaultPortsAndPaths(t *testing.T) {
	c := mustLoad(t, nil, map[string]string{
		"PUBLIC_URL":       "https://Playbooks.Example.com:443/",
		"IDE_URL_TEMPLATE": "https://{session}.ide.example.com:443",
	})
	if c.PublicURL.Host != "playbooks.example.com" {
		t.Errorf("portal host %q: browsers send no :443", c.PublicURL.Host)
	}
	if !c.IDEHost.Matches("abc.ide.example.com") || c.IDEHost.URL("abc") != "https://abc.ide.example.com" {
		t.Errorf("IDE host with :443 does not match what browsers send: %q", c.IDEHost.URL("abc"))
	}
	if _, err := Load(nil, envOf(map[string]string{"PUBLIC_URL": "https://example.com/studio"}), io.Discard); err == nil || !strings.Contains(err.Error(), "PUBLIC_URL") {
		t.Errorf("a path in PUBLIC_URL: %v", err)
	}
}
