package editsession_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// phishingPy is playbook.py of the test bundle, marked as whose it is.
func phishingPy(t *testing.T, mark string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "playbook", "testdata", "phishing", "playbook.py"))
	if err != nil {
		t.Fatal(err)
	}
	return append(b, []byte("\n# "+mark+"\n")...)
}

// Issue 12 point 4: "A B" and "a-b" are two playbooks whose names slug
// alike. Each keeps its own folder: opening one never shows the other's
// files (saved or not), and its save never stores them.
func TestPlaybooksWhoseNamesSlugAlikeKeepTheirOwnFolders(t *testing.T) {
	rec := records(t)
	f := newFixture(t, opts{records: rec})
	key := workspace.KeyFor(tenant, alice.ID)

	// "A B" is saved.
	st1 := f.startNamed(t, alice, "A B")
	f.waitReady(t, alice)
	writeBundle(t, f, key, st1.Folder)
	f.rt.WriteFile(key, st1.Folder+"/playbook.py", phishingPy(t, "A B"))
	savedAB, err := f.svc.Save(ctx, alice, st1.ID)
	if err != nil {
		t.Fatalf("Save A B: %v", err)
	}
	// The record took the id reserved for it, so its folder stays put.
	if savedAB.Playbook.ID != st1.ReservedID || st1.Folder != editsession.FolderFor("A B", savedAB.Playbook.ID) {
		t.Errorf("A B saved as %s, reserved %s, folder %q", savedAB.Playbook.ID, st1.ReservedID, st1.Folder)
	}
	if err := f.svc.End(ctx, alice, st1.ID); err != nil {
		t.Fatal(err)
	}

	// "a-b", new: its folder is its own and empty, not A B's.
	st2 := f.startNamed(t, alice, "a-b")
	f.waitReady(t, alice)
	if st2.Folder == st1.Folder {
		t.Fatalf("a-b opened A B's folder %q", st1.Folder)
	}
	if b, ok := f.rt.File(key, st2.Folder+"/playbook.py"); ok {
		t.Fatalf("a new a-b shows files it never had: %q", b)
	}
	writeBundle(t, f, key, st2.Folder)
	f.rt.WriteFile(key, st2.Folder+"/playbook.py", phishingPy(t, "a-b"))
	savedab, err := f.svc.Save(ctx, alice, st2.ID)
	if err != nil {
		t.Fatalf("Save a-b: %v", err)
	}
	if savedab.Playbook.ID == savedAB.Playbook.ID || savedab.Version.Number != 1 {
		t.Fatalf("a-b's save went into A B's record: %+v", savedab)
	}
	if vs, err := rec.Store.Versions(ctx, tenant, savedAB.Playbook.ID); err != nil || len(vs) != 1 {
		t.Errorf("A B has %d versions, %v; want its 1", len(vs), err)
	}
	if _, files, err := rec.Store.Version(ctx, tenant, savedab.Playbook.ID, 1); err != nil || !hasFile(files, "playbook.py", "# a-b") {
		t.Errorf("a-b's version 1 lacks its own playbook.py (%v)", err)
	}
	if err := f.svc.End(ctx, alice, st2.ID); err != nil {
		t.Fatal(err)
	}

	// Unsaved work in A B's folder, and a folder of before named by the
	// plain slug, are both left alone when a-b is opened again.
	f.rt.WriteFile(key, st1.Folder+"/playbook.py", phishingPy(t, "unsaved A B"))
	f.rt.WriteFile(key, "a-b/playbook.py", []byte("# a folder of before\n"))
	st3 := f.start(t, alice, editsession.StartRequest{PlaybookID: savedab.Playbook.ID})
	f.waitReady(t, alice)
	cur, err := f.svc.Current(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if st3.Folder != st2.Folder || cur.Notice != "" {
		t.Errorf("reopened a-b: folder %q (want %q), notice %q", st3.Folder, st2.Folder, cur.Notice)
	}
	if b, _ := f.rt.File(key, st3.Folder+"/playbook.py"); !strings.Contains(string(b), "# a-b") {
		t.Errorf("reopened a-b shows %q, want its own files", b)
	}
	if err := f.svc.End(ctx, alice, st3.ID); err != nil {
		t.Fatal(err)
	}

	// A B, reopened, finds its own unsaved work kept.
	st4 := f.start(t, alice, editsession.StartRequest{PlaybookID: savedAB.Playbook.ID})
	f.waitReady(t, alice)
	if st4.Folder != st1.Folder {
		t.Errorf("A B reopened in %q, want %q", st4.Folder, st1.Folder)
	}
	if b, _ := f.rt.File(key, st4.Folder+"/playbook.py"); !strings.Contains(string(b), "# unsaved A B") {
		t.Errorf("A B's unsaved work was replaced: %q", b)
	}
	if b, _ := f.rt.File(key, "a-b/playbook.py"); string(b) != "# a folder of before\n" {
		t.Errorf("the folder of before was touched: %q", b)
	}
}

// Taking over one's own session on a new playbook goes on in the same
// folder, and the first save still takes the id that names it.
func TestTakeoverOfANewPlaybookKeepsItsFolder(t *testing.T) {
	f := newFixture(t, opts{records: records(t)})
	key := workspace.KeyFor(tenant, alice.ID)
	st1 := f.startNamed(t, alice, "Draft")
	f.waitReady(t, alice)
	writeBundle(t, f, key, st1.Folder)
	st2 := f.start(t, alice, editsession.StartRequest{Name: "Draft", Takeover: true})
	f.waitReady(t, alice)
	if st2.Folder != st1.Folder || st2.ReservedID != st1.ReservedID {
		t.Fatalf("takeover moved to %q (%s), want %q (%s)", st2.Folder, st2.ReservedID, st1.Folder, st1.ReservedID)
	}
	saved, err := f.svc.Save(ctx, alice, st2.ID)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	if saved.Playbook.ID != st1.ReservedID {
		t.Errorf("saved as %s, want the reserved %s", saved.Playbook.ID, st1.ReservedID)
	}
	// A takeover of another new playbook gets a folder of its own.
	st3 := f.start(t, alice, editsession.StartRequest{Name: "Other draft", Takeover: true})
	if st3.Folder == st1.Folder || st3.ReservedID == st1.ReservedID {
		t.Errorf("another new playbook took over the folder %q", st3.Folder)
	}
}

func hasFile(files []playbook.File, path, sub string) bool {
	for _, f := range files {
		if f.Path == path && strings.Contains(string(f.Content), sub) {
			return true
		}
	}
	return false
}
