package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/playbookstudio/gateway/internal/testsvc"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testRedirectURI   = "http://playbooks.localhost:8080/auth/callback"
	testPostLogoutURI = "http://playbooks.localhost:8080/"
	testClientID      = "playbook-studio"
	testClientSecret  = "dev-secret"
)

// syncBuffer collects output written from many goroutines.
type syncBuffer = testsvc.Buffer

type testIDP struct {
	issuer string
	logs   *syncBuffer
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func noEnv(string) string { return "" }

// startIDP runs the provider through run() on a free 127.0.0.1 port and
// stops it (checking for a clean shutdown) when the test ends.
func startIDP(t *testing.T, extraArgs ...string) *testIDP {
	t.Helper()
	port := strconv.Itoa(freePort(t))
	idp := &testIDP{issuer: "http://127.0.0.1:" + port, logs: &syncBuffer{}}
	args := append([]string{"-addr", "127.0.0.1:" + port, "-issuer", idp.issuer}, extraArgs...)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, noEnv, io.Discard, idp.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancel")
		}
	})

	hc := &http.Client{Transport: &http.Transport{}, Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("run exited early: %v\nlogs:\n%s", err, idp.logs)
		default:
		}
		resp, err := hc.Get(idp.issuer + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return idp
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// browser is an HTTP client with a cookie jar that does not follow redirects,
// so every hop of the flow can be checked.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Jar:           jar,
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// rpContext carries a dedicated HTTP client for go-oidc and oauth2.
func rpContext(t *testing.T) context.Context {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return oidc.ClientContext(t.Context(), &http.Client{Transport: tr, Timeout: 10 * time.Second})
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func (idp *testIDP) abs(loc string) string {
	if strings.HasPrefix(loc, "/") {
		return idp.issuer + loc
	}
	return loc
}

func oauthConfig(idp *testIDP, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RedirectURL:  testRedirectURI,
		Scopes:       []string{oidc.ScopeOpenID, "profile", "email", "roles"},
		Endpoint: oauth2.Endpoint{
			AuthURL:   idp.issuer + "/authorize",
			TokenURL:  idp.issuer + "/oauth/token",
			AuthStyle: style,
		},
	}
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// loginForm follows /authorize to the login page and returns the page and
// the hidden form fields.
func (idp *testIDP) loginForm(t *testing.T, c *http.Client, authURL string) (*http.Response, string, url.Values) {
	t.Helper()
	resp, _ := get(t, c, authURL)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/login?authRequestID=") {
		t.Fatalf("authorize: got %d Location %q, want 302 to /login?authRequestID=", resp.StatusCode, loc)
	}
	resp, body := get(t, c, idp.abs(loc))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: status %d: %s", resp.StatusCode, body)
	}
	form := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], m[2])
	}
	if form.Get("authRequestID") == "" || form.Get("csrf") == "" {
		t.Fatalf("login page lacks hidden fields:\n%s", body)
	}
	return resp, body, form
}

// signIn posts credentials and follows the callback to the redirect URI,
// returning its query (code, state or error).
func (idp *testIDP) signIn(t *testing.T, c *http.Client, form url.Values, username, password string) url.Values {
	t.Helper()
	form = cloneValues(form)
	form.Set("username", username)
	form.Set("password", password)
	resp, body := postForm(t, c, idp.issuer+"/login", form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login POST: status %d, want 303: %s", resp.StatusCode, body)
	}
	resp, _ = get(t, c, idp.abs(resp.Header.Get("Location")))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("callback: got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirectURI {
		t.Fatalf("callback redirected to %q, want %q", got, testRedirectURI)
	}
	return loc.Query()
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// codeFor runs the browser part of the flow and returns the authorization code.
func (idp *testIDP) codeFor(t *testing.T, conf *oauth2.Config, verifier, username, password string) string {
	t.Helper()
	c := browser(t)
	authURL := conf.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-456"))
	_, _, form := idp.loginForm(t, c, authURL)
	q := idp.signIn(t, c, form, username, password)
	if q.Get("state") != "state-123" || q.Get("code") == "" {
		t.Fatalf("redirect query %v lacks code or state", q)
	}
	return q.Get("code")
}

func TestHealthz(t *testing.T) {
	idp := startIDP(t)
	resp, body := get(t, browser(t), idp.issuer+"/healthz")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}

func TestDiscovery(t *testing.T) {
	idp := startIDP(t)
	resp, body := get(t, browser(t), idp.issuer+"/.well-known/openid-configuration")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ field, want string }{
		{"issuer", idp.issuer},
		{"authorization_endpoint", idp.issuer + "/authorize"},
		{"token_endpoint", idp.issuer + "/oauth/token"},
		{"userinfo_endpoint", idp.issuer + "/userinfo"},
		{"jwks_uri", idp.issuer + "/keys"},
		{"end_session_endpoint", idp.issuer + "/end_session"},
	} {
		if got, _ := d[tc.field].(string); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.field, got, tc.want)
		}
	}
	for _, tc := range []struct{ field, want string }{
		{"code_challenge_methods_supported", "S256"},
		{"id_token_signing_alg_values_supported", "RS256"},
		{"claims_supported", "roles"},
		{"claims_supported", "tenant"},
		{"token_endpoint_auth_methods_supported", "client_secret_basic"},
		{"token_endpoint_auth_methods_supported", "client_secret_post"},
	} {
		list, _ := d[tc.field].([]any)
		if !slices.Contains(list, any(tc.want)) {
			t.Errorf("%s = %v, want it to contain %q", tc.field, d[tc.field], tc.want)
		}
	}
	if got := d["code_challenge_methods_supported"]; fmt.Sprint(got) != "[S256]" {
		t.Errorf("code_challenge_methods_supported = %v, want only S256", got)
	}
}

type idClaims struct {
	Sub               string   `json:"sub"`
	Email             string   `json:"email"`
	EmailVerified     *bool    `json:"email_verified"`
	Name              string   `json:"name"`
	PreferredUsername string   `json:"preferred_username"`
	Roles             []string `json:"roles"`
	Tenant            string   `json:"tenant"`
	Nonce             string   `json:"nonce"`
}

func TestAuthorizationCodeFlow(t *testing.T) {
	tests := []struct {
		name      string
		username  string
		style     oauth2.AuthStyle
		wantSub   string
		wantEmail string
		wantName  string
		wantRoles []string
	}{
		{"alice client_secret_basic", "alice", oauth2.AuthStyleInHeader, "5f0c8e2a-3b1d-4c6e-9a7f-1d2e3f4a5b6c",
			"alice@example.com", "Alice Anders", []string{"author", "automation", "admin"}},
		{"bob client_secret_post", "bob", oauth2.AuthStyleInParams, "8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
			"bob@example.com", "Bob Berg", []string{"author"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := startIDP(t)
			ctx := rpContext(t)
			provider, err := oidc.NewProvider(ctx, idp.issuer)
			if err != nil {
				t.Fatal(err)
			}
			conf := oauthConfig(idp, tc.style)
			conf.Endpoint = provider.Endpoint()
			conf.Endpoint.AuthStyle = tc.style

			c := browser(t)
			verifier := oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL("state-xyz", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-abc"))
			resp, page, form := idp.loginForm(t, c, authURL)
			checkLoginPage(t, resp, page)
			q := idp.signIn(t, c, form, tc.username, tc.username)
			code := q.Get("code")
			if q.Get("state") != "state-xyz" || code == "" {
				t.Fatalf("redirect query = %v, want code and state", q)
			}

			tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			rawID, _ := tok.Extra("id_token").(string)
			if rawID == "" {
				t.Fatal("token response has no id_token")
			}
			idToken, err := provider.Verifier(&oidc.Config{ClientID: testClientID}).Verify(ctx, rawID)
			if err != nil {
				t.Fatalf("verify ID token: %v", err)
			}
			if _, err := provider.Verifier(&oidc.Config{ClientID: "someone-else"}).Verify(ctx, rawID); err == nil {
				t.Error("ID token verified for a foreign audience")
			}
			if !slices.Equal(idToken.Audience, []string{testClientID}) || idToken.Nonce != "nonce-abc" {
				t.Errorf("aud=%v nonce=%q", idToken.Audience, idToken.Nonce)
			}
			var claims idClaims
			if err := idToken.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			checkClaims(t, "id_token", claims, tc.wantSub, tc.username, tc.wantEmail, tc.wantName, tc.wantRoles)
			if claims.Nonce != "nonce-abc" {
				t.Errorf("id_token nonce = %q", claims.Nonce)
			}
			var raw map[string]json.RawMessage
			if err := idToken.Claims(&raw); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(raw["roles"], []byte("[")) {
				t.Errorf("roles claim is not a JSON array: %s", raw["roles"])
			}
			// The groups claim is always an array too (empty for users
			// without groups); which sources a user may target hangs on it.
			if !bytes.HasPrefix(raw["groups"], []byte("[")) {
				t.Errorf("groups claim is not a JSON array: %s", raw["groups"])
			}

			ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var uiClaims idClaims
			if err := ui.Claims(&uiClaims); err != nil {
				t.Fatal(err)
			}
			checkClaims(t, "userinfo", uiClaims, tc.wantSub, tc.username, tc.wantEmail, tc.wantName, tc.wantRoles)

			// The code is single-use.
			_, err = conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			checkOAuthError(t, err, "invalid_grant")

			// Logs never carry secrets.
			time.Sleep(50 * time.Millisecond)
			logs := idp.logs.String()
			for name, secret := range map[string]string{
				"code": code, "access token": tok.AccessToken, "id token": rawID,
				"verifier": verifier, "nonce": "nonce-abc", "csrf": form.Get("csrf"),
				"password": `"password"`, "auth request id": form.Get("authRequestID"),
			} {
				if strings.Contains(logs, secret) {
					t.Errorf("logs contain the %s", name)
				}
			}
		})
	}
}

func checkLoginPage(t *testing.T, resp *http.Response, page string) {
	t.Helper()
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "form-action 'self' http://playbooks.localhost:8080;") || !strings.Contains(got, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", got)
	}
	for _, want := range []string{
		"<title>Playbook Studio dev sign-in</title>", "Development identity provider",
		`<label for="username">Username</label>`, `<label for="password">Password</label>`,
		`name="username"`, `name="password"`, `<button type="submit">Sign in</button>`,
		`<form method="post" action="/login">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("login page contains a script")
	}
}

func checkClaims(t *testing.T, what string, c idClaims, sub, username, email, name string, roles []string) {
	t.Helper()
	if c.Sub != sub || c.PreferredUsername != username || c.Email != email || c.Name != name ||
		c.Tenant != "default" || !slices.Equal(c.Roles, roles) || c.EmailVerified == nil || !*c.EmailVerified {
		t.Errorf("%s claims = %+v", what, c)
	}
}

func checkOAuthError(t *testing.T, err error, wantCode string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want an OAuth error %q", err, wantCode)
	}
	if re.ErrorCode != wantCode {
		t.Errorf("error code = %q (%s), want %q", re.ErrorCode, re.ErrorDescription, wantCode)
	}
}

func TestLoginWrongCredentials(t *testing.T) {
	idp := startIDP(t)
	conf := oauthConfig(idp, oauth2.AuthStyleInHeader)
	c := browser(t)
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	_, _, form := idp.loginForm(t, c, authURL)

	for _, tc := range []struct{ name, username, password string }{
		{"wrong password", "alice", "bob"},
		{"unknown user", "mallory", "alice"},
		{"empty password", "alice", ""},
		{"password of other user", "bob", "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := cloneValues(form)
			f.Set("username", tc.username)
			f.Set("password", tc.password)
			resp, body := postForm(t, c, idp.issuer+"/login", f)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if !strings.Contains(body, "Unknown user or wrong password.") {
				t.Errorf("body lacks the error message:\n%s", body)
			}
			checkLoginPage(t, resp, body)
		})
	}
	// The same auth request still works with the right password.
	if q := idp.signIn(t, c, form, "alice", "alice"); q.Get("code") == "" {
		t.Fatalf("no code after retry: %v", q)
	}
}

func TestLoginCSRF(t *testing.T) {
	idp := startIDP(t)
	conf := oauthConfig(idp, oauth2.AuthStyleInHeader)
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))

	for _, tc := range []struct {
		name     string
		mutate   func(url.Values)
		noCookie bool
	}{
		{"missing token", func(f url.Values) { f.Del("csrf") }, false},
		{"wrong token", func(f url.Values) { f.Set("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAA") }, false},
		{"no cookie (cross-site post)", func(url.Values) {}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := browser(t)
			_, _, form := idp.loginForm(t, c, authURL)
			tc.mutate(form)
			form.Set("username", "alice")
			form.Set("password", "alice")
			poster := c
			if tc.noCookie {
				poster = browser(t)
			}
			resp, _ := postForm(t, poster, idp.issuer+"/login", form)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
		})
	}
}

func TestLoginUnknownAuthRequest(t *testing.T) {
	idp := startIDP(t)
	c := browser(t)
	for _, u := range []string{"/login", "/login?authRequestID=does-not-exist"} {
		resp, body := get(t, c, idp.issuer+u)
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "<form") {
			t.Errorf("GET %s: status %d, want 400 without form", u, resp.StatusCode)
		}
	}
	resp, _ := postForm(t, c, idp.issuer+"/login", url.Values{"authRequestID": {"nope"}, "username": {"alice"}, "password": {"alice"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST: status %d, want 400", resp.StatusCode)
	}
}

func TestAuthorizeRejects(t *testing.T) {
	idp := startIDP(t)
	base := url.Values{
		"client_id":     {testClientID},
		"redirect_uri":  {testRedirectURI},
		"response_type": {"code"},
		"scope":         {"openid profile email"},
		"state":         {"st"},
	}
	verifier := oauth2.GenerateVerifier()
	tests := []struct {
		name      string
		set       url.Values
		wantError string // error in the redirect to the client; empty: no redirect, 400
	}{
		{"missing PKCE", nil, "invalid_request"},
		{"PKCE plain", url.Values{"code_challenge": {verifier}, "code_challenge_method": {"plain"}}, "invalid_request"},
		{"PKCE without method", url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}}, "invalid_request"},
		{"PKCE unknown method", url.Values{"code_challenge": {verifier}, "code_challenge_method": {"S512"}}, "invalid_request"},
		{"implicit response type", url.Values{"response_type": {"id_token"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}, ""},
		{"unregistered redirect URI", url.Values{"redirect_uri": {testRedirectURI + "/x"}}, ""},
		{"unknown client", url.Values{"client_id": {"other"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := cloneValues(base)
			for k, v := range tc.set {
				q[k] = v
			}
			resp, _ := get(t, browser(t), idp.issuer+"/authorize?"+q.Encode())
			if tc.wantError == "" {
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("status %d (Location %q), want 400", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), testRedirectURI+"?") {
				t.Fatalf("status %d Location %q, want error redirect to client", resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := loc.Query().Get("error"); got != tc.wantError {
				t.Errorf("error = %q (%s), want %q", got, loc.Query().Get("error_description"), tc.wantError)
			}
			if loc.Query().Get("code") != "" {
				t.Error("got a code")
			}
		})
	}
}

func TestTokenRequestRejects(t *testing.T) {
	idp := startIDP(t)
	ctx := rpContext(t)
	for _, tc := range []struct {
		name     string
		conf     func(*oauth2.Config)
		opts     func(verifier string) []oauth2.AuthCodeOption
		wantCode string
	}{
		{"wrong code_verifier", nil, func(string) []oauth2.AuthCodeOption {
			return []oauth2.AuthCodeOption{oauth2.VerifierOption(oauth2.GenerateVerifier())}
		}, "invalid_grant"},
		{"missing code_verifier", nil, func(string) []oauth2.AuthCodeOption { return nil }, "invalid_request"},
		{"wrong client secret", func(c *oauth2.Config) { c.ClientSecret = "nope" }, func(v string) []oauth2.AuthCodeOption {
			return []oauth2.AuthCodeOption{oauth2.VerifierOption(v)}
		}, "invalid_client"},
		{"wrong redirect_uri", func(c *oauth2.Config) { c.RedirectURL = testRedirectURI + "/x" }, func(v string) []oauth2.AuthCodeOption {
			return []oauth2.AuthCodeOption{oauth2.VerifierOption(v)}
		}, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := oauthConfig(idp, oauth2.AuthStyleInHeader)
			verifier := oauth2.GenerateVerifier()
			code := idp.codeFor(t, conf, verifier, "alice", "alice")
			if tc.conf != nil {
				tc.conf(conf)
			}
			_, err := conf.Exchange(ctx, code, tc.opts(verifier)...)
			checkOAuthError(t, err, tc.wantCode)

			// A failed attempt burns the code.
			good := oauthConfig(idp, oauth2.AuthStyleInHeader)
			_, err = good.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			checkOAuthError(t, err, "invalid_grant")
		})
	}
}

func TestEndSession(t *testing.T) {
	idp := startIDP(t)
	ctx := rpContext(t)
	conf := oauthConfig(idp, oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(ctx, idp.codeFor(t, conf, verifier, "bob", "bob"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idToken, _ := tok.Extra("id_token").(string)

	for _, tc := range []struct {
		name       string
		query      url.Values
		wantStatus int
		wantLoc    string
	}{
		{"registered URI with client_id", url.Values{"client_id": {testClientID}, "post_logout_redirect_uri": {testPostLogoutURI}, "state": {"bye"}},
			http.StatusFound, testPostLogoutURI + "?state=bye"},
		{"registered URI with id_token_hint", url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {testPostLogoutURI}},
			http.StatusFound, testPostLogoutURI},
		{"no redirect URI", url.Values{"client_id": {testClientID}}, http.StatusFound, "/logged-out"},
		{"unregistered URI", url.Values{"client_id": {testClientID}, "post_logout_redirect_uri": {"http://evil.example/"}},
			http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := get(t, browser(t), idp.issuer+"/end_session?"+tc.query.Encode())
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Location") != tc.wantLoc {
				t.Fatalf("got %d Location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tc.wantStatus, tc.wantLoc)
			}
		})
	}

	// The session's access token is gone after logout.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, idp.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := browser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("userinfo still works after end_session")
	}
}
