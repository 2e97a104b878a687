package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/alert"
	"github.com/playbookstudio/gateway/internal/audit"
)

// alertEnv is a server with the alert service, and one source "default"
// with a key.
type alertEnv struct {
	*testEnv
	svc *alert.Service
	src alert.Source
	key string
}

func newAlertEnv(t *testing.T) *alertEnv {
	t.Helper()
	store, err := alert.NewSQLite(filepath.Join(t.TempDir(), "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	al, _ := audit.NewMemory(slog.New(slog.DiscardHandler), nil)
	svc, err := alert.New(alert.Config{Store: store, Audit: al, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnvWith(t, nil, func(d *Deps) { d.Alerts = svc })
	by := alert.Actor{Tenant: "default", Name: "admin"}
	src, err := svc.CreateSource(t.Context(), by, "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := svc.CreateKey(t.Context(), by, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &alertEnv{testEnv: env, svc: svc, src: src, key: k.Key}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "alert", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// postKey posts body to /api/alerts with a source key, as a SIEM does
// (no cookie, no Origin).
func (e *alertEnv) postKey(key, body string) *httptest.ResponseRecorder {
	r := req(http.MethodPost, "/api/alerts", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	return e.do(r)
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return v
}

type postAnswer struct {
	Alerts []struct {
		ID      string   `json:"id"`
		Created bool     `json:"created"`
		Runs    []string `json:"runs"`
	} `json:"alerts"`
}

func TestAlertPostWithKey(t *testing.T) {
	e := newAlertEnv(t)
	for _, name := range []string{"phishing-high.json", "aws-iam-high.json", "info-low.json", "url-click-medium.json"} {
		w := e.postKey(e.key, fixture(t, name))
		if w.Code != http.StatusAccepted {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		a := decode[postAnswer](t, w)
		if len(a.Alerts) != 1 || !a.Alerts[0].Created || a.Alerts[0].Runs == nil {
			t.Errorf("%s: %s", name, w.Body)
		}
	}
	// Again: accepted, not created.
	w := e.postKey(e.key, fixture(t, "phishing-high.json"))
	if a := decode[postAnswer](t, w); w.Code != http.StatusAccepted || a.Alerts[0].Created {
		t.Errorf("repost: %d %s", w.Code, w.Body)
	}
	for _, c := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"wrong key", e.key[:len(e.key)-3] + "abc", fixture(t, "info-low.json"), 401, "unauthenticated"},
		{"garbage key", "hello", fixture(t, "info-low.json"), 401, "unauthenticated"},
		{"no key, no session", "", fixture(t, "info-low.json"), 401, "unauthenticated"},
		{"missing field", e.key, `{"id":"x","title":"t","createdDateTime":"2026-01-01T00:00:00Z"}`, 400, "invalid_alert"},
		{"not JSON", e.key, `nope`, 400, "bad_request"},
		{"101 alerts", e.key, `{"value":[` + strings.TrimSuffix(strings.Repeat(fixture(t, "info-low.json")+",", 101), ",") + `]}`, 413, "too_large"},
		{"over 1 MiB", e.key, `{"id":"x","pad":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "too_large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := e.postKey(c.key, c.body)
			if w.Code != c.status {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, c.status)
			}
			if code, msg := apiError(t, w); code != c.code || (c.code == "invalid_alert" && !strings.Contains(msg, `"severity"`)) {
				t.Errorf("code %s %q, want %s", code, msg, c.code)
			}
		})
	}
}

func TestAlertPostWithSession(t *testing.T) {
	e := newAlertEnv(t)
	restricted, err := e.svc.CreateSource(t.Context(), alert.Actor{Tenant: "default"}, "sentinel-eu", []string{"soc-eu"})
	if err != nil {
		t.Fatal(err)
	}
	body := fixture(t, "info-low.json")
	a := e.signIn(t, alice)
	if w := e.api(t, a, http.MethodPost, "/api/alerts?source="+e.src.ID, body); w.Code != http.StatusAccepted {
		t.Fatalf("alice: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, a, http.MethodPost, "/api/alerts", body); w.Code != 400 {
		t.Errorf("no ?source: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, a, http.MethodPost, "/api/alerts?source=nope", body); w.Code != 404 {
		t.Errorf("unknown source: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, a, http.MethodPost, "/api/alerts?source="+restricted.ID, body); w.Code != 403 {
		t.Errorf("restricted source without the group: %d %s", w.Code, w.Body)
	} else if code, _ := apiError(t, w); code != "source_forbidden" {
		t.Errorf("code %s", code)
	}
	eu := alice
	eu.ID, eu.Groups = "sub-eu", []string{"soc-eu"}
	// The same alert id belongs to the default source now: another
	// source may not replace it.
	if w := e.api(t, e.signIn(t, eu), http.MethodPost, "/api/alerts?source="+restricted.ID, body); w.Code != http.StatusConflict {
		t.Errorf("another source's alert: %d %s", w.Code, w.Body)
	} else if code, _ := apiError(t, w); code != "alert_other_source" {
		t.Errorf("code %s", code)
	}
	euBody := strings.Replace(body, "da638009988776655443_998877665", "da638009988776655443_eu", 1)
	if w := e.api(t, e.signIn(t, eu), http.MethodPost, "/api/alerts?source="+restricted.ID, euBody); w.Code != http.StatusAccepted {
		t.Errorf("soc-eu member: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, e.signIn(t, bob), http.MethodPost, "/api/alerts?source="+e.src.ID, body); w.Code != 403 {
		t.Errorf("bob (no automation): %d %s", w.Code, w.Body)
	}
	// A session write still needs its CSRF token.
	r := req(http.MethodPost, "/api/alerts?source="+e.src.ID, strings.NewReader(body))
	if w := e.do(a.add(r)); w.Code != 403 {
		t.Errorf("no CSRF token: %d %s", w.Code, w.Body)
	}
}

func TestAlertReadAndChange(t *testing.T) {
	e := newAlertEnv(t)
	for _, n := range []string{"phishing-high.json", "info-low.json"} {
		if w := e.postKey(e.key, fixture(t, n)); w.Code != 202 {
			t.Fatal(w.Body)
		}
	}
	a := e.signIn(t, alice)
	b := e.signIn(t, bob)
	type list struct {
		Alerts []map[string]any `json:"alerts"`
	}
	for _, c := range []struct {
		q    string
		want int
	}{{"", 2}, {"?severity=high", 1}, {"?status=new", 2}, {"?status=resolved", 0}, {"?source=" + e.src.ID, 2}, {"?source=other", 0}, {"?limit=1", 1}} {
		w := e.api(t, b, http.MethodGet, "/api/alerts"+c.q, nil)
		if got := decode[list](t, w); w.Code != 200 || len(got.Alerts) != c.want {
			t.Errorf("list %s: %d, %d alerts, want %d", c.q, w.Code, len(got.Alerts), c.want)
		}
	}
	if w := e.api(t, b, http.MethodGet, "/api/alerts?limit=0", nil); w.Code != 400 {
		t.Errorf("limit=0: %d", w.Code)
	}
	id := "da637578995287051192_756343937"
	w := e.api(t, b, http.MethodGet, "/api/alerts/"+id, nil)
	got := decode[map[string]any](t, w)
	if w.Code != 200 || got["id"] != id || got["source"].(map[string]any)["name"] != "default" || len(got["activity"].([]any)) != 1 {
		t.Fatalf("get: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, b, http.MethodGet, "/api/alerts/nope", nil); w.Code != 404 {
		t.Errorf("unknown alert: %d", w.Code)
	}
	// Another tenant sees nothing.
	other := alice
	other.ID, other.Tenant = "sub-other", "acme"
	o := e.signIn(t, other)
	if w := e.api(t, o, http.MethodGet, "/api/alerts/"+id, nil); w.Code != 404 {
		t.Errorf("another tenant's alert: %d", w.Code)
	}
	if got := decode[list](t, e.api(t, o, http.MethodGet, "/api/alerts", nil)); len(got.Alerts) != 0 {
		t.Errorf("another tenant's list: %d", len(got.Alerts))
	}
	if w := e.api(t, o, http.MethodGet, "/api/incidents/28282", nil); w.Code != 404 {
		t.Errorf("another tenant's incident: %d", w.Code)
	}

	// PATCH: automation only, validated.
	if w := e.api(t, b, http.MethodPatch, "/api/alerts/"+id, map[string]any{"status": "resolved"}); w.Code != 403 {
		t.Errorf("bob patch: %d", w.Code)
	}
	if w := e.api(t, a, http.MethodPatch, "/api/alerts/"+id, map[string]any{"status": "closed"}); w.Code != 400 {
		t.Errorf("bad status: %d", w.Code)
	} else if code, msg := apiError(t, w); code != "invalid_alert_update" || !strings.Contains(msg, "status") {
		t.Errorf("bad status: %s %s", code, msg)
	}
	if w := e.api(t, a, http.MethodPatch, "/api/alerts/"+id, map[string]any{"severity": "low"}); w.Code != 400 {
		t.Errorf("unknown field: %d", w.Code)
	}
	if w := e.api(t, a, http.MethodPatch, "/api/alerts/nope", map[string]any{"status": "resolved"}); w.Code != 404 {
		t.Errorf("patch unknown: %d", w.Code)
	}
	w = e.api(t, a, http.MethodPatch, "/api/alerts/"+id, map[string]any{"status": "inProgress", "assignedTo": "alice@example.com", "determination": "phishing"})
	if p := decode[map[string]any](t, w); w.Code != 200 || p["status"] != "inProgress" || p["assignedTo"] != "alice@example.com" {
		t.Errorf("patch: %d %s", w.Code, w.Body)
	}
	// Comments: anyone signed in.
	if w := e.api(t, b, http.MethodPost, "/api/alerts/"+id+"/comments", map[string]any{"text": "phoned the user"}); w.Code != 201 {
		t.Errorf("comment: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, b, http.MethodPost, "/api/alerts/"+id+"/comments", map[string]any{"text": ""}); w.Code != 400 {
		t.Errorf("empty comment: %d", w.Code)
	}
	if w := e.api(t, b, http.MethodPost, "/api/alerts/nope/comments", map[string]any{"text": "x"}); w.Code != 404 {
		t.Errorf("comment unknown: %d", w.Code)
	}
	if err := e.svc.RecordRun(t.Context(), "default", id, alert.RunActivity{RunID: "r1", PlaybookID: "p", PlaybookVersion: 1, Status: "succeeded"}); err != nil {
		t.Fatal(err)
	}
	type incident struct {
		ID       string           `json:"id"`
		Alerts   []map[string]any `json:"alerts"`
		Activity []alert.Activity `json:"activity"`
	}
	w = e.api(t, b, http.MethodGet, "/api/incidents/28282", nil)
	inc := decode[incident](t, w)
	var kinds []string
	for _, r := range inc.Activity {
		kinds = append(kinds, r.Kind)
	}
	if w.Code != 200 || inc.ID != "28282" || len(inc.Alerts) != 1 || strings.Join(kinds, ",") != "created,updated,comment,run" || inc.Activity[3].RunID != "r1" {
		t.Errorf("incident: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, b, http.MethodGet, "/api/incidents/nope", nil); w.Code != 404 {
		t.Errorf("unknown incident: %d", w.Code)
	}
	type incidents struct {
		Incidents []alert.IncidentSummary `json:"incidents"`
	}
	if got := decode[incidents](t, e.api(t, b, http.MethodGet, "/api/incidents", nil)); len(got.Incidents) != 2 {
		t.Errorf("incidents: %+v", got)
	}
}

func TestSourceRoutes(t *testing.T) {
	e := newAlertEnv(t)
	a := e.signIn(t, alice)
	b := e.signIn(t, bob)
	if w := e.api(t, b, http.MethodPost, "/api/admin/sources", map[string]any{"name": "x"}); w.Code != 403 {
		t.Errorf("bob creates a source: %d", w.Code)
	}
	w := e.api(t, a, http.MethodPost, "/api/admin/sources", map[string]any{"name": "sentinel-us", "groups": []string{"soc-us"}})
	src := decode[alert.Source](t, w)
	if w.Code != 201 || src.ID == "" || src.Groups[0] != "soc-us" {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, a, http.MethodPost, "/api/admin/sources", map[string]any{"name": "SENTINEL-US"}); w.Code != 409 {
		t.Errorf("taken name: %d", w.Code)
	}
	if w := e.api(t, a, http.MethodPost, "/api/admin/sources", map[string]any{"name": ""}); w.Code != 400 {
		t.Errorf("no name: %d", w.Code)
	}
	type sources struct {
		Sources []struct {
			ID         string   `json:"id"`
			Name       string   `json:"name"`
			Groups     []string `json:"groups"`
			Accessible bool     `json:"accessible"`
		} `json:"sources"`
	}
	got := decode[sources](t, e.api(t, a, http.MethodGet, "/api/sources", nil))
	if len(got.Sources) != 2 || !got.Sources[0].Accessible || got.Sources[1].Accessible {
		t.Errorf("alice's sources: %+v", got)
	}
	us := alice
	us.ID, us.Groups = "sub-us", []string{"soc-us"}
	if got := decode[sources](t, e.api(t, e.signIn(t, us), http.MethodGet, "/api/sources", nil)); !got.Sources[1].Accessible {
		t.Errorf("soc-us member's sources: %+v", got)
	}
	if got := decode[sources](t, e.api(t, b, http.MethodGet, "/api/sources", nil)); got.Sources[0].Accessible {
		t.Errorf("bob's sources: %+v", got)
	}
	w = e.api(t, a, http.MethodPost, "/api/admin/sources/"+src.ID+"/keys", nil)
	k := decode[alert.NewKey](t, w)
	if w.Code != 201 || k.Key == "" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("key: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, a, http.MethodPost, "/api/admin/sources/nope/keys", nil); w.Code != 404 {
		t.Errorf("key for unknown source: %d", w.Code)
	}
	if w := e.api(t, a, http.MethodGet, "/api/admin/sources", nil); w.Code != 200 || strings.Contains(w.Body.String(), k.Key) || !strings.Contains(w.Body.String(), k.ID) {
		t.Errorf("admin list: %d %s", w.Code, w.Body)
	}
	if w := e.postKey(k.Key, fixture(t, "info-low.json")); w.Code != 202 {
		t.Errorf("post with the new key: %d %s", w.Code, w.Body)
	}
	if w := e.api(t, a, http.MethodDelete, "/api/admin/sources/"+src.ID+"/keys/"+k.ID, nil); w.Code != 204 {
		t.Errorf("delete key: %d", w.Code)
	}
	if w := e.api(t, a, http.MethodDelete, "/api/admin/sources/"+src.ID+"/keys/"+k.ID, nil); w.Code != 404 {
		t.Errorf("delete key again: %d", w.Code)
	}
	if w := e.postKey(k.Key, fixture(t, "info-low.json")); w.Code != 401 {
		t.Errorf("post with a revoked key: %d", w.Code)
	}
	if w := e.api(t, a, http.MethodDelete, "/api/admin/sources/"+src.ID, nil); w.Code != 204 {
		t.Errorf("delete source: %d", w.Code)
	}
	if w := e.api(t, a, http.MethodDelete, "/api/admin/sources/"+src.ID, nil); w.Code != 404 {
		t.Errorf("delete source again: %d", w.Code)
	}
}

func TestAlertRoutesWithoutService(t *testing.T) {
	e := newTestEnv(t, nil)
	a := e.signIn(t, alice)
	for _, p := range []string{"/api/alerts", "/api/incidents", "/api/sources"} {
		if w := e.api(t, a, http.MethodGet, p, nil); w.Code != http.StatusNotImplemented {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
}
