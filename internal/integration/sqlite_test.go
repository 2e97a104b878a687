package integration_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/playbookstudio/gateway/internal/integration"
	"github.com/playbookstudio/gateway/internal/integration/storetest"
	"github.com/playbookstudio/gateway/internal/sqlstore"
)

func openSQLite(t *testing.T, path string) *integration.SQLite {
	t.Helper()
	s, err := integration.NewSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLiteStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) integration.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "integrations.db"))
	})
}

func TestSQLiteFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "integrations.db")
	openSQLite(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestSQLiteNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "integrations.db")
	s := openSQLite(t, path)
	s.Close()
	db, err := sqlstore.Open(sqlstore.Options{Path: path, Migrations: os.DirFS("migrations")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, '2099-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := integration.NewSQLite(path); !errors.Is(err, sqlstore.ErrSchemaTooNew) {
		t.Errorf("open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}
