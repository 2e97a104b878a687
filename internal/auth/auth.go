// Package auth signs users in with any standard OpenID provider
// (authorization code + PKCE S256, state and nonce in a short-lived
// encrypted cookie), keeps the portal session server-side behind an
// HttpOnly cookie, and maps ID token claims to an Identity with roles.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/kv"
)

// Options configure sign-in. Every field but HTTPClient and Now is required.
type Options struct {
	Issuer        string
	ClientID      string
	ClientSecret  string
	Scopes        []string
	PublicURL     *url.URL
	Mapping       ClaimMapping
	SessionMaxAge time.Duration
	// CrossSite sets cookies SameSite=None; Secure; Partitioned so the
	// portal works framed by an outer portal on another site.
	CrossSite bool
	// Secret keys the encrypted sign-in cookie (32+ bytes).
	Secret     []byte
	HTTPClient *http.Client // talks to the provider; default: 10 s timeout
	Now        func() time.Time
	// OnSignIn is told of every finished sign-in attempt (metrics, audit).
	OnSignIn func(ctx context.Context, id *Identity, reason string)
	// OnSignOut is told of every sign-out (the user's edit session ends
	// with it).
	OnSignOut func(ctx context.Context, id Identity)
}

// Auth is the sign-in service.
type Auth struct {
	opts   Options
	store  kv.Store
	log    *slog.Logger
	sealer *Sealer

	mu       sync.Mutex
	provider *provider // discovered lazily: the provider may start after us
}

type provider struct {
	oidc       *oidc.Provider
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string
}

// Session is a signed-in portal session, kept server-side.
type Session struct {
	Identity  Identity  `json:"identity"`
	CSRFToken string    `json:"csrf"`
	IDToken   string    `json:"idToken"` // for the provider's logout hint; never sent to the browser
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

const (
	loginCookiePrefix = "pbs_login_"
	loginTTL          = 10 * time.Minute
	sessionKeyPrefix  = "portal-session:"
)

// New validates opts and returns the service. It does not contact the
// provider: discovery happens on first use and is retried until it works,
// so the gateway can start before its provider does.
func New(opts Options, store kv.Store, log *slog.Logger) (*Auth, error) {
	var errs []error
	if opts.Issuer == "" {
		errs = append(errs, errors.New("auth: issuer is required"))
	}
	if opts.ClientID == "" {
		errs = append(errs, errors.New("auth: client id is required"))
	}
	if opts.PublicURL == nil || opts.PublicURL.Host == "" {
		errs = append(errs, errors.New("auth: public URL is required"))
	}
	if opts.SessionMaxAge <= 0 {
		errs = append(errs, errors.New("auth: session max age must be positive"))
	}
	if store == nil || log == nil {
		errs = append(errs, errors.New("auth: store and logger are required"))
	}
	if opts.CrossSite && opts.PublicURL != nil && opts.PublicURL.Scheme != "https" {
		errs = append(errs, errors.New("auth: cross-site cookies need an https public URL"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.OnSignIn == nil {
		opts.OnSignIn = func(context.Context, *Identity, string) {}
	}
	if opts.OnSignOut == nil {
		opts.OnSignOut = func(context.Context, Identity) {}
	}
	sealer, err := NewSealer(opts.Secret, opts.Now)
	if err != nil {
		return nil, err
	}
	return &Auth{opts: opts, store: store, log: log, sealer: sealer}, nil
}

// Ready reports whether the provider's discovery document has been read
// (reading it now if not), for /readyz.
func (a *Auth) Ready(ctx context.Context) error {
	_, err := a.discover(ctx)
	return err
}

func (a *Auth) discover(ctx context.Context) (*provider, error) {
	a.mu.Lock()
	p := a.provider
	a.mu.Unlock()
	if p != nil {
		return p, nil
	}
	// The network call runs without the lock: while the provider is down,
	// sign-ins and /readyz fail fast side by side instead of queueing.
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, a.opts.HTTPClient), 5*time.Second)
	defer cancel()
	op, err := oidc.NewProvider(ctx, a.opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("OpenID provider %s: %w", a.opts.Issuer, err)
	}
	var extra struct {
		EndSession  string   `json:"end_session_endpoint"`
		Methods     []string `json:"code_challenge_methods_supported"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	_ = op.Claims(&extra)
	endpoint := op.Endpoint()
	// Say how to send the client secret rather than let x/oauth2 guess:
	// its guessing retries a refused exchange, sending the code twice.
	switch {
	case len(extra.AuthMethods) == 0 || slices.Contains(extra.AuthMethods, "client_secret_basic"):
		endpoint.AuthStyle = oauth2.AuthStyleInHeader
	case slices.Contains(extra.AuthMethods, "client_secret_post"):
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	p = &provider{
		oidc: op,
		oauth: oauth2.Config{
			ClientID:     a.opts.ClientID,
			ClientSecret: a.opts.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  a.url("/auth/callback"),
			Scopes:       a.opts.Scopes,
		},
		verifier:   op.Verifier(&oidc.Config{ClientID: a.opts.ClientID, Now: a.opts.Now}),
		endSession: extra.EndSession,
	}
	a.mu.Lock()
	if a.provider == nil {
		a.provider = p
		a.log.Info("OpenID provider discovered", "issuer", a.opts.Issuer, "end_session", p.endSession != "", "pkce_methods", extra.Methods)
	}
	p = a.provider
	a.mu.Unlock()
	return p, nil
}

func (a *Auth) url(path string) string {
	u := *a.opts.PublicURL
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return u.String()
}

// flow is what the sign-in cookie carries between login and callback.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
}

// Login sends the browser to the provider.
func (a *Auth) Login(c echo.Context) error {
	p, err := a.discover(c.Request().Context())
	if err != nil {
		return apierror.Wrap(http.StatusServiceUnavailable, "provider_unavailable",
			"The sign-in provider does not answer. Try again in a moment.", err)
	}
	f := flow{
		State:    randomToken(),
		Nonce:    randomToken(),
		Verifier: oauth2.GenerateVerifier(),
		ReturnTo: SafeReturnTo(c.QueryParam("return_to")),
	}
	raw, _ := json.Marshal(f)
	name := a.loginCookieName(f.State)
	sealed, err := a.sealer.Seal(name, raw, loginTTL)
	if err != nil {
		return err
	}
	// Path / because the __Host- prefix requires it; the name is unique to
	// this attempt, so no other route ever reads it.
	c.SetCookie(a.cookie(name, sealed, "/", loginTTL, http.SameSiteLaxMode))
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, p.oauth.AuthCodeURL(f.State,
		oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)))
}

// loginCookieName gives each sign-in attempt its own cookie, so two tabs
// signing in at once do not overwrite each other's state. The __Host-
// prefix (cookieName) is what binds a sign-in to the browser that started
// it: a sibling host (an IDE host serving a workspace's page) cannot plant a
// flow cookie of its own sign-in for the callback to accept (login CSRF).
func (a *Auth) loginCookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return a.cookieName(loginCookiePrefix + hex.EncodeToString(sum[:6]))
}

// cookieName is base with the __Host- prefix wherever the browser honours
// it (config.SecureCookies; cross-site mode is https only).
func (a *Auth) cookieName(base string) string {
	if a.secureCookies() {
		return "__Host-" + base
	}
	return base
}

func (a *Auth) secureCookies() bool {
	return a.opts.CrossSite || config.SecureCookies(a.opts.PublicURL.Scheme, a.opts.PublicURL.Host)
}

// Callback finishes sign-in: it checks state, trades the code (with the
// PKCE verifier), verifies the ID token and its nonce, and starts a
// session. Every refusal is a 400 or 401 naming the problem, logged
// without codes or tokens.
func (a *Auth) Callback(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	fail := func(status int, code, reason, msg string, cause error) error {
		a.opts.OnSignIn(ctx, nil, reason)
		return apierror.Wrap(status, code, msg, fmt.Errorf("sign-in refused (%s): %w", reason, cause))
	}
	state := q.Get("state")
	if state == "" || len(state) > 512 {
		return fail(http.StatusBadRequest, "bad_request", "missing_state", "The sign-in response has no state. Start again from the sign-in page.", errors.New("no state"))
	}
	name := a.loginCookieName(state)
	ck, err := c.Cookie(name)
	if err != nil {
		return fail(http.StatusBadRequest, "sign_in_expired", "no_flow_cookie", "This sign-in was not started here or took too long. Start again.", err)
	}
	c.SetCookie(a.cookie(name, "", "/", -1, http.SameSiteLaxMode))
	raw, err := a.sealer.Open(name, ck.Value)
	var f flow
	if err == nil {
		err = json.Unmarshal(raw, &f)
	}
	if err != nil {
		return fail(http.StatusBadRequest, "sign_in_expired", "bad_flow_cookie", "This sign-in was not started here or took too long. Start again.", err)
	}
	if subtle.ConstantTimeCompare([]byte(state), []byte(f.State)) != 1 {
		return fail(http.StatusBadRequest, "state_mismatch", "state_mismatch", "The sign-in response does not belong to this sign-in. Start again.", errors.New("state mismatch"))
	}
	if e := q.Get("error"); e != "" {
		return fail(http.StatusUnauthorized, "sign_in_refused", "provider_error",
			"The sign-in provider refused the sign-in ("+safeWord(e)+").", errors.New("provider error "+safeWord(e)))
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		return fail(http.StatusBadRequest, "bad_request", "missing_code", "The sign-in response has no code. Start again.", errors.New("no code"))
	}
	p, err := a.discover(ctx)
	if err != nil {
		return fail(http.StatusServiceUnavailable, "provider_unavailable", "provider_unavailable", "The sign-in provider does not answer. Try again in a moment.", err)
	}
	xctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, a.opts.HTTPClient), 10*time.Second)
	defer cancel()
	tok, err := p.oauth.Exchange(xctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return fail(http.StatusUnauthorized, "sign_in_failed", "code_exchange", "The sign-in provider did not accept this sign-in. Start again.", exchangeError(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return fail(http.StatusUnauthorized, "sign_in_failed", "no_id_token", "The sign-in provider returned no ID token.", errors.New("token response without id_token"))
	}
	idt, err := p.verifier.Verify(xctx, rawID)
	if err != nil {
		return fail(http.StatusUnauthorized, "sign_in_failed", "id_token_invalid", "The sign-in provider's ID token could not be verified.", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return fail(http.StatusUnauthorized, "sign_in_failed", "nonce_mismatch", "The ID token does not belong to this sign-in. Start again.", errors.New("nonce mismatch"))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return fail(http.StatusUnauthorized, "sign_in_failed", "claims", "The ID token's claims could not be read.", err)
	}
	id, err := a.opts.Mapping.IdentityFromClaims(claims)
	if err != nil {
		status, code := http.StatusUnauthorized, "sign_in_failed"
		if errors.Is(err, ErrNoRoles) {
			status, code = http.StatusForbidden, "no_roles"
		}
		msg := err.Error()
		return fail(status, code, "claims", strings.ToUpper(msg[:1])+msg[1:]+".", err)
	}
	if err := a.startSession(c, id, rawID, time.Time{}); err != nil {
		return fail(http.StatusServiceUnavailable, "unavailable", "session_store", "Your sign-in could not be stored. Try again in a moment.", err)
	}
	a.opts.OnSignIn(ctx, &id, "ok")
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, f.ReturnTo)
}

// exchangeError keeps the provider's error code but drops its response
// body, which may echo request parameters.
func exchangeError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return fmt.Errorf("token endpoint answered %d %s", re.Response.StatusCode, safeWord(re.ErrorCode))
	}
	return err
}

// safeWord keeps an OAuth error code printable and short for messages.
func safeWord(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, s)
}

// startSession stores a new session and sets its cookie. A zero expires
// means a fresh sign-in (SESSION_MAX_AGE from now); a hand-off passes the
// expiry of the session it came from, so hand-offs never extend a sign-in
// past what the provider granted.
func (a *Auth) startSession(c echo.Context, id Identity, rawIDToken string, expires time.Time) error {
	// Signing in again replaces the browser's previous session rather than
	// leaving it valid until it expires.
	for _, old := range c.Request().CookiesNamed(a.SessionCookieName()) {
		if old.Value != "" && len(old.Value) <= 128 {
			_ = a.store.Delete(c.Request().Context(), sessionKey(old.Value))
		}
	}
	now := a.opts.Now()
	if expires.IsZero() {
		expires = now.Add(a.opts.SessionMaxAge)
	}
	ttl := expires.Sub(now)
	if ttl <= 0 {
		return ErrNoSession
	}
	token := randomToken()
	s := Session{
		Identity:  id,
		CSRFToken: randomToken(),
		IDToken:   rawIDToken,
		CreatedAt: now.UTC(),
		ExpiresAt: expires.UTC(),
	}
	raw, _ := json.Marshal(s)
	if err := a.store.Set(c.Request().Context(), sessionKey(token), raw, ttl); err != nil {
		return err
	}
	c.SetCookie(a.cookie(a.SessionCookieName(), token, "/", ttl, http.SameSiteLaxMode))
	return nil
}

// sessionKey stores sessions under a hash of the cookie, so whoever reads
// the store (a Redis dump) cannot replay live cookies from it.
func sessionKey(token string) string { return sessionKeyPrefix + hashCode(token) }

// SessionCookieName is __Host-pbs_session (bound to this exact host, path
// /, Secure) wherever the browser honours the prefix: https, and the
// loopback names of local runs. It is pbs_session only on plain http to
// another host, where a sibling host could plant one (README).
func (a *Auth) SessionCookieName() string { return a.cookieName("pbs_session") }

// OwnsCookie tells whether the portal issues cookies of this name: the
// session's and the sign-in flows'. Any other cookie the portal host
// receives was set by someone else (a parent domain's other sites, or an
// IDE host serving a workspace's page) and is never read.
func (a *Auth) OwnsCookie(name string) bool {
	return name == a.SessionCookieName() || strings.HasPrefix(name, a.cookieName(loginCookiePrefix))
}

// ErrNoSession means the request carries no live portal session.
var ErrNoSession = errors.New("auth: no session")

// SessionFrom returns the live session named by the request's cookie.
// ErrNoSession covers a missing, unknown or expired cookie; any other error
// means the store itself failed.
func (a *Auth) SessionFrom(r *http.Request) (*Session, error) {
	s, _, err := a.sessionOf(r)
	return s, err
}

// maxSessionCookies bounds the store look-ups one request can cause.
const maxSessionCookies = 4

// sessionOf finds the live session among the request's cookies of the
// session's name, and the token that named it. Where the name has no
// __Host- prefix (plain http to another host) a sibling host can plant a
// cookie of the same name; the browser then sends both, in an order the
// planter can influence, so each is tried rather than the first alone.
func (a *Auth) sessionOf(r *http.Request) (*Session, string, error) {
	for i, ck := range r.CookiesNamed(a.SessionCookieName()) {
		if i == maxSessionCookies {
			break
		}
		if ck.Value == "" || len(ck.Value) > 128 {
			continue
		}
		raw, err := a.store.Get(r.Context(), sessionKey(ck.Value))
		if errors.Is(err, kv.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		var s Session
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "", fmt.Errorf("auth: stored session unreadable: %w", err)
		}
		if !a.opts.Now().Before(s.ExpiresAt) {
			continue
		}
		return &s, ck.Value, nil
	}
	return nil, "", ErrNoSession
}

// Logout ends the portal session and, when the provider offers one, sends
// the browser on to its end-session endpoint. The route must sit behind the
// CSRF check: a cross-site form must not be able to sign users out.
func (a *Auth) Logout(c echo.Context) error {
	r := c.Request()
	target := a.url("/")
	if s, token, err := a.sessionOf(r); err == nil {
		if err := a.store.Delete(r.Context(), sessionKey(token)); err != nil {
			return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Sign-out could not be completed. Try again in a moment.", err)
		}
		if p, err := a.discover(r.Context()); err == nil && p.endSession != "" {
			if u, err := url.Parse(p.endSession); err == nil {
				q := u.Query()
				q.Set("id_token_hint", s.IDToken)
				q.Set("client_id", a.opts.ClientID)
				q.Set("post_logout_redirect_uri", a.url("/"))
				u.RawQuery = q.Encode()
				target = u.String()
			}
		}
		a.log.InfoContext(r.Context(), "signed out", "user", s.Identity.ID)
		a.opts.OnSignOut(r.Context(), s.Identity)
	}
	c.SetCookie(a.cookie(a.SessionCookieName(), "", "/", -1, http.SameSiteLaxMode))
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusSeeOther, target)
}

func (a *Auth) cookie(name, value, path string, maxAge time.Duration, same http.SameSite) *http.Cookie {
	ck := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		HttpOnly: true,
		Secure:   a.secureCookies(),
		SameSite: same,
	}
	if a.opts.CrossSite {
		ck.SameSite = http.SameSiteNoneMode
		ck.Secure = true
		ck.Partitioned = true
	}
	switch {
	case maxAge < 0:
		ck.MaxAge = -1
	case maxAge > 0:
		ck.MaxAge = int(maxAge / time.Second)
	}
	return ck
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux (Go 1.24+ panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// handoff is what a one-time sign-in hand-off code stands for.
type handoff struct {
	Identity  Identity  `json:"identity"`
	IDToken   string    `json:"idToken"`
	ExpiresAt time.Time `json:"expiresAt"` // the handing session's: a hand-off never extends it
}

const (
	handoffPrefix = "auth-handoff:"
	handoffTTL    = 60 * time.Second
)

// Handoff mints a one-time code for the signed-in caller (POST
// /auth/handoff). A portal framed by an outer portal on another site signs
// in through a popup; with partitioned cookies the popup's session is not
// the frame's, so the popup hands the frame this code, which the frame
// redeems for a session of its own. The route sits behind the CSRF check.
func (a *Auth) Handoff(c echo.Context) error {
	s, err := a.SessionFrom(c.Request())
	if err != nil {
		return apierror.New(http.StatusUnauthorized, "unauthenticated", "Sign in to continue.")
	}
	code := randomToken()
	raw, _ := json.Marshal(handoff{Identity: s.Identity, IDToken: s.IDToken, ExpiresAt: s.ExpiresAt})
	if err := a.store.Set(c.Request().Context(), handoffPrefix+hashCode(code), raw, handoffTTL); err != nil {
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Sign-in cannot be handed over right now. Try again.", err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]string{"code": code})
}

// Redeem trades a hand-off code, once and within a minute, for a new
// session in the caller's cookie partition (POST /auth/handoff/redeem).
func (a *Auth) Redeem(c echo.Context) error {
	var in struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 4096)).Decode(&in); err != nil || in.Code == "" || len(in.Code) > 100 {
		return apierror.New(http.StatusBadRequest, "bad_request", "The sign-in hand-off needs a code.")
	}
	raw, err := a.store.Take(c.Request().Context(), handoffPrefix+hashCode(in.Code))
	if errors.Is(err, kv.ErrNotFound) {
		a.opts.OnSignIn(c.Request().Context(), nil, "bad_handoff")
		return apierror.New(http.StatusUnauthorized, "sign_in_expired", "This sign-in hand-off is used or expired. Sign in again.")
	}
	if err != nil {
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Sign-in cannot be handed over right now. Try again.", err)
	}
	var h handoff
	if err := json.Unmarshal(raw, &h); err != nil || h.ExpiresAt.IsZero() {
		return apierror.Wrap(http.StatusUnauthorized, "sign_in_expired", "This sign-in hand-off is not valid. Sign in again.", err)
	}
	if !a.opts.Now().Before(h.ExpiresAt) {
		return apierror.New(http.StatusUnauthorized, "sign_in_expired", "The sign-in this hand-off came from has expired. Sign in again.")
	}
	if err := a.startSession(c, h.Identity, h.IDToken, h.ExpiresAt); errors.Is(err, ErrNoSession) {
		// It expired between the check above and the store.
		return apierror.New(http.StatusUnauthorized, "sign_in_expired", "The sign-in this hand-off came from has expired. Sign in again.")
	} else if err != nil {
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Your sign-in could not be stored. Try again in a moment.", err)
	}
	return c.NoContent(http.StatusNoContent)
}

// hashCode keys secrets in the store by their SHA-256, never as sent.
func hashCode(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}
