package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/integration"
	"github.com/playbookstudio/gateway/internal/playbook"
)

// TestSecretsRotateCommand: `gateway secrets rotate` with the new key as
// SECRETS_KEY and the old as SECRETS_KEY_PREVIOUS re-wraps every data key,
// a second run finds nothing to do, and the new key alone then opens all.
func TestSecretsRotateCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	oldKey, newKey := hex.EncodeToString(bytes.Repeat([]byte{1}, 32)), hex.EncodeToString(bytes.Repeat([]byte{2}, 32))
	open := func(current string, previous ...string) (*integration.Service, func()) {
		t.Helper()
		keys, err := integration.NewKeyring(mustKey(t, current), mustKeys(t, previous)...)
		if err != nil {
			t.Fatal(err)
		}
		store, err := integration.NewSQLite(filepath.Join(dir, "integrations.db"))
		if err != nil {
			t.Fatal(err)
		}
		al, _ := audit.NewMemory(slog.New(slog.DiscardHandler), nil)
		svc, err := integration.NewService(integration.ServiceConfig{Store: store, Keys: keys, Audit: al, Log: slog.New(slog.DiscardHandler), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return svc, func() { store.Close() }
	}
	svc, done := open(oldKey)
	for _, n := range []string{"a", "b"} {
		if _, err := svc.Create(ctx, integration.Actor{Tenant: "default", UserID: "u"}, integration.CreateRequest{
			Name: n, BaseURL: "https://x.example.com", AuthMethod: integration.Bearer, Secrets: integration.Secrets{Token: "tok-" + n}}); err != nil {
			t.Fatal(err)
		}
	}
	done()

	env := map[string]string{"DATA_DIR": dir, "SECRETS_KEY": newKey, "SECRETS_KEY_PREVIOUS": oldKey}
	getenv := func(k string) string { return env[k] }
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"secrets", "rotate"}, getenv, &out, &errOut); err != nil {
		t.Fatalf("rotate: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "re-wrapped 2 data keys") {
		t.Errorf("rotate said %q", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"secrets", "rotate"}, getenv, &out, &errOut); err != nil || !strings.Contains(out.String(), "re-wrapped 0 data keys") {
		t.Errorf("second rotate: %v, %q", err, out.String())
	}
	svc, done = open(newKey)
	defer done()
	for _, n := range []string{"a", "b"} {
		if o, err := svc.Open(ctx, "default", n); err != nil || o.Secrets.Token != "tok-"+n {
			t.Errorf("open %s with the new key alone: %v", n, err)
		}
	}
	// Without the previous key nothing opens what is left: a clear error.
	env = map[string]string{"DATA_DIR": dir, "SECRETS_KEY": hex.EncodeToString(bytes.Repeat([]byte{3}, 32))}
	if err := run(ctx, []string{"secrets", "rotate"}, getenv, &out, &errOut); err == nil || !strings.Contains(err.Error(), "SECRETS_KEY_PREVIOUS") {
		t.Errorf("rotate without the previous key: %v", err)
	}
	if err := run(ctx, []string{"secrets", "bogus"}, getenv, &out, &errOut); err == nil {
		t.Error("unknown subcommand accepted")
	}
	out.Reset()
	if err := run(ctx, []string{"secrets", "new-key"}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if _, err := integration.ParseKey(out.String()); err != nil {
		t.Errorf("new-key printed %q: %v", out.String(), err)
	}
}

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := integration.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKeys(t *testing.T, ss []string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, mustKey(t, s))
	}
	return out
}

// TestPlaybookUsage: only active playbooks count, by their ACTIVE
// version's manifest, names compared case-insensitively.
func TestPlaybookUsage(t *testing.T) {
	ctx := context.Background()
	store, err := playbook.NewSQLite(filepath.Join(t.TempDir(), "playbooks.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	version := func(integrations string) playbook.NewVersion {
		return playbook.NewVersion{SavedBy: "u", Files: []playbook.File{
			{Path: "manifest.json", Content: []byte(`{"name":"x","integrations":` + integrations + `,"entrypoint":"playbook.py:run"}`)},
			{Path: "playbook.py", Content: []byte("def run(alert, ctx):\n    return {}\n")},
		}, Report: playbook.Report{Lines: 2}}
	}
	active, _, err := store.Create(ctx, "default", "Enrich", 100, version(`["VirusTotal","Graph"]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Activate(ctx, "default", active.ID, 1, "u"); err != nil {
		t.Fatal(err)
	}
	// A later save naming another profile is not what runs.
	if _, _, err := store.AddVersion(ctx, "default", active.ID, version(`["Tickets"]`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Create(ctx, "default", "Draft", 100, version(`["virustotal"]`)); err != nil {
		t.Fatal(err)
	}
	usage, err := playbookUsage(store)(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(usage["virustotal"], ","); got != "Enrich" {
		t.Errorf("virustotal used by %q, want Enrich", got)
	}
	if len(usage["tickets"]) != 0 || len(usage["graph"]) != 1 {
		t.Errorf("usage = %v", usage)
	}
	inUse := integration.InUseFrom(playbookUsage(store))
	if pbs, err := inUse(ctx, "default", "GRAPH"); err != nil || len(pbs) != 1 {
		t.Errorf("InUse(GRAPH) = %v, %v", pbs, err)
	}
}
