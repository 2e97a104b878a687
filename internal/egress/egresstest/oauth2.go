package egresstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// TokenPath is where an OAuth2 server answers token requests; every other
// path is its resource server.
const TokenPath = "/token"

// OAuth2 is an authorization server's token endpoint (client credentials
// grant, the client authenticated by HTTP Basic or in the form) and a
// resource server that accepts only the tokens it issued and has not
// revoked, answering 401 invalid_token otherwise.
type OAuth2 struct {
	clientID, clientSecret string

	mu       sync.Mutex
	valid    map[string]bool
	issued   int
	lastForm url.Values
}

// NewOAuth2 is a server for one client.
func NewOAuth2(clientID, clientSecret string) *OAuth2 {
	return &OAuth2{clientID: clientID, clientSecret: clientSecret, valid: map[string]bool{}}
}

// Issued is how many tokens the token endpoint has issued.
func (o *OAuth2) Issued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.issued
}

// LastForm is the form of the last successful token request.
func (o *OAuth2) LastForm() url.Values {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastForm
}

// RevokeAll revokes every token issued so far, as a resource server does
// when a token is revoked before it expires.
func (o *OAuth2) RevokeAll() {
	o.mu.Lock()
	o.valid = map[string]bool{}
	o.mu.Unlock()
}

func (o *OAuth2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == TokenPath {
		o.token(w, r)
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	o.mu.Lock()
	ok := o.valid[tok]
	o.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "hello with %s and %s", tok, body)
}

func (o *OAuth2) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if r.PostForm.Get("grant_type") != "client_credentials" || id != o.clientID || secret != o.clientSecret {
		// Quoting the secret it refused, as careless servers do: the
		// egress must not pass it on.
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad secret %s"}`, secret)
		return
	}
	o.mu.Lock()
	o.issued++
	tok := fmt.Sprintf("access-%d-%s", o.issued, strings.Repeat("x", 8))
	o.valid[tok] = true
	o.lastForm = r.PostForm
	o.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}
