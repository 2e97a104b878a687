package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	authRequestTTL   = 10 * time.Minute // auth request and its code
	accessTokenTTL   = 15 * time.Minute
	idTokenTTL       = time.Hour
	claimRoles       = "roles"
	claimTenant      = "tenant"
	claimGroups      = "groups"
	loginPath        = "/login"
	loggedOutPath    = "/logged-out"
	queryAuthRequest = "authRequestID"
)

var errNotFound = errors.New("not found or expired")

// storage is the in-memory op.Storage of the dev provider.
type storage struct {
	users  *userStore
	client *client
	// ccClients are the client-credentials clients, fixed after construction.
	ccClients map[string]*ccClient
	key       *signingKey
	now       func() time.Time

	mu           sync.Mutex
	authRequests map[string]*authRequest // by id
	codes        map[string]string       // code -> auth request id
	tokens       map[string]*accessToken // by id
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(users *userStore, c *client) (*storage, error) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return &storage{
		users:        users,
		client:       c,
		ccClients:    make(map[string]*ccClient),
		key:          &signingKey{id: rand.Text(), key: rsaKey},
		now:          time.Now,
		authRequests: make(map[string]*authRequest),
		codes:        make(map[string]string),
		tokens:       make(map[string]*accessToken),
	}, nil
}

// authRequest implements op.AuthRequest. The storage hands out copies, so
// the library never shares memory with the login handlers.
type authRequest struct {
	id            string
	created       time.Time
	clientID      string
	redirectURI   string
	state         string
	nonce         string
	scopes        []string
	responseType  oidc.ResponseType
	responseMode  oidc.ResponseMode
	codeChallenge string
	csrfToken     string
	code          string

	userID   string
	authTime time.Time
	done     bool
}

func (a *authRequest) GetID() string                      { return a.id }
func (a *authRequest) GetACR() string                     { return "" }
func (a *authRequest) GetAudience() []string              { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time             { return a.authTime }
func (a *authRequest) GetClientID() string                { return a.clientID }
func (a *authRequest) GetNonce() string                   { return a.nonce }
func (a *authRequest) GetRedirectURI() string             { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.responseMode }
func (a *authRequest) GetScopes() []string                { return a.scopes }
func (a *authRequest) GetState() string                   { return a.state }
func (a *authRequest) GetSubject() string                 { return a.userID }
func (a *authRequest) Done() bool                         { return a.done }

func (a *authRequest) GetAMR() []string {
	if a.done {
		return []string{"pwd"}
	}
	return nil
}

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	// Only S256 requests are ever stored (see CreateAuthRequest).
	return &oidc.CodeChallenge{Challenge: a.codeChallenge, Method: oidc.CodeChallengeMethodS256}
}

// LogValue keeps the id, nonce, state, CSRF token and code out of the library's logs.
func (a *authRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("client_id", a.clientID),
		slog.String("redirect_uri", a.redirectURI),
		slog.Any("scopes", a.scopes),
	)
}

func (a *authRequest) expired(now time.Time) bool { return now.Sub(a.created) > authRequestTTL }

type accessToken struct {
	id, subject, clientID string
	scopes                []string
	expires               time.Time
}

// CreateAuthRequest stores a validated auth request. PKCE with S256 is
// mandatory here; the library itself would also accept plain or no PKCE.
func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required: send code_challenge with code_challenge_method=S256")
	}
	if req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired().WithDescription("this provider keeps no sessions; prompt=none cannot succeed")
	}
	now := s.now()
	a := &authRequest{
		id:            rand.Text(),
		created:       now,
		clientID:      req.ClientID,
		redirectURI:   req.RedirectURI,
		state:         req.State,
		nonce:         req.Nonce,
		scopes:        slices.Clone(req.Scopes),
		responseType:  req.ResponseType,
		responseMode:  req.ResponseMode,
		codeChallenge: req.CodeChallenge,
		csrfToken:     rand.Text(),
		userID:        userID,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	s.authRequests[a.id] = a
	c := *a
	return &c, nil
}

// sweepLocked drops expired auth requests, codes and tokens.
func (s *storage) sweepLocked(now time.Time) {
	for id, a := range s.authRequests {
		if a.expired(now) {
			s.deleteAuthRequestLocked(id)
		}
	}
	for id, t := range s.tokens {
		if now.After(t.expires) {
			delete(s.tokens, id)
		}
	}
}

func (s *storage) deleteAuthRequestLocked(id string) {
	if a, ok := s.authRequests[id]; ok && a.code != "" {
		delete(s.codes, a.code)
	}
	delete(s.authRequests, id)
}

func (s *storage) liveAuthRequestLocked(id string) (*authRequest, error) {
	a, ok := s.authRequests[id]
	if !ok {
		return nil, errNotFound
	}
	if a.expired(s.now()) {
		s.deleteAuthRequestLocked(id)
		return nil, errNotFound
	}
	return a, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.liveAuthRequestLocked(id)
	if err != nil {
		return nil, fmt.Errorf("auth request: %w", err)
	}
	c := *a
	return &c, nil
}

// AuthRequestByCode consumes the code: whatever the outcome of the token
// request (wrong verifier, wrong client...), a code works at most once.
func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, fmt.Errorf("code: %w", errNotFound)
	}
	delete(s.codes, code)
	a, err := s.liveAuthRequestLocked(id)
	if err != nil {
		return nil, fmt.Errorf("code: %w", err)
	}
	a.code = ""
	c := *a
	return &c, nil
}

// SaveAuthCode keeps one code per auth request; a new one replaces the old.
func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.liveAuthRequestLocked(id)
	if err != nil {
		return fmt.Errorf("auth request: %w", err)
	}
	if a.code != "" {
		delete(s.codes, a.code)
	}
	a.code = code
	s.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteAuthRequestLocked(id)
	return nil
}

// loginView is what the login page needs to know about an auth request.
type loginView struct {
	clientID  string
	csrfToken string
}

func (s *storage) loginRequest(id string) (loginView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.liveAuthRequestLocked(id)
	if err != nil {
		return loginView{}, err
	}
	if a.done {
		return loginView{}, errors.New("auth request already completed")
	}
	return loginView{clientID: a.clientID, csrfToken: a.csrfToken}, nil
}

// checkCSRF compares the token in the form with the one bound to the auth request.
func (s *storage) checkCSRF(id, token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.liveAuthRequestLocked(id)
	return err == nil && !a.done && token != "" &&
		subtle.ConstantTimeCompare([]byte(token), []byte(a.csrfToken)) == 1
}

// completeLogin marks the auth request as authenticated for sub.
func (s *storage) completeLogin(id, sub string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.liveAuthRequestLocked(id)
	if err != nil {
		return err
	}
	if a.done {
		return errors.New("auth request already completed")
	}
	a.userID, a.authTime, a.done = sub, s.now(), true
	a.csrfToken = rand.Text() // the form cannot be replayed
	return nil
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	var clientID string
	switch r := req.(type) {
	case *authRequest:
		clientID = r.clientID
	case *ccTokenRequest:
		clientID = r.clientID
	}
	now := s.now()
	t := &accessToken{
		id:       rand.Text(),
		subject:  req.GetSubject(),
		clientID: clientID,
		scopes:   slices.Clone(req.GetScopes()),
		expires:  now.Add(accessTokenTTL),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	s.tokens[t.id] = t
	return t.id, t.expires, nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens are not supported")
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, oidc.ErrInvalidGrant().WithDescription("refresh tokens are not supported")
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, id)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
		}
		delete(s.tokens, tokenID)
	}
	return nil
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	if clientID != s.client.id {
		return nil, fmt.Errorf("client %q: %w", clientID, errNotFound)
	}
	return s.client, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, clientID, secret string) error {
	idOK := subtle.ConstantTimeCompare([]byte(clientID), []byte(s.client.id))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(s.client.secret))
	if idOK&secretOK != 1 {
		return errors.New("invalid client credentials")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in the library; SetUserinfoFromRequest does the work.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token claims.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(info, req.GetSubject(), scopes)
}

// SetUserinfoFromToken fills the userinfo endpoint response.
func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || t.subject != subject || s.now().After(t.expires) {
		return errors.New("access token invalid or expired")
	}
	return s.setUserinfo(info, t.subject, t.scopes)
}

func (s *storage) setUserinfo(info *oidc.UserInfo, sub string, scopes []string) error {
	u, ok := s.users.bySubject(sub)
	if !ok {
		return fmt.Errorf("user %q: %w", sub, errNotFound)
	}
	// Subject must be set: IDTokenClaims.SetUserInfo copies it over the sub claim.
	info.Subject = u.Sub
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.Name = u.Name
		info.PreferredUsername = u.Username
	}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email = u.Email
		info.EmailVerified = true
	}
	info.AppendClaims(claimRoles, slices.Clone(u.Roles))
	info.AppendClaims(claimTenant, u.Tenant)
	info.AppendClaims(claimGroups, slices.Clone(u.Groups))
	return nil
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || t.subject != subject || t.clientID != clientID || s.now().After(t.expires) {
		return errors.New("access token invalid or expired")
	}
	info := new(oidc.UserInfo)
	if err := s.setUserinfo(info, t.subject, t.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = t.scopes
	resp.ClientID = t.clientID
	resp.Expiration = oidc.FromTime(t.expires)
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil // access tokens are opaque
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT client authentication is not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile grant is not supported")
}

func (s *storage) Health(context.Context) error { return nil }

// signingKey is the ephemeral RS256 key; publicKey is its JWKS view.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }

// client is the single confidential client; it implements op.Client.
type client struct {
	id, secret             string
	redirectURIs           []string
	postLogoutRedirectURIs []string
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return c.postLogoutRedirectURIs }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType        { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return idTokenTTL }
func (c *client) DevMode() bool                       { return false }
func (c *client) IsScopeAllowed(string) bool          { return false } // unknown scopes are dropped
func (c *client) ClockSkew() time.Duration            { return 0 }
func (c *client) LoginURL(id string) string {
	return loginPath + "?" + queryAuthRequest + "=" + url.QueryEscape(id)
}
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IDTokenUserinfoClaimsAssertion puts profile/email claims into the ID token
// even though an access token is issued too (the library strips them otherwise).
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
