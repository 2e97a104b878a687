package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/kv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testClientID     = "portal"
	testClientSecret = "portal-client-secret-of-some-length"
	testSubject      = "user-1"
	testMaxAge       = 8 * time.Hour
)

// RSA keys take a while to generate under -race: one pair per test binary.
var (
	keysOnce         sync.Once
	opKey, otherKey  *rsa.PrivateKey
	errKeyGeneration error
)

func testKeys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		if opKey, errKeyGeneration = rsa.GenerateKey(rand.Reader, 2048); errKeyGeneration != nil {
			return
		}
		otherKey, errKeyGeneration = rsa.GenerateKey(rand.Reader, 2048)
	})
	if errKeyGeneration != nil {
		t.Fatal(errKeyGeneration)
	}
	return opKey, otherKey
}

// ---------------------------------------------------------------------------
// A small OpenID provider.

// grant is what the provider remembers of one authorization request.
type grant struct {
	redirectURI string
	challenge   string
	nonce       string
}

type testOP struct {
	t     *testing.T
	srv   *httptest.Server
	clock *fakeClock
	key   *rsa.PrivateKey
	kid   string

	redirectURI  string // what the authorize and token endpoints insist on
	noEndSession bool   // leave end_session_endpoint out of discovery
	down         atomic.Bool

	mu         sync.Mutex
	authReqs   []url.Values
	grants     map[string]grant
	tokenCalls int
	codes      []string // every code handed out
	verifiers  []string // every PKCE verifier received
	idTokens   []string // every ID token handed out

	// Behaviour a test case may set before signing in.
	authError   string                                    // the authorize endpoint refuses with this error
	tokenError  string                                    // the token endpoint refuses with this error
	noIDToken   bool                                      // the token response carries no id_token
	noAccessTok bool                                      // the token response carries no access_token
	claims      func(c map[string]any)                    // edits the ID token's claims
	signer      func(op *testOP, c map[string]any) string // signs them (default: RS256, the published key)
}

func newTestOP(t *testing.T, clock *fakeClock) *testOP {
	key, _ := testKeys(t)
	op := &testOP{t: t, clock: clock, key: key, kid: "op-key-1", grants: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("GET /jwks", op.jwks)
	mux.HandleFunc("GET /authorize", op.authorize)
	mux.HandleFunc("POST /token", op.token)
	op.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if op.down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(op.srv.Close)
	return op
}

func (op *testOP) issuer() string { return op.srv.URL }

func (op *testOP) discovery(w http.ResponseWriter, _ *http.Request) {
	doc := map[string]any{
		"issuer":                                op.issuer(),
		"authorization_endpoint":                op.issuer() + "/authorize",
		"token_endpoint":                        op.issuer() + "/token",
		"jwks_uri":                              op.issuer() + "/jwks",
		"end_session_endpoint":                  op.issuer() + "/logout?ui_locales=en",
		"code_challenge_methods_supported":      []string{"S256"},
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	}
	if op.noEndSession {
		delete(doc, "end_session_endpoint")
	}
	writeJSON(w, http.StatusOK, doc)
}

func (op *testOP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &op.key.PublicKey, KeyID: op.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

func (op *testOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	op.mu.Lock()
	op.authReqs = append(op.authReqs, q)
	op.mu.Unlock()
	for k, want := range map[string]string{
		"response_type":         "code",
		"client_id":             testClientID,
		"redirect_uri":          op.redirectURI,
		"code_challenge_method": "S256",
		"scope":                 "openid profile email",
	} {
		if got := q.Get(k); got != want {
			op.t.Errorf("authorize: %s = %q, want %q", k, got, want)
			http.Error(w, "bad "+k, http.StatusBadRequest)
			return
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if v := q.Get(k); len(v) < 43 {
			op.t.Errorf("authorize: %s = %q, want 43+ random characters", k, v)
			http.Error(w, "bad "+k, http.StatusBadRequest)
			return
		}
	}
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := url.Values{"state": {q.Get("state")}}
	if op.authError != "" {
		bq.Set("error", op.authError)
		// Providers echo request data in descriptions; it must not reach logs.
		bq.Set("error_description", "user said no to state "+q.Get("state"))
	} else {
		code := randomToken()
		op.mu.Lock()
		op.grants[code] = grant{redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), nonce: q.Get("nonce")}
		op.codes = append(op.codes, code)
		op.mu.Unlock()
		bq.Set("code", code)
	}
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (op *testOP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op.mu.Lock()
	op.tokenCalls++
	op.mu.Unlock()
	oauthErr := func(status int, code, desc string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != testClientID || secret != testClientSecret {
		oauthErr(http.StatusUnauthorized, "invalid_client", "who are you")
		return
	}
	code, verifier := r.PostForm.Get("code"), r.PostForm.Get("code_verifier")
	op.mu.Lock()
	g, known := op.grants[code]
	delete(op.grants, code) // codes are single-use
	op.verifiers = append(op.verifiers, verifier)
	op.mu.Unlock()
	if op.tokenError != "" {
		// A description echoing the request, as some providers do.
		oauthErr(http.StatusBadRequest, op.tokenError, "code "+code+" with verifier "+verifier+" is not valid")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" || !known {
		oauthErr(http.StatusBadRequest, "invalid_grant", "unknown or used code")
		return
	}
	if r.PostForm.Get("redirect_uri") != g.redirectURI {
		op.t.Errorf("token: redirect_uri %q, want %q", r.PostForm.Get("redirect_uri"), g.redirectURI)
		oauthErr(http.StatusBadRequest, "invalid_grant", "redirect_uri")
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	if verifier == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		op.t.Errorf("token: PKCE verifier %q does not match the challenge %q", verifier, g.challenge)
		oauthErr(http.StatusBadRequest, "invalid_grant", "PKCE")
		return
	}

	now := op.clock.Now()
	claims := map[string]any{
		"iss":                op.issuer(),
		"sub":                testSubject,
		"aud":                testClientID,
		"iat":                now.Unix(),
		"exp":                now.Add(5 * time.Minute).Unix(),
		"nonce":              g.nonce,
		"name":               "Ada Lovelace",
		"preferred_username": "ada",
		"email":              "ada@example.com",
		"roles":              []any{"SOC.Author", "SOC.Admin"},
	}
	if op.claims != nil {
		op.claims(claims)
	}
	sign := op.signer
	if sign == nil {
		sign = func(op *testOP, c map[string]any) string { return signRS256(op.t, op.key, op.kid, c) }
	}
	idToken := sign(op, claims)
	resp := map[string]any{"access_token": randomToken(), "token_type": "Bearer", "expires_in": 300, "id_token": idToken}
	if op.noIDToken {
		delete(resp, "id_token")
	}
	if op.noAccessTok {
		delete(resp, "access_token")
	}
	op.mu.Lock()
	op.idTokens = append(op.idTokens, idToken)
	op.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

func (op *testOP) lastAuthRequest(t *testing.T) url.Values {
	t.Helper()
	op.mu.Lock()
	defer op.mu.Unlock()
	if len(op.authReqs) == 0 {
		t.Fatal("the provider saw no authorization request")
	}
	return op.authReqs[len(op.authReqs)-1]
}

func (op *testOP) lastIDToken(t *testing.T) string {
	t.Helper()
	op.mu.Lock()
	defer op.mu.Unlock()
	if len(op.idTokens) == 0 {
		t.Fatal("the provider issued no ID token")
	}
	return op.idTokens[len(op.idTokens)-1]
}

func (op *testOP) tokenCallCount() int {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.tokenCalls
}

// secrets lists every value that must never reach a log line.
func (op *testOP) secrets() []string {
	op.mu.Lock()
	defer op.mu.Unlock()
	var out []string
	for _, q := range op.authReqs {
		out = append(out, q.Get("state"), q.Get("nonce"), q.Get("code_challenge"))
	}
	out = append(out, op.codes...)
	out = append(out, op.verifiers...)
	out = append(out, op.idTokens...)
	return out
}

func signRS256(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Error(err)
		return ""
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Error(err)
		return ""
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Error(err)
	}
	return out
}

// unsignedJWT builds a token by hand, with any header and signature.
func unsignedJWT(header, claims map[string]any, sign func(signingInput string) string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + sign(in)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ---------------------------------------------------------------------------
// The gateway side: an Echo instance serving Auth's handlers.

type envOptions struct {
	tls       bool
	host      string // the public host name (default: the listener's loopback address)
	crossSite bool
	mapping   *ClaimMapping
	store     kv.Store
	issuer    string // default: the test provider
	configure func(op *testOP)
}

type signInEvent struct {
	reason string
	id     *Identity
}

type env struct {
	t      *testing.T
	op     *testOP
	clock  *fakeClock
	store  kv.Store
	a      *Auth
	gw     *httptest.Server
	public *url.URL
	jar    *cookiejar.Jar
	client *http.Client
	logs   *syncBuffer

	mu      sync.Mutex
	causes  []string
	signIns []signInEvent
}

// syncBuffer is a bytes.Buffer the server goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func defaultMapping() ClaimMapping {
	return ClaimMapping{
		DefaultTenant: "acme",
		RolesClaim:    "roles",
		RoleMap:       map[string][]string{"SOC.Author": {"author"}, "SOC.Admin": {"admin"}, "SOC.Bot": {"automation"}},
	}
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, clock: newFakeClock(), logs: &syncBuffer{}}
	e.op = newTestOP(t, e.clock)
	if o.configure != nil {
		o.configure(e.op)
	}
	e.store = o.store
	if e.store == nil {
		e.store = kv.NewMemory(nil)
	}
	mapping := defaultMapping()
	if o.mapping != nil {
		mapping = *o.mapping
	}
	issuer := o.issuer
	if issuer == "" {
		issuer = e.op.issuer()
	}

	e.gw = httptest.NewUnstartedServer(nil)
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	e.public = &url.URL{Scheme: scheme, Host: e.gw.Listener.Addr().String()}
	if o.host != "" {
		_, port, _ := net.SplitHostPort(e.gw.Listener.Addr().String())
		e.public.Host = net.JoinHostPort(o.host, port)
	}
	e.op.redirectURI = e.public.String() + "/auth/callback"

	providerTransport := &http.Transport{}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(Options{
		Issuer:        issuer,
		ClientID:      testClientID,
		ClientSecret:  testClientSecret,
		Scopes:        []string{"openid", "profile", "email"},
		PublicURL:     e.public,
		Mapping:       mapping,
		SessionMaxAge: testMaxAge,
		CrossSite:     o.crossSite,
		Secret:        testSecret,
		HTTPClient:    &http.Client{Timeout: 5 * time.Second, Transport: providerTransport},
		Now:           e.clock.Now,
		OnSignIn: func(_ context.Context, id *Identity, reason string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			var cp *Identity
			if id != nil {
				c := *id
				cp = &c
			}
			e.signIns = append(e.signIns, signInEvent{reason: reason, id: cp})
		},
	}, e.store, log)
	if err != nil {
		t.Fatal(err)
	}
	e.a = a

	ech := echo.New()
	ech.HideBanner, ech.HidePort = true, true
	ech.HTTPErrorHandler = func(err error, c echo.Context) {
		var he *echo.HTTPError
		if !errors.As(err, &he) {
			he = apierror.Wrap(http.StatusInternalServerError, "internal", "Something went wrong.", err)
		}
		body := apierror.FromHTTPError(he)
		attrs := []any{"status", he.Code, "code", body.Code}
		if he.Internal != nil {
			e.mu.Lock()
			e.causes = append(e.causes, he.Internal.Error())
			e.mu.Unlock()
			attrs = append(attrs, "err", he.Internal.Error())
		}
		log.InfoContext(c.Request().Context(), "request refused", attrs...)
		_ = c.JSON(he.Code, map[string]any{"error": map[string]string{"code": body.Code, "message": body.Message}})
	}
	ech.GET("/auth/login", a.Login)
	ech.GET("/auth/callback", a.Callback)
	ech.POST("/auth/logout", a.Logout)
	ech.GET("/me", func(c echo.Context) error {
		s, err := a.SessionFrom(c.Request())
		if errors.Is(err, ErrNoSession) {
			return apierror.New(http.StatusUnauthorized, "unauthenticated", "Sign in first.")
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, s.Identity)
	})
	e.gw.Config.Handler = ech
	if o.tls {
		e.gw.StartTLS()
	} else {
		e.gw.Start()
	}
	t.Cleanup(e.gw.Close)

	clientTransport := &http.Transport{}
	if o.host != "" {
		// The public name resolves nowhere: its requests go to the
		// gateway's loopback listener, the provider's to the provider.
		addr := e.gw.Listener.Addr().String()
		clientTransport.DialContext = func(ctx context.Context, network, to string) (net.Conn, error) {
			if to == e.public.Host {
				to = addr
			}
			return (&net.Dialer{}).DialContext(ctx, network, to)
		}
	}
	if o.tls {
		clientTransport.TLSClientConfig = e.gw.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	}
	e.jar, _ = cookiejar.New(nil)
	e.client = e.newClient(clientTransport, e.jar)
	t.Cleanup(func() {
		clientTransport.CloseIdleConnections()
		providerTransport.CloseIdleConnections()
	})
	return e
}

func (e *env) newClient(tr http.RoundTripper, jar http.CookieJar) *http.Client {
	return &http.Client{
		Transport: tr,
		Jar:       jar,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type result struct {
	status  int
	header  http.Header
	cookies []*http.Cookie
	body    []byte
}

func (r *result) location(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil || r.header.Get("Location") == "" {
		t.Fatalf("status %d, Location %q: %v (body %s)", r.status, r.header.Get("Location"), err, r.body)
	}
	return u
}

func (r *result) cookie(name string) *http.Cookie {
	for _, c := range r.cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (r *result) cookieWithPrefix(prefix string) *http.Cookie {
	for _, c := range r.cookies {
		if strings.HasPrefix(strings.TrimPrefix(c.Name, "__Host-"), prefix) {
			return c
		}
	}
	return nil
}

func (e *env) do(c *http.Client, method, rawURL string) *result {
	e.t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &result{status: resp.StatusCode, header: resp.Header, cookies: resp.Cookies(), body: body}
}

func (e *env) get(rawURL string) *result { e.t.Helper(); return e.do(e.client, http.MethodGet, rawURL) }

func (e *env) gwURL(pathAndQuery string) string { return e.public.String() + pathAndQuery }

// startLogin calls /auth/login and returns its answer, which must send the
// browser to the provider's authorize endpoint.
func (e *env) startLogin(returnTo string) *result {
	e.t.Helper()
	u := e.gwURL("/auth/login")
	if returnTo != "" {
		u += "?return_to=" + url.QueryEscape(returnTo)
	}
	res := e.get(u)
	if res.status != http.StatusFound {
		e.t.Fatalf("login: status %d, body %s", res.status, res.body)
	}
	if loc := res.location(e.t); loc.Host != e.op.srv.Listener.Addr().String() || loc.Path != "/authorize" {
		e.t.Fatalf("login sent the browser to %s, not the provider", loc)
	}
	return res
}

// authorize plays the browser at the provider: it returns the callback URL
// the provider sends the browser back to.
func (e *env) authorize(login *result) string {
	e.t.Helper()
	res := e.get(login.location(e.t).String())
	if res.status != http.StatusFound {
		e.t.Fatalf("authorize: status %d, body %s", res.status, res.body)
	}
	cb := res.location(e.t)
	if !strings.HasPrefix(cb.String(), e.gwURL("/auth/callback?")) {
		e.t.Fatalf("the provider sent the browser to %s", cb)
	}
	return cb.String()
}

// callbackURL runs login and authorize and returns the callback URL, not yet visited.
func (e *env) callbackURL(returnTo string) string {
	e.t.Helper()
	return e.authorize(e.startLogin(returnTo))
}

// signIn runs the whole flow and returns the callback's answer.
func (e *env) signIn(returnTo string) *result {
	e.t.Helper()
	return e.get(e.callbackURL(returnTo))
}

func (e *env) mustSignIn(returnTo string) *result {
	e.t.Helper()
	res := e.signIn(returnTo)
	if res.status != http.StatusFound {
		e.t.Fatalf("sign-in: status %d, body %s, causes %q", res.status, res.body, e.causeList())
	}
	return res
}

func (e *env) causeList() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.causes)
}

func (e *env) lastSignIn() signInEvent {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.signIns) == 0 {
		e.t.Fatal("OnSignIn was never called")
	}
	return e.signIns[len(e.signIns)-1]
}

func (e *env) signInCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.signIns)
}

// jarCookie returns the cookie the browser would send to path, or nil.
func (e *env) jarCookie(path, name string) *http.Cookie {
	u, _ := url.Parse(e.gwURL(path))
	for _, c := range e.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (e *env) jarCookieWithPrefix(path, prefix string) *http.Cookie {
	u, _ := url.Parse(e.gwURL(path))
	for _, c := range e.jar.Cookies(u) {
		if strings.HasPrefix(strings.TrimPrefix(c.Name, "__Host-"), prefix) {
			return c
		}
	}
	return nil
}

func (e *env) setJarCookie(path string, c *http.Cookie) {
	u, _ := url.Parse(e.gwURL(path))
	e.jar.SetCookies(u, []*http.Cookie{c})
}

// sessionRequest is a request carrying the given session cookie value.
func (e *env) sessionRequest(value string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, e.gwURL("/me"), nil)
	r.AddCookie(&http.Cookie{Name: e.a.SessionCookieName(), Value: value})
	return r
}

func wantAPIError(t *testing.T, res *result, status int, code string) {
	t.Helper()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(res.body, &body); err != nil {
		t.Fatalf("status %d, body %q is not an API error: %v", res.status, res.body, err)
	}
	if res.status != status || body.Error.Code != code {
		t.Fatalf("got %d %s (%q), want %d %s", res.status, body.Error.Code, body.Error.Message, status, code)
	}
	if body.Error.Message == "" {
		t.Fatal("the error has no message")
	}
}

// wantNoSession checks that neither the answer nor the browser holds a session.
func (e *env) wantNoSession(res *result) {
	e.t.Helper()
	if c := res.cookie(e.a.SessionCookieName()); c != nil && c.Value != "" && c.MaxAge >= 0 {
		e.t.Fatalf("a session cookie was set: %v", c)
	}
	if c := e.jarCookie("/", e.a.SessionCookieName()); c != nil {
		e.t.Fatalf("the browser holds a session cookie: %v", c)
	}
	if res := e.get(e.gwURL("/me")); res.status != http.StatusUnauthorized {
		e.t.Fatalf("/me: status %d, want 401", res.status)
	}
}

// ---------------------------------------------------------------------------
// Tests.

func TestNewValidatesOptions(t *testing.T) {
	pub, _ := url.Parse("https://portal.example")
	httpPub, _ := url.Parse("http://localhost:8080")
	valid := func() Options {
		return Options{Issuer: "http://127.0.0.1:1/never-contacted", ClientID: "c", PublicURL: pub, SessionMaxAge: time.Hour, Secret: testSecret}
	}
	store, log := kv.NewMemory(nil), slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name   string
		edit   func(o *Options)
		store  kv.Store
		log    *slog.Logger
		wantOK bool
	}{
		{name: "valid", edit: func(*Options) {}, wantOK: true},
		{name: "valid cross-site", edit: func(o *Options) { o.CrossSite = true }, wantOK: true},
		{name: "no issuer", edit: func(o *Options) { o.Issuer = "" }},
		{name: "no client id", edit: func(o *Options) { o.ClientID = "" }},
		{name: "no public URL", edit: func(o *Options) { o.PublicURL = nil }},
		{name: "public URL without host", edit: func(o *Options) { o.PublicURL = &url.URL{Path: "/x"} }},
		{name: "zero max age", edit: func(o *Options) { o.SessionMaxAge = 0 }},
		{name: "negative max age", edit: func(o *Options) { o.SessionMaxAge = -time.Hour }},
		{name: "cross-site on http", edit: func(o *Options) { o.CrossSite = true; o.PublicURL = httpPub }},
		{name: "no secret", edit: func(o *Options) { o.Secret = nil }},
		{name: "short secret", edit: func(o *Options) { o.Secret = testSecret[:31] }},
		{name: "no store", edit: func(*Options) {}, store: nil, log: log},
		{name: "no logger", edit: func(*Options) {}, store: store, log: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.edit(&o)
			s, l := tc.store, tc.log
			if s == nil && l == nil {
				s, l = store, log
			}
			a, err := New(o, s, l)
			if tc.wantOK != (err == nil) || tc.wantOK != (a != nil) {
				t.Fatalf("New = %v, %v; want ok=%v", a, err, tc.wantOK)
			}
		})
	}
}

func TestSignInHappyPath(t *testing.T) {
	e := newEnv(t, envOptions{})

	login := e.startLogin("/playbooks?x=1")
	if cc := login.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("login Cache-Control %q, want no-store", cc)
	}
	loginCookie := login.cookieWithPrefix(loginCookiePrefix)
	if loginCookie == nil {
		t.Fatalf("login set no sign-in cookie: %v", login.cookies)
	}
	// On a loopback host the browser honours __Host- (and Secure) over
	// plain http.
	if !loginCookie.HttpOnly || loginCookie.Path != "/" || loginCookie.SameSite != http.SameSiteLaxMode ||
		loginCookie.MaxAge != int(loginTTL/time.Second) || !loginCookie.Secure || loginCookie.Domain != "" ||
		!strings.HasPrefix(loginCookie.Name, "__Host-") {
		t.Errorf("sign-in cookie attributes: %+v", loginCookie)
	}

	cb := e.authorize(login)
	q := e.op.lastAuthRequest(t)
	if want := e.gwURL("/auth/callback"); q.Get("redirect_uri") != want {
		t.Errorf("redirect_uri %q, want %q", q.Get("redirect_uri"), want)
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" {
		t.Errorf("authorize request lacks PKCE, state or nonce: %v", q)
	}
	if q.Get("state") == q.Get("nonce") {
		t.Error("state and nonce are the same value")
	}
	if loginCookie.Name != e.a.loginCookieName(q.Get("state")) {
		t.Errorf("sign-in cookie %q is not named after the state", loginCookie.Name)
	}
	for _, secret := range []string{q.Get("state"), q.Get("nonce")} {
		if strings.Contains(loginCookie.Value, secret) {
			t.Error("the sign-in cookie shows the state or nonce in clear")
		}
	}

	res := e.get(cb)
	if res.status != http.StatusFound {
		t.Fatalf("callback: %d %s (causes %q)", res.status, res.body, e.causeList())
	}
	if got := res.header.Get("Location"); got != "/playbooks?x=1" {
		t.Errorf("callback redirects to %q, want the return_to", got)
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("callback Cache-Control %q, want no-store", cc)
	}
	if n := e.op.tokenCallCount(); n != 1 {
		t.Errorf("token endpoint called %d times, want 1", n)
	}

	sc := res.cookie(e.a.SessionCookieName())
	if sc == nil || sc.Value == "" {
		t.Fatalf("no session cookie: %v", res.cookies)
	}
	if !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || !sc.Secure || sc.Partitioned ||
		sc.Domain != "" || sc.MaxAge != int(testMaxAge/time.Second) {
		t.Errorf("session cookie attributes: %+v", sc)
	}
	if cleared := res.cookie(loginCookie.Name); cleared == nil || cleared.MaxAge >= 0 || cleared.Value != "" || cleared.Path != "/" {
		t.Errorf("the sign-in cookie was not cleared: %+v", cleared)
	}
	if c := e.jarCookieWithPrefix("/auth/callback", loginCookiePrefix); c != nil {
		t.Errorf("the browser still holds the sign-in cookie %v", c)
	}

	wantID := Identity{ID: testSubject, Email: "ada@example.com", Name: "Ada Lovelace", Tenant: "acme", Roles: []string{"author", "admin"}}
	s, err := e.a.SessionFrom(e.sessionRequest(sc.Value))
	if err != nil {
		t.Fatalf("SessionFrom: %v", err)
	}
	if !reflect.DeepEqual(s.Identity, wantID) {
		t.Errorf("session identity %+v, want %+v", s.Identity, wantID)
	}
	if s.IDToken != e.op.lastIDToken(t) {
		t.Error("the session does not keep the ID token for the logout hint")
	}
	if len(s.CSRFToken) < 43 || s.CSRFToken == sc.Value {
		t.Errorf("CSRF token %q", s.CSRFToken)
	}
	if !s.CreatedAt.Equal(e.clock.Now()) || !s.ExpiresAt.Equal(e.clock.Now().Add(testMaxAge)) {
		t.Errorf("session times %v … %v", s.CreatedAt, s.ExpiresAt)
	}

	me := e.get(e.gwURL("/me"))
	if me.status != http.StatusOK || !bytes.Contains(me.body, []byte(`"id":"user-1"`)) {
		t.Errorf("/me with the browser's cookie: %d %s", me.status, me.body)
	}

	ev := e.lastSignIn()
	if ev.reason != "ok" || ev.id == nil || !reflect.DeepEqual(*ev.id, wantID) {
		t.Errorf("OnSignIn(%v, %q), want the identity and ok", ev.id, ev.reason)
	}
	if n := e.signInCount(); n != 1 {
		t.Errorf("OnSignIn called %d times", n)
	}

	// The session expires with the fake clock.
	e.clock.Advance(testMaxAge)
	if _, err := e.a.SessionFrom(e.sessionRequest(sc.Value)); !errors.Is(err, ErrNoSession) {
		t.Errorf("SessionFrom after max age: %v, want ErrNoSession", err)
	}
}

func TestSignInDefaultReturnTo(t *testing.T) {
	e := newEnv(t, envOptions{})
	if got := e.mustSignIn("").header.Get("Location"); got != "/" {
		t.Fatalf("without return_to the callback redirects to %q, want /", got)
	}
}

func TestSignInReturnToOpenRedirect(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct{ returnTo, want string }{
		{"/playbooks", "/playbooks"},
		{"/a/b#frag", "/a/b#frag"},
		{"//evil.example", "/"},
		{`/\evil.example`, "/"},
		{`\\evil.example`, "/"},
		{"https://evil.example", "/"},
		{"http:evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"/%2F%2Fevil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/%252F%252Fevil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\r\nLocation: https://evil.example", "/"},
		{e.gwURL("/playbooks"), "/"}, // even our own absolute URL: paths only
	} {
		t.Run(tc.returnTo, func(t *testing.T) {
			if got := e.mustSignIn(tc.returnTo).header.Get("Location"); got != tc.want {
				t.Fatalf("return_to %q: callback redirects to %q, want %q", tc.returnTo, got, tc.want)
			}
		})
	}
}

func TestSignInTwoTabs(t *testing.T) {
	e := newEnv(t, envOptions{})
	cbA := e.callbackURL("/a")
	cbB := e.callbackURL("/b")
	if got := e.get(cbB).header.Get("Location"); got != "/b" {
		t.Fatalf("second tab: redirect %q", got)
	}
	if got := e.get(cbA).header.Get("Location"); got != "/a" {
		t.Fatalf("first tab: redirect %q (causes %q)", got, e.causeList())
	}
}

// failingStore refuses every write and read.
type failingStore struct{ kv.Store }

var errStoreDown = errors.New("store down")

func (failingStore) Set(context.Context, string, []byte, time.Duration) error { return errStoreDown }
func (failingStore) Get(context.Context, string) ([]byte, error)              { return nil, errStoreDown }

func TestCallbackRefusals(t *testing.T) {
	tenantMapping := defaultMapping()
	tenantMapping.TenantClaim = "tid"

	for _, tc := range []struct {
		name   string
		opts   envOptions
		setup  func(e *env)         // before the flow
		run    func(e *env) *result // default: e.signIn("/playbooks")
		status int
		code   string
		reason string
	}{
		{
			name: "state replaced by another",
			run: func(e *env) *result {
				u, _ := url.Parse(e.callbackURL("/"))
				q := u.Query()
				q.Set("state", randomToken())
				u.RawQuery = q.Encode()
				return e.get(u.String())
			},
			status: 400, code: "sign_in_expired", reason: "no_flow_cookie",
		},
		{
			name: "sealed flow holding another state",
			run: func(e *env) *result {
				cb := e.callbackURL("/")
				u, _ := url.Parse(cb)
				state := u.Query().Get("state")
				// Someone holding the key seals a flow for another state
				// under this state's cookie name.
				s := newTestSealer(e.t, testSecret, e.clock.Now)
				raw, _ := json.Marshal(flow{State: randomToken(), Nonce: "n", Verifier: "v", ReturnTo: "/"})
				name := e.a.loginCookieName(state)
				e.setJarCookie("/auth/callback", &http.Cookie{Name: name, Value: mustSeal(e.t, s, name, raw, time.Minute), Path: "/auth/callback"})
				return e.get(cb)
			},
			status: 400, code: "state_mismatch", reason: "state_mismatch",
		},
		{
			name: "another sign-in's cookie moved under this state's name",
			run: func(e *env) *result {
				other := e.startLogin("/").cookieWithPrefix(loginCookiePrefix)
				cb := e.callbackURL("/")
				u, _ := url.Parse(cb)
				name := e.a.loginCookieName(u.Query().Get("state"))
				e.setJarCookie("/auth/callback", &http.Cookie{Name: name, Value: other.Value, Path: "/auth/callback"})
				return e.get(cb)
			},
			status: 400, code: "sign_in_expired", reason: "bad_flow_cookie",
		},
		{
			name: "missing state",
			run: func(e *env) *result {
				u, _ := url.Parse(e.callbackURL("/"))
				q := u.Query()
				q.Del("state")
				u.RawQuery = q.Encode()
				return e.get(u.String())
			},
			status: 400, code: "bad_request", reason: "missing_state",
		},
		{
			name: "over-long state",
			run: func(e *env) *result {
				return e.get(e.gwURL("/auth/callback?code=x&state=" + strings.Repeat("s", 513)))
			},
			status: 400, code: "bad_request", reason: "missing_state",
		},
		{
			name: "missing code",
			run: func(e *env) *result {
				u, _ := url.Parse(e.callbackURL("/"))
				q := u.Query()
				q.Del("code")
				u.RawQuery = q.Encode()
				return e.get(u.String())
			},
			status: 400, code: "bad_request", reason: "missing_code",
		},
		{
			name: "forged callback without the sign-in cookie",
			run: func(e *env) *result {
				cb := e.callbackURL("/")
				// Another browser (the victim's) follows the attacker's callback link.
				jar, _ := cookiejar.New(nil)
				other := e.newClient(e.client.Transport, jar)
				res := e.do(other, http.MethodGet, cb)
				if c := res.cookie(e.a.SessionCookieName()); c != nil && c.Value != "" {
					e.t.Fatalf("the forged callback set a session cookie")
				}
				return res
			},
			status: 400, code: "sign_in_expired", reason: "no_flow_cookie",
		},
		{
			name: "tampered sign-in cookie",
			run: func(e *env) *result {
				cb := e.callbackURL("/")
				c := e.jarCookieWithPrefix("/auth/callback", loginCookiePrefix)
				v := []byte(c.Value)
				v[len(v)/2] ^= 'A' ^ 'B'
				if v[len(v)/2] == c.Value[len(v)/2] {
					v[len(v)/2] = 'x'
				}
				e.setJarCookie("/auth/callback", &http.Cookie{Name: c.Name, Value: string(v), Path: "/auth/callback"})
				return e.get(cb)
			},
			status: 400, code: "sign_in_expired", reason: "bad_flow_cookie",
		},
		{
			name: "sign-in cookie is not a sealed value",
			run: func(e *env) *result {
				cb := e.callbackURL("/")
				c := e.jarCookieWithPrefix("/auth/callback", loginCookiePrefix)
				e.setJarCookie("/auth/callback", &http.Cookie{Name: c.Name, Value: "garbage", Path: "/auth/callback"})
				return e.get(cb)
			},
			status: 400, code: "sign_in_expired", reason: "bad_flow_cookie",
		},
		{
			name: "replayed callback",
			run: func(e *env) *result {
				cb := e.callbackURL("/")
				if first := e.get(cb); first.status != http.StatusFound {
					e.t.Fatalf("first callback: %d %s", first.status, first.body)
				}
				// Sign out locally so a leftover session does not hide the result.
				e.jar.SetCookies(e.public, []*http.Cookie{{Name: e.a.SessionCookieName(), Value: "", Path: "/", MaxAge: -1}})
				res := e.get(cb)
				if n := e.op.tokenCallCount(); n != 1 {
					e.t.Errorf("the replay reached the token endpoint (%d calls)", n)
				}
				return res
			},
			status: 400, code: "sign_in_expired", reason: "no_flow_cookie",
		},
		{
			name: "replayed callback with a kept sign-in cookie",
			run: func(e *env) *result {
				cb := e.callbackURL("/")
				kept := *e.jarCookieWithPrefix("/auth/callback", loginCookiePrefix)
				if first := e.get(cb); first.status != http.StatusFound {
					e.t.Fatalf("first callback: %d %s", first.status, first.body)
				}
				e.jar.SetCookies(e.public, []*http.Cookie{{Name: e.a.SessionCookieName(), Value: "", Path: "/", MaxAge: -1}})
				kept.Path = "/auth/callback"
				e.setJarCookie("/auth/callback", &kept)
				// The provider's codes are single-use: the exchange fails.
				return e.get(cb)
			},
			status: 401, code: "sign_in_failed", reason: "code_exchange",
		},
		{
			name: "expired sign-in cookie",
			run: func(e *env) *result {
				cb := e.callbackURL("/")
				e.clock.Advance(loginTTL + time.Second)
				return e.get(cb)
			},
			status: 400, code: "sign_in_expired", reason: "bad_flow_cookie",
		},
		{
			name:   "provider refuses: access_denied",
			setup:  func(e *env) { e.op.authError = "access_denied" },
			status: 401, code: "sign_in_refused", reason: "provider_error",
		},
		{
			name:   "provider error with markup",
			setup:  func(e *env) { e.op.authError = "<script>alert(1)</script>" },
			status: 401, code: "sign_in_refused", reason: "provider_error",
		},
		{
			name: "ID token for another audience",
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) { c["aud"] = "another-client" }
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "ID token for several audiences without ours",
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) { c["aud"] = []string{"a", "b"} }
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "expired ID token",
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) {
					now := e.clock.Now()
					c["iat"] = now.Add(-time.Hour).Unix()
					c["exp"] = now.Add(-time.Minute).Unix()
				}
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "ID token from another issuer",
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) { c["iss"] = "https://evil.example" }
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "ID token with another nonce",
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) { c["nonce"] = randomToken() }
			},
			status: 401, code: "sign_in_failed", reason: "nonce_mismatch",
		},
		{
			name: "ID token without nonce",
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) { delete(c, "nonce") }
			},
			status: 401, code: "sign_in_failed", reason: "nonce_mismatch",
		},
		{
			name: "ID token signed by another key under the provider's key id",
			setup: func(e *env) {
				_, other := testKeys(e.t)
				e.op.signer = func(op *testOP, c map[string]any) string { return signRS256(op.t, other, op.kid, c) }
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "ID token signed by an unknown key",
			setup: func(e *env) {
				_, other := testKeys(e.t)
				e.op.signer = func(op *testOP, c map[string]any) string { return signRS256(op.t, other, "attacker-key", c) }
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "unsigned ID token (alg none)",
			setup: func(e *env) {
				e.op.signer = func(op *testOP, c map[string]any) string {
					return unsignedJWT(map[string]any{"alg": "none", "typ": "JWT"}, c, func(string) string { return "" })
				}
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "ID token HMAC-signed with the client secret (alg confusion)",
			setup: func(e *env) {
				e.op.signer = func(op *testOP, c map[string]any) string {
					return unsignedJWT(map[string]any{"alg": "HS256", "typ": "JWT", "kid": op.kid}, c, func(in string) string {
						m := hmac.New(sha256.New, []byte(testClientSecret))
						m.Write([]byte(in))
						return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
					})
				}
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "ID token with a stripped signature",
			setup: func(e *env) {
				e.op.signer = func(op *testOP, c map[string]any) string {
					s := signRS256(op.t, op.key, op.kid, c)
					return s[:strings.LastIndexByte(s, '.')+1]
				}
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name: "ID token that is not a JWT",
			setup: func(e *env) {
				e.op.signer = func(*testOP, map[string]any) string { return "not-a-jwt" }
			},
			status: 401, code: "sign_in_failed", reason: "id_token_invalid",
		},
		{
			name:   "token response without id_token",
			setup:  func(e *env) { e.op.noIDToken = true },
			status: 401, code: "sign_in_failed", reason: "no_id_token",
		},
		{
			name:   "token response without access_token",
			setup:  func(e *env) { e.op.noAccessTok = true },
			status: 401, code: "sign_in_failed", reason: "code_exchange",
		},
		{
			name:   "code exchange refused: invalid_grant",
			setup:  func(e *env) { e.op.tokenError = "invalid_grant" },
			status: 401, code: "sign_in_failed", reason: "code_exchange",
		},
		{
			name: "provider down at code exchange",
			run: func(e *env) *result {
				cb := e.callbackURL("/")
				e.op.down.Store(true)
				return e.get(cb)
			},
			status: 401, code: "sign_in_failed", reason: "code_exchange",
		},
		{
			name: "ID token without sub",
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) { delete(c, "sub") }
			},
			status: 401, code: "sign_in_failed", reason: "claims",
		},
		{
			name: "no roles",
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) { c["roles"] = []string{"SOC.Visitor"} }
			},
			status: 403, code: "no_roles", reason: "claims",
		},
		{
			name: "invalid tenant",
			opts: envOptions{mapping: &tenantMapping},
			setup: func(e *env) {
				e.op.claims = func(c map[string]any) { c["tid"] = "../../etc" }
			},
			status: 401, code: "sign_in_failed", reason: "claims",
		},
		{
			name:   "session store down",
			opts:   envOptions{store: failingStore{kv.NewMemory(nil)}},
			status: 503, code: "unavailable", reason: "session_store",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			if tc.setup != nil {
				tc.setup(e)
			}
			run := tc.run
			if run == nil {
				run = func(e *env) *result { return e.signIn("/playbooks") }
			}
			res := run(e)
			wantAPIError(t, res, tc.status, tc.code)
			if loc := res.header.Get("Location"); loc != "" {
				t.Errorf("a refusal redirects to %q", loc)
			}
			if bytes.Contains(res.body, []byte("<")) {
				t.Errorf("the message carries markup: %s", res.body)
			}
			ev := e.lastSignIn()
			if ev.reason != tc.reason || ev.id != nil {
				t.Errorf("OnSignIn(%v, %q), want (nil, %q)", ev.id, ev.reason, tc.reason)
			}
			e.op.down.Store(false)
			e.wantNoSession(res)
		})
	}
}

func TestProviderDown(t *testing.T) {
	t.Run("answers 503", func(t *testing.T) {
		e := newEnv(t, envOptions{configure: func(op *testOP) { op.down.Store(true) }})
		res := e.get(e.gwURL("/auth/login?return_to=/x"))
		wantAPIError(t, res, http.StatusServiceUnavailable, "provider_unavailable")
		if c := res.cookieWithPrefix(loginCookiePrefix); c != nil {
			t.Errorf("a sign-in cookie was set while the provider is down: %v", c)
		}
		if err := e.a.Ready(t.Context()); err == nil {
			t.Fatal("Ready reports no error while the provider is down")
		}
		// A failed discovery is not remembered: once the provider is up, all works.
		e.op.down.Store(false)
		if err := e.a.Ready(t.Context()); err != nil {
			t.Fatalf("Ready once the provider is up: %v", err)
		}
		if got := e.mustSignIn("/x").header.Get("Location"); got != "/x" {
			t.Fatalf("sign-in after recovery redirects to %q", got)
		}
		// Discovery is kept: a provider outage later does not fail Ready.
		e.op.down.Store(true)
		if err := e.a.Ready(t.Context()); err != nil {
			t.Errorf("Ready after discovery: %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + ln.Addr().String()
		ln.Close()
		e := newEnv(t, envOptions{issuer: closed})
		wantAPIError(t, e.get(e.gwURL("/auth/login")), http.StatusServiceUnavailable, "provider_unavailable")
		if err := e.a.Ready(t.Context()); err == nil {
			t.Fatal("Ready reports no error for an unreachable provider")
		}
		// A callback cannot finish either, and says so.
		res := e.get(e.gwURL("/auth/callback?code=c&state=s"))
		wantAPIError(t, res, http.StatusBadRequest, "sign_in_expired")
	})
}

func TestLogout(t *testing.T) {
	t.Run("with a session", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		sc := e.mustSignIn("/").cookie(e.a.SessionCookieName())
		idToken := e.op.lastIDToken(t)

		res := e.do(e.client, http.MethodPost, e.gwURL("/auth/logout"))
		if res.status != http.StatusSeeOther {
			t.Fatalf("logout: %d %s", res.status, res.body)
		}
		loc := res.location(t)
		if loc.Scheme+"://"+loc.Host != e.op.issuer() || loc.Path != "/logout" {
			t.Fatalf("logout redirects to %s, not the provider's end-session endpoint", loc)
		}
		q := loc.Query()
		if q.Get("id_token_hint") != idToken || q.Get("client_id") != testClientID ||
			q.Get("post_logout_redirect_uri") != e.gwURL("/") || q.Get("ui_locales") != "en" {
			t.Errorf("end-session query %v", q)
		}
		if c := res.cookie(e.a.SessionCookieName()); c == nil || c.MaxAge >= 0 || c.Value != "" || c.Path != "/" {
			t.Errorf("logout did not clear the session cookie: %+v", c)
		}
		if cc := res.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("logout Cache-Control %q", cc)
		}
		if _, err := e.a.SessionFrom(e.sessionRequest(sc.Value)); !errors.Is(err, ErrNoSession) {
			t.Errorf("the old cookie still names a session: %v", err)
		}
		if _, err := e.store.Get(t.Context(), sessionKey(sc.Value)); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("the session is still stored: %v", err)
		}
		e.wantNoSession(res)
		// A second logout has nothing to end.
		if loc := e.do(e.client, http.MethodPost, e.gwURL("/auth/logout")).location(t); loc.String() != e.gwURL("/") {
			t.Errorf("second logout redirects to %s", loc)
		}
	})
	t.Run("without a session", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		res := e.do(e.client, http.MethodPost, e.gwURL("/auth/logout"))
		if res.status != http.StatusSeeOther || res.header.Get("Location") != e.gwURL("/") {
			t.Fatalf("logout: %d to %q, want 303 to %s", res.status, res.header.Get("Location"), e.gwURL("/"))
		}
	})
	t.Run("with an unknown cookie", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.jar.SetCookies(e.public, []*http.Cookie{{Name: "pbs_session", Value: randomToken(), Path: "/"}})
		res := e.do(e.client, http.MethodPost, e.gwURL("/auth/logout"))
		if res.status != http.StatusSeeOther || res.header.Get("Location") != e.gwURL("/") {
			t.Fatalf("logout: %d to %q", res.status, res.header.Get("Location"))
		}
		if c := res.cookie(e.a.SessionCookieName()); c == nil || c.MaxAge >= 0 {
			t.Errorf("the unknown cookie was not cleared: %+v", c)
		}
	})
	t.Run("provider without end-session endpoint", func(t *testing.T) {
		e := newEnv(t, envOptions{configure: func(op *testOP) { op.noEndSession = true }})
		e.mustSignIn("/")
		res := e.do(e.client, http.MethodPost, e.gwURL("/auth/logout"))
		if res.status != http.StatusSeeOther || res.header.Get("Location") != e.gwURL("/") {
			t.Fatalf("logout: %d to %q", res.status, res.header.Get("Location"))
		}
		e.wantNoSession(res)
	})
	t.Run("session store down", func(t *testing.T) {
		store := &toggleStore{Store: kv.NewMemory(nil)}
		e := newEnv(t, envOptions{store: store})
		e.mustSignIn("/")
		store.failDelete.Store(true)
		res := e.do(e.client, http.MethodPost, e.gwURL("/auth/logout"))
		wantAPIError(t, res, http.StatusServiceUnavailable, "unavailable")
	})
}

// toggleStore fails deletes on demand.
type toggleStore struct {
	kv.Store
	failDelete atomic.Bool
}

func (s *toggleStore) Delete(ctx context.Context, key string) error {
	if s.failDelete.Load() {
		return errStoreDown
	}
	return s.Store.Delete(ctx, key)
}

func TestCookieModes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        envOptions
		sessionName string
		secure      bool
		sameSite    http.SameSite
		partitioned bool
	}{
		// The browser honours __Host- on loopback names over plain http
		// (measured in Chromium); only another plain-http host goes
		// without, where a sibling host can plant cookies (README).
		{"plain http, loopback", envOptions{}, "__Host-pbs_session", true, http.SameSiteLaxMode, false},
		{"plain http, localhost name", envOptions{host: "playbooks.localhost"}, "__Host-pbs_session", true, http.SameSiteLaxMode, false},
		{"plain http, other host", envOptions{host: "portal.test"}, "pbs_session", false, http.SameSiteLaxMode, false},
		{"https", envOptions{tls: true}, "__Host-pbs_session", true, http.SameSiteLaxMode, false},
		{"cross-site", envOptions{tls: true, crossSite: true}, "__Host-pbs_session", true, http.SameSiteNoneMode, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			if got := e.a.SessionCookieName(); got != tc.sessionName {
				t.Fatalf("SessionCookieName = %q, want %q", got, tc.sessionName)
			}
			check := func(what string, c *http.Cookie, path string) {
				t.Helper()
				if c == nil {
					t.Fatalf("no %s cookie", what)
				}
				if c.Secure != tc.secure || c.SameSite != tc.sameSite || c.Partitioned != tc.partitioned ||
					!c.HttpOnly || c.Path != path || c.Domain != "" {
					t.Errorf("%s cookie: %+v", what, c)
				}
			}
			login := e.startLogin("/p")
			lc := login.cookieWithPrefix(loginCookiePrefix)
			check("sign-in", lc, "/")
			if strings.HasPrefix(lc.Name, "__Host-") != strings.HasPrefix(tc.sessionName, "__Host-") {
				t.Errorf("sign-in cookie %q and session cookie %q disagree on the prefix", lc.Name, tc.sessionName)
			}
			if tc.partitioned && !strings.Contains(strings.Join(login.header.Values("Set-Cookie"), "\n"), "Partitioned") {
				t.Errorf("Set-Cookie lacks Partitioned: %q", login.header.Values("Set-Cookie"))
			}

			res := e.get(e.authorize(login))
			if res.status != http.StatusFound {
				t.Fatalf("callback: %d %s", res.status, res.body)
			}
			sc := res.cookie(tc.sessionName)
			check("session", sc, "/")
			check("cleared sign-in", res.cookie(lc.Name), "/")
			if res.cookie("pbs_session") != nil && tc.sessionName != "pbs_session" {
				t.Error("both session cookie names were set")
			}
			if me := e.get(e.gwURL("/me")); me.status != http.StatusOK {
				t.Errorf("/me: %d %s", me.status, me.body)
			}
			out := e.do(e.client, http.MethodPost, e.gwURL("/auth/logout"))
			cleared := out.cookie(tc.sessionName)
			check("cleared session", cleared, "/")
			if cleared.MaxAge >= 0 {
				t.Errorf("logout did not expire the session cookie: %+v", cleared)
			}
		})
	}
}

func TestSessionStoredUnderHash(t *testing.T) {
	e := newEnv(t, envOptions{})
	token := e.mustSignIn("/").cookie(e.a.SessionCookieName()).Value
	ctx := t.Context()

	for _, key := range []string{token, sessionKeyPrefix + token} {
		if _, err := e.store.Get(ctx, key); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("the session is readable under the cookie value (%q): %v", key, err)
		}
	}
	raw, err := e.store.Get(ctx, sessionKey(token))
	if err != nil {
		t.Fatalf("the session is not under the cookie's hash: %v", err)
	}
	if bytes.Contains(raw, []byte(token)) {
		t.Error("the stored session holds its own cookie value")
	}
	if !strings.HasPrefix(sessionKey(token), sessionKeyPrefix) || strings.Contains(sessionKey(token), token) {
		t.Errorf("session key %q", sessionKey(token))
	}

	// Whoever reads the store cannot use what they read as a cookie.
	hexPart := strings.TrimPrefix(sessionKey(token), sessionKeyPrefix)
	for name, value := range map[string]string{
		"another random value": randomToken(),
		"the store key":        sessionKey(token),
		"the hash":             hexPart,
		"the value, truncated": token[:len(token)-1],
		"the value, extended":  token + "A",
		"over-long":            token + strings.Repeat("A", 200),
		"empty":                "",
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := e.a.SessionFrom(e.sessionRequest(value)); !errors.Is(err, ErrNoSession) {
				t.Fatalf("SessionFrom = %v, %v; want ErrNoSession", s, err)
			}
		})
	}
	if _, err := e.a.SessionFrom(httptest.NewRequest(http.MethodGet, "/", nil)); !errors.Is(err, ErrNoSession) {
		t.Errorf("no cookie: %v", err)
	}
	if _, err := e.a.SessionFrom(e.sessionRequest(token)); err != nil {
		t.Errorf("the real cookie: %v", err)
	}

	// Signing in again in the same browser replaces the session: a new
	// cookie and CSRF token, and the old cookie no longer works.
	s1, _ := e.a.SessionFrom(e.sessionRequest(token))
	e2 := e.mustSignIn("/").cookie(e.a.SessionCookieName()).Value
	s2, err2 := e.a.SessionFrom(e.sessionRequest(e2))
	if err2 != nil || e2 == token || s1 == nil || s1.CSRFToken == s2.CSRFToken {
		t.Errorf("second sign-in: %v", err2)
	}
	if _, err := e.a.SessionFrom(e.sessionRequest(token)); !errors.Is(err, ErrNoSession) {
		t.Errorf("the replaced session still works: %v", err)
	}
}

func TestSessionFromStoreErrors(t *testing.T) {
	t.Run("store down", func(t *testing.T) {
		e := newEnv(t, envOptions{store: failingStore{kv.NewMemory(nil)}})
		_, err := e.a.SessionFrom(e.sessionRequest(randomToken()))
		if err == nil || errors.Is(err, ErrNoSession) {
			t.Fatalf("SessionFrom with the store down = %v, want a store error", err)
		}
	})
	t.Run("unreadable session", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		token := randomToken()
		if err := e.store.Set(t.Context(), sessionKey(token), []byte("{not json"), time.Hour); err != nil {
			t.Fatal(err)
		}
		_, err := e.a.SessionFrom(e.sessionRequest(token))
		if err == nil || errors.Is(err, ErrNoSession) {
			t.Fatalf("SessionFrom = %v, want an unreadable-session error", err)
		}
	})
}

// TestLogsHoldNoSecrets runs successful and failed sign-ins and a logout,
// then looks for every code, state, nonce, verifier, challenge and token in
// the log output, the error causes and the error bodies.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t, envOptions{})
	var bodies [][]byte
	var cookieValues []string
	collect := func(r *result) {
		bodies = append(bodies, r.body)
		for _, c := range r.cookies {
			if c.Value != "" {
				cookieValues = append(cookieValues, c.Value)
			}
		}
	}
	reset := func() {
		e.op.authError, e.op.tokenError, e.op.claims, e.op.noIDToken = "", "", nil, false
	}

	collect(e.startLogin("/"))
	collect(e.mustSignIn("/playbooks"))

	for _, setup := range []func(){
		func() { e.op.authError = "access_denied" },
		func() { e.op.tokenError = "invalid_grant" },
		func() { e.op.claims = func(c map[string]any) { c["nonce"] = "other-nonce" } },
		func() { e.op.claims = func(c map[string]any) { c["aud"] = "x" } },
		func() { e.op.claims = func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Hour).Unix() } },
		func() { e.op.claims = func(c map[string]any) { c["roles"] = []string{} } },
		func() { e.op.noIDToken = true },
	} {
		reset()
		setup()
		login := e.startLogin("/")
		collect(login)
		res := e.get(e.authorize(login))
		collect(res)
		if res.status < 400 {
			t.Fatalf("expected a refusal, got %d", res.status)
		}
	}
	reset()
	res := e.do(e.client, http.MethodPost, e.gwURL("/auth/logout"))
	collect(res)
	if res.status != http.StatusSeeOther || !strings.Contains(res.header.Get("Location"), "id_token_hint=") {
		t.Fatalf("logout: %d %q", res.status, res.header.Get("Location"))
	}

	logs := e.logs.String()
	causes := strings.Join(e.causeList(), "\n")
	for _, want := range []string{"OpenID provider discovered", "signed out", "request refused", "nonce mismatch", "invalid_grant", "provider error access_denied"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %q; the test does not see what it should:\n%s", want, logs)
		}
	}
	secrets := append(e.op.secrets(), cookieValues...)
	if len(secrets) < 30 {
		t.Fatalf("only %d secrets collected", len(secrets))
	}
	for _, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("secret %q too short to search for", s)
		}
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold a secret %q:\n%s", s, logs)
		}
		if strings.Contains(causes, s) {
			t.Errorf("an error cause holds a secret %q:\n%s", s, causes)
		}
		for _, b := range bodies {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("an answer body holds a secret %q: %s", s, b)
			}
		}
	}
}

// TestConcurrentSignIns exercises discovery and sessions from several
// goroutines at once, for the race detector.
func TestConcurrentSignIns(t *testing.T) {
	e := newEnv(t, envOptions{})
	// fetch is e.do without t.Fatal, which other goroutines must not call.
	fetch := func(c *http.Client, u string) (int, string, error) {
		resp, err := c.Get(u)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), nil
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			jar, _ := cookiejar.New(nil)
			c := e.newClient(e.client.Transport, jar)
			loc := e.gwURL(fmt.Sprintf("/auth/login?return_to=/p%d", i))
			var status int
			var err error
			for step := range 3 {
				if status, loc, err = fetch(c, loc); err != nil || status != http.StatusFound {
					t.Errorf("sign-in %d, step %d: %d %v", i, step, status, err)
					return
				}
			}
			if want := fmt.Sprintf("/p%d", i); loc != want {
				t.Errorf("sign-in %d redirects to %q, want %q", i, loc, want)
			}
		})
	}
	wg.Wait()
	if n := e.signInCount(); n != 6 {
		t.Errorf("OnSignIn called %d times, want 6", n)
	}
}
