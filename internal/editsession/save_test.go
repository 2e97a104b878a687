package editsession_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// records are the real SQLite store and validator over a temporary folder.
func records(t *testing.T) *editsession.Records {
	t.Helper()
	store, err := playbook.NewSQLite(filepath.Join(t.TempDir(), "playbooks.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	v, err := playbook.NewValidator("python3")
	if err != nil {
		t.Skipf("no python3 for the validator: %v", err)
	}
	return &editsession.Records{Store: store, Validator: v, Limits: playbook.DefaultLimits, PlaybookLimit: 100}
}

// writeBundle copies the phishing test bundle into the workspace folder.
func writeBundle(t *testing.T, f *fixture, key, folder string) {
	t.Helper()
	dir := filepath.Join("..", "playbook", "testdata", "phishing")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		f.rt.WriteFile(key, folder+"/"+e.Name(), b)
	}
}

func TestSaveCollectsTheFolderThroughTheManager(t *testing.T) {
	f := newFixture(t, opts{records: records(t)})
	st := f.startNamed(t, alice, "Phishing triage")
	f.waitReady(t, alice)
	key := workspace.KeyFor(tenant, alice.ID)

	// An empty folder is a finding, not a crash.
	_, err := f.svc.Save(ctx, alice, st.ID)
	r := refusal(t, err, fault.Rejected, "validation_failed")
	if p, _ := r.Details["problems"].([]playbook.Problem); len(p) == 0 {
		t.Errorf("validation_failed without problems: %+v", r.Details)
	}

	writeBundle(t, f, key, st.Folder)
	saved, err := f.svc.Save(ctx, alice, st.ID)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	if saved.Version.Number != 1 || saved.Playbook.Status != playbook.StatusDisabled || saved.Playbook.Name != "Phishing triage" {
		t.Errorf("saved = %+v", saved)
	}
	// The session now edits that playbook: a second save is version 2.
	if again, err := f.svc.Save(ctx, alice, st.ID); err != nil || again.Version.Number != 2 || again.Playbook.ID != saved.Playbook.ID {
		t.Fatalf("second save = %+v, %v", again, err)
	}
	// Nobody else saves through alice's session.
	if _, err := f.svc.Save(ctx, bob, st.ID); err == nil {
		t.Error("bob saved alice's session")
	}

	// Reopened later, the folder is seeded from the saved version.
	if err := f.svc.End(ctx, alice, st.ID); err != nil {
		t.Fatal(err)
	}
	f.rt.Remove(ctx, key) // a fresh workspace: its files are gone
	id := saved.Playbook.ID
	again := f.start(t, alice, editsession.StartRequest{PlaybookID: id})
	f.waitReady(t, alice)
	if cur, _ := f.svc.Current(ctx, alice); cur.State != string(workspace.PhaseReady) || cur.Notice != "" {
		t.Fatalf("reopened session = %+v", cur)
	}
	if b, ok := f.rt.File(key, again.Folder+"/playbook.py"); !ok || len(b) == 0 {
		t.Error("the saved version was not seeded into the folder")
	}
}

func TestSaveWithoutRecordsIsNotImplemented(t *testing.T) {
	f := newFixture(t, opts{})
	st := f.startNamed(t, alice, "Alpha")
	_, err := f.svc.Save(ctx, alice, st.ID)
	refusal(t, err, fault.NotImplemented, "not_implemented")
	_, err = f.svc.Validate(ctx, alice, st.ID)
	refusal(t, err, fault.NotImplemented, "not_implemented")
}

// Saves and validations (which the workspace's extension makes, an agent
// perhaps in a loop) are not the user's activity: they do not keep a
// session alive past its TTL.
func TestWorkspaceCallsAreNotActivity(t *testing.T) {
	f := newFixture(t, opts{records: records(t)})
	st := f.startNamed(t, alice, "Phishing triage")
	f.waitReady(t, alice)
	writeBundle(t, f, workspace.KeyFor(tenant, alice.ID), st.Folder)
	// Every third of the TTL a save and a validation, and the renewal
	// round; after a whole TTL without the user, the round ends it.
	for i := range 4 {
		f.clock.Advance(f.ttl / 3)
		if _, err := f.svc.Save(ctx, alice, st.ID); err != nil {
			t.Fatalf("Save %d: %v", i, err)
		}
		if _, err := f.svc.Validate(ctx, alice, st.ID); err != nil {
			t.Fatalf("Validate %d: %v", i, err)
		}
		f.svc.RenewAll(ctx)
		if i < 3 {
			f.mustLive(t, st.ID)
		}
	}
	f.mustNotLive(t, st.ID)
	contains(t, "reason", f.svc.EndedReason(st.ID), "no activity")
}
