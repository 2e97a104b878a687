// Package storetest is the conformance suite of playbook.Store: any
// implementation (the embedded SQLite one, a later Postgres one) runs it
// from its own test with a constructor of fresh, empty stores.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/playbook"
)

// Run runs the suite. newStore must return a new, empty store each call;
// Run closes it at the end of the subtest.
func Run(t *testing.T, newStore func(t *testing.T) playbook.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s playbook.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"FilesRoundTrip", testFilesRoundTrip},
		{"CreateWithReservedID", testCreateWithID},
		{"NameTakenCaseInsensitive", testNameTaken},
		{"Limit", testLimit},
		{"Limit100", testLimit100},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ListSortedCaseInsensitive", testList},
		{"TenantIsolation", testTenantIsolation},
		{"AddVersion", testAddVersion},
		{"ConcurrentAddVersion", testConcurrentAddVersion},
		{"Status", testStatus},
		{"SaveKeepsActiveVersion", testSaveKeepsActiveVersion},
		{"ActivateChosenVersion", testActivateChosenVersion},
		{"ActiveVersionFiles", testActiveVersionFiles},
		{"Delete", testDelete},
		{"TimesRoundTrip", testTimes},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

func ctx(t *testing.T) context.Context { return t.Context() }

// Bundle returns a NewVersion with a playbook.py of the given line count,
// a README and a manifest; exported for benchmarks.
func Bundle(by string, lines int) playbook.NewVersion {
	var py strings.Builder
	py.WriteString("import phantom.rules as phantom\n")
	for i := 1; i < lines; i++ {
		fmt.Fprintf(&py, "    phantom.debug('step %d')  # é\n", i)
	}
	return playbook.NewVersion{
		SavedBy: by,
		Fence:   7,
		Files: []playbook.File{
			{Path: "playbook.py", Content: []byte(py.String())},
			{Path: "README.md", Content: []byte("# Triage\n\nDoes things.\n")},
			{Path: "manifest.json", Content: []byte(`{"description":"triage"}`)},
		},
		Report: playbook.Report{
			Warnings: []playbook.Problem{{Path: "playbook.py", Line: 3, Message: "unused import"}},
			Lines:    lines,
		},
		Description:   "triage",
		Documentation: "# Triage\n\nDoes things.\n",
		FlowDiagram:   "flowchart TD\n  A --> B\n",
	}
}

func failing(by string) playbook.NewVersion {
	v := Bundle(by, 3)
	v.Report.Errors = []playbook.Problem{{Path: "playbook.py", Line: 1, Message: "syntax error"}}
	return v
}

func mustCreate(t *testing.T, s playbook.Store, tenant, name string) (playbook.Playbook, playbook.Version) {
	t.Helper()
	p, v, err := s.Create(ctx(t), tenant, name, 100, Bundle("alice", 10))
	if err != nil {
		t.Fatalf("Create(%q, %q): %v", tenant, name, err)
	}
	return p, v
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func infos(files []playbook.File) []playbook.FileInfo {
	out := make([]playbook.FileInfo, 0, len(files))
	for _, f := range files {
		sum := sha256.Sum256(f.Content)
		out = append(out, playbook.FileInfo{Path: f.Path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(f.Content))})
	}
	slices.SortFunc(out, func(a, b playbook.FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func samePlaybook(t *testing.T, what string, got, want playbook.Playbook) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s: times = %v / %v, want %v / %v", what, got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func testCreateAndGet(t *testing.T, s playbook.Store) {
	nv := Bundle("alice", 42)
	slices.Reverse(nv.Files) // the store sorts the file list
	p, v, err := s.Create(ctx(t), tenantA, "Phishing Triage", 100, nv)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID == "" || len(p.ID) != 36 || strings.Count(p.ID, "-") != 4 {
		t.Errorf("ID = %q, want a UUID", p.ID)
	}
	if p.Tenant != tenantA || p.Name != "Phishing Triage" || p.Description != "triage" ||
		p.Status != playbook.StatusDisabled || p.CurrentVersion != 1 || p.LatestVersion != 1 || p.ActiveVersion != nil ||
		p.CreatedBy != "alice" || p.UpdatedBy != "alice" {
		t.Errorf("Create playbook = %+v", p)
	}
	if p.CreatedAt.IsZero() || !p.CreatedAt.Equal(p.UpdatedAt) || !p.CreatedAt.Equal(v.SavedAt) {
		t.Errorf("times: created %v updated %v saved %v", p.CreatedAt, p.UpdatedAt, v.SavedAt)
	}
	if v.Number != 1 || v.SavedBy != "alice" || v.Lines != 42 || v.Fence != 7 {
		t.Errorf("Create version = %+v", v)
	}
	if !reflect.DeepEqual(v.Files, infos(nv.Files)) {
		t.Errorf("Files = %+v, want %+v", v.Files, infos(nv.Files))
	}
	if !reflect.DeepEqual(v.Warnings, nv.Report.Warnings) {
		t.Errorf("Warnings = %+v", v.Warnings)
	}
	if v.Documentation != nv.Documentation || v.FlowDiagram != nv.FlowDiagram {
		t.Errorf("docs = %q / %q", v.Documentation, v.FlowDiagram)
	}

	got, err := s.Get(ctx(t), tenantA, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	samePlaybook(t, "Get", got, p)
	for _, name := range []string{"Phishing Triage", "phishing triage", "PHISHING TRIAGE"} {
		got, err = s.GetByName(ctx(t), tenantA, name)
		if err != nil {
			t.Fatalf("GetByName(%q): %v", name, err)
		}
		samePlaybook(t, "GetByName", got, p)
	}
	_, err = s.GetByName(ctx(t), tenantA, "Phishing")
	wantErr(t, "GetByName unknown", err, playbook.ErrNotFound)
	_, err = s.Get(ctx(t), tenantA, "00000000-0000-4000-8000-000000000000")
	wantErr(t, "Get unknown", err, playbook.ErrNotFound)
	_, err = s.Get(ctx(t), tenantA, "not-a-uuid")
	wantErr(t, "Get malformed id", err, playbook.ErrNotFound)

	n, err := s.Count(ctx(t), tenantA)
	if err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}

	// A second playbook without a description or warnings.
	nv2 := Bundle("bob", 1)
	nv2.Description = ""
	nv2.Report.Warnings = nil
	p2, v2, err := s.Create(ctx(t), tenantA, "Other", 100, nv2)
	if err != nil {
		t.Fatal(err)
	}
	if p2.ID == p.ID || p2.Description != "" {
		t.Errorf("second playbook = %+v", p2)
	}
	if len(v2.Warnings) != 0 {
		t.Errorf("Warnings = %+v, want none", v2.Warnings)
	}
}

// testCreateWithID: a new playbook takes the id its edit session
// reserved (its workspace folder is named after it); an id in use is
// refused, whatever the tenant.
func testCreateWithID(t *testing.T, s playbook.Store) {
	c := ctx(t)
	const id = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
	nv := Bundle("alice", 5)
	nv.ID = id
	p, _, err := s.Create(c, tenantA, "Reserved", 100, nv)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != id {
		t.Errorf("ID = %q, want the reserved %q", p.ID, id)
	}
	if got, err := s.Get(c, tenantA, id); err != nil || got.Name != "Reserved" {
		t.Errorf("Get(reserved id) = %+v, %v", got, err)
	}
	nv.ID = strings.ToUpper(id)
	_, _, err = s.Create(c, tenantB, "Another", 100, nv)
	wantErr(t, "Create with an id in use", err, playbook.ErrIDTaken)
	nv.ID = "not-a-uuid"
	if _, _, err := s.Create(c, tenantA, "Bad id", 100, nv); err == nil {
		t.Error("Create with a malformed id succeeded")
	}
	if n, _ := s.Count(c, tenantA); n != 1 {
		t.Errorf("Count = %d after refused creates, want 1", n)
	}
}

func testFilesRoundTrip(t *testing.T, s playbook.Store) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	files := []playbook.File{
		{Path: "playbook.py", Content: []byte("# -*- coding: utf-8 -*-\nprint('héllo wörld — ✓ 日本語 🚀')\r\n\tend\n")},
		{Path: "docs/résumé ü.md", Content: []byte("Ünïcödé path\n")},
		{Path: "empty.txt", Content: []byte{}},
		{Path: "data/blob.bin", Content: binary},
		{Path: "README.md", Content: []byte("# Doc 📘\n\n```mermaid\nflowchart TD\n  A[Début] --> B\n```\n")},
		{Path: "no-newline.py", Content: []byte("x = 1")},
	}
	nv := playbook.NewVersion{
		SavedBy: "ünïcode user",
		Fence:   1<<40 + 3,
		Files:   files,
		Report: playbook.Report{
			Warnings: []playbook.Problem{{Path: "docs/résumé ü.md", Message: "ça va"}},
			Skipped:  []playbook.Problem{{Path: "link", Message: "symlink left out"}},
			Lines:    3,
		},
		Description:   "Déscription ✓",
		Documentation: "# Doc 📘\n\n```mermaid\nflowchart TD\n  A[Début] --> B\n```\n",
		FlowDiagram:   "flowchart TD\n  A[Début] --> B\n",
	}
	p, _, err := s.Create(ctx(t), tenantA, "Ünïcode ✓", 100, nv)
	if err != nil {
		t.Fatal(err)
	}
	v, got, err := s.Version(ctx(t), tenantA, p.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(files)
	slices.SortFunc(want, func(a, b playbook.File) int { return strings.Compare(a.Path, b.Path) })
	if len(got) != len(want) {
		t.Fatalf("got %d files, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Path != want[i].Path || string(got[i].Content) != string(want[i].Content) {
			t.Errorf("file %d = %q %q, want %q %q", i, got[i].Path, got[i].Content, want[i].Path, want[i].Content)
		}
	}
	if !reflect.DeepEqual(v.Files, infos(files)) {
		t.Errorf("Files = %+v, want %+v", v.Files, infos(files))
	}
	if v.Documentation != nv.Documentation || v.FlowDiagram != nv.FlowDiagram {
		t.Errorf("docs = %q / %q", v.Documentation, v.FlowDiagram)
	}
	if v.SavedBy != nv.SavedBy || v.Fence != nv.Fence || v.Lines != 3 {
		t.Errorf("version = %+v", v)
	}
	if !reflect.DeepEqual(v.Report.Warnings, nv.Report.Warnings) || !reflect.DeepEqual(v.Report.Skipped, nv.Report.Skipped) ||
		len(v.Report.Errors) != 0 || v.Report.Lines != 3 || !reflect.DeepEqual(v.Warnings, nv.Report.Warnings) {
		t.Errorf("report = %+v", v.Report)
	}
	pp, err := s.Get(ctx(t), tenantA, p.ID)
	if err != nil || pp.Name != "Ünïcode ✓" || pp.Description != "Déscription ✓" {
		t.Errorf("Get = %+v, %v", pp, err)
	}
	// Changing the caller's slices afterwards must not change the store.
	files[0].Content[0] = 'X'
	_, got, err = s.Version(ctx(t), tenantA, p.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		if f.Path == "playbook.py" && f.Content[0] != '#' {
			t.Error("stored content aliases the caller's slice")
		}
	}
}

func testNameTaken(t *testing.T, s playbook.Store) {
	mustCreate(t, s, tenantA, "Malware Hunt")
	for _, name := range []string{"Malware Hunt", "malware hunt", "MALWARE HUNT", "mAlWaRe HuNt"} {
		_, _, err := s.Create(ctx(t), tenantA, name, 100, Bundle("bob", 5))
		wantErr(t, "Create "+name, err, playbook.ErrNameTaken)
	}
	// Non-ASCII letters fold too.
	mustCreate(t, s, tenantA, "Éclair")
	_, _, err := s.Create(ctx(t), tenantA, "éCLAIR", 100, Bundle("bob", 5))
	wantErr(t, "Create éCLAIR", err, playbook.ErrNameTaken)
	// Another tenant may use the name; so may a different name.
	mustCreate(t, s, tenantB, "malware hunt")
	mustCreate(t, s, tenantA, "Malware Hunt 2")
	if n, _ := s.Count(ctx(t), tenantA); n != 3 {
		t.Errorf("Count = %d, want 3 (refused creates must leave nothing)", n)
	}
}

func testLimit(t *testing.T, s playbook.Store) {
	var first playbook.Playbook
	for i := range 3 {
		p, _, err := s.Create(ctx(t), tenantA, fmt.Sprintf("pb-%d", i), 3, Bundle("alice", 5))
		if err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
		if i == 0 {
			first = p
		}
	}
	_, _, err := s.Create(ctx(t), tenantA, "pb-3", 3, Bundle("alice", 5))
	wantErr(t, "4th Create with limit 3", err, playbook.ErrLimit)
	if n, _ := s.Count(ctx(t), tenantA); n != 3 {
		t.Errorf("Count = %d, want 3", n)
	}
	// Versions of existing playbooks are not limited.
	if _, _, err := s.AddVersion(ctx(t), tenantA, first.ID, Bundle("alice", 5)); err != nil {
		t.Errorf("AddVersion at the limit: %v", err)
	}
	// The limit is per tenant.
	if _, _, err := s.Create(ctx(t), tenantB, "pb-0", 3, Bundle("bob", 5)); err != nil {
		t.Errorf("other tenant: %v", err)
	}
	// Deleting frees a place.
	if err := s.Delete(ctx(t), tenantA, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx(t), tenantA, "pb-3", 3, Bundle("alice", 5)); err != nil {
		t.Errorf("Create after Delete: %v", err)
	}
}

func testLimit100(t *testing.T, s playbook.Store) {
	for i := range 100 {
		if _, _, err := s.Create(ctx(t), tenantA, fmt.Sprintf("Playbook %03d", i), 100, Bundle("alice", 2)); err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
	}
	_, _, err := s.Create(ctx(t), tenantA, "Playbook 100", 100, Bundle("alice", 2))
	wantErr(t, "101st Create", err, playbook.ErrLimit)
	n, err := s.Count(ctx(t), tenantA)
	if err != nil || n != 100 {
		t.Errorf("Count = %d, %v; want 100", n, err)
	}
	list, err := s.List(ctx(t), tenantA)
	if err != nil || len(list) != 100 {
		t.Fatalf("List = %d, %v", len(list), err)
	}
}

func testConcurrentCreate(t *testing.T, s playbook.Store) {
	// 12 different names at limit 5: exactly 5 succeed, the rest get ErrLimit.
	var wg sync.WaitGroup
	errs := make([]error, 12)
	for i := range errs {
		wg.Go(func() {
			_, _, errs[i] = s.Create(context.Background(), tenantA, fmt.Sprintf("race-%d", i), 5, Bundle("alice", 5))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, playbook.ErrLimit):
			t.Errorf("concurrent Create: %v", err)
		}
	}
	if n, _ := s.Count(ctx(t), tenantA); ok != 5 || n != 5 {
		t.Errorf("%d creates succeeded, Count = %d; want 5", ok, n)
	}

	// 10 tries of one name, differently cased: exactly one succeeds.
	errs = make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			name := "Same Name"
			if i%2 == 1 {
				name = "SAME name"
			}
			_, _, errs[i] = s.Create(context.Background(), tenantB, name, 100, Bundle("bob", 5))
		})
	}
	wg.Wait()
	ok = 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, playbook.ErrNameTaken):
			t.Errorf("concurrent Create: %v", err)
		}
	}
	if n, _ := s.Count(ctx(t), tenantB); ok != 1 || n != 1 {
		t.Errorf("%d creates succeeded, Count = %d; want 1", ok, n)
	}
}

func testList(t *testing.T, s playbook.Store) {
	list, err := s.List(ctx(t), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if list == nil || len(list) != 0 {
		t.Errorf("empty List = %#v, want a non-nil empty slice", list)
	}
	for _, name := range []string{"delta", "Charlie", "alpha", "Bravo", "echo 2", "Echo"} {
		mustCreate(t, s, tenantA, name)
	}
	mustCreate(t, s, tenantB, "Aardvark")
	list, err = s.List(ctx(t), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
		if p.Tenant != tenantA {
			t.Errorf("List gave %+v of another tenant", p)
		}
	}
	want := []string{"alpha", "Bravo", "Charlie", "delta", "Echo", "echo 2"}
	if !slices.Equal(names, want) {
		t.Errorf("List names = %q, want %q", names, want)
	}
	got, err := s.Get(ctx(t), tenantA, list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	samePlaybook(t, "List entry", list[0], got)
}

func testTenantIsolation(t *testing.T, s playbook.Store) {
	p, _ := mustCreate(t, s, tenantA, "Secret")
	c := ctx(t)
	_, err := s.Get(c, tenantB, p.ID)
	wantErr(t, "Get", err, playbook.ErrNotFound)
	_, err = s.GetByName(c, tenantB, "Secret")
	wantErr(t, "GetByName", err, playbook.ErrNotFound)
	_, _, err = s.AddVersion(c, tenantB, p.ID, Bundle("mallory", 5))
	wantErr(t, "AddVersion", err, playbook.ErrNotFound)
	_, err = s.Versions(c, tenantB, p.ID)
	wantErr(t, "Versions", err, playbook.ErrNotFound)
	_, _, err = s.Version(c, tenantB, p.ID, 1)
	wantErr(t, "Version", err, playbook.ErrNotFound)
	_, err = s.Activate(c, tenantB, p.ID, 0, "mallory")
	wantErr(t, "Activate", err, playbook.ErrNotFound)
	_, err = s.Deactivate(c, tenantB, p.ID, "mallory")
	wantErr(t, "Deactivate", err, playbook.ErrNotFound)
	_, _, err = s.ActiveVersion(c, tenantB, p.ID)
	wantErr(t, "ActiveVersion", err, playbook.ErrNotFound)
	err = s.Delete(c, tenantB, p.ID)
	wantErr(t, "Delete", err, playbook.ErrNotFound)
	if n, err := s.Count(c, tenantB); err != nil || n != 0 {
		t.Errorf("Count(B) = %d, %v", n, err)
	}
	if list, err := s.List(c, tenantB); err != nil || len(list) != 0 {
		t.Errorf("List(B) = %+v, %v", list, err)
	}
	// Nothing of A changed.
	got, err := s.Get(c, tenantA, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	samePlaybook(t, "Get A", got, p)
	if vs, err := s.Versions(c, tenantA, p.ID); err != nil || len(vs) != 1 {
		t.Errorf("Versions(A) = %d, %v", len(vs), err)
	}
}

func testAddVersion(t *testing.T, s playbook.Store) {
	p1, v1 := mustCreate(t, s, tenantA, "Versioned")
	c := ctx(t)

	nv2 := Bundle("bob", 20)
	nv2.Description = "new description"
	nv2.Fence = 9
	nv2.Files = append(nv2.Files, playbook.File{Path: "lib/util.py", Content: []byte("def f():\n    pass\n")})
	p2, v2, err := s.AddVersion(c, tenantA, p1.ID, nv2)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Number != 2 || p2.CurrentVersion != 2 || v2.SavedBy != "bob" || v2.Lines != 20 || v2.Fence != 9 {
		t.Errorf("AddVersion = %+v / %+v", p2, v2)
	}
	if p2.Description != "new description" || p2.UpdatedBy != "bob" || p2.CreatedBy != "alice" ||
		!p2.CreatedAt.Equal(p1.CreatedAt) || !p2.UpdatedAt.Equal(v2.SavedAt) || p2.UpdatedAt.Before(p1.UpdatedAt) {
		t.Errorf("playbook after AddVersion = %+v", p2)
	}
	if p2.ID != p1.ID || p2.Name != p1.Name || p2.Status != playbook.StatusDisabled {
		t.Errorf("playbook after AddVersion = %+v", p2)
	}
	if !reflect.DeepEqual(v2.Files, infos(nv2.Files)) {
		t.Errorf("Files = %+v", v2.Files)
	}
	got, err := s.Get(c, tenantA, p1.ID)
	if err != nil {
		t.Fatal(err)
	}
	samePlaybook(t, "Get after AddVersion", got, p2)

	// An empty description keeps the previous one.
	nv3 := Bundle("carol", 30)
	nv3.Description = ""
	p3, v3, err := s.AddVersion(c, tenantA, p1.ID, nv3)
	if err != nil {
		t.Fatal(err)
	}
	if v3.Number != 3 || p3.CurrentVersion != 3 || p3.Description != "new description" || p3.UpdatedBy != "carol" {
		t.Errorf("AddVersion 3 = %+v / %+v", p3, v3)
	}

	vs, err := s.Versions(c, tenantA, p1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("Versions = %d, want 3", len(vs))
	}
	for i, want := range []playbook.Version{v3, v2, v1} {
		got := vs[i]
		if got.Number != want.Number || got.SavedBy != want.SavedBy || !got.SavedAt.Equal(want.SavedAt) ||
			got.Lines != want.Lines || got.Fence != want.Fence ||
			!reflect.DeepEqual(got.Files, want.Files) || !reflect.DeepEqual(got.Warnings, want.Warnings) {
			t.Errorf("Versions[%d] =\n %+v\nwant\n %+v", i, got, want)
		}
	}

	// Old versions keep their own files.
	v, files, err := s.Version(c, tenantA, p1.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Number != 1 || len(files) != 3 || !reflect.DeepEqual(v.Files, v1.Files) {
		t.Errorf("Version 1 = %+v, %d files", v, len(files))
	}
	v, files, err = s.Version(c, tenantA, p1.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if v.Number != 2 || len(files) != 4 || v.Documentation != nv2.Documentation || v.FlowDiagram != nv2.FlowDiagram {
		t.Errorf("Version 2 = %+v, %d files", v, len(files))
	}

	for _, n := range []int{0, 4, -1, 1000} {
		_, _, err = s.Version(c, tenantA, p1.ID, n)
		wantErr(t, fmt.Sprintf("Version(%d)", n), err, playbook.ErrNotFound)
	}
	_, _, err = s.AddVersion(c, tenantA, "00000000-0000-4000-8000-000000000000", Bundle("bob", 5))
	wantErr(t, "AddVersion unknown", err, playbook.ErrNotFound)
	_, err = s.Versions(c, tenantA, "00000000-0000-4000-8000-000000000000")
	wantErr(t, "Versions unknown", err, playbook.ErrNotFound)

	// Numbering is per playbook.
	other, _ := mustCreate(t, s, tenantA, "Other")
	_, ov, err := s.AddVersion(c, tenantA, other.ID, Bundle("bob", 5))
	if err != nil || ov.Number != 2 {
		t.Errorf("other playbook's AddVersion = %d, %v; want 2", ov.Number, err)
	}
}

func testConcurrentAddVersion(t *testing.T, s playbook.Store) {
	p, _ := mustCreate(t, s, tenantA, "Busy")
	const n = 20
	numbers := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, v, err := s.AddVersion(context.Background(), tenantA, p.ID, Bundle(fmt.Sprintf("user-%d", i), 50))
			numbers[i], errs[i] = v.Number, err
		})
	}
	// Saves to other playbooks of other tenants run at the same time.
	other, _ := mustCreate(t, s, tenantB, "Busy too")
	for i := range 5 {
		wg.Go(func() {
			if _, _, err := s.AddVersion(context.Background(), tenantB, other.ID, Bundle("bob", 5)); err != nil {
				t.Errorf("AddVersion %d on B: %v", i, err)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("AddVersion %d: %v", i, err)
		}
	}
	slices.Sort(numbers)
	for i, num := range numbers {
		if num != i+2 {
			t.Fatalf("version numbers = %v, want 2..%d each once", numbers, n+1)
		}
	}
	got, err := s.Get(ctx(t), tenantA, p.ID)
	if err != nil || got.CurrentVersion != n+1 {
		t.Errorf("CurrentVersion = %d, %v; want %d", got.CurrentVersion, err, n+1)
	}
	vs, err := s.Versions(ctx(t), tenantA, p.ID)
	if err != nil || len(vs) != n+1 || vs[0].Number != n+1 || vs[n].Number != 1 {
		t.Errorf("Versions = %d, %v", len(vs), err)
	}
	ob, err := s.Get(ctx(t), tenantB, other.ID)
	if err != nil || ob.CurrentVersion != 6 {
		t.Errorf("other CurrentVersion = %d, %v; want 6", ob.CurrentVersion, err)
	}
}

func intp(n int) *int { return &n }

// active is a playbook's active version as text, for messages.
func active(p playbook.Playbook) string {
	if p.ActiveVersion == nil {
		return "nil"
	}
	return fmt.Sprint(*p.ActiveVersion)
}

func testStatus(t *testing.T, s playbook.Store) {
	p, _ := mustCreate(t, s, tenantA, "Status")
	c := ctx(t)
	a, err := s.Activate(c, tenantA, p.ID, 0, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != playbook.StatusActive || a.UpdatedBy != "carol" || a.CurrentVersion != 1 ||
		a.LatestVersion != 1 || active(a) != "1" {
		t.Errorf("activated = %+v (active %s)", a, active(a))
	}
	got, err := s.Get(c, tenantA, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	samePlaybook(t, "Get after activate", got, a)
	// Activating twice is fine.
	if _, err := s.Activate(c, tenantA, p.ID, 1, "carol"); err != nil {
		t.Errorf("second activate: %v", err)
	}

	d, err := s.Deactivate(c, tenantA, p.ID, "dave")
	if err != nil || d.Status != playbook.StatusDisabled || d.UpdatedBy != "dave" || d.ActiveVersion != nil {
		t.Errorf("deactivate = %+v, %v", d, err)
	}
	got, _ = s.Get(c, tenantA, p.ID)
	samePlaybook(t, "Get after deactivate", got, d)
	_, _, err = s.ActiveVersion(c, tenantA, p.ID)
	wantErr(t, "ActiveVersion of a disabled playbook", err, playbook.ErrNotActive)

	// Versions it does not have are refused, and nothing changes.
	for _, bad := range []int{-1, 2, 99} {
		_, err := s.Activate(c, tenantA, p.ID, bad, "carol")
		wantErr(t, fmt.Sprintf("Activate(version %d)", bad), err, playbook.ErrNoVersion)
	}
	if got, _ := s.Get(c, tenantA, p.ID); got.Status != playbook.StatusDisabled || got.ActiveVersion != nil {
		t.Errorf("after refused activations: %+v", got)
	}

	// A playbook whose latest version failed cannot be activated...
	f, _, err := s.Create(c, tenantA, "Failing", 100, failing("alice"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Activate(c, tenantA, f.ID, 0, "carol")
	wantErr(t, "activate failed version", err, playbook.ErrNotValid)
	if got, _ := s.Get(c, tenantA, f.ID); got.Status != playbook.StatusDisabled || got.ActiveVersion != nil {
		t.Errorf("after refused activation: %+v", got)
	}
	// ...until a passing version is saved; deactivating always works.
	if _, err := s.Deactivate(c, tenantA, f.ID, "carol"); err != nil {
		t.Errorf("deactivate failing: %v", err)
	}
	if _, _, err := s.AddVersion(c, tenantA, f.ID, Bundle("alice", 5)); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Activate(c, tenantA, f.ID, 0, "carol"); err != nil || active(a) != "2" {
		t.Errorf("activate after fix = %s, %v; want version 2", active(a), err)
	}
	// The failed version 1 stays refused by number.
	_, err = s.Activate(c, tenantA, f.ID, 1, "carol")
	wantErr(t, "activate failed version 1", err, playbook.ErrNotValid)
	if got, _ := s.Get(c, tenantA, f.ID); active(got) != "2" {
		t.Errorf("active version after refused switch = %s, want 2", active(got))
	}

	_, err = s.Activate(c, tenantA, "00000000-0000-4000-8000-000000000000", 0, "carol")
	wantErr(t, "Activate unknown", err, playbook.ErrNotFound)
	_, err = s.Deactivate(c, tenantA, "00000000-0000-4000-8000-000000000000", "carol")
	wantErr(t, "Deactivate unknown", err, playbook.ErrNotFound)
	_, _, err = s.ActiveVersion(c, tenantA, "00000000-0000-4000-8000-000000000000")
	wantErr(t, "ActiveVersion unknown", err, playbook.ErrNotFound)
}

// testSaveKeepsActiveVersion is issue 12's point 5: saving an active
// playbook adds a version that is not live until it is activated.
func testSaveKeepsActiveVersion(t *testing.T, s playbook.Store) {
	p, _ := mustCreate(t, s, tenantA, "Live")
	c := ctx(t)
	if _, err := s.Activate(c, tenantA, p.ID, 1, "carol"); err != nil {
		t.Fatal(err)
	}
	p2, _, err := s.AddVersion(c, tenantA, p.ID, Bundle("alice", 5))
	if err != nil {
		t.Fatal(err)
	}
	if p2.Status != playbook.StatusActive || active(p2) != "1" || p2.LatestVersion != 2 || p2.CurrentVersion != 2 {
		t.Errorf("AddVersion = %+v (active %s); want active at version 1, latest 2", p2, active(p2))
	}
	for _, got := range getAndList(t, s, p.ID) {
		if got.Status != playbook.StatusActive || active(got) != "1" || got.LatestVersion != 2 {
			t.Errorf("stored = %+v (active %s); want active at version 1, latest 2", got, active(got))
		}
	}
	// A failing save does not touch what runs either.
	if _, _, err := s.AddVersion(c, tenantA, p.ID, failing("alice")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(c, tenantA, p.ID); got.Status != playbook.StatusActive || active(got) != "1" || got.LatestVersion != 3 {
		t.Errorf("after a failing save = %+v (active %s)", got, active(got))
	}
	if v, _, err := s.ActiveVersion(c, tenantA, p.ID); err != nil || v.Number != 1 {
		t.Errorf("ActiveVersion = %d, %v; want 1", v.Number, err)
	}
	// Activating the latest (which failed) is refused; version 2 passes.
	_, err = s.Activate(c, tenantA, p.ID, 0, "carol")
	wantErr(t, "activate the failing latest", err, playbook.ErrNotValid)
	a, err := s.Activate(c, tenantA, p.ID, 2, "carol")
	if err != nil || active(a) != "2" || a.LatestVersion != 3 {
		t.Errorf("Activate(2) = %+v (active %s), %v", a, active(a), err)
	}
}

// getAndList returns the playbook as Get and as List show it.
func getAndList(t *testing.T, s playbook.Store, id string) []playbook.Playbook {
	t.Helper()
	got, err := s.Get(ctx(t), tenantA, id)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx(t), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	out := []playbook.Playbook{got}
	for _, p := range list {
		if p.ID == id {
			out = append(out, p)
		}
	}
	if len(out) != 2 {
		t.Fatalf("List lacks %s", id)
	}
	return out
}

func testActivateChosenVersion(t *testing.T, s playbook.Store) {
	p, _ := mustCreate(t, s, tenantA, "Chosen")
	c := ctx(t)
	for range 3 {
		if _, _, err := s.AddVersion(c, tenantA, p.ID, Bundle("bob", 5)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.Activate(c, tenantA, p.ID, 2, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.ActiveVersion, intp(2)) || a.LatestVersion != 4 || a.Status != playbook.StatusActive {
		t.Errorf("Activate(2) = %+v (active %s)", a, active(a))
	}
	// Rolling back to an older version, then forward to the latest.
	if a, err = s.Activate(c, tenantA, p.ID, 1, "carol"); err != nil || active(a) != "1" {
		t.Errorf("Activate(1) = %s, %v", active(a), err)
	}
	if a, err = s.Activate(c, tenantA, p.ID, 0, "carol"); err != nil || active(a) != "4" {
		t.Errorf("Activate(latest) = %s, %v", active(a), err)
	}
	got, _ := s.Get(c, tenantA, p.ID)
	samePlaybook(t, "Get after activations", got, a)
}

func testActiveVersionFiles(t *testing.T, s playbook.Store) {
	c := ctx(t)
	v1 := Bundle("alice", 5)
	v1.Files = append(v1.Files, playbook.File{Path: "lib/one.py", Content: []byte("ONE = 1\n")})
	p, _, err := s.Create(c, tenantA, "Runner", 100, v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(c, tenantA, p.ID, 0, "carol"); err != nil {
		t.Fatal(err)
	}
	v2 := Bundle("bob", 9)
	v2.Files = append(v2.Files, playbook.File{Path: "lib/two.py", Content: []byte("TWO = 2\n")})
	if _, _, err := s.AddVersion(c, tenantA, p.ID, v2); err != nil {
		t.Fatal(err)
	}
	// A runner gets version 1's files, not the latest's.
	v, files, err := s.ActiveVersion(c, tenantA, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Number != 1 || v.SavedBy != "alice" || v.Lines != 5 {
		t.Errorf("ActiveVersion = %+v, want version 1", v)
	}
	_, want, err := s.Version(c, tenantA, p.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, want) || !reflect.DeepEqual(v.Files, infos(v1.Files)) {
		t.Errorf("ActiveVersion files = %+v, want version 1's %+v", files, want)
	}
	if _, err := s.Activate(c, tenantA, p.ID, 2, "carol"); err != nil {
		t.Fatal(err)
	}
	if v, files, err := s.ActiveVersion(c, tenantA, p.ID); err != nil || v.Number != 2 || len(files) != 4 || files[1].Path != "lib/two.py" {
		t.Errorf("after activating 2: version %d, %d files, %v", v.Number, len(files), err)
	}
}

func testDelete(t *testing.T, s playbook.Store) {
	p, _ := mustCreate(t, s, tenantA, "Doomed")
	c := ctx(t)
	for range 3 {
		if _, _, err := s.AddVersion(c, tenantA, p.ID, Bundle("alice", 5)); err != nil {
			t.Fatal(err)
		}
	}
	keep, _ := mustCreate(t, s, tenantA, "Keeper")

	if _, err := s.Activate(c, tenantA, p.ID, 2, "carol"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Delete active", s.Delete(c, tenantA, p.ID), playbook.ErrActive)
	if _, err := s.Get(c, tenantA, p.ID); err != nil {
		t.Errorf("Get after refused delete: %v", err)
	}
	if _, err := s.Deactivate(c, tenantA, p.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(c, tenantA, p.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(c, tenantA, p.ID)
	wantErr(t, "Get deleted", err, playbook.ErrNotFound)
	_, err = s.GetByName(c, tenantA, "Doomed")
	wantErr(t, "GetByName deleted", err, playbook.ErrNotFound)
	_, err = s.Versions(c, tenantA, p.ID)
	wantErr(t, "Versions deleted", err, playbook.ErrNotFound)
	for n := 1; n <= 4; n++ {
		_, _, err = s.Version(c, tenantA, p.ID, n)
		wantErr(t, "Version deleted", err, playbook.ErrNotFound)
	}
	_, _, err = s.AddVersion(c, tenantA, p.ID, Bundle("alice", 5))
	wantErr(t, "AddVersion deleted", err, playbook.ErrNotFound)
	wantErr(t, "Delete twice", s.Delete(c, tenantA, p.ID), playbook.ErrNotFound)
	if n, _ := s.Count(c, tenantA); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
	// The name is free again and numbering starts over.
	np, nv, err := s.Create(c, tenantA, "doomed", 100, Bundle("alice", 5))
	if err != nil || nv.Number != 1 || np.ID == p.ID {
		t.Errorf("re-Create = %+v %+v, %v", np, nv, err)
	}
	// Other playbooks are untouched.
	if _, files, err := s.Version(c, tenantA, keep.ID, 1); err != nil || len(files) != 3 {
		t.Errorf("Keeper version 1: %d files, %v", len(files), err)
	}
}

func testTimes(t *testing.T, s playbook.Store) {
	c := ctx(t)
	before := time.Now().Add(-time.Minute)
	p, v1, err := s.Create(c, tenantA, "Clock", 100, Bundle("alice", 5))
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Minute)
	if p.CreatedAt.Before(before) || p.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, not about now", p.CreatedAt)
	}
	p2, v2, err := s.AddVersion(c, tenantA, p.ID, Bundle("bob", 5))
	if err != nil {
		t.Fatal(err)
	}
	if v2.SavedAt.Before(v1.SavedAt) {
		t.Errorf("v2 saved %v before v1 %v", v2.SavedAt, v1.SavedAt)
	}
	got, err := s.Get(c, tenantA, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(p.CreatedAt) || !got.UpdatedAt.Equal(p2.UpdatedAt) {
		t.Errorf("Get times = %v / %v, want %v / %v", got.CreatedAt, got.UpdatedAt, p.CreatedAt, p2.UpdatedAt)
	}
	vs, err := s.Versions(c, tenantA, p.ID)
	if err != nil || len(vs) != 2 {
		t.Fatalf("Versions: %d, %v", len(vs), err)
	}
	if !vs[0].SavedAt.Equal(v2.SavedAt) || !vs[1].SavedAt.Equal(v1.SavedAt) {
		t.Errorf("Versions times = %v, %v; want %v, %v", vs[0].SavedAt, vs[1].SavedAt, v2.SavedAt, v1.SavedAt)
	}
	v, _, err := s.Version(c, tenantA, p.ID, 1)
	if err != nil || !v.SavedAt.Equal(v1.SavedAt) {
		t.Errorf("Version(1).SavedAt = %v, %v; want %v", v.SavedAt, err, v1.SavedAt)
	}
	list, err := s.List(c, tenantA)
	if err != nil || len(list) != 1 || !list[0].UpdatedAt.Equal(p2.UpdatedAt) || !list[0].CreatedAt.Equal(p.CreatedAt) {
		t.Errorf("List times = %+v, %v", list, err)
	}
}

func testPing(t *testing.T, s playbook.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}
