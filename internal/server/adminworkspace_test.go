package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends a JSON API request as s and decodes the answer into v.
func (e *testEnv) call(t *testing.T, s testSession, method, path, body string, v any) int {
	t.Helper()
	r := s.add(req(method, path, strings.NewReader(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", portalOrigin)
	r.Header.Set("X-CSRF-Token", s.csrf)
	w := e.do(r)
	if v != nil && w.Body.Len() > 0 {
		_ = json.Unmarshal(w.Body.Bytes(), v)
	}
	return w.Code
}

func TestAdminStopsAWorkspaceOfTheTenant(t *testing.T) {
	e := newTestEnv(t, nil)
	admin, author := e.signIn(t, alice), e.signIn(t, bob)
	var st struct{ ID, State string }
	if code := e.call(t, author, http.MethodPost, "/api/edit-sessions", `{"name":"Bob's"}`, &st); code != http.StatusCreated {
		t.Fatalf("start: %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for st.State != "ready" && time.Now().Before(deadline) {
		e.call(t, author, http.MethodGet, "/api/edit-sessions/"+st.ID, "", &st)
		time.Sleep(5 * time.Millisecond)
	}
	var list struct {
		Workspaces []struct{ ID, User, State string }
	}
	if code := e.call(t, admin, http.MethodGet, "/api/admin/workspaces", "", &list); code != http.StatusOK || len(list.Workspaces) != 1 {
		t.Fatalf("list: %d %+v", code, list)
	}
	ws := list.Workspaces[0]
	if ws.ID == "" || ws.User != bob.ID || ws.State != "ready" {
		t.Fatalf("row = %+v", ws)
	}
	// Not for authors, not for unknown ids.
	if code := e.call(t, author, http.MethodDelete, "/api/admin/workspaces/"+ws.ID, "", nil); code != http.StatusForbidden {
		t.Errorf("an author stopped a workspace: %d", code)
	}
	if code := e.call(t, admin, http.MethodDelete, "/api/admin/workspaces/0000000000000000", "", nil); code != http.StatusNotFound {
		t.Errorf("unknown workspace: %d", code)
	}
	// The owner cannot stop it under an open editor; the administrator can,
	// ending the session first.
	if code := e.call(t, author, http.MethodDelete, "/api/workspace", "", nil); code != http.StatusConflict {
		t.Errorf("owner's stop under a live session: %d, want 409", code)
	}
	if code := e.call(t, admin, http.MethodDelete, "/api/admin/workspaces/"+ws.ID, "", nil); code != http.StatusNoContent {
		t.Fatalf("admin stop: %d", code)
	}
	var gone struct{ Error struct{ Code string } }
	if code := e.call(t, author, http.MethodGet, "/api/edit-sessions/"+st.ID, "", &gone); code != http.StatusGone || gone.Error.Code != "session_ended" {
		t.Errorf("bob's session after the stop: %d %+v", code, gone)
	}
	e.call(t, admin, http.MethodGet, "/api/admin/workspaces", "", &list)
	if list.Workspaces[0].State != "stopped" {
		t.Errorf("state after the stop: %+v", list.Workspaces[0])
	}
	var audit struct {
		Events []struct{ Action, Target string }
	}
	e.call(t, admin, http.MethodGet, "/api/admin/audit", "", &audit)
	found := false
	for _, ev := range audit.Events {
		found = found || (ev.Action == "workspace.stop" && ev.Target == ws.ID)
	}
	if !found {
		t.Errorf("no workspace.stop audit event: %+v", audit.Events)
	}
}

// TestEndedReasonOnlyForOwnerAndAdmins: why a session ended ("ended by an
// administrator (Alice Anders)") is told to its owner and the tenant's
// administrators; another user of the tenant asking for the id learns
// nothing, not even that it existed.
func TestEndedReasonOnlyForOwnerAndAdmins(t *testing.T) {
	e := newTestEnv(t, nil)
	admin, owner := e.signIn(t, alice), e.signIn(t, bob)
	var st struct{ ID string }
	if code := e.call(t, owner, http.MethodPost, "/api/edit-sessions", `{"name":"Bob's"}`, &st); code != http.StatusCreated {
		t.Fatalf("start: %d", code)
	}
	if code := e.call(t, admin, http.MethodDelete, "/api/admin/sessions/"+st.ID, "", nil); code != http.StatusNoContent {
		t.Fatalf("terminate: %d", code)
	}
	other := bob
	other.ID, other.Name, other.Email = "sub-dave", "Dave Doe", "dave@example.com"
	stranger := e.signIn(t, other)
	outsider := bob
	outsider.Tenant = "elsewhere"
	foreignAdmin := alice
	foreignAdmin.Tenant = "elsewhere"
	for _, c := range []struct {
		who    string
		s      testSession
		status int
	}{
		{"owner", owner, http.StatusGone},
		{"administrator", admin, http.StatusGone},
		{"another user", stranger, http.StatusNotFound},
		{"the owner's id in another tenant", e.signIn(t, outsider), http.StatusNotFound},
		{"another tenant's administrator", e.signIn(t, foreignAdmin), http.StatusNotFound},
	} {
		var out struct {
			Error struct{ Code, Message string }
		}
		code := e.call(t, c.s, http.MethodGet, "/api/edit-sessions/"+st.ID, "", &out)
		if code != c.status {
			t.Errorf("%s: %d %+v, want %d", c.who, code, out, c.status)
		}
		if told := strings.Contains(out.Error.Message, "administrator"); told != (c.status == http.StatusGone) {
			t.Errorf("%s: message %q", c.who, out.Error.Message)
		}
	}
}
