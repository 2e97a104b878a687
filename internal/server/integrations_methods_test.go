package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/egress/egresstest"
	"github.com/playbookstudio/gateway/internal/integration"
)

// newEgressEnv is a server whose Test connection goes through the real
// egress (which may reach 127.0.0.1 only) to profiles kept by the real
// service: SQLite in a temporary directory, sealed under a fresh master
// key.
func newEgressEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, nil, func(d *Deps) {
		store, err := integration.NewSQLite(filepath.Join(t.TempDir(), "integrations.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		master, err := integration.ParseKey(integration.NewKeyText())
		if err != nil {
			t.Fatal(err)
		}
		keys, err := integration.NewKeyring(master)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := integration.NewService(integration.ServiceConfig{Store: store, Keys: keys, Audit: d.Audit, Log: d.Log, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		calls, err := egress.New(egress.Config{AllowCIDRs: mustNets(t, "127.0.0.1/32")}, svc, d.Log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(calls.Close)
		d.Integrations, d.Egress = svc, calls
	})
}

// answers keeps every API answer of a test, to look for secrets in them.
type answers struct {
	t      *testing.T
	e      *testEnv
	s      testSession
	bodies []string
}

func (a *answers) api(method, path string, body any) *httptest.ResponseRecorder {
	a.t.Helper()
	w := a.e.api(a.t, a.s, method, path, body)
	a.bodies = append(a.bodies, w.Header().Get("X-Echo")+"\n"+w.Body.String())
	return w
}

// test runs Test connection on profile id and decodes its result.
func (a *answers) test(id string) testAnswer {
	a.t.Helper()
	w := a.api(http.MethodPost, "/api/integration-profiles/"+id+"/test", nil)
	var res testAnswer
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &res) != nil || res.DurationMS == nil {
		a.t.Fatalf("test = %d %s", w.Code, w.Body.String())
	}
	return res
}

// leaks fails the test for each secret found in an answer or the log.
func (a *answers) leaks(secrets ...string) {
	a.t.Helper()
	for _, secret := range secrets {
		for _, b := range a.bodies {
			if strings.Contains(b, secret) {
				a.t.Errorf("an answer carries the secret %q: %s", secret, b)
			}
		}
		if strings.Contains(a.e.logs.String(), secret) {
			a.t.Errorf("the log carries the secret %q", secret)
		}
	}
}

// TestIntegrationTestEachMethod: for each of the six methods, a profile
// created through the API passes Test connection against a local server
// that checks its credentials the way the real service does, fails it
// with the service's 401 or 403 once its secret is wrong, and passes
// again when the right one is back. No answer carries a secret.
func TestIntegrationTestEachMethod(t *testing.T) {
	for _, c := range []struct {
		method integration.Method
		// serve starts the verifier; config is the profile's config for
		// the verifier's URL; right and wrong are secrets it takes and
		// refuses.
		serve  func(t *testing.T) *egresstest.Server
		config func(url string) map[string]any
		right  map[string]any
		wrong  map[string]any
		status int // what the service answers a wrong secret
	}{
		{method: integration.OAuth2ClientCredentials,
			serve: func(t *testing.T) *egresstest.Server {
				return egresstest.Serve(t, egresstest.NewOAuth2("client-1", "S3cr3t-oauth-CLIENT-71e0"))
			},
			config: func(url string) map[string]any {
				return map[string]any{"tokenUrl": url + egresstest.TokenPath, "clientId": "client-1", "scopes": []string{"read"}}
			},
			right:  map[string]any{"clientSecret": "S3cr3t-oauth-CLIENT-71e0"},
			wrong:  map[string]any{"clientSecret": "S3cr3t-oauth-WRONG-0a0a"},
			status: http.StatusUnauthorized},
		{method: integration.APIKey,
			serve: func(t *testing.T) *egresstest.Server {
				return egresstest.Serve(t, egresstest.APIKey("header", "X-API-Key", "S3cr3t-apikey-KEY-8d1f"))
			},
			config: func(string) map[string]any { return map[string]any{"in": "header", "name": "X-API-Key"} },
			right:  map[string]any{"apiKey": "S3cr3t-apikey-KEY-8d1f"},
			wrong:  map[string]any{"apiKey": "S3cr3t-apikey-WRONG-1b1b"},
			status: http.StatusForbidden},
		{method: integration.AWSSigV4,
			serve: func(t *testing.T) *egresstest.Server {
				return egresstest.Serve(t, egresstest.NewSigV4("AKIDLOCAL", "S3cr3t-aws-SECRET/44c2", "S3cr3t-aws-SESSION-5e5e"))
			},
			config: func(string) map[string]any {
				return map[string]any{"region": "eu-west-1", "service": "iam", "accessKeyId": "AKIDLOCAL"}
			},
			right:  map[string]any{"secretAccessKey": "S3cr3t-aws-SECRET/44c2", "sessionToken": "S3cr3t-aws-SESSION-5e5e"},
			wrong:  map[string]any{"secretAccessKey": "S3cr3t-aws-WRONG-2c2c", "sessionToken": "S3cr3t-aws-SESSION-5e5e"},
			status: http.StatusForbidden},
		{method: integration.Basic,
			serve: func(t *testing.T) *egresstest.Server {
				return egresstest.Serve(t, egresstest.Basic("svc-soar", "S3cr3t-basic-PASS-9a77"))
			},
			config: func(string) map[string]any { return map[string]any{"username": "svc-soar"} },
			right:  map[string]any{"password": "S3cr3t-basic-PASS-9a77"},
			wrong:  map[string]any{"password": "S3cr3t-basic-WRONG-3d3d"},
			status: http.StatusUnauthorized},
		{method: integration.Bearer,
			serve: func(t *testing.T) *egresstest.Server {
				return egresstest.Serve(t, egresstest.Bearer("S3cr3t-bearer-TOKEN-b0b0"))
			},
			config: func(string) map[string]any { return map[string]any{} },
			right:  map[string]any{"token": "S3cr3t-bearer-TOKEN-b0b0"},
			wrong:  map[string]any{"token": "S3cr3t-bearer-WRONG-4e4e"},
			status: http.StatusUnauthorized},
		{method: integration.Hawk,
			serve: func(t *testing.T) *egresstest.Server {
				return egresstest.Serve(t, egresstest.NewHawk(map[string]egresstest.HawkCredential{
					"app-1": {Key: "S3cr3t-hawk-KEY-c3c3", Algorithm: "sha256"}}, nil))
			},
			config: func(string) map[string]any { return map[string]any{"id": "app-1", "algorithm": "sha256"} },
			right:  map[string]any{"key": "S3cr3t-hawk-KEY-c3c3"},
			wrong:  map[string]any{"key": "S3cr3t-hawk-WRONG-5f5f"},
			status: http.StatusUnauthorized},
	} {
		t.Run(string(c.method), func(t *testing.T) {
			e := newEgressEnv(t)
			a := &answers{t: t, e: e, s: e.signIn(t, alice)}
			srv := c.serve(t)
			w := a.api(http.MethodPost, "/api/integration-profiles", map[string]any{"name": "Local " + string(c.method),
				"baseUrl": srv.URL + "/api", "authMethod": c.method, "config": c.config(srv.URL), "secrets": c.right})
			if w.Code != http.StatusCreated {
				t.Fatalf("create = %d %s", w.Code, w.Body.String())
			}
			id := decodeProfile(t, w).ID

			if res := a.test(id); !res.OK || res.Status != http.StatusOK || res.Error != nil {
				t.Errorf("right secret: %+v (%v)", res, res.Error)
			}

			rotate := func(secrets map[string]any) {
				t.Helper()
				w := a.api(http.MethodPatch, "/api/integration-profiles/"+id, map[string]any{"credentials": map[string]any{"config": c.config(srv.URL), "secrets": secrets}})
				if w.Code != http.StatusOK {
					t.Fatalf("rotate = %d %s", w.Code, w.Body.String())
				}
			}
			rotate(c.wrong)
			res := a.test(id)
			if res.OK || res.Status != c.status || res.Error == nil || !strings.Contains(*res.Error, "("+strconv.Itoa(c.status)+")") {
				t.Errorf("wrong secret: %+v (%v), want ok false, status %d and an error naming it", res, res.Error, c.status)
			}

			// The right secret back: the wrong one left nothing behind (an
			// OAuth2 token, a Hawk nonce).
			rotate(c.right)
			if res := a.test(id); !res.OK || res.Status != http.StatusOK {
				t.Errorf("right secret again: %+v (%v)", res, res.Error)
			}

			var secrets []string
			for _, m := range []map[string]any{c.right, c.wrong} {
				for _, v := range m {
					secrets = append(secrets, v.(string))
				}
			}
			a.leaks(secrets...)
		})
	}
}

// TestIntegrationTestRefusedAddress: a profile whose base URL is on
// 127.0.0.2, which EGRESS_ALLOW_CIDRS (127.0.0.1/32 here) does not cover,
// fails Test connection with the egress's refusal, and the verifier
// listening there sees no connection: the address is refused before
// connect(2).
func TestIntegrationTestRefusedAddress(t *testing.T) {
	const token = "S3cr3t-bearer-REFUSED-d4d4"
	e := newEgressEnv(t)
	a := &answers{t: t, e: e, s: e.signIn(t, alice)}
	srv := egresstest.ServeOn(t, "127.0.0.2:0", egresstest.Bearer(token))
	w := a.api(http.MethodPost, "/api/integration-profiles", map[string]any{"name": "Elsewhere", "baseUrl": srv.URL,
		"authMethod": "bearer", "config": map[string]any{}, "secrets": map[string]any{"token": token}})
	if w.Code != http.StatusCreated {
		t.Fatalf("create = %d %s", w.Code, w.Body.String())
	}
	res := a.test(decodeProfile(t, w).ID)
	if res.OK || res.Status != 0 || res.Error == nil ||
		!strings.Contains(*res.Error, "refused to connect to 127.0.0.2") || !strings.Contains(*res.Error, "EGRESS_ALLOW_CIDRS") {
		t.Errorf("test = %+v (%v), want the egress_refused message naming 127.0.0.2 and EGRESS_ALLOW_CIDRS", res, res.Error)
	}
	if n := srv.Connections(); n != 0 {
		t.Errorf("the verifier on 127.0.0.2 saw %d connections, want none", n)
	}
	a.leaks(token)

	// The verifier does listen there: had the egress dialled, it would
	// have been counted.
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := srv.Connections(); n != 1 {
		t.Errorf("a direct call made %d connections, want 1", n)
	}
}
