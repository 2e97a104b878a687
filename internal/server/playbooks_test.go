package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/playbook/storetest"
)

// apiPlaybook is the Playbook of the API, activeVersion kept raw so null
// and absent differ.
type apiPlaybook struct {
	ID             string          `json:"id"`
	Status         string          `json:"status"`
	ActiveVersion  json.RawMessage `json:"activeVersion"`
	LatestVersion  int             `json:"latestVersion"`
	CurrentVersion int             `json:"currentVersion"`
}

func (p apiPlaybook) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// wantStatus checks the status fields of a Playbook answer.
func wantStatus(t *testing.T, what string, p apiPlaybook, status, active string, latest int) {
	t.Helper()
	if p.Status != status || string(p.ActiveVersion) != active || p.LatestVersion != latest || p.CurrentVersion != latest {
		t.Errorf("%s = %s; want status %s, activeVersion %s, latestVersion %d", what, p, status, active, latest)
	}
}

// Issue 12 point 5: activating v1 then saving v2 leaves v1 live; v2 runs
// only once an automation user activates it.
func TestPlaybookSaveDoesNotGoLive(t *testing.T) {
	e := newTestEnv(t, nil)
	automation, author := e.signIn(t, alice), e.signIn(t, bob)
	ctx := t.Context()
	p, _, err := e.playbooks.Create(ctx, alice.Tenant, "Triage", 100, storetest.Bundle("Alice Anders", 5))
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/playbooks/" + p.ID

	var got apiPlaybook
	if code := e.call(t, author, http.MethodPost, path+"/activate", "", nil); code != http.StatusForbidden {
		t.Errorf("an author without the automation role activated: %d", code)
	}
	if code := e.call(t, automation, http.MethodPost, path+"/activate", `{"version":1}`, &got); code != http.StatusOK {
		t.Fatalf("activate v1: %d", code)
	}
	wantStatus(t, "activate v1", got, "active", "1", 1)

	// A save (what editsession.Save stores) adds version 2.
	if _, _, err := e.playbooks.AddVersion(ctx, alice.Tenant, p.ID, storetest.Bundle("Bob Berg", 7)); err != nil {
		t.Fatal(err)
	}
	var list struct{ Playbooks []apiPlaybook }
	if code := e.call(t, author, http.MethodGet, "/api/playbooks", "", &list); code != http.StatusOK || len(list.Playbooks) != 1 {
		t.Fatalf("list: %d %+v", code, list)
	}
	wantStatus(t, "list after saving v2", list.Playbooks[0], "active", "1", 2)
	got = apiPlaybook{}
	if code := e.call(t, author, http.MethodGet, path, "", &got); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	wantStatus(t, "get after saving v2", got, "active", "1", 2)
	if v, _, err := e.playbooks.ActiveVersion(ctx, alice.Tenant, p.ID); err != nil || v.Number != 1 {
		t.Errorf("the version that runs = %d, %v; want 1", v.Number, err)
	}

	// No body activates the latest; a body may roll back.
	got = apiPlaybook{}
	if code := e.call(t, automation, http.MethodPost, path+"/activate", "", &got); code != http.StatusOK {
		t.Fatalf("activate latest: %d", code)
	}
	wantStatus(t, "activate latest", got, "active", "2", 2)
	got = apiPlaybook{}
	if code := e.call(t, automation, http.MethodPost, path+"/activate", `{"version": 1}`, &got); code != http.StatusOK {
		t.Fatalf("activate v1 again: %d", code)
	}
	wantStatus(t, "roll back to v1", got, "active", "1", 2)
	got = apiPlaybook{}
	if code := e.call(t, automation, http.MethodPost, path+"/activate", `{"version": null}`, &got); code != http.StatusOK {
		t.Fatalf("activate with null version: %d", code)
	}
	wantStatus(t, "activate null (the latest)", got, "active", "2", 2)

	// Deactivation clears the active version; only automation may.
	if code := e.call(t, author, http.MethodPost, path+"/deactivate", "", nil); code != http.StatusForbidden {
		t.Errorf("an author without the automation role deactivated: %d", code)
	}
	got = apiPlaybook{}
	if code := e.call(t, automation, http.MethodPost, path+"/deactivate", "", &got); code != http.StatusOK {
		t.Fatalf("deactivate: %d", code)
	}
	wantStatus(t, "deactivate", got, "disabled", "null", 2)

	// Each activation is audited with the version it put live.
	var audit struct {
		Events []struct {
			Action, Target string
			Detail         map[string]string
		}
	}
	if code := e.call(t, automation, http.MethodGet, "/api/admin/audit?limit=20", "", &audit); code != http.StatusOK {
		t.Fatalf("audit: %d", code)
	}
	var versions []string
	for _, ev := range audit.Events {
		if ev.Target == p.ID && (ev.Action == "playbook.activate" || ev.Action == "playbook.deactivate") {
			versions = append(versions, ev.Action+" "+ev.Detail["version"])
		}
	}
	want := map[string]int{"playbook.activate 1": 2, "playbook.activate 2": 2, "playbook.deactivate 2": 1}
	counts := map[string]int{}
	for _, v := range versions {
		counts[v]++
	}
	if len(counts) != len(want) {
		t.Errorf("audited %v, want %v", versions, want)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("audited %v, want %v", versions, want)
			break
		}
	}
}

func TestPlaybookActivateRefusals(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.signIn(t, alice)
	p, _, err := e.playbooks.Create(t.Context(), alice.Tenant, "Triage", 100, storetest.Bundle("a", 5))
	if err != nil {
		t.Fatal(err)
	}
	bad := storetest.Bundle("a", 5)
	bad.Report.Errors = []playbook.Problem{{Path: "playbook.py", Message: "syntax error"}}
	if _, _, err := e.playbooks.AddVersion(t.Context(), alice.Tenant, p.ID, bad); err != nil {
		t.Fatal(err)
	}
	path := "/api/playbooks/" + p.ID + "/activate"
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"version": 3}`, http.StatusNotFound, "version_not_found"},
		{`{"version": 0}`, http.StatusBadRequest, "bad_request"},
		{`{"version": -1}`, http.StatusBadRequest, "bad_request"},
		{`{"version": "1"}`, http.StatusBadRequest, "bad_request"},
		{`{"versoin": 1}`, http.StatusBadRequest, "bad_request"},
		{`{"version": 2}`, http.StatusConflict, "playbook_not_valid"},
		{``, http.StatusConflict, "playbook_not_valid"}, // the latest is version 2
	} {
		r := s.add(req(http.MethodPost, path, strings.NewReader(tc.body)))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Origin", portalOrigin)
		r.Header.Set("X-CSRF-Token", s.csrf)
		wantError(t, e.do(r), tc.status, tc.code)
	}
	if got, _ := e.playbooks.Get(t.Context(), alice.Tenant, p.ID); got.Status != playbook.StatusDisabled || got.ActiveVersion != nil {
		t.Errorf("after refusals: %+v", got)
	}
	var ok apiPlaybook
	if code := e.call(t, s, http.MethodPost, path, `{"version": 1}`, &ok); code != http.StatusOK {
		t.Fatalf("activate v1: %d", code)
	}
	wantStatus(t, "activate the passing v1", ok, "active", "1", 2)
}
