package egress

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
)

// auth adds one profile's credentials to a request.
type auth struct {
	p   opened
	e   *Egress
	red *redactor
	tok *oauth2.Token // the OAuth2 token last used
}

func newAuth(p opened, e *Egress) (*auth, error) {
	a := &auth{p: p, e: e, red: newRedactor(p.Secrets.Values()...)}
	switch p.AuthMethod {
	case integration.Basic:
		a.red.add(base64.StdEncoding.EncodeToString([]byte(p.Config.Username + ":" + p.Secrets.Password)))
	case integration.APIKey:
		if p.Config.Name == "" || (p.Config.In != "header" && p.Config.In != "query") {
			return nil, misconfigured(p, `api_key needs config.in ("header" or "query") and config.name`)
		}
	case integration.OAuth2ClientCredentials:
		if u, err := url.Parse(p.Config.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, misconfigured(p, "oauth2_client_credentials needs config.tokenUrl, an absolute http(s) URL")
		}
	case integration.AWSSigV4:
		if p.Config.Region == "" || p.Config.Service == "" || p.Config.AccessKeyID == "" {
			return nil, misconfigured(p, "aws_sigv4 needs config.region, config.service and config.accessKeyId")
		}
	case integration.Hawk:
		if _, err := hawkHasher(p.Config.Algorithm); err != nil || p.Config.ID == "" {
			return nil, misconfigured(p, `hawk needs config.id and config.algorithm ("sha256" or "sha1")`)
		}
	case integration.Bearer:
	default:
		return nil, misconfigured(p, fmt.Sprintf("unknown authMethod %q", p.AuthMethod))
	}
	return a, nil
}

func misconfigured(p opened, msg string) error {
	return fault.New(fault.Invalid, "invalid_integration", fmt.Sprintf("profile %q: %s", p.Name, msg))
}

func (a *auth) redactor() *redactor { return a.red }

// retryOn401 is true for the methods whose credential can be renewed.
func (a *auth) retryOn401() bool { return a.p.AuthMethod == integration.OAuth2ClientCredentials }

// apply signs or decorates req. For OAuth2, a token endpoint that refuses
// the client is answered with its own response (a wrong secret is the
// caller's to see, not an egress failure); refresh asks for a new token.
func (a *auth) apply(ctx context.Context, req *http.Request, body []byte, refresh bool) (*Response, error) {
	p := a.p
	switch p.AuthMethod {
	case integration.Basic:
		req.SetBasicAuth(p.Config.Username, p.Secrets.Password)
	case integration.Bearer:
		req.Header.Set("Authorization", "Bearer "+p.Secrets.Token)
	case integration.APIKey:
		if p.Config.In == "header" {
			req.Header.Set(p.Config.Name, p.Secrets.APIKey)
		} else {
			q := req.URL.Query()
			q.Set(p.Config.Name, p.Secrets.APIKey)
			req.URL.RawQuery = q.Encode()
		}
	case integration.OAuth2ClientCredentials:
		tok, resp, err := a.e.tokens.get(ctx, a.e, p, a.tok, refresh)
		if err != nil || resp != nil {
			if resp != nil {
				resp.Header = a.red.header(resp.Header)
				resp.Body = a.red.bytes(resp.Body)
			}
			return resp, err
		}
		a.tok = tok
		a.red.add(tok.AccessToken)
		a.red.add(tok.RefreshToken)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	case integration.AWSSigV4:
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		// S3 wants the payload hash as a header (and refuses without it);
		// other services accept it signed like any x-amz-* header.
		req.Header.Set("X-Amz-Content-Sha256", hash)
		creds := aws.Credentials{AccessKeyID: p.Config.AccessKeyID, SecretAccessKey: p.Secrets.SecretAccessKey, SessionToken: p.Secrets.SessionToken}
		signer := v4.NewSigner(func(o *v4.SignerOptions) {
			// S3 is the one service whose canonical path is not
			// URI-encoded a second time.
			o.DisableURIPathEscaping = p.Config.Service == "s3"
		})
		if err := signer.SignHTTP(ctx, creds, req, hash, p.Config.Service, p.Config.Region, a.e.now()); err != nil {
			return nil, fmt.Errorf("aws sigv4: %w", err)
		}
	case integration.Hawk:
		h, err := hawkFor(p.Config.ID, p.Secrets.Key, p.Config.Algorithm, req.Method, req.URL, req.Header.Get("Content-Type"), body, a.e.now())
		if err != nil {
			return nil, err
		}
		v, err := h.header()
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", v)
	}
	return nil, nil
}

// tokenCache keeps one OAuth2 token per tenant and profile (and
// credentials: rotating them starts afresh) until it expires.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]*tokenEntry
}

type tokenEntry struct {
	mu  sync.Mutex // one token request at a time per profile
	tok *oauth2.Token
}

// maxTokens bounds the cache: profiles are at most INTEGRATION_LIMIT per
// tenant, and an entry left by rotated credentials is dropped this way.
const maxTokens = 10_000

func newTokenCache() *tokenCache { return &tokenCache{m: map[string]*tokenEntry{}} }

func tokenKey(p opened) string {
	h := sha256.New()
	for _, s := range append([]string{p.Tenant, p.ID, p.Name, p.Config.TokenURL, p.Config.ClientID, p.Secrets.ClientSecret, p.Config.Audience}, p.Config.Scopes...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// get returns a valid token: the cached one, unless refresh is set and it
// is the one that just earned a 401 (another call may already have
// replaced it).
func (c *tokenCache) get(ctx context.Context, e *Egress, p opened, used *oauth2.Token, refresh bool) (*oauth2.Token, *Response, error) {
	key := tokenKey(p)
	c.mu.Lock()
	ent := c.m[key]
	if ent == nil {
		if len(c.m) >= maxTokens {
			c.m = map[string]*tokenEntry{}
		}
		ent = &tokenEntry{}
		c.m[key] = ent
	}
	c.mu.Unlock()

	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.tok != nil && ent.tok.Valid() && !(refresh && used != nil && ent.tok.AccessToken == used.AccessToken) {
		return ent.tok, nil, nil
	}
	ent.tok = nil
	cc := clientcredentials.Config{
		ClientID:     p.Config.ClientID,
		ClientSecret: p.Secrets.ClientSecret,
		TokenURL:     p.Config.TokenURL,
		Scopes:       p.Config.Scopes,
	}
	if p.Config.Audience != "" {
		cc.EndpointParams = url.Values{"audience": {p.Config.Audience}}
	}
	// The token request goes through the same client, so the same dialer
	// and address policy, as the call itself.
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, e.client))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			h := re.Response.Header.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("X-Egress-Stage", "token")
			return nil, &Response{Status: re.Response.StatusCode, Header: h, Body: re.Body}, nil
		}
		if _, ok := fault.As(err); ok {
			return nil, nil, err
		}
		var refused *RefusedError
		if errors.As(err, &refused) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("token request to %s: %w", hostOf(p.Config.TokenURL), err)
	}
	if strings.TrimSpace(tok.AccessToken) == "" {
		return nil, nil, fault.New(fault.Unavailable, "egress_token_invalid", "the token endpoint "+hostOf(p.Config.TokenURL)+" answered without an access token")
	}
	ent.tok = tok
	return tok, nil, nil
}

func hostOf(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Host
	}
	return "the token endpoint"
}
