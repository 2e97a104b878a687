package playbook

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/playbookstudio/gateway/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrSchemaTooNew is returned by NewSQLite when the database was migrated by
// a newer program than this one: its schema holds versions this binary does
// not know, and writing to it could corrupt it.
var ErrSchemaTooNew = sqlstore.ErrSchemaTooNew

// SQLite is the embedded Store. Writes go through a single connection (so
// concurrent saves queue in the process instead of failing with
// SQLITE_BUSY) and start their transactions with BEGIN IMMEDIATE; reads use
// a separate pool of query-only connections, which WAL lets run alongside
// the writer.
type SQLite struct {
	w   *sql.DB
	r   *sql.DB
	now func() time.Time
}

var _ Store = (*SQLite)(nil)

// NewSQLite opens (creating when needed) the database at path and brings
// its schema up to date. The file's folder is created with mode 0700, the
// file has mode 0600. now stamps saves; nil means time.Now.
func NewSQLite(path string, now func() time.Time) (*SQLite, error) {
	if now == nil {
		now = time.Now
	}
	db, err := sqlstore.Open(sqlstore.Options{Path: path, Migrations: migrationFiles, Dir: "migrations", Label: "playbook: sqlite"})
	if err != nil {
		return nil, err
	}
	return &SQLite{w: db.W, r: db.R, now: now}, nil
}

func formatTime(t time.Time) string { return sqlstore.FormatTime(t) }

func parseTime(s string) (time.Time, error) {
	t, err := sqlstore.ParseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("playbook: sqlite: %w", err)
	}
	return t, nil
}

// stamp is the store's clock, in UTC without a monotonic reading, so what
// a call returns equals what a later read gives back.
func (s *SQLite) stamp() time.Time { return s.now().UTC().Round(0) }

func nameKey(name string) string { return strings.ToLower(name) }

// newID is a random (version 4) UUID.
func newID() string { return uuid.NewString() }

// isUUID reports whether s is a UUID in its 36-character text form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", c):
			return false
		}
	}
	return true
}

func isUnique(err error) bool { return sqlstore.IsUnique(err) }

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, e := range []error{ErrNotFound, ErrNameTaken, ErrLimit, ErrActive, ErrNotValid, ErrNoVersion, ErrNotActive, ErrIDTaken, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return err
		}
	}
	return fmt.Errorf("playbook: sqlite: %s: %w", op, err)
}

const playbookCols = `id, tenant, name, description, status, current_version, active_version, created_at, created_by, updated_at, updated_by`

type scanner interface{ Scan(...any) error }

func scanPlaybook(row scanner) (Playbook, error) {
	var p Playbook
	var created, updated string
	var active sql.NullInt64
	err := row.Scan(&p.ID, &p.Tenant, &p.Name, &p.Description, &p.Status, &p.CurrentVersion, &active,
		&created, &p.CreatedBy, &updated, &p.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Playbook{}, ErrNotFound
	}
	if err != nil {
		return Playbook{}, err
	}
	p.LatestVersion = p.CurrentVersion
	if active.Valid {
		n := int(active.Int64)
		p.ActiveVersion = &n
	}
	if p.CreatedAt, err = parseTime(created); err != nil {
		return Playbook{}, err
	}
	if p.UpdatedAt, err = parseTime(updated); err != nil {
		return Playbook{}, err
	}
	return p, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func getPlaybook(ctx context.Context, q querier, tenant, id string) (Playbook, error) {
	return scanPlaybook(q.QueryRowContext(ctx,
		`SELECT `+playbookCols+` FROM playbooks WHERE tenant = ? AND id = ?`, tenant, id))
}

// insertVersion stores version number of playbook id with its files and
// returns it as the API shows it.
func insertVersion(ctx context.Context, tx *sql.Tx, id string, number int, at time.Time, v NewVersion) (Version, error) {
	report, err := json.Marshal(v.Report)
	if err != nil {
		return Version{}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO versions
		(playbook_id, number, saved_at, saved_by, fence, lines, report, documentation, flow_diagram)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, number, formatTime(at), v.SavedBy, v.Fence, v.Report.Lines, string(report),
		v.Documentation, v.FlowDiagram); err != nil {
		return Version{}, err
	}
	infos := make([]FileInfo, 0, len(v.Files))
	if len(v.Files) > 0 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO files (playbook_id, version, path, sha256, size, content)
			VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return Version{}, err
		}
		defer stmt.Close()
		for _, f := range v.Files {
			sum := sha256.Sum256(f.Content)
			info := FileInfo{Path: f.Path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(f.Content))}
			content := f.Content
			if content == nil {
				content = []byte{}
			}
			if _, err := stmt.ExecContext(ctx, id, number, info.Path, info.SHA256, info.Size, content); err != nil {
				if isUnique(err) {
					return Version{}, fmt.Errorf("file %q is in the bundle twice", f.Path)
				}
				return Version{}, err
			}
			infos = append(infos, info)
		}
	}
	slices.SortFunc(infos, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return Version{
		Number:        number,
		SavedAt:       at,
		SavedBy:       v.SavedBy,
		Lines:         v.Report.Lines,
		Files:         infos,
		Warnings:      warnings(v.Report),
		Fence:         v.Fence,
		Report:        v.Report,
		Documentation: v.Documentation,
		FlowDiagram:   v.FlowDiagram,
	}, nil
}

// warnings is a report's warnings, never nil (the API shows "warnings":[]).
func warnings(r Report) []Problem {
	if r.Warnings == nil {
		return []Problem{}
	}
	return r.Warnings
}

// Create makes a new disabled playbook with its first version. The name is
// checked before the limit, so a save under an existing name at the limit
// gets ErrNameTaken. A limit <= 0 means no limit.
func (s *SQLite) Create(ctx context.Context, tenant, name string, limit int, v NewVersion) (Playbook, Version, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Playbook{}, Version{}, wrap("create", err)
	}
	defer tx.Rollback()

	key := nameKey(name)
	var taken int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM playbooks WHERE tenant = ? AND name_key = ?`,
		tenant, key).Scan(&taken); err != nil {
		return Playbook{}, Version{}, wrap("create", err)
	}
	if taken > 0 {
		return Playbook{}, Version{}, ErrNameTaken
	}
	if limit > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM playbooks WHERE tenant = ?`, tenant).Scan(&n); err != nil {
			return Playbook{}, Version{}, wrap("create", err)
		}
		if n >= limit {
			return Playbook{}, Version{}, ErrLimit
		}
	}

	id := newID()
	if v.ID != "" {
		if !isUUID(v.ID) {
			return Playbook{}, Version{}, fmt.Errorf("playbook: create: id %q is not a UUID", v.ID)
		}
		id = strings.ToLower(v.ID)
		var used int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM playbooks WHERE id = ?`, id).Scan(&used); err != nil {
			return Playbook{}, Version{}, wrap("create", err)
		}
		if used > 0 {
			return Playbook{}, Version{}, ErrIDTaken
		}
	}
	at := s.stamp()
	p := Playbook{
		ID:             id,
		Tenant:         tenant,
		Name:           name,
		Description:    v.Description,
		Status:         StatusDisabled,
		CurrentVersion: 1,
		LatestVersion:  1,
		CreatedAt:      at,
		CreatedBy:      v.SavedBy,
		UpdatedAt:      at,
		UpdatedBy:      v.SavedBy,
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO playbooks (`+playbookCols+`, name_key)
		VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)`,
		p.ID, p.Tenant, p.Name, p.Description, p.Status, p.CurrentVersion,
		formatTime(p.CreatedAt), p.CreatedBy, formatTime(p.UpdatedAt), p.UpdatedBy, key); err != nil {
		if isUnique(err) {
			return Playbook{}, Version{}, ErrNameTaken
		}
		return Playbook{}, Version{}, wrap("create", err)
	}
	ver, err := insertVersion(ctx, tx, p.ID, 1, at, v)
	if err != nil {
		return Playbook{}, Version{}, wrap("create", err)
	}
	if err := tx.Commit(); err != nil {
		return Playbook{}, Version{}, wrap("create", err)
	}
	return p, ver, nil
}

// AddVersion appends a version and makes it the latest. The description is
// replaced when v.Description is not empty. What runs does not change: an
// active playbook keeps its active version until someone activates another,
// so saving never puts code live.
func (s *SQLite) AddVersion(ctx context.Context, tenant, id string, v NewVersion) (Playbook, Version, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Playbook{}, Version{}, wrap("add version", err)
	}
	defer tx.Rollback()

	p, err := getPlaybook(ctx, tx, tenant, id)
	if err != nil {
		return Playbook{}, Version{}, wrap("add version", err)
	}
	var number int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(number), 0) + 1 FROM versions WHERE playbook_id = ?`,
		id).Scan(&number); err != nil {
		return Playbook{}, Version{}, wrap("add version", err)
	}
	at := s.stamp()
	ver, err := insertVersion(ctx, tx, id, number, at, v)
	if err != nil {
		return Playbook{}, Version{}, wrap("add version", err)
	}
	p.CurrentVersion = number
	p.LatestVersion = number
	p.UpdatedAt = at
	p.UpdatedBy = v.SavedBy
	if v.Description != "" {
		p.Description = v.Description
	}
	if _, err := tx.ExecContext(ctx, `UPDATE playbooks SET current_version = ?, updated_at = ?, updated_by = ?,
		description = ? WHERE id = ?`,
		p.CurrentVersion, formatTime(p.UpdatedAt), p.UpdatedBy, p.Description, id); err != nil {
		return Playbook{}, Version{}, wrap("add version", err)
	}
	if err := tx.Commit(); err != nil {
		return Playbook{}, Version{}, wrap("add version", err)
	}
	return p, ver, nil
}

// Get returns a playbook of the tenant.
func (s *SQLite) Get(ctx context.Context, tenant, id string) (Playbook, error) {
	p, err := getPlaybook(ctx, s.r, tenant, id)
	return p, wrap("get", err)
}

// GetByName finds a playbook of the tenant by name, case-insensitively.
func (s *SQLite) GetByName(ctx context.Context, tenant, name string) (Playbook, error) {
	p, err := scanPlaybook(s.r.QueryRowContext(ctx,
		`SELECT `+playbookCols+` FROM playbooks WHERE tenant = ? AND name_key = ?`, tenant, nameKey(name)))
	return p, wrap("get by name", err)
}

// List returns the tenant's playbooks sorted by name, case-insensitively;
// never nil.
func (s *SQLite) List(ctx context.Context, tenant string) ([]Playbook, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+playbookCols+` FROM playbooks WHERE tenant = ? ORDER BY name_key, name, id`, tenant)
	if err != nil {
		return nil, wrap("list", err)
	}
	defer rows.Close()
	out := []Playbook{}
	for rows.Next() {
		p, err := scanPlaybook(rows)
		if err != nil {
			return nil, wrap("list", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list", err)
	}
	return out, nil
}

// Count returns how many playbooks the tenant has.
func (s *SQLite) Count(ctx context.Context, tenant string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM playbooks WHERE tenant = ?`, tenant).Scan(&n)
	return n, wrap("count", err)
}

func scanVersion(row scanner, withDocs bool) (Version, error) {
	var v Version
	var saved, report string
	dest := []any{&v.Number, &saved, &v.SavedBy, &v.Fence, &v.Lines, &report}
	if withDocs {
		dest = append(dest, &v.Documentation, &v.FlowDiagram)
	}
	err := row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return Version{}, ErrNotFound
	}
	if err != nil {
		return Version{}, err
	}
	if v.SavedAt, err = parseTime(saved); err != nil {
		return Version{}, err
	}
	if err := json.Unmarshal([]byte(report), &v.Report); err != nil {
		return Version{}, fmt.Errorf("bad stored report of version %d: %w", v.Number, err)
	}
	v.Warnings = warnings(v.Report)
	v.Files = []FileInfo{}
	return v, nil
}

func (s *SQLite) readTx(ctx context.Context) (*sql.Tx, error) {
	return s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
}

// Versions lists the playbook's versions newest first, with their file
// lists but without contents, documentation or flow diagram.
func (s *SQLite) Versions(ctx context.Context, tenant, id string) ([]Version, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, wrap("versions", err)
	}
	defer tx.Rollback()
	if _, err := getPlaybook(ctx, tx, tenant, id); err != nil {
		return nil, wrap("versions", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT number, saved_at, saved_by, fence, lines, report
		FROM versions WHERE playbook_id = ? ORDER BY number DESC`, id)
	if err != nil {
		return nil, wrap("versions", err)
	}
	out := []Version{}
	index := map[int]int{}
	for rows.Next() {
		v, err := scanVersion(rows, false)
		if err != nil {
			rows.Close()
			return nil, wrap("versions", err)
		}
		index[v.Number] = len(out)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, wrap("versions", err)
	}
	rows.Close()

	rows, err = tx.QueryContext(ctx, `SELECT version, path, sha256, size FROM files
		WHERE playbook_id = ? ORDER BY version, path`, id)
	if err != nil {
		return nil, wrap("versions", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		var fi FileInfo
		if err := rows.Scan(&n, &fi.Path, &fi.SHA256, &fi.Size); err != nil {
			return nil, wrap("versions", err)
		}
		if i, ok := index[n]; ok {
			out[i].Files = append(out[i].Files, fi)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("versions", err)
	}
	return out, nil
}

// Version returns one version with its documentation, flow diagram and
// files (sorted by path, with contents).
func (s *SQLite) Version(ctx context.Context, tenant, id string, number int) (Version, []File, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return Version{}, nil, wrap("version", err)
	}
	defer tx.Rollback()
	if _, err := getPlaybook(ctx, tx, tenant, id); err != nil {
		return Version{}, nil, wrap("version", err)
	}
	v, files, err := readVersion(ctx, tx, id, number)
	return v, files, wrap("version", err)
}

// ActiveVersion returns the version an active playbook runs, with its
// files, read in one transaction with the playbook so an activation in
// between cannot mix two versions.
func (s *SQLite) ActiveVersion(ctx context.Context, tenant, id string) (Version, []File, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return Version{}, nil, wrap("active version", err)
	}
	defer tx.Rollback()
	p, err := getPlaybook(ctx, tx, tenant, id)
	if err != nil {
		return Version{}, nil, wrap("active version", err)
	}
	if p.Status != StatusActive || p.ActiveVersion == nil {
		return Version{}, nil, ErrNotActive
	}
	v, files, err := readVersion(ctx, tx, id, *p.ActiveVersion)
	return v, files, wrap("active version", err)
}

// readVersion reads version number of playbook id in tx.
func readVersion(ctx context.Context, tx *sql.Tx, id string, number int) (Version, []File, error) {
	v, err := scanVersion(tx.QueryRowContext(ctx, `SELECT number, saved_at, saved_by, fence, lines, report,
		documentation, flow_diagram FROM versions WHERE playbook_id = ? AND number = ?`, id, number), true)
	if err != nil {
		return Version{}, nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT path, sha256, size, content FROM files
		WHERE playbook_id = ? AND version = ? ORDER BY path`, id, number)
	if err != nil {
		return Version{}, nil, err
	}
	defer rows.Close()
	files := []File{}
	for rows.Next() {
		var fi FileInfo
		var content []byte
		if err := rows.Scan(&fi.Path, &fi.SHA256, &fi.Size, &content); err != nil {
			return Version{}, nil, err
		}
		if content == nil {
			content = []byte{}
		}
		v.Files = append(v.Files, fi)
		files = append(files, File{Path: fi.Path, Content: content})
	}
	if err := rows.Err(); err != nil {
		return Version{}, nil, err
	}
	return v, files, nil
}

// Activate makes version (0: the latest) the one the playbook runs,
// recording by as its updater. The version must exist and have passed
// validation; activating another version replaces the active one.
func (s *SQLite) Activate(ctx context.Context, tenant, id string, version int, by string) (Playbook, error) {
	if version < 0 {
		return Playbook{}, ErrNoVersion
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Playbook{}, wrap("activate", err)
	}
	defer tx.Rollback()
	p, err := getPlaybook(ctx, tx, tenant, id)
	if err != nil {
		return Playbook{}, wrap("activate", err)
	}
	if version == 0 {
		version = p.CurrentVersion
	}
	var report string
	err = tx.QueryRowContext(ctx, `SELECT report FROM versions WHERE playbook_id = ? AND number = ?`,
		id, version).Scan(&report)
	if errors.Is(err, sql.ErrNoRows) {
		return Playbook{}, ErrNoVersion
	}
	if err != nil {
		return Playbook{}, wrap("activate", err)
	}
	var r Report
	if err := json.Unmarshal([]byte(report), &r); err != nil {
		return Playbook{}, wrap("activate", err)
	}
	if !r.Passed() {
		return Playbook{}, ErrNotValid
	}
	p.Status = StatusActive
	p.ActiveVersion = &version
	return s.setActive(ctx, tx, p, by, "activate")
}

// Deactivate disables the playbook, recording by as its updater.
func (s *SQLite) Deactivate(ctx context.Context, tenant, id, by string) (Playbook, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Playbook{}, wrap("deactivate", err)
	}
	defer tx.Rollback()
	p, err := getPlaybook(ctx, tx, tenant, id)
	if err != nil {
		return Playbook{}, wrap("deactivate", err)
	}
	p.Status = StatusDisabled
	p.ActiveVersion = nil
	return s.setActive(ctx, tx, p, by, "deactivate")
}

// setActive writes p's status and active version and commits tx.
func (s *SQLite) setActive(ctx context.Context, tx *sql.Tx, p Playbook, by, op string) (Playbook, error) {
	p.UpdatedAt = s.stamp()
	p.UpdatedBy = by
	var active any // NULL while disabled
	if p.ActiveVersion != nil {
		active = *p.ActiveVersion
	}
	if _, err := tx.ExecContext(ctx, `UPDATE playbooks SET status = ?, active_version = ?, updated_at = ?, updated_by = ?
		WHERE id = ?`, p.Status, active, formatTime(p.UpdatedAt), p.UpdatedBy, p.ID); err != nil {
		return Playbook{}, wrap(op, err)
	}
	if err := tx.Commit(); err != nil {
		return Playbook{}, wrap(op, err)
	}
	return p, nil
}

// Delete removes a disabled playbook with all its versions.
func (s *SQLite) Delete(ctx context.Context, tenant, id string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("delete", err)
	}
	defer tx.Rollback()
	p, err := getPlaybook(ctx, tx, tenant, id)
	if err != nil {
		return wrap("delete", err)
	}
	if p.Status == StatusActive {
		return ErrActive
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM playbooks WHERE id = ?`, id); err != nil {
		return wrap("delete", err)
	}
	return wrap("delete", tx.Commit())
}

// Ping checks both the writer and the readers answer.
func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return wrap("ping", err)
	}
	return wrap("ping", s.w.PingContext(ctx))
}

// Close closes the database.
func (s *SQLite) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}
