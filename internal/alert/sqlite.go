package alert

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

// SQLite is the embedded Store (DATA_DIR/alerts.db).
type SQLite struct {
	db *sqlstore.DB
}

var _ Store = (*SQLite)(nil)

// NewSQLite opens (creating when needed) the database at path.
func NewSQLite(path string) (*SQLite, error) {
	db, err := sqlstore.Open(sqlstore.Options{Path: path, Migrations: migrationFiles, Dir: "migrations", Label: "alert: sqlite"})
	if err != nil {
		return nil, err
	}
	return &SQLite{db: db}, nil
}

func wrap(op string, err error) error { return sqlstore.Wrap("alert: sqlite", op, err) }

type scanner interface{ Scan(...any) error }

func ft(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return sqlstore.FormatTime(t)
}

func pt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return sqlstore.ParseTime(s)
}

// ---- sources and keys

const sourceCols = `id, tenant, name, groups_json, created_at, created_by`

func scanSource(row scanner) (Source, error) {
	var s Source
	var groups, created string
	err := row.Scan(&s.ID, &s.Tenant, &s.Name, &groups, &created, &s.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Source{}, ErrSourceNotFound
	}
	if err != nil {
		return Source{}, err
	}
	if err := json.Unmarshal([]byte(groups), &s.Groups); err != nil {
		return Source{}, fmt.Errorf("bad stored groups: %w", err)
	}
	if s.Groups == nil {
		s.Groups = []string{}
	}
	s.CreatedAt, err = pt(created)
	return s, err
}

func (s *SQLite) CreateSource(ctx context.Context, src Source) error {
	g := src.Groups
	if g == nil {
		g = []string{}
	}
	groups, err := json.Marshal(g)
	if err != nil {
		return wrap("create source", err)
	}
	_, err = s.db.W.ExecContext(ctx, `INSERT INTO alert_sources (`+sourceCols+`, name_key) VALUES (?,?,?,?,?,?,?)`,
		src.ID, src.Tenant, src.Name, string(groups), ft(src.CreatedAt), src.CreatedBy, strings.ToLower(src.Name))
	if sqlstore.IsUnique(err) {
		return ErrSourceNameTaken
	}
	return wrap("create source", err)
}

func (s *SQLite) GetSource(ctx context.Context, tenant, id string) (Source, error) {
	src, err := scanSource(s.db.R.QueryRowContext(ctx, `SELECT `+sourceCols+` FROM alert_sources WHERE tenant = ? AND id = ?`, tenant, id))
	return src, wrap("get source", err)
}

func (s *SQLite) GetSourceByName(ctx context.Context, tenant, name string) (Source, error) {
	src, err := scanSource(s.db.R.QueryRowContext(ctx, `SELECT `+sourceCols+` FROM alert_sources WHERE tenant = ? AND name_key = ?`, tenant, strings.ToLower(name)))
	return src, wrap("get source by name", err)
}

func (s *SQLite) ListSources(ctx context.Context, tenant string) ([]Source, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sourceCols+` FROM alert_sources WHERE tenant = ? ORDER BY name_key, id`, tenant)
	if err != nil {
		return nil, wrap("list sources", err)
	}
	defer rows.Close()
	out := []Source{}
	for rows.Next() {
		src, err := scanSource(rows)
		if err != nil {
			return nil, wrap("list sources", err)
		}
		out = append(out, src)
	}
	return out, wrap("list sources", rows.Err())
}

func affected(op string, res sql.Result, err error, none error) error {
	if err != nil {
		return wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap(op, err)
	}
	if n == 0 {
		return none
	}
	return nil
}

func (s *SQLite) DeleteSource(ctx context.Context, tenant, id string) error {
	res, err := s.db.W.ExecContext(ctx, `DELETE FROM alert_sources WHERE tenant = ? AND id = ?`, tenant, id)
	return affected("delete source", res, err, ErrSourceNotFound)
}

const keyCols = `id, tenant, source_id, hash, created_at, created_by`

func scanKey(row scanner) (Key, error) {
	var k Key
	var created string
	err := row.Scan(&k.ID, &k.Tenant, &k.SourceID, &k.Hash, &created, &k.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrKeyNotFound
	}
	if err != nil {
		return Key{}, err
	}
	k.CreatedAt, err = pt(created)
	return k, err
}

func (s *SQLite) AddKey(ctx context.Context, k Key) error {
	res, err := s.db.W.ExecContext(ctx, `INSERT INTO alert_source_keys (`+keyCols+`)
		SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM alert_sources WHERE tenant = ? AND id = ?)`,
		k.ID, k.Tenant, k.SourceID, k.Hash, ft(k.CreatedAt), k.CreatedBy, k.Tenant, k.SourceID)
	return affected("add key", res, err, ErrSourceNotFound)
}

func (s *SQLite) GetKey(ctx context.Context, id string) (Key, error) {
	k, err := scanKey(s.db.R.QueryRowContext(ctx, `SELECT `+keyCols+` FROM alert_source_keys WHERE id = ?`, id))
	return k, wrap("get key", err)
}

func (s *SQLite) ListKeys(ctx context.Context, tenant, sourceID string) ([]Key, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+keyCols+` FROM alert_source_keys WHERE tenant = ? AND source_id = ? ORDER BY created_at, id`, tenant, sourceID)
	if err != nil {
		return nil, wrap("list keys", err)
	}
	defer rows.Close()
	out := []Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, wrap("list keys", err)
		}
		out = append(out, k)
	}
	return out, wrap("list keys", rows.Err())
}

func (s *SQLite) DeleteKey(ctx context.Context, tenant, sourceID, id string) error {
	res, err := s.db.W.ExecContext(ctx, `DELETE FROM alert_source_keys WHERE tenant = ? AND source_id = ? AND id = ?`, tenant, sourceID, id)
	return affected("delete key", res, err, ErrKeyNotFound)
}

// ---- alerts

const alertCols = `tenant, id, source_id, source_name, incident_id, title, severity, status, created_at, source_updated_at, received_at, updated_at, body`

func scanAlert(row scanner) (Alert, error) {
	var a Alert
	var created, srcUpdated, received, updated, body string
	err := row.Scan(&a.Tenant, &a.ID, &a.SourceID, &a.SourceName, &a.IncidentID, &a.Title, &a.Severity, &a.Status,
		&created, &srcUpdated, &received, &updated, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, ErrAlertNotFound
	}
	if err != nil {
		return Alert{}, err
	}
	a.JSON = json.RawMessage(body)
	for _, p := range []struct {
		s string
		t *time.Time
	}{{created, &a.CreatedAt}, {srcUpdated, &a.SourceUpdatedAt}, {received, &a.ReceivedAt}, {updated, &a.UpdatedAt}} {
		if *p.t, err = pt(p.s); err != nil {
			return Alert{}, err
		}
	}
	return a, nil
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func insertActivity(ctx context.Context, x execer, tenant, alertID string, a Activity) error {
	run := ""
	if a.Run != nil {
		b, err := json.Marshal(a.Run)
		if err != nil {
			return err
		}
		run = string(b)
	}
	_, err := x.ExecContext(ctx, `INSERT INTO alert_activity (tenant, alert_id, at, kind, actor, detail, run_id, run_json) VALUES (?,?,?,?,?,?,?,?)`,
		tenant, alertID, ft(a.At), a.Kind, a.Actor, a.Detail, a.RunID, run)
	return err
}

func (s *SQLite) PutAlerts(ctx context.Context, puts []Put) ([]Outcome, error) {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap("put alerts", err)
	}
	defer tx.Rollback()
	out := make([]Outcome, 0, len(puts))
	for i, p := range puts {
		o, err := putAlert(ctx, tx, i, p)
		if err != nil {
			return nil, wrap("put alerts", err)
		}
		out = append(out, o)
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap("put alerts", err)
	}
	return out, nil
}

// putAlert is one alert of PutAlerts, the index-th, inside its
// transaction.
func putAlert(ctx context.Context, tx *sql.Tx, index int, p Put) (Outcome, error) {
	a := p.Alert
	old, err := scanAlert(tx.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE tenant = ? AND id = ?`, a.Tenant, a.ID))
	switch {
	case errors.Is(err, ErrAlertNotFound):
		if _, err := tx.ExecContext(ctx, `INSERT INTO alerts (`+alertCols+`, severity_rank) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			a.Tenant, a.ID, a.SourceID, a.SourceName, a.IncidentID, a.Title, a.Severity, a.Status,
			ft(a.CreatedAt), ft(a.SourceUpdatedAt), ft(a.ReceivedAt), ft(a.UpdatedAt), string(a.JSON), severityRank(a.Severity)); err != nil {
			return 0, err
		}
		return Created, insertActivity(ctx, tx, a.Tenant, a.ID, p.OnCreate)
	case err != nil:
		return 0, err
	}
	// Checked before "newer": another source learns nothing from which
	// of its posts would have counted, and never gets an Unchanged that
	// reads as accepted.
	if old.SourceID != a.SourceID {
		return 0, OtherSource(index, a.ID)
	}
	if a.SourceUpdatedAt.IsZero() || !a.SourceUpdatedAt.After(old.SourceUpdatedAt) {
		return Unchanged, nil
	}
	// The alert keeps its source and its first arrival time.
	if _, err := tx.ExecContext(ctx, `UPDATE alerts SET source_name = ?, incident_id = ?, title = ?, severity = ?, severity_rank = ?,
		status = ?, created_at = ?, source_updated_at = ?, updated_at = ?, body = ? WHERE tenant = ? AND id = ?`,
		a.SourceName, a.IncidentID, a.Title, a.Severity, severityRank(a.Severity), a.Status,
		ft(a.CreatedAt), ft(a.SourceUpdatedAt), ft(a.UpdatedAt), string(a.JSON), a.Tenant, a.ID); err != nil {
		return 0, err
	}
	return Updated, insertActivity(ctx, tx, a.Tenant, a.ID, p.OnUpdate)
}

func (s *SQLite) GetAlert(ctx context.Context, tenant, id string) (Alert, error) {
	a, err := scanAlert(s.db.R.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE tenant = ? AND id = ?`, tenant, id))
	return a, wrap("get alert", err)
}

func (s *SQLite) ListAlerts(ctx context.Context, tenant string, f Filter) ([]Alert, error) {
	q := `SELECT ` + alertCols + ` FROM alerts WHERE tenant = ?`
	args := []any{tenant}
	for _, c := range []struct{ col, v string }{{"status", f.Status}, {"severity", f.Severity}, {"source_id", f.SourceID}, {"incident_id", f.IncidentID}} {
		if c.v != "" {
			q += ` AND ` + c.col + ` = ?`
			args = append(args, c.v)
		}
	}
	q += ` ORDER BY created_at DESC, id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.db.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list alerts", err)
	}
	defer rows.Close()
	out := []Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, wrap("list alerts", err)
		}
		out = append(out, a)
	}
	return out, wrap("list alerts", rows.Err())
}

func (s *SQLite) ModifyAlert(ctx context.Context, tenant, id string, fn func(*Alert) ([]Activity, error)) (Alert, error) {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return Alert{}, wrap("modify alert", err)
	}
	defer tx.Rollback()
	a, err := scanAlert(tx.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE tenant = ? AND id = ?`, tenant, id))
	if err != nil {
		return Alert{}, wrap("modify alert", err)
	}
	rows, err := fn(&a)
	if err != nil {
		return Alert{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alerts SET status = ?, updated_at = ?, body = ? WHERE tenant = ? AND id = ?`,
		a.Status, ft(a.UpdatedAt), string(a.JSON), tenant, id); err != nil {
		return Alert{}, wrap("modify alert", err)
	}
	for _, r := range rows {
		if err := insertActivity(ctx, tx, tenant, id, r); err != nil {
			return Alert{}, wrap("modify alert", err)
		}
	}
	return a, wrap("modify alert", tx.Commit())
}

func (s *SQLite) PutRunActivity(ctx context.Context, tenant, alertID string, a Activity) error {
	run := ""
	if a.Run != nil {
		b, err := json.Marshal(a.Run)
		if err != nil {
			return wrap("put run activity", err)
		}
		run = string(b)
	}
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return wrap("put run activity", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM alerts WHERE tenant = ? AND id = ?`, tenant, alertID).Scan(&n); err != nil {
		return wrap("put run activity", err)
	}
	if n == 0 {
		return ErrAlertNotFound
	}
	res, err := tx.ExecContext(ctx, `UPDATE alert_activity SET actor = ?, detail = ?, run_json = ? WHERE tenant = ? AND alert_id = ? AND run_id = ?`,
		a.Actor, a.Detail, run, tenant, alertID, a.RunID)
	if err != nil {
		return wrap("put run activity", err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return wrap("put run activity", err)
	} else if k == 0 {
		if err := insertActivity(ctx, tx, tenant, alertID, a); err != nil {
			return wrap("put run activity", err)
		}
	}
	return wrap("put run activity", tx.Commit())
}

func (s *SQLite) Activity(ctx context.Context, tenant string, alertIDs []string) ([]Activity, error) {
	out := []Activity{}
	if len(alertIDs) == 0 {
		return out, nil
	}
	args := []any{tenant}
	for _, id := range alertIDs {
		args = append(args, id)
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT alert_id, at, kind, actor, detail, run_id, run_json FROM alert_activity
		WHERE tenant = ? AND alert_id IN (?`+strings.Repeat(",?", len(alertIDs)-1)+`) ORDER BY at, seq`, args...)
	if err != nil {
		return nil, wrap("activity", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a Activity
		var at, run string
		if err := rows.Scan(&a.AlertID, &at, &a.Kind, &a.Actor, &a.Detail, &a.RunID, &run); err != nil {
			return nil, wrap("activity", err)
		}
		if a.At, err = pt(at); err != nil {
			return nil, wrap("activity", err)
		}
		if run != "" {
			a.Run = &RunActivity{}
			if err := json.Unmarshal([]byte(run), a.Run); err != nil {
				return nil, wrap("activity", err)
			}
		}
		out = append(out, a)
	}
	return out, wrap("activity", rows.Err())
}

func (s *SQLite) Incidents(ctx context.Context, tenant string, limit int) ([]IncidentSummary, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT a.incident_id, count(*), max(a.severity_rank),
			sum(a.status = 'resolved'), sum(a.status = 'inProgress'), min(a.created_at), max(a.updated_at),
			(SELECT b.title FROM alerts b WHERE b.tenant = a.tenant AND b.incident_id = a.incident_id ORDER BY b.severity_rank DESC, b.created_at, b.id LIMIT 1),
			(SELECT b.severity FROM alerts b WHERE b.tenant = a.tenant AND b.incident_id = a.incident_id ORDER BY b.severity_rank DESC, b.created_at, b.id LIMIT 1)
		FROM alerts a WHERE a.tenant = ? AND a.incident_id <> ''
		GROUP BY a.incident_id ORDER BY max(a.updated_at) DESC, a.incident_id LIMIT ?`, tenant, limit)
	if err != nil {
		return nil, wrap("incidents", err)
	}
	out := []IncidentSummary{}
	var ids []any
	for rows.Next() {
		var in IncidentSummary
		var rank, resolved, inProgress int
		var first, last string
		if err := rows.Scan(&in.ID, &in.AlertCount, &rank, &resolved, &inProgress, &first, &last, &in.Title, &in.Severity); err != nil {
			rows.Close()
			return nil, wrap("incidents", err)
		}
		switch {
		case resolved == in.AlertCount:
			in.Status = "resolved"
		case inProgress > 0 || resolved > 0:
			in.Status = "inProgress"
		default:
			in.Status = "new"
		}
		if in.FirstAt, err = pt(first); err == nil {
			in.LastAt, err = pt(last)
		}
		if err != nil {
			rows.Close()
			return nil, wrap("incidents", err)
		}
		in.Sources = []string{}
		out = append(out, in)
		ids = append(ids, in.ID)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, wrap("incidents", err)
	}
	rows.Close()
	if len(ids) == 0 {
		return out, nil
	}
	srows, err := s.db.R.QueryContext(ctx, `SELECT DISTINCT incident_id, source_name FROM alerts WHERE tenant = ? AND incident_id IN (?`+
		strings.Repeat(",?", len(ids)-1)+`) ORDER BY incident_id, source_name`, append([]any{tenant}, ids...)...)
	if err != nil {
		return nil, wrap("incidents", err)
	}
	defer srows.Close()
	at := map[string]int{}
	for i, in := range out {
		at[in.ID] = i
	}
	for srows.Next() {
		var id, name string
		if err := srows.Scan(&id, &name); err != nil {
			return nil, wrap("incidents", err)
		}
		out[at[id]].Sources = append(out[at[id]].Sources, name)
	}
	return out, wrap("incidents", srows.Err())
}

func (s *SQLite) FirstTime(ctx context.Context, name string) (bool, error) {
	res, err := s.db.W.ExecContext(ctx, `INSERT INTO alert_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, sqlstore.FormatTime(time.Now()))
	if err != nil {
		return false, wrap("first time", err)
	}
	n, err := res.RowsAffected()
	return n == 1, wrap("first time", err)
}

func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	if err := s.db.R.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return wrap("ping", err)
	}
	return wrap("ping", s.db.W.PingContext(ctx))
}

func (s *SQLite) Close() error { return s.db.Close() }
