package playbook_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/playbook/storetest"
)

func openSQLite(t testing.TB, path string, now func() time.Time) *playbook.SQLite {
	t.Helper()
	s, err := playbook.NewSQLite(path, now)
	if err != nil {
		t.Fatalf("NewSQLite: %v", err)
	}
	return s
}

func TestSQLiteStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) playbook.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "playbooks.db"), nil)
	})
}

// rawDB opens the store's file directly, for looking behind the store.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSQLiteMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pb.db")
	for range 3 {
		s := openSQLite(t, path, nil)
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := rawDB(t, path)
	var n, maxv int
	if err := db.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &maxv); err != nil {
		t.Fatal(err)
	}
	if n != maxv || n < 1 {
		t.Errorf("schema_migrations has %d rows up to version %d", n, maxv)
	}
	var applied string
	if err := db.QueryRow(`SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339Nano, applied); err != nil {
		t.Errorf("applied_at = %q: %v", applied, err)
	}
	for _, table := range []string{"playbooks", "versions", "files"} {
		var c int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&c); err != nil || c != 1 {
			t.Errorf("table %s: %d, %v", table, c, err)
		}
	}
}

func TestSQLiteNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pb.db")
	s := openSQLite(t, path, nil)
	if _, _, err := s.Create(t.Context(), "t", "Kept", 100, storetest.Bundle("alice", 5)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, '2099-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err := playbook.NewSQLite(path, nil)
	if !errors.Is(err, playbook.ErrSchemaTooNew) {
		t.Fatalf("NewSQLite on a newer schema: %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "9999") {
		t.Errorf("error %q does not name the version", err)
	}
	// Nothing was changed.
	db = rawDB(t, path)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM playbooks`).Scan(&n); err != nil || n != 1 {
		t.Errorf("playbooks = %d, %v", n, err)
	}
}

func TestSQLiteFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "db")
	path := filepath.Join(dir, "pb.db")
	s := openSQLite(t, path, nil)
	defer s.Close()
	if _, _, err := s.Create(t.Context(), "t", "Mode", 100, storetest.Bundle("alice", 5)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("folder mode = %v, want 0700", fi.Mode().Perm())
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if errors.Is(err, os.ErrNotExist) && name != path {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", filepath.Base(name), fi.Mode().Perm())
		}
	}

	// An existing, too open file is tightened.
	loose := filepath.Join(t.TempDir(), "loose.db")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openSQLite(t, loose, nil)
	s2.Close()
	if fi, err := os.Stat(loose); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("loose file mode = %v, %v", fi.Mode().Perm(), err)
	}
}

// TestSQLiteMigrationKeepsActivePlaybooksActive: a database of schema 1
// (status only, no active version) opened by this program keeps its
// active playbooks running their latest version at migration time, and its
// disabled ones disabled.
func TestSQLiteMigrationKeepsActivePlaybooksActive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pb.db")
	schema1, err := os.ReadFile(filepath.Join("migrations", "0001_init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	const at = "2025-01-02T03:04:05.000000000Z"
	for _, q := range []string{
		string(schema1),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '` + at + `')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]string{"on": "11111111-1111-4111-8111-111111111111", "off": "22222222-2222-4222-8222-222222222222"}
	for name, status := range map[string]string{"on": "active", "off": "disabled"} {
		if _, err := db.Exec(`INSERT INTO playbooks (id, tenant, name, name_key, status, current_version,
			created_at, created_by, updated_at, updated_by) VALUES (?, 't', ?, ?, ?, 3, ?, 'a', ?, 'a')`,
			ids[name], name, name, status, at, at); err != nil {
			t.Fatal(err)
		}
		for n := 1; n <= 3; n++ {
			if _, err := db.Exec(`INSERT INTO versions (playbook_id, number, saved_at, saved_by, fence, lines, report)
				VALUES (?, ?, ?, 'a', 1, 1, '{"errors":[],"warnings":[],"lines":1}')`, ids[name], n, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close()

	s := openSQLite(t, path, nil)
	defer s.Close()
	on, err := s.Get(t.Context(), "t", ids["on"])
	if err != nil {
		t.Fatal(err)
	}
	if on.Status != playbook.StatusActive || on.ActiveVersion == nil || *on.ActiveVersion != 3 || on.LatestVersion != 3 {
		t.Errorf("active playbook after migration = %+v", on)
	}
	off, err := s.Get(t.Context(), "t", ids["off"])
	if err != nil {
		t.Fatal(err)
	}
	if off.Status != playbook.StatusDisabled || off.ActiveVersion != nil {
		t.Errorf("disabled playbook after migration = %+v", off)
	}
	// A save after the migration leaves the active one at version 3.
	p, _, err := s.AddVersion(t.Context(), "t", ids["on"], storetest.Bundle("b", 5))
	if err != nil || p.ActiveVersion == nil || *p.ActiveVersion != 3 || p.LatestVersion != 4 {
		t.Errorf("save after migration = %+v, %v", p, err)
	}
	if v, _, err := s.ActiveVersion(t.Context(), "t", ids["on"]); err != nil || v.Number != 3 {
		t.Errorf("ActiveVersion = %d, %v; want 3", v.Number, err)
	}
}

func TestSQLitePragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pb.db")
	s := openSQLite(t, path, nil)
	s.Close()
	db := rawDB(t, path)
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestSQLiteBadPath(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := playbook.NewSQLite(p, nil); err == nil {
			s.Close()
			t.Errorf("NewSQLite(%q) succeeded", p)
		}
	}
}

func TestSQLiteSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pb.db")
	s := openSQLite(t, path, nil)
	c := t.Context()
	p, _, err := s.Create(c, "t", "Durable", 100, storetest.Bundle("alice", 100))
	if err != nil {
		t.Fatal(err)
	}
	_, v2, err := s.AddVersion(c, "t", p.ID, storetest.Bundle("bob", 200))
	if err != nil {
		t.Fatal(err)
	}
	active, err := s.Activate(c, "t", p.ID, 0, "carol")
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := s.Version(c, "t", p.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openSQLite(t, path, nil)
	defer s.Close()
	got, err := s.Get(c, "t", p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != playbook.StatusActive || got.CurrentVersion != 2 || !got.UpdatedAt.Equal(active.UpdatedAt) ||
		!got.CreatedAt.Equal(p.CreatedAt) || got.UpdatedBy != "carol" {
		t.Errorf("after reopen: %+v", got)
	}
	v, files, err := s.Version(c, "t", p.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if v.Lines != 200 || !v.SavedAt.Equal(v2.SavedAt) || len(files) != len(want) {
		t.Errorf("version after reopen: %+v", v)
	}
	for i := range files {
		if files[i].Path != want[i].Path || string(files[i].Content) != string(want[i].Content) {
			t.Errorf("file %s differs after reopen", files[i].Path)
		}
	}
}

func TestSQLiteExactTimes(t *testing.T) {
	zone := time.FixedZone("CEST", 2*60*60)
	var mu sync.Mutex
	clock := time.Date(2025, 6, 7, 8, 9, 10, 123456789, zone)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(1001 * time.Nanosecond)
		return clock
	}
	path := filepath.Join(t.TempDir(), "pb.db")
	s := openSQLite(t, path, now)
	defer s.Close()
	c := t.Context()
	p, v1, err := s.Create(c, "t", "Clock", 100, storetest.Bundle("alice", 5))
	if err != nil {
		t.Fatal(err)
	}
	want1 := time.Date(2025, 6, 7, 6, 9, 10, 123457790, time.UTC)
	if p.CreatedAt != want1 || v1.SavedAt != want1 {
		t.Errorf("CreatedAt = %v, SavedAt = %v; want %v", p.CreatedAt, v1.SavedAt, want1)
	}
	_, v2, err := s.AddVersion(c, "t", p.ID, storetest.Bundle("alice", 5))
	if err != nil {
		t.Fatal(err)
	}
	want2 := want1.Add(1001 * time.Nanosecond)
	s.Close()

	s = openSQLite(t, path, now)
	got, err := s.Get(c, "t", p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt != want1 || got.UpdatedAt != want2 || v2.SavedAt != want2 {
		t.Errorf("times after reopen = %v / %v, want %v / %v", got.CreatedAt, got.UpdatedAt, want1, want2)
	}
	vs, err := s.Versions(c, "t", p.ID)
	if err != nil || vs[0].SavedAt != want2 || vs[1].SavedAt != want1 {
		t.Errorf("Versions times = %+v, %v", vs, err)
	}
	// Whole seconds keep their (zero) fraction.
	clock = time.Date(2026, 1, 1, 0, 0, 0, -1001, time.UTC)
	q, _, err := s.Create(c, "t", "Round", 100, storetest.Bundle("alice", 5))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(c, "t", q.ID); got.CreatedAt != time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("CreatedAt = %v", got.CreatedAt)
	}
	s.Close()
}

// Two stores on one file (as two processes would have) save at the same
// time without SQLITE_BUSY reaching the caller.
func TestSQLiteTwoHandlesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pb.db")
	a := openSQLite(t, path, nil)
	defer a.Close()
	b := openSQLite(t, path, nil)
	defer b.Close()
	c := context.Background()
	p, _, err := a.Create(c, "t", "Shared", 100, storetest.Bundle("alice", 5))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			if _, _, err := s.AddVersion(c, "t", p.ID, storetest.Bundle("alice", 50)); err != nil {
				t.Errorf("AddVersion %d: %v", i, err)
			}
			if _, _, err := s.Create(c, fmt.Sprintf("tenant-%d", i), "Mine", 100, storetest.Bundle("bob", 5)); err != nil {
				t.Errorf("Create %d: %v", i, err)
			}
			if _, err := s.Versions(c, "t", p.ID); err != nil {
				t.Errorf("Versions %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	vs, err := b.Versions(c, "t", p.ID)
	if err != nil || len(vs) != 11 || vs[0].Number != 11 {
		t.Errorf("Versions = %d, %v; want 11", len(vs), err)
	}
}

func bigBundle(by string) playbook.NewVersion {
	v := storetest.Bundle(by, 5000)
	for i := range 20 {
		v.Files = append(v.Files, playbook.File{
			Path:    fmt.Sprintf("lib/module_%02d.py", i),
			Content: []byte(strings.Repeat(fmt.Sprintf("def helper_%d():\n    return %d\n", i, i), 20)),
		})
	}
	return v
}

// BenchmarkAddVersion5000Lines is the store part of saving a new version of
// a 5,000-line playbook.py with 20 other small files.
func BenchmarkAddVersion5000Lines(b *testing.B) {
	s := openSQLite(b, filepath.Join(b.TempDir(), "pb.db"), nil)
	defer s.Close()
	c := context.Background()
	p, _, err := s.Create(c, "t", "Big", 100, bigBundle("alice"))
	if err != nil {
		b.Fatal(err)
	}
	v := bigBundle("alice")
	size := 0
	for _, f := range v.Files {
		size += len(f.Content)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := s.AddVersion(c, "t", p.ID, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate5000Lines is the store part of saving a new playbook.
func BenchmarkCreate5000Lines(b *testing.B) {
	s := openSQLite(b, filepath.Join(b.TempDir(), "pb.db"), nil)
	defer s.Close()
	c := context.Background()
	v := bigBundle("alice")
	i := 0
	for b.Loop() {
		i++
		if _, _, err := s.Create(c, "t", fmt.Sprintf("Big %d", i), 0, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVersion5000Lines reads a version back with its contents.
func BenchmarkVersion5000Lines(b *testing.B) {
	s := openSQLite(b, filepath.Join(b.TempDir(), "pb.db"), nil)
	defer s.Close()
	c := context.Background()
	p, _, err := s.Create(c, "t", "Big", 100, bigBundle("alice"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := s.Version(c, "t", p.ID, 1); err != nil {
			b.Fatal(err)
		}
	}
}
