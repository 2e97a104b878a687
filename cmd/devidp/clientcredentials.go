package main

// The OAuth2 client-credentials grant (RFC 6749 §4.4) for machine clients, so
// integration profiles of method oauth2_client_credentials can be exercised
// against a real token endpoint in local runs and tests.
//
// Access tokens are JWTs (RFC 9068 style) signed with the same RS256 key as
// the ID tokens: a resource server checks them against the provider's JWKS
// (/keys) plus iss, aud and exp. The introspection endpoint is not offered for
// them: it would need the resource server registered as a client.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// ccClient is a confidential client allowed only the client-credentials grant.
type ccClient struct {
	id, secret string
	scopes     []string // the scopes it may ask for; none asked: all of them
}

// parseCCClients reads "id:secret[:scope scope…]" entries separated by commas.
func parseCCClients(s string) ([]ccClient, error) {
	var out []ccClient
	seen := map[string]bool{}
	for _, entry := range splitList(s) {
		parts := strings.SplitN(entry, ":", 3)
		if len(parts) < 2 || strings.TrimSpace(parts[0]) == "" || parts[1] == "" {
			return nil, fmt.Errorf("%q: want id:secret[:scope scope…]", redactEntry(entry))
		}
		c := ccClient{id: strings.TrimSpace(parts[0]), secret: parts[1]}
		if len(parts) == 3 {
			c.scopes = strings.Fields(parts[2])
		}
		if seen[c.id] {
			return nil, fmt.Errorf("client %q configured twice", c.id)
		}
		seen[c.id] = true
		out = append(out, c)
	}
	return out, nil
}

// redactEntry keeps a secret out of a configuration error.
func redactEntry(entry string) string {
	id, _, found := strings.Cut(entry, ":")
	if !found {
		return id
	}
	return id + ":…"
}

func (c *ccClient) GetID() string                       { return c.id }
func (c *ccClient) RedirectURIs() []string              { return nil }
func (c *ccClient) PostLogoutRedirectURIs() []string    { return nil }
func (c *ccClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *ccClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *ccClient) ResponseTypes() []oidc.ResponseType  { return nil }
func (c *ccClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (c *ccClient) LoginURL(string) string              { return "" }
func (c *ccClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *ccClient) IDTokenLifetime() time.Duration      { return 0 }
func (c *ccClient) DevMode() bool                       { return false }
func (c *ccClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *ccClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *ccClient) IsScopeAllowed(s string) bool         { return slices.Contains(c.scopes, s) }
func (c *ccClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *ccClient) ClockSkew() time.Duration             { return 0 }
func (c *ccClient) secretMatches(secret string) bool     { return equalSecret(secret, c.secret) }

// equalSecret compares in constant time; hashing first makes the lengths equal.
func equalSecret(a, b string) bool {
	x, y := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

var _ op.Client = (*ccClient)(nil)

// ccTokenRequest is the op.TokenRequest of one client-credentials grant.
type ccTokenRequest struct {
	clientID string
	audience []string
	scopes   []string
}

func (c *ccTokenRequest) GetSubject() string    { return c.clientID }
func (c *ccTokenRequest) GetAudience() []string { return c.audience }
func (c *ccTokenRequest) GetScopes() []string   { return c.scopes }

var (
	_ op.ClientCredentialsStorage       = (*storage)(nil)
	_ op.CanGetPrivateClaimsFromRequest = (*storage)(nil)
)

// ClientCredentials authenticates a machine client (HTTP Basic or form
// fields: the library hands both here). Unknown ids cost the same comparison.
func (s *storage) ClientCredentials(_ context.Context, clientID, clientSecret string) (op.Client, error) {
	c, ok := s.ccClients[clientID]
	if !ok {
		equalSecret(clientSecret, "\x00no-such-client")
		return nil, errors.New("unknown client")
	}
	if !c.secretMatches(clientSecret) {
		return nil, errors.New("wrong client secret")
	}
	return c, nil
}

// ClientCredentialsTokenRequest grants the asked scopes when the client may
// have all of them (invalid_scope otherwise), or every configured scope when
// none is asked. The audience is the request's audience parameter, else the issuer.
func (s *storage) ClientCredentialsTokenRequest(ctx context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	c, ok := s.ccClients[clientID]
	if !ok {
		return nil, oidc.ErrInvalidClient()
	}
	granted := slices.Clone(c.scopes)
	if len(scopes) > 0 {
		for _, sc := range scopes {
			if !c.IsScopeAllowed(sc) {
				return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", sc)
			}
		}
		granted = slices.Clone(scopes)
	}
	aud, _ := ctx.Value(audienceKey{}).(string)
	if aud == "" {
		aud = op.IssuerFromContext(ctx)
	}
	return &ccTokenRequest{clientID: clientID, audience: []string{aud}, scopes: granted}, nil
}

// GetPrivateClaimsFromRequest adds the granted scopes as the space-separated
// "scope" claim (RFC 9068 §2.2.3) of a client-credentials JWT; the user
// flow's access tokens are opaque and get nothing.
func (s *storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	cc, ok := req.(*ccTokenRequest)
	if !ok || len(cc.scopes) == 0 {
		return nil, nil
	}
	return map[string]any{"scope": strings.Join(cc.scopes, " ")}, nil
}

type audienceKey struct{}

// withAudience carries the token request's audience parameter (not part of
// the library's client-credentials request) to ClientCredentialsTokenRequest.
func withAudience(tokenPath string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == tokenPath {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if r.PostFormValue("grant_type") == string(oidc.GrantTypeClientCredentials) {
				if aud := r.PostFormValue("audience"); aud != "" {
					r = r.WithContext(context.WithValue(r.Context(), audienceKey{}, aud))
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
