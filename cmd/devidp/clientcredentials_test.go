package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	ccID     = "robot"
	ccSecret = "r0bot-secret"
)

// tokenRequest posts to the token endpoint, authenticating by HTTP Basic
// when basic is set, by form fields otherwise.
func (idp *testIDP) tokenRequest(t *testing.T, id, secret string, basic bool, form url.Values) (int, map[string]any) {
	t.Helper()
	if !basic {
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, idp.issuer+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := browser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, body, err)
	}
	return resp.StatusCode, out
}

// verifyAccessToken checks the JWT the way a resource server would: the
// signature against the provider's /keys, then iss and exp.
func (idp *testIDP) verifyAccessToken(t *testing.T, token string) map[string]any {
	t.Helper()
	resp, body := get(t, browser(t), idp.issuer+"/keys")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/keys: status %d", resp.StatusCode)
	}
	var keys jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &keys); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("access token is not an RS256 JWS: %v", err)
	}
	kid := jws.Signatures[0].Header.KeyID
	found := keys.Key(kid)
	if len(found) != 1 {
		t.Fatalf("key %q not in /keys", kid)
	}
	payload, err := jws.Verify(found[0].Key)
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != idp.issuer {
		t.Errorf("iss = %v, want %s", claims["iss"], idp.issuer)
	}
	exp, _ := claims["exp"].(float64)
	iat, _ := claims["iat"].(float64)
	now := float64(time.Now().Unix())
	if exp <= now || iat == 0 || iat > now+1 {
		t.Errorf("exp %v / iat %v not around now %v", exp, iat, now)
	}
	return claims
}

func audience(claims map[string]any) []string {
	switch a := claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func TestClientCredentialsGrant(t *testing.T) {
	idp := startIDP(t, "-cc-clients", ccID+":"+ccSecret+":read write")

	t.Run("basic auth, no scope asked: every configured scope, audience is the issuer", func(t *testing.T) {
		status, out := idp.tokenRequest(t, ccID, ccSecret, true, url.Values{"grant_type": {"client_credentials"}})
		if status != http.StatusOK {
			t.Fatalf("status %d: %v", status, out)
		}
		if out["token_type"] != "Bearer" {
			t.Errorf("token_type = %v", out["token_type"])
		}
		if exp, _ := out["expires_in"].(float64); exp < 60 || exp > 15*60 {
			t.Errorf("expires_in = %v", out["expires_in"])
		}
		if _, ok := out["refresh_token"]; ok {
			t.Error("a refresh token was issued")
		}
		claims := idp.verifyAccessToken(t, out["access_token"].(string))
		if claims["sub"] != ccID {
			t.Errorf("sub = %v", claims["sub"])
		}
		if got := audience(claims); !slices.Equal(got, []string{idp.issuer}) {
			t.Errorf("aud = %v, want the issuer", got)
		}
		if claims["scope"] != "read write" {
			t.Errorf("scope = %v", claims["scope"])
		}
	})

	t.Run("form fields, audience and one scope", func(t *testing.T) {
		status, out := idp.tokenRequest(t, ccID, ccSecret, false, url.Values{
			"grant_type": {"client_credentials"}, "scope": {"read"}, "audience": {"http://api.test"},
		})
		if status != http.StatusOK {
			t.Fatalf("status %d: %v", status, out)
		}
		claims := idp.verifyAccessToken(t, out["access_token"].(string))
		if got := audience(claims); !slices.Equal(got, []string{"http://api.test"}) {
			t.Errorf("aud = %v", got)
		}
		if claims["scope"] != "read" || claims["sub"] != ccID {
			t.Errorf("scope = %v, sub = %v", claims["scope"], claims["sub"])
		}
	})

	for _, tc := range []struct {
		name, id, secret string
		basic            bool
		form             url.Values
		status           int
		code             string
	}{
		{"wrong secret (basic)", ccID, "nope", true, url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{"wrong secret (form)", ccID, "nope", false, url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{"no secret", ccID, "", false, url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{"unknown client", "ghost", ccSecret, true, url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{"the sign-in client may not use it", testClientID, testClientSecret, true, url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{"scope not configured", ccID, ccSecret, true, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, 400, "invalid_scope"},
		{"unknown grant type", ccID, ccSecret, true, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}}, 400, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := idp.tokenRequest(t, tc.id, tc.secret, tc.basic, tc.form)
			if status != tc.status || out["error"] != tc.code {
				t.Errorf("got %d %v, want %d %s", status, out, tc.status, tc.code)
			}
			if _, ok := out["access_token"]; ok {
				t.Error("an access token was issued")
			}
		})
	}

	t.Run("discovery lists the grant", func(t *testing.T) {
		_, body := get(t, browser(t), idp.issuer+"/.well-known/openid-configuration")
		var d struct {
			GrantTypes []string `json:"grant_types_supported"`
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(d.GrantTypes, "client_credentials") {
			t.Errorf("grant_types_supported = %v", d.GrantTypes)
		}
	})
}

func TestClientCredentialsOffWithoutClients(t *testing.T) {
	idp := startIDP(t)
	status, out := idp.tokenRequest(t, testClientID, testClientSecret, true, url.Values{"grant_type": {"client_credentials"}})
	if status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Errorf("got %d %v", status, out)
	}
}

func TestParseCCClients(t *testing.T) {
	got, err := parseCCClients("a:s1, b:s2:x y ,")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].id != "a" || got[0].secret != "s1" || len(got[0].scopes) != 0 ||
		got[1].id != "b" || got[1].secret != "s2" || !slices.Equal(got[1].scopes, []string{"x", "y"}) {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []string{"nosecret", "a:", ":s", "a:s,a:t"} {
		if _, err := parseCCClients(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := parseCCClients("a:topsecret:x,b"); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v", err)
	}
	if _, err := parseConfig([]string{"-cc-clients", testClientID + ":x"}, noEnv, nil); err == nil {
		t.Error("a client-credentials client named like the sign-in client was accepted")
	}
}
