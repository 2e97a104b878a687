package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/workspace"
)

const phishingPlaybook = `"""Phishing triage: disable the sender's account and tell the SOC."""
import json
import re


def run(alert, ctx):
    sender = None
    for ev in alert.get("evidence", []):
        if ev.get("@odata.type", "").endswith("mailboxEvidence"):
            sender = ev.get("primaryAddress")
    if not sender or not re.match(r"[^@]+@[^@]+", sender):
        return {"status": "skipped", "reason": "no sender"}
    user = ctx.integration("directory").get_user(sender)
    if user:
        ctx.integration("directory").disable_user(user["id"])
    ctx.notify("soc", json.dumps({"alert": alert.get("id"), "sender": sender}))
    return {"status": "done", "sender": sender}
`

const phishingReadme = "# Phishing triage\n\nDisables the sender of a phishing mail and tells the SOC.\n\n```mermaid\nflowchart TD\n  A[Alert] --> B{Sender?}\n  B -- yes --> C[Disable account]\n  C --> D[Notify SOC]\n```\n"

const phishingManifest = `{"name": "Phishing triage", "description": "Disable the phishing sender and notify the SOC", "integrations": ["directory"], "entrypoint": "playbook.py:run"}`

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// workspaceToken reads the PLAYBOOK_GATEWAY_TOKEN of a running local
// workspace, as its extension sees it.
func workspaceToken(t *testing.T, dataDir, key string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "workspaces", "ws", key, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ PID int }
	json.Unmarshal(raw, &m)
	env, err := os.ReadFile("/proc/" + strconv.Itoa(m.PID) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "PLAYBOOK_GATEWAY_TOKEN="); ok {
			return v
		}
	}
	t.Fatal("no PLAYBOOK_GATEWAY_TOKEN in the workspace")
	return ""
}

type apiError struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Problems []struct {
		Path    string
		Line    int
		Message string
	} `json:"problems"`
}

// TestSaveWithRealWorkspace writes a playbook into a real local workspace,
// saves it (from the portal, then from the extension's token), finds a
// disabled playbook whose files match, activates it, and checks the
// refusals: invalid files, a stale session, the playbook limit.
func TestSaveWithRealWorkspace(t *testing.T) {
	g, idp, env := gatewayWithWorkspaces(t, map[string]string{"PLAYBOOK_LIMIT": "2"})
	alice := newBrowser(t)
	signIn(t, alice, g, idp, "alice", "alice")
	var am me
	alice.getJSON(t, g.base+"/api/me", &am)
	key := workspace.KeyFor(am.Tenant, am.ID)
	project := filepath.Join(env["DATA_DIR"], "workspaces", "ws", key, "home", "project")

	var s startedSession
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Phishing triage"}, &s); code != http.StatusCreated {
		t.Fatalf("start: %d %+v", code, s.Error)
	}
	waitReady(t, alice, g, am.CSRFToken, s.ID)
	// The playbook's own folder: its slug and its (reserved) id.
	if !strings.HasPrefix(s.Folder, "phishing-triage--") {
		t.Fatalf("folder = %q, want phishing-triage--<id>", s.Folder)
	}
	folder := filepath.Join(project, s.Folder)

	// Invalid: a forbidden import and no README → 422 with the problems.
	writeFiles(t, folder, map[string]string{"playbook.py": "import requests\n\ndef run(alert, ctx):\n    return {}\n"})
	var bad apiError
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions/"+s.ID+"/save", nil, &bad); code != http.StatusUnprocessableEntity || bad.Error == nil || bad.Error.Code != "validation_failed" {
		t.Fatalf("invalid save: %d %+v", code, bad.Error)
	}
	found := false
	for _, p := range bad.Problems {
		if p.Path == "playbook.py" && p.Line == 1 && strings.Contains(p.Message, "requests") {
			found = true
		}
	}
	if !found {
		t.Fatalf("problems lack the forbidden import: %+v", bad.Problems)
	}

	// Valid: saved as version 1 of a new, disabled playbook.
	files := map[string]string{"playbook.py": phishingPlaybook, "README.md": phishingReadme, "manifest.json": phishingManifest, "lib/helpers.txt": "notes\n"}
	writeFiles(t, folder, files)
	writeFiles(t, folder, map[string]string{".agent/history.json": "{}"})
	var saved struct {
		Playbook struct {
			ID, Name, Status, Description string
			CurrentVersion                int
		}
		Version struct {
			Number int
			Lines  int
			Files  []struct {
				Path, SHA256 string
				Size         int64
			}
		}
	}
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions/"+s.ID+"/save", nil, &saved); code != http.StatusCreated {
		t.Fatalf("save: %d\n%s", code, g.stdout)
	}
	if saved.Playbook.Status != "disabled" || saved.Version.Number != 1 || saved.Playbook.Name != "Phishing triage" || saved.Playbook.Description == "" {
		t.Fatalf("saved %+v", saved)
	}
	if len(saved.Version.Files) != len(files) {
		t.Fatalf("saved files %+v (the .agent folder must not be collected)", saved.Version.Files)
	}
	for _, f := range saved.Version.Files {
		sum := sha256.Sum256([]byte(files[f.Path]))
		if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(files[f.Path])) {
			t.Errorf("file %s does not match what was written", f.Path)
		}
	}

	// The list shows it disabled at version 1; the detail has the docs
	// and the diagram; version 1 has the contents.
	var list struct {
		Playbooks []struct {
			ID, Status     string
			CurrentVersion int
		}
	}
	alice.api(t, g, am.CSRFToken, http.MethodGet, "/api/playbooks", nil, &list)
	if len(list.Playbooks) != 1 || list.Playbooks[0].Status != "disabled" || list.Playbooks[0].CurrentVersion != 1 {
		t.Fatalf("list %+v", list)
	}
	pid := saved.Playbook.ID
	var detail struct {
		Documentation, FlowDiagram string
		EditedBy                   *string
	}
	alice.api(t, g, am.CSRFToken, http.MethodGet, "/api/playbooks/"+pid, nil, &detail)
	if detail.Documentation != phishingReadme || !strings.HasPrefix(detail.FlowDiagram, "flowchart TD") || detail.EditedBy == nil {
		t.Fatalf("detail %+v", detail)
	}
	var v1 struct {
		Files []struct{ Path, Content string }
	}
	alice.api(t, g, am.CSRFToken, http.MethodGet, "/api/playbooks/"+pid+"/versions/1", nil, &v1)
	for _, f := range v1.Files {
		if f.Content != files[f.Path] {
			t.Errorf("version 1 %s differs from the workspace", f.Path)
		}
	}

	// The extension saves with the workspace's token (no cookie, no CSRF).
	token := workspaceToken(t, env["DATA_DIR"], key)
	req, _ := http.NewRequest(http.MethodGet, g.base+"/api/workspace/session", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ws struct{ ID, Folder string }
	json.NewDecoder(resp.Body).Decode(&ws)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || ws.ID != s.ID || ws.Folder != s.Folder {
		t.Fatalf("workspace session: %d %+v", resp.StatusCode, ws)
	}
	writeFiles(t, folder, map[string]string{"playbook.py": phishingPlaybook + "\n# v2\n"})
	req, _ = http.NewRequest(http.MethodPost, g.base+"/api/edit-sessions/"+s.ID+"/save", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&saved)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || saved.Version.Number != 2 {
		t.Fatalf("save with the workspace token: %d %+v", resp.StatusCode, saved.Version)
	}
	req.Header.Set("Authorization", "Bearer pbw_forged")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged token: %v %v", err, resp.StatusCode)
	}

	// Activate; deleting an active playbook is refused.
	var p struct{ Status string }
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/playbooks/"+pid+"/activate", nil, &p); code != http.StatusOK || p.Status != "active" {
		t.Fatalf("activate: %d %+v", code, p)
	}
	var e apiError
	if code := alice.api(t, g, am.CSRFToken, http.MethodDelete, "/api/playbooks/"+pid, nil, &e); code != http.StatusConflict {
		t.Fatalf("delete active: %d %+v", code, e.Error)
	}

	// A stale session: taken over by a new session of alice's; the old
	// session's save is refused with stale_session, from either caller.
	var s2 startedSession
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"playbookId": pid, "takeover": true}, &s2); code != http.StatusCreated {
		t.Fatalf("reopen: %d %+v", code, s2.Error)
	}
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions/"+s.ID+"/save", nil, &e); code != http.StatusConflict || e.Error.Code != "stale_session" {
		t.Fatalf("stale save: %d %+v", code, e.Error)
	}
	waitReady(t, alice, g, am.CSRFToken, s2.ID)

	// Seeding: reopening into an empty folder writes the current version;
	// reopening over unsaved work keeps it and says so.
	alice.api(t, g, am.CSRFToken, http.MethodDelete, "/api/edit-sessions/"+s2.ID, nil, nil)
	if err := os.RemoveAll(folder); err != nil {
		t.Fatal(err)
	}
	alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"playbookId": pid}, &s2)
	waitReady(t, alice, g, am.CSRFToken, s2.ID)
	if got, _ := os.ReadFile(filepath.Join(folder, "playbook.py")); string(got) != phishingPlaybook+"\n# v2\n" {
		t.Fatalf("seeded playbook.py = %q", got)
	}
	alice.api(t, g, am.CSRFToken, http.MethodDelete, "/api/edit-sessions/"+s2.ID, nil, nil)
	writeFiles(t, folder, map[string]string{"playbook.py": phishingPlaybook + "\n# unsaved work\n"})
	alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"playbookId": pid}, &s2)
	st := waitReady(t, alice, g, am.CSRFToken, s2.ID)
	if got, _ := os.ReadFile(filepath.Join(folder, "playbook.py")); !strings.Contains(string(got), "# unsaved work") || !strings.Contains(st.Notice, "unsaved changes") {
		t.Fatalf("unsaved work not kept or not told: notice %q", st.Notice)
	}

	// Names and the limit (2 here): a taken name, then the limit.
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "PHISHING triage", "takeover": true}, &e); code != http.StatusConflict || e.Error.Code != "playbook_name_taken" {
		t.Fatalf("taken name: %d %+v", code, e.Error)
	}
	var s3 startedSession
	alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Second", "takeover": true}, &s3)
	waitReady(t, alice, g, am.CSRFToken, s3.ID)
	writeFiles(t, filepath.Join(project, s3.Folder), files)
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions/"+s3.ID+"/save", nil, &saved); code != http.StatusCreated {
		t.Fatalf("second playbook: %d", code)
	}
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Third", "takeover": true}, &e); code != http.StatusConflict || e.Error.Code != "playbook_limit" {
		t.Fatalf("over the limit: %d %+v", code, e.Error)
	}

	var events struct{ Events []struct{ Action string } }
	alice.api(t, g, am.CSRFToken, http.MethodGet, "/api/admin/audit", nil, &events)
	seen := map[string]int{}
	for _, ev := range events.Events {
		seen[ev.Action]++
	}
	if seen["playbook.save"] != 3 || seen["playbook.activate"] != 1 {
		t.Errorf("audit: %v", seen)
	}

	// The workspace's token is worth something only while its owner's
	// edit session lives: after closing, an administrator's terminate, or
	// signing out, the very same token is refused.
	usage := func() int {
		req, _ := http.NewRequest(http.MethodGet, g.base+"/api/llm/usage", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := usage(); code != http.StatusOK {
		t.Fatalf("usage with a live session: %d", code)
	}
	alice.api(t, g, am.CSRFToken, http.MethodDelete, "/api/edit-sessions/"+s3.ID, nil, nil)
	if code := usage(); code != http.StatusUnauthorized {
		t.Fatalf("usage after the session was closed: %d, want 401", code)
	}
	alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"playbookId": pid}, &s2)
	waitReady(t, alice, g, am.CSRFToken, s2.ID)
	if code := usage(); code != http.StatusOK {
		t.Fatalf("usage with a new session on the same workspace: %d", code)
	}
	if code := alice.api(t, g, am.CSRFToken, http.MethodDelete, "/api/admin/sessions/"+s2.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("terminate: %d", code)
	}
	if code := usage(); code != http.StatusUnauthorized {
		t.Fatalf("usage after an administrator's terminate: %d, want 401", code)
	}
	alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"playbookId": pid}, &s2)
	waitReady(t, alice, g, am.CSRFToken, s2.ID)
	if code := usage(); code != http.StatusOK {
		t.Fatalf("usage with a third session: %d", code)
	}
	resp, _ = alice.do(t, alice.noFollow(), http.MethodPost, g.base+"/auth/logout", nil,
		map[string]string{"Origin": g.base, "X-CSRF-Token": am.CSRFToken})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if code := usage(); code != http.StatusUnauthorized {
		t.Fatalf("usage after signing out: %d, want 401", code)
	}
	_ = io.Discard
}

func waitReady(t *testing.T, b *browser, g *gateway, csrf, id string) startedSession {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st startedSession
		b.api(t, g, csrf, http.MethodGet, "/api/edit-sessions/"+id, nil, &st)
		if st.State == "ready" {
			return st
		}
		if st.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("session %s: state %q", id, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
