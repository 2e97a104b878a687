// Command devidp is a small OpenID Connect provider for local runs and tests
// of the gateway. It is built on github.com/zitadel/oidc/v3/pkg/op, keeps
// everything in memory and must never be used in production.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devidp:", err)
		os.Exit(1)
	}
}

type config struct {
	addr                   string
	issuer                 string
	usersPath              string // empty: embedded users.json
	clientID               string
	clientSecret           string
	redirectURIs           []string
	postLogoutRedirectURIs []string
	ccClients              []ccClient // client-credentials clients (DEVIDP_CC_CLIENTS)
}

// parseConfig reads flags, falling back to DEVIDP_* environment variables
// and then to defaults; a flag always wins over the environment.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var c config
	var redirects, postLogout, ccClients string
	fs := flag.NewFlagSet("devidp", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.addr, "addr", env("DEVIDP_ADDR", "127.0.0.1:8081"), "listen address (DEVIDP_ADDR)")
	fs.StringVar(&c.issuer, "issuer", env("DEVIDP_ISSUER", "http://localhost:8081"), "issuer URL (DEVIDP_ISSUER)")
	fs.StringVar(&c.usersPath, "users", env("DEVIDP_USERS", ""), "path to a JSON users file; default: embedded users.json (DEVIDP_USERS)")
	fs.StringVar(&c.clientID, "client-id", env("DEVIDP_CLIENT_ID", "playbook-studio"), "client ID (DEVIDP_CLIENT_ID)")
	fs.StringVar(&c.clientSecret, "client-secret", env("DEVIDP_CLIENT_SECRET", "dev-secret"), "client secret (DEVIDP_CLIENT_SECRET)")
	fs.StringVar(&redirects, "redirect-uris", env("DEVIDP_REDIRECT_URIS", "http://playbooks.localhost:8080/auth/callback"), "comma-separated redirect URIs (DEVIDP_REDIRECT_URIS)")
	fs.StringVar(&postLogout, "post-logout-redirect-uris", env("DEVIDP_POST_LOGOUT_REDIRECT_URIS", "http://playbooks.localhost:8080/"), "comma-separated post-logout redirect URIs (DEVIDP_POST_LOGOUT_REDIRECT_URIS)")
	fs.StringVar(&ccClients, "cc-clients", env("DEVIDP_CC_CLIENTS", ""), "comma-separated id:secret[:scope scope…] clients of the client-credentials grant (DEVIDP_CC_CLIENTS)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	cc, err := parseCCClients(ccClients)
	if err != nil {
		return config{}, fmt.Errorf("-cc-clients (DEVIDP_CC_CLIENTS): %w", err)
	}
	c.ccClients = cc
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c.redirectURIs = splitList(redirects)
	c.postLogoutRedirectURIs = splitList(postLogout)
	return c, c.validate()
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c config) validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.addr); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("-addr (DEVIDP_ADDR): %q is not a host:port address", c.addr))
	}
	if err := checkIssuer(c.issuer); err != nil {
		errs = append(errs, fmt.Errorf("-issuer (DEVIDP_ISSUER): %w", err))
	}
	if strings.TrimSpace(c.clientID) == "" {
		errs = append(errs, errors.New("-client-id (DEVIDP_CLIENT_ID): must not be empty"))
	}
	if c.clientSecret == "" {
		errs = append(errs, errors.New("-client-secret (DEVIDP_CLIENT_SECRET): must not be empty"))
	}
	if len(c.redirectURIs) == 0 {
		errs = append(errs, errors.New("-redirect-uris (DEVIDP_REDIRECT_URIS): at least one redirect URI is required"))
	}
	for _, u := range c.redirectURIs {
		if err := checkAbsoluteURL(u); err != nil {
			errs = append(errs, fmt.Errorf("-redirect-uris (DEVIDP_REDIRECT_URIS): %q: %w", u, err))
		}
	}
	for _, u := range c.postLogoutRedirectURIs {
		if err := checkAbsoluteURL(u); err != nil {
			errs = append(errs, fmt.Errorf("-post-logout-redirect-uris (DEVIDP_POST_LOGOUT_REDIRECT_URIS): %q: %w", u, err))
		}
	}
	for _, cc := range c.ccClients {
		if cc.id == c.clientID {
			errs = append(errs, fmt.Errorf("-cc-clients (DEVIDP_CC_CLIENTS): client %q is already the sign-in client (-client-id)", cc.id))
		}
	}
	return errors.Join(errs...)
}

func checkAbsoluteURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("scheme must be http or https")
	case u.Host == "":
		return errors.New("host is missing")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not contain a fragment")
	case u.User != nil:
		return errors.New("must not contain user info")
	}
	return nil
}

func checkIssuer(raw string) error {
	if err := checkAbsoluteURL(raw); err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	u, _ := url.Parse(raw)
	if u.Path != "" || u.RawQuery != "" || strings.HasSuffix(raw, "?") {
		return fmt.Errorf("%q: must be scheme://host[:port] without path, trailing slash or query", raw)
	}
	return nil
}

func loadUsers(path string) (*userStore, error) {
	if path == "" {
		return parseUsers(defaultUsersJSON, "-users (embedded users.json)")
	}
	source := fmt.Sprintf("-users (DEVIDP_USERS) %q", path)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return parseUsers(data, source)
}

// run starts the provider and blocks until ctx is cancelled or SIGINT/SIGTERM arrives.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	users, err := loadUsers(cfg.usersPath)
	if err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	handler, err := newHandler(cfg, users, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("-addr (DEVIDP_ADDR): %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("devidp listening", "addr", ln.Addr().String(), "issuer", cfg.issuer,
		"client_id", cfg.clientID, "redirect_uris", cfg.redirectURIs, "cc_clients", len(cfg.ccClients), "users", len(users.byUsername))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// newHandler wires the OpenID provider, the login UI and the small extras.
func newHandler(cfg config, users *userStore, log *slog.Logger) (http.Handler, error) {
	store, err := newStorage(users, &client{
		id:                     cfg.clientID,
		secret:                 cfg.clientSecret,
		redirectURIs:           cfg.redirectURIs,
		postLogoutRedirectURIs: cfg.postLogoutRedirectURIs,
	})
	if err != nil {
		return nil, err
	}
	for i := range cfg.ccClients {
		store.ccClients[cfg.ccClients[i].id] = &cfg.ccClients[i]
	}
	var cryptoKey [32]byte // encrypts codes and opaque access tokens
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, err
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                cryptoKey,
		DefaultLogoutRedirectURI: loggedOutPath,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedScopes:          []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail},
		SupportedClaims:          append(slices.Clone(op.DefaultSupportedClaims), claimRoles, claimTenant, claimGroups),
	}, store, op.StaticIssuer(cfg.issuer),
		op.WithAllowInsecure(), // the dev issuer is plain http on localhost
	)
	if err != nil {
		return nil, fmt.Errorf("create OpenID provider: %w", err)
	}

	login, err := newLoginHandler(store, users, op.AuthCallbackURL(provider),
		strings.HasPrefix(cfg.issuer, "https://"), loginCSP(cfg.redirectURIs), log)
	if err != nil {
		return nil, err
	}
	issuerCtx := op.NewIssuerInterceptor(provider.IssuerFromRequest)

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+loginPath, login.form)
	mux.Handle("POST "+loginPath, issuerCtx.HandlerFunc(login.submit))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET "+loggedOutPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Signed out of the Playbook Studio dev provider.\n")
	})
	mux.Handle("/", withAudience(provider.TokenEndpoint().Relative(), provider))
	return logRequests(log, mux), nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequests logs method, path and status only: queries and bodies carry
// codes, tokens, states and passwords.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		log.Info("http request", "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "duration_ms", time.Since(start).Milliseconds())
	})
}
