package integration

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/playbookstudio/gateway/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// SQLite is the embedded Store, in its own file (DATA_DIR/integrations.db)
// so the secrets' database can be backed up and restored on its own.
type SQLite struct {
	db *sqlstore.DB
}

var _ Store = (*SQLite)(nil)

// NewSQLite opens (creating when needed) the database at path.
func NewSQLite(path string) (*SQLite, error) {
	db, err := sqlstore.Open(sqlstore.Options{Path: path, Migrations: migrationFiles, Dir: "migrations", Label: "integration: sqlite"})
	if err != nil {
		return nil, err
	}
	return &SQLite{db: db}, nil
}

func nameKey(name string) string { return strings.ToLower(name) }

func wrap(op string, err error) error { return sqlstore.Wrap("integration: sqlite", op, err) }

const cols = `id, tenant, name, description, base_url, auth_method, config, secrets_set, key_id, wrapped_key, sealed_secrets, created_at, created_by, updated_at, updated_by`

type scanner interface{ Scan(...any) error }

func scanRecord(row scanner) (Record, error) {
	var r Record
	var config, set, created, updated string
	err := row.Scan(&r.ID, &r.Tenant, &r.Name, &r.Description, &r.BaseURL, &r.AuthMethod, &config, &set,
		&r.Sealed.KeyID, &r.Sealed.WrappedKey, &r.Sealed.Secrets, &created, &r.CreatedBy, &updated, &r.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, err
	}
	if err := json.Unmarshal([]byte(config), &r.Config); err != nil {
		return Record{}, fmt.Errorf("bad stored config: %w", err)
	}
	if err := json.Unmarshal([]byte(set), &r.SecretsSet); err != nil {
		return Record{}, fmt.Errorf("bad stored secretsSet: %w", err)
	}
	if r.CreatedAt, err = sqlstore.ParseTime(created); err != nil {
		return Record{}, err
	}
	if r.UpdatedAt, err = sqlstore.ParseTime(updated); err != nil {
		return Record{}, err
	}
	return r, nil
}

func encodeMeta(r Record) (config, set string, err error) {
	c, err := json.Marshal(r.Config)
	if err != nil {
		return "", "", err
	}
	ss := r.SecretsSet
	if ss == nil {
		ss = []string{}
	}
	s, err := json.Marshal(ss)
	return string(c), string(s), err
}

// Create inserts r, counting the tenant's profiles in the same
// (IMMEDIATE) transaction so two creates cannot both pass the limit.
func (s *SQLite) Create(ctx context.Context, r Record, limit int) error {
	config, set, err := encodeMeta(r)
	if err != nil {
		return wrap("create", err)
	}
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return wrap("create", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM integration_profiles WHERE tenant = ?`, r.Tenant).Scan(&n); err != nil {
		return wrap("create", err)
	}
	var taken int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM integration_profiles WHERE tenant = ? AND name_key = ?`, r.Tenant, nameKey(r.Name)).Scan(&taken); err != nil {
		return wrap("create", err)
	}
	if taken > 0 {
		return ErrNameTaken
	}
	if n >= limit {
		return ErrLimit
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO integration_profiles (`+cols+`, name_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.Tenant, r.Name, r.Description, r.BaseURL, string(r.AuthMethod), config, set,
		r.Sealed.KeyID, r.Sealed.WrappedKey, r.Sealed.Secrets,
		sqlstore.FormatTime(r.CreatedAt), r.CreatedBy, sqlstore.FormatTime(r.UpdatedAt), r.UpdatedBy, nameKey(r.Name)); err != nil {
		if sqlstore.IsUnique(err) {
			return ErrNameTaken
		}
		return wrap("create", err)
	}
	return wrap("create", tx.Commit())
}

func (s *SQLite) Get(ctx context.Context, tenant, id string) (Record, error) {
	r, err := scanRecord(s.db.R.QueryRowContext(ctx, `SELECT `+cols+` FROM integration_profiles WHERE tenant = ? AND id = ?`, tenant, id))
	return r, wrap("get", err)
}

func (s *SQLite) GetByName(ctx context.Context, tenant, name string) (Record, error) {
	r, err := scanRecord(s.db.R.QueryRowContext(ctx, `SELECT `+cols+` FROM integration_profiles WHERE tenant = ? AND name_key = ?`, tenant, nameKey(name)))
	return r, wrap("get by name", err)
}

func (s *SQLite) List(ctx context.Context, tenant string) ([]Record, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+cols+` FROM integration_profiles WHERE tenant = ? ORDER BY name_key, id`, tenant)
	if err != nil {
		return nil, wrap("list", err)
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, wrap("list", err)
		}
		out = append(out, r)
	}
	return out, wrap("list", rows.Err())
}

func (s *SQLite) Update(ctx context.Context, r Record) error {
	config, set, err := encodeMeta(r)
	if err != nil {
		return wrap("update", err)
	}
	res, err := s.db.W.ExecContext(ctx, `UPDATE integration_profiles SET name = ?, name_key = ?, description = ?, config = ?, secrets_set = ?,
		key_id = ?, wrapped_key = ?, sealed_secrets = ?, updated_at = ?, updated_by = ? WHERE tenant = ? AND id = ?`,
		r.Name, nameKey(r.Name), r.Description, config, set, r.Sealed.KeyID, r.Sealed.WrappedKey, r.Sealed.Secrets,
		sqlstore.FormatTime(r.UpdatedAt), r.UpdatedBy, r.Tenant, r.ID)
	if sqlstore.IsUnique(err) {
		return ErrNameTaken
	}
	if err != nil {
		return wrap("update", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("update", err)
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *SQLite) Delete(ctx context.Context, tenant, id string) error {
	res, err := s.db.W.ExecContext(ctx, `DELETE FROM integration_profiles WHERE tenant = ? AND id = ?`, tenant, id)
	if err != nil {
		return wrap("delete", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("delete", err)
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *SQLite) StaleKeys(ctx context.Context, keyID, afterTenant, afterID string, limit int) ([]KeyRow, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT tenant, id, auth_method, key_id, wrapped_key FROM integration_profiles
		WHERE key_id <> ? AND (tenant > ? OR (tenant = ? AND id > ?)) ORDER BY tenant, id LIMIT ?`,
		keyID, afterTenant, afterTenant, afterID, limit)
	if err != nil {
		return nil, wrap("stale keys", err)
	}
	defer rows.Close()
	var out []KeyRow
	for rows.Next() {
		var k KeyRow
		if err := rows.Scan(&k.Tenant, &k.ID, &k.Method, &k.KeyID, &k.WrappedKey); err != nil {
			return nil, wrap("stale keys", err)
		}
		out = append(out, k)
	}
	return out, wrap("stale keys", rows.Err())
}

func (s *SQLite) SwapKey(ctx context.Context, from KeyRow, toKeyID string, toWrapped []byte) (bool, error) {
	res, err := s.db.W.ExecContext(ctx, `UPDATE integration_profiles SET key_id = ?, wrapped_key = ?
		WHERE tenant = ? AND id = ? AND key_id = ? AND wrapped_key = ?`,
		toKeyID, toWrapped, from.Tenant, from.ID, from.KeyID, from.WrappedKey)
	if err != nil {
		return false, wrap("swap key", err)
	}
	n, err := res.RowsAffected()
	return n == 1, wrap("swap key", err)
}

func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	if err := s.db.R.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return wrap("ping", err)
	}
	return wrap("ping", s.db.W.PingContext(ctx))
}

func (s *SQLite) Close() error { return s.db.Close() }

// stamp is a store time: UTC, no monotonic reading, so what a call returns
// equals what a later read gives back.
func stamp(t time.Time) time.Time { return t.UTC().Round(0) }
