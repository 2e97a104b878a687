package server

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
)

// profileBodies is one valid create body per method, each with secrets
// that appear nowhere else, keyed by method.
func profileBodies() map[integration.Method]map[string]any {
	return map[integration.Method]map[string]any{
		integration.OAuth2ClientCredentials: {"name": "Graph", "baseUrl": "https://graph.example.com/v1.0", "authMethod": "oauth2_client_credentials",
			"config":  map[string]any{"tokenUrl": "https://login.example.com/t/oauth2/v2.0/token", "clientId": "cid-1", "scopes": []string{"https://graph.example.com/.default"}},
			"secrets": map[string]any{"clientSecret": "S3cr3t-oauth-CLIENTSECRET-7f1e"}},
		integration.APIKey: {"name": "VirusTotal", "description": "VT", "baseUrl": "https://vt.example.com/api/v3", "authMethod": "api_key",
			"config":  map[string]any{"in": "header", "name": "x-apikey"},
			"secrets": map[string]any{"apiKey": "S3cr3t-apikey-APIKEY-22b9"}},
		integration.AWSSigV4: {"name": "AWS IAM", "baseUrl": "https://iam.amazonaws.example.com", "authMethod": "aws_sigv4",
			"config":  map[string]any{"region": "us-east-1", "service": "iam", "accessKeyId": "AKIDEXAMPLE"},
			"secrets": map[string]any{"secretAccessKey": "S3cr3t-aws-SECRETACCESSKEY-93c0", "sessionToken": "S3cr3t-aws-SESSIONTOKEN-0d4a"}},
		integration.Basic: {"name": "Tickets", "baseUrl": "https://tickets.example.com/rest", "authMethod": "basic",
			"config":  map[string]any{"username": "svc-soar"},
			"secrets": map[string]any{"password": "S3cr3t-basic-PASSWORD-55aa"}},
		integration.Bearer: {"name": "Chat", "baseUrl": "https://chat.example.com", "authMethod": "bearer",
			"config":  map[string]any{},
			"secrets": map[string]any{"token": "S3cr3t-bearer-TOKEN-e1e1"}},
		integration.Hawk: {"name": "Hawky", "baseUrl": "https://hawk.example.com/api", "authMethod": "hawk",
			"config":  map[string]any{"id": "dh37fgj492je", "algorithm": "sha256"},
			"secrets": map[string]any{"key": "S3cr3t-hawk-KEY-werxhqb98rpaxn39848"}},
	}
}

func jsonBody(t *testing.T, v any) *strings.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReader(string(b))
}

// api sends an API request as s, with the CSRF header for writes.
func (e *testEnv) api(t *testing.T, s testSession, method, path string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	switch b := body.(type) {
	case nil:
		r = req(method, path, nil)
	case string:
		r = req(method, path, strings.NewReader(b))
	default:
		r = req(method, path, jsonBody(t, b))
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet {
		r.Header.Set("X-CSRF-Token", s.csrf)
		r.Header.Set("Origin", portalOrigin)
	}
	return e.do(s.add(r))
}

func decodeProfile(t *testing.T, w *httptest.ResponseRecorder) integration.Profile {
	t.Helper()
	var p integration.Profile
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("profile body %q: %v", w.Body.String(), err)
	}
	return p
}

func (e *testEnv) createProfile(t *testing.T, s testSession, body map[string]any) integration.Profile {
	t.Helper()
	w := e.api(t, s, http.MethodPost, "/api/integration-profiles", body)
	if w.Code != http.StatusCreated {
		t.Fatalf("create %v: %d %s", body["name"], w.Code, w.Body.String())
	}
	return decodeProfile(t, w)
}

func TestIntegrationProfilesCRUD(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.signIn(t, alice)
	bodies := profileBodies()
	ids := map[integration.Method]string{}
	for _, m := range integration.Methods() {
		p := e.createProfile(t, s, bodies[m])
		if p.AuthMethod != m || p.ID == "" || p.CreatedBy != alice.Name || p.UpdatedBy != alice.Name || p.CreatedAt.IsZero() {
			t.Errorf("%s: created %+v", m, p)
		}
		want := integration.SecretNames(m)
		if m == integration.AWSSigV4 {
			want = []string{"secretAccessKey", "sessionToken"}
		}
		if strings.Join(p.SecretsSet, ",") != strings.Join(want, ",") {
			t.Errorf("%s: secretsSet = %v, want %v", m, p.SecretsSet, want)
		}
		ids[m] = p.ID
	}

	// Bob (author, no automation) reads them but changes nothing.
	b := e.signIn(t, bob)
	w := e.api(t, b, http.MethodGet, "/api/integration-profiles", nil)
	var list struct {
		Profiles []integration.Profile `json:"profiles"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list.Profiles) != 6 {
		t.Fatalf("list = %d %s", w.Code, w.Body.String())
	}
	for _, p := range list.Profiles {
		if p.InUseBy == nil || p.SecretsSet == nil {
			t.Errorf("list entry %q lacks inUseBy or secretsSet: %+v", p.Name, p)
		}
	}
	wantError(t, e.api(t, b, http.MethodPost, "/api/integration-profiles", bodies[integration.Bearer]), http.StatusForbidden, "forbidden")
	wantError(t, e.api(t, b, http.MethodPatch, "/api/integration-profiles/"+ids[integration.Bearer], map[string]any{"name": "x"}), http.StatusForbidden, "forbidden")
	wantError(t, e.api(t, b, http.MethodDelete, "/api/integration-profiles/"+ids[integration.Bearer], nil), http.StatusForbidden, "forbidden")
	wantError(t, e.api(t, b, http.MethodPost, "/api/integration-profiles/"+ids[integration.Bearer]+"/test", nil), http.StatusForbidden, "forbidden")

	w = e.api(t, b, http.MethodGet, "/api/integration-profiles/"+ids[integration.Hawk], nil)
	if got := decodeProfile(t, w); w.Code != http.StatusOK || got.Name != "Hawky" || got.Config.Algorithm != "sha256" {
		t.Errorf("get = %d %s", w.Code, w.Body.String())
	}
	wantError(t, e.api(t, b, http.MethodGet, "/api/integration-profiles/not-an-id", nil), http.StatusNotFound, "integration_not_found")
	wantError(t, e.api(t, b, http.MethodGet, "/api/integration-profiles/00000000-0000-4000-8000-000000000000", nil), http.StatusNotFound, "integration_not_found")

	// Rename and describe; credentials replaced whole.
	id := ids[integration.APIKey]
	w = e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+id, map[string]any{"name": "VT", "description": "new"})
	if p := decodeProfile(t, w); w.Code != http.StatusOK || p.Name != "VT" || p.Description != "new" || p.BaseURL != "https://vt.example.com/api/v3" {
		t.Errorf("rename = %d %s", w.Code, w.Body.String())
	}
	w = e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+id, map[string]any{"credentials": map[string]any{
		"config": map[string]any{"in": "query", "name": "apikey"}, "secrets": map[string]any{"apiKey": "S3cr3t-rotated-APIKEY-6c6c"}}})
	if p := decodeProfile(t, w); w.Code != http.StatusOK || p.Config.In != "query" || p.Config.Name != "apikey" {
		t.Errorf("rotate = %d %s", w.Code, w.Body.String())
	}
	opened, err := e.integrations(t).Open(context.Background(), alice.Tenant, "vt")
	if err != nil || opened.Secrets.APIKey != "S3cr3t-rotated-APIKEY-6c6c" || opened.Config.In != "query" {
		t.Errorf("open after rotation = %+v, %v", opened.Config, err)
	}
	// Credentials of another method's shape are refused.
	wantError(t, e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+id, map[string]any{"credentials": map[string]any{
		"config": map[string]any{"in": "query", "name": "apikey"}, "secrets": map[string]any{"token": "x"}}}), http.StatusBadRequest, "invalid_integration")

	// baseUrl and authMethod never change, whatever the value.
	for _, body := range []string{`{"baseUrl":"https://evil.example.com"}`, `{"name":"x","authMethod":"bearer"}`, `{"baseUrl":"https://vt.example.com/api/v3"}`} {
		w := e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+id, body)
		wantError(t, w, http.StatusBadRequest, "immutable_field")
	}
	wantError(t, e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+id, `{"nmae":"typo"}`), http.StatusBadRequest, "bad_request")
	wantError(t, e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+id, `[1]`), http.StatusBadRequest, "bad_request")
	wantError(t, e.api(t, s, http.MethodPost, "/api/integration-profiles", `{"name":"x","extra":1}`), http.StatusBadRequest, "bad_request")
	wantError(t, e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+id, map[string]any{"name": "graph"}), http.StatusConflict, "integration_name_taken")

	// Names are unique per tenant, whatever the case.
	dup := profileBodies()[integration.Bearer]
	dup["name"] = "CHAT"
	wantError(t, e.api(t, s, http.MethodPost, "/api/integration-profiles", dup), http.StatusConflict, "integration_name_taken")

	// Delete.
	w = e.api(t, s, http.MethodDelete, "/api/integration-profiles/"+ids[integration.Bearer], nil)
	if w.Code != http.StatusNoContent {
		t.Fatalf("delete = %d %s", w.Code, w.Body.String())
	}
	wantError(t, e.api(t, s, http.MethodDelete, "/api/integration-profiles/"+ids[integration.Bearer], nil), http.StatusNotFound, "integration_not_found")

	// Every change audited, naming the secrets set, never their values.
	events, err := e.deps.Audit.Recent(context.Background(), alice.Tenant, 100)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, ev := range events {
		actions[ev.Action]++
	}
	if actions["integration.create"] != 6 || actions["integration.update"] != 1 || actions["integration.rotate"] != 1 || actions["integration.delete"] != 1 {
		t.Errorf("audit actions = %v", actions)
	}
	for _, ev := range events {
		if ev.Action == "integration.rotate" && (ev.Detail["secretsSet"] != "apiKey" || ev.Detail["name"] != "VT" || ev.Detail["method"] != "api_key") {
			t.Errorf("rotate audit = %+v", ev)
		}
	}
}

func (e *testEnv) integrations(t *testing.T) integration.Profiles {
	t.Helper()
	return e.deps.Integrations
}

func TestIntegrationProfileValidationAndLimit(t *testing.T) {
	e := newTestEnv(t, map[string]string{"INTEGRATION_LIMIT": "2"})
	s := e.signIn(t, alice)
	for _, tc := range []struct {
		name  string
		patch func(b map[string]any)
		field string
	}{
		{"no name", func(b map[string]any) { b["name"] = "  " }, "name"},
		{"long name", func(b map[string]any) { b["name"] = strings.Repeat("n", 101) }, "name"},
		{"ftp", func(b map[string]any) { b["baseUrl"] = "ftp://x.example.com" }, "baseUrl"},
		{"relative", func(b map[string]any) { b["baseUrl"] = "/api" }, "baseUrl"},
		{"userinfo", func(b map[string]any) { b["baseUrl"] = "https://u:p@x.example.com" }, "baseUrl"},
		{"query", func(b map[string]any) { b["baseUrl"] = "https://x.example.com/?a=1" }, "baseUrl"},
		{"fragment", func(b map[string]any) { b["baseUrl"] = "https://x.example.com/#f" }, "baseUrl"},
		{"method", func(b map[string]any) { b["authMethod"] = "digest" }, "authMethod"},
		{"missing config", func(b map[string]any) { b["config"] = map[string]any{"in": "header"} }, "config.name"},
		{"other method's config", func(b map[string]any) { b["config"].(map[string]any)["username"] = "u" }, "config.username"},
		{"bad in", func(b map[string]any) { b["config"].(map[string]any)["in"] = "cookie" }, "config.in"},
		{"bad header", func(b map[string]any) { b["config"].(map[string]any)["name"] = "X Key" }, "config.name"},
		{"missing secret", func(b map[string]any) { b["secrets"] = map[string]any{} }, "secrets.apiKey"},
		{"other method's secret", func(b map[string]any) { b["secrets"].(map[string]any)["password"] = "p" }, "secrets.password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := profileBodies()[integration.APIKey]
			tc.patch(b)
			w := e.api(t, s, http.MethodPost, "/api/integration-profiles", b)
			wantError(t, w, http.StatusBadRequest, "invalid_integration")
			if _, msg := apiError(t, w); !strings.Contains(msg, tc.field) {
				t.Errorf("message %q does not name %s", msg, tc.field)
			}
		})
	}
	e.createProfile(t, s, profileBodies()[integration.Basic])
	e.createProfile(t, s, profileBodies()[integration.Hawk])
	w := e.api(t, s, http.MethodPost, "/api/integration-profiles", profileBodies()[integration.Bearer])
	wantError(t, w, http.StatusConflict, "integration_limit")
	if _, msg := apiError(t, w); !strings.Contains(msg, "2") {
		t.Errorf("limit message %q does not name the limit", msg)
	}
}

// TestIntegrationProfileInUse: a profile an active playbook names is
// neither deleted nor renamed, and its answers say by whom.
func TestIntegrationProfileInUse(t *testing.T) {
	var mu sync.Mutex
	using := map[string][]string{}
	e := newTestEnvWith(t, nil, func(d *Deps) {
		d.Integrations = testIntegrations(t, *d, func(_ context.Context, tenant, name string) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			return using[tenant+"/"+strings.ToLower(name)], nil
		})
	})
	s := e.signIn(t, alice)
	p := e.createProfile(t, s, profileBodies()[integration.APIKey])
	mu.Lock()
	using[alice.Tenant+"/virustotal"] = []string{"Enrich hashes", "Block IPs"}
	mu.Unlock()

	w := e.api(t, s, http.MethodDelete, "/api/integration-profiles/"+p.ID, nil)
	wantError(t, w, http.StatusConflict, "integration_in_use")
	if _, msg := apiError(t, w); !strings.Contains(msg, "Enrich hashes") || !strings.Contains(msg, "Block IPs") {
		t.Errorf("in-use message %q does not name the playbooks", msg)
	}
	wantError(t, e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+p.ID, map[string]any{"name": "VT2"}), http.StatusConflict, "integration_in_use")
	// The description, the credentials and a change of case stay allowed.
	w = e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+p.ID, map[string]any{"name": "virustotal", "description": "d"})
	if got := decodeProfile(t, w); w.Code != http.StatusOK || strings.Join(got.InUseBy, ",") != "Enrich hashes,Block IPs" {
		t.Errorf("patch = %d %s", w.Code, w.Body.String())
	}
	w = e.api(t, s, http.MethodGet, "/api/integration-profiles/"+p.ID, nil)
	if got := decodeProfile(t, w); len(got.InUseBy) != 2 {
		t.Errorf("get inUseBy = %v", got.InUseBy)
	}
	mu.Lock()
	delete(using, alice.Tenant+"/virustotal")
	mu.Unlock()
	if w := e.api(t, s, http.MethodDelete, "/api/integration-profiles/"+p.ID, nil); w.Code != http.StatusNoContent {
		t.Errorf("delete once unused = %d %s", w.Code, w.Body.String())
	}
}

// fakeEgress answers Test connection's calls.
type fakeEgress struct {
	mu   sync.Mutex
	got  []egress.Request
	resp *egress.Response
	err  error
}

func (f *fakeEgress) Do(_ context.Context, r egress.Request) (*egress.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, r)
	return f.resp, f.err
}

type testAnswer struct {
	OK         bool    `json:"ok"`
	Status     int     `json:"status"`
	DurationMS *int64  `json:"durationMs"`
	Error      *string `json:"error"`
}

func TestIntegrationProfileTestConnection(t *testing.T) {
	eg := &fakeEgress{}
	e := newTestEnvWith(t, nil, func(d *Deps) { d.Egress = eg })
	s := e.signIn(t, alice)
	p := e.createProfile(t, s, profileBodies()[integration.APIKey])
	path := "/api/integration-profiles/" + p.ID + "/test"
	answer := func(w *httptest.ResponseRecorder) testAnswer {
		t.Helper()
		var a testAnswer
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &a) != nil || a.DurationMS == nil {
			t.Fatalf("test = %d %s", w.Code, w.Body.String())
		}
		return a
	}

	eg.resp = &egress.Response{Status: 200, Duration: 42 * time.Millisecond}
	a := answer(e.api(t, s, http.MethodPost, path, nil))
	if !a.OK || a.Status != 200 || a.Error != nil || *a.DurationMS != 42 {
		t.Errorf("2xx answer = %+v", a)
	}
	if got := eg.got[0]; got.Tenant != alice.Tenant || got.Profile != "VirusTotal" || got.Method != "GET" || got.Path != "/" {
		t.Errorf("egress request = %+v", got)
	}
	answer(e.api(t, s, http.MethodPost, path, map[string]any{"method": "head", "path": "/users/me?x=1"}))
	if got := eg.got[1]; got.Method != "HEAD" || got.Path != "/users/me?x=1" {
		t.Errorf("egress request = %+v", got)
	}

	eg.resp = &egress.Response{Status: 401}
	if a := answer(e.api(t, s, http.MethodPost, path, nil)); a.OK || a.Status != 401 || a.Error == nil || !strings.Contains(*a.Error, "401") {
		t.Errorf("401 answer = %+v", a)
	}

	eg.resp, eg.err = nil, fault.New(fault.Forbidden, "egress_refused", "The address 127.0.0.1 is private; EGRESS_ALLOW_CIDRS does not cover it.")
	if a := answer(e.api(t, s, http.MethodPost, path, nil)); a.OK || a.Status != 0 || a.Error == nil || !strings.Contains(*a.Error, "EGRESS_ALLOW_CIDRS") {
		t.Errorf("refusal answer = %+v", a)
	}

	eg.err = fault.New(fault.Invalid, "invalid_path", "The path leaves the profile's base URL.")
	wantError(t, e.api(t, s, http.MethodPost, path, map[string]any{"path": "/../x"}), http.StatusBadRequest, "invalid_path")

	wantError(t, e.api(t, s, http.MethodPost, path, map[string]any{"method": "GET /x"}), http.StatusBadRequest, "bad_request")
	wantError(t, e.api(t, s, http.MethodPost, path, map[string]any{"verb": "GET"}), http.StatusBadRequest, "bad_request")
	wantError(t, e.api(t, s, http.MethodPost, "/api/integration-profiles/00000000-0000-4000-8000-000000000000/test", nil), http.StatusNotFound, "integration_not_found")
}

func TestIntegrationProfileTestWithoutEgress(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.signIn(t, alice)
	p := e.createProfile(t, s, profileBodies()[integration.Bearer])
	wantError(t, e.api(t, s, http.MethodPost, "/api/integration-profiles/"+p.ID+"/test", nil), http.StatusNotImplemented, "not_implemented")
}

// TestIntegrationListWithWorkspaceToken: the agent sees the same list.
func TestIntegrationListWithWorkspaceToken(t *testing.T) {
	e := newLLMEnv(t, "", 1000)
	ctx := context.Background()
	var in integration.CreateRequest
	b, _ := json.Marshal(profileBodies()[integration.APIKey])
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	if _, err := e.deps.Integrations.Create(ctx, integration.Actor{Tenant: alice.Tenant, UserID: alice.ID, UserName: alice.Name}, in); err != nil {
		t.Fatal(err)
	}
	r := req(http.MethodGet, "/api/integration-profiles", nil)
	r.Header.Set("Authorization", "Bearer "+e.token)
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	var list struct {
		Profiles []map[string]any `json:"profiles"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list.Profiles) != 1 {
		t.Fatalf("list with the token = %d %s", w.Code, w.Body.String())
	}
	p := list.Profiles[0]
	if p["name"] != "VirusTotal" || p["baseUrl"] != "https://vt.example.com/api/v3" || p["authMethod"] != "api_key" {
		t.Errorf("entry = %v", p)
	}
	if strings.Contains(w.Body.String(), "S3cr3t") {
		t.Errorf("the list shows a secret: %s", w.Body.String())
	}
}

// TestIntegrationSecretsNeverShown stores distinctive secrets of every
// method, rotates one, fails validation with one, tests a connection,
// and then looks for each secret in every API answer, every log line,
// the audit log and every file under the data directory (the database,
// its WAL, the key file).
func TestIntegrationSecretsNeverShown(t *testing.T) {
	eg := &fakeEgress{resp: &egress.Response{Status: 204}}
	e := newTestEnvWith(t, nil, func(d *Deps) { d.Egress = eg })
	s := e.signIn(t, alice)
	var answers []string
	keep := func(w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
		answers = append(answers, w.Body.String())
		return w
	}
	var secrets []string
	var ids []string
	for _, m := range integration.Methods() {
		b := profileBodies()[m]
		for _, v := range b["secrets"].(map[string]any) {
			secrets = append(secrets, v.(string))
		}
		w := keep(e.api(t, s, http.MethodPost, "/api/integration-profiles", b))
		if w.Code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", m, w.Code, w.Body.String())
		}
		id := decodeProfile(t, w).ID
		ids = append(ids, id)
		keep(e.api(t, s, http.MethodGet, "/api/integration-profiles/"+id, nil))
		keep(e.api(t, s, http.MethodPost, "/api/integration-profiles/"+id+"/test", nil))
	}
	rotated := "S3cr3t-rotated-TOKEN-abab"
	secrets = append(secrets, rotated)
	keep(e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+ids[4], map[string]any{"credentials": map[string]any{"config": map[string]any{}, "secrets": map[string]any{"token": rotated}}}))
	// Refused requests carrying secrets: wrong method's secret, a bad
	// name, a control character inside the secret.
	bad := "S3cr3t-refused-PASSWORD-cdcd"
	secrets = append(secrets, bad)
	b := profileBodies()[integration.Bearer]
	b["secrets"] = map[string]any{"token": "x", "password": bad}
	keep(e.api(t, s, http.MethodPost, "/api/integration-profiles", b))
	b = profileBodies()[integration.Basic]
	b["name"], b["secrets"] = "", map[string]any{"password": bad}
	keep(e.api(t, s, http.MethodPost, "/api/integration-profiles", b))
	b = profileBodies()[integration.Basic]
	b["name"], b["secrets"] = "Other", map[string]any{"password": bad + "\n"}
	keep(e.api(t, s, http.MethodPost, "/api/integration-profiles", b))
	keep(e.api(t, s, http.MethodPatch, "/api/integration-profiles/"+ids[1], map[string]any{"baseUrl": "x", "credentials": map[string]any{"secrets": map[string]any{"apiKey": bad}}}))
	keep(e.api(t, s, http.MethodGet, "/api/integration-profiles", nil))
	keep(e.api(t, s, http.MethodGet, "/api/admin/audit", nil))

	// The secrets were stored: the egress gets them.
	if o, err := e.deps.Integrations.Open(context.Background(), alice.Tenant, "chat"); err != nil || o.Secrets.Token != rotated {
		t.Fatalf("open = %v", err)
	}

	var files []string
	err := filepath.WalkDir(e.cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, path+"\x00"+string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sawWAL := false
	for _, f := range files {
		if strings.HasSuffix(strings.SplitN(f, "\x00", 2)[0], "-wal") {
			sawWAL = true
		}
	}
	if !sawWAL {
		t.Errorf("no WAL file under the data dir to search: %d files", len(files))
	}
	events, _ := e.deps.Audit.Recent(context.Background(), alice.Tenant, 1000)
	auditJSON, _ := json.Marshal(events)
	places := map[string][]string{
		"API answers": answers,
		"logs":        {e.logs.String()},
		"audit":       {string(auditJSON)},
		"data dir":    files,
	}
	for _, secret := range secrets {
		for where, texts := range places {
			for _, text := range texts {
				if strings.Contains(text, secret) {
					t.Errorf("secret %q found in the %s", secret, where)
				}
			}
		}
	}
	if len(e.logs.String()) == 0 || len(answers) < 20 {
		t.Errorf("too little searched: %d log bytes, %d answers", len(e.logs.String()), len(answers))
	}
}
