package runner

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

// store keeps runs in SQLite (DATA_DIR/runs.db). Every change of a run's
// state is one conditional UPDATE, so several runner processes can share
// the table: a claim takes the next queued run and names its owner in
// the same statement (on Postgres, FOR UPDATE SKIP LOCKED in the subquery).
type store struct {
	db *sqlstore.DB
}

func openStore(path string) (*store, error) {
	db, err := sqlstore.Open(sqlstore.Options{Path: path, Migrations: migrationFiles, Dir: "migrations", Label: "runner: sqlite"})
	if err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) Close() error { return s.db.Close() }

const runCols = `id, tenant, trigger, rule_id, alert_id, incident_id, playbook_id, playbook_version, status,
	queued_at, started_at, entered_at, ended_at, duration_ms, result, error, log, calls, actions, started_by, dry_run`

type scanner interface{ Scan(...any) error }

func scanRun(row scanner) (Run, error) {
	var r Run
	var queued string
	var started, entered, ended, result sql.NullString
	var dur sql.NullInt64
	var logJSON, calls, actions string
	var dry int
	err := row.Scan(&r.ID, &r.Tenant, &r.Trigger, &r.RuleID, &r.AlertID, &r.IncidentID, &r.PlaybookID, &r.PlaybookVersion,
		&r.Status, &queued, &started, &entered, &ended, &dur, &result, &r.Error, &logJSON, &calls, &actions, &r.StartedBy, &dry)
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, ErrNotFound
	}
	if err != nil {
		return Run{}, err
	}
	if r.QueuedAt, err = sqlstore.ParseTime(queued); err != nil {
		return Run{}, err
	}
	for _, p := range []struct {
		s   sql.NullString
		dst **time.Time
	}{{started, &r.StartedAt}, {entered, &r.EnteredAt}, {ended, &r.EndedAt}} {
		if p.s.Valid {
			t, err := sqlstore.ParseTime(p.s.String)
			if err != nil {
				return Run{}, err
			}
			*p.dst = &t
		}
	}
	if dur.Valid {
		d := dur.Int64
		r.DurationMS = &d
	}
	if result.Valid && result.String != "" {
		r.Result = json.RawMessage(result.String)
	}
	r.DryRun = dry != 0
	for _, p := range []struct {
		raw string
		dst any
	}{{logJSON, &r.Log}, {calls, &r.Calls}, {actions, &r.Actions}} {
		if err := json.Unmarshal([]byte(p.raw), p.dst); err != nil {
			return Run{}, fmt.Errorf("bad stored run %s: %w", r.ID, err)
		}
	}
	if r.Log == nil {
		r.Log = []LogLine{}
	}
	if r.Calls == nil {
		r.Calls = []Call{}
	}
	if r.Actions == nil {
		r.Actions = []Action{}
	}
	return r, nil
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return sqlstore.FormatTime(*t)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "[]"
	}
	return string(b)
}

func (s *store) insert(ctx context.Context, r Run) error {
	var result any
	if r.Result != nil {
		result = string(r.Result)
	}
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO runs (`+runCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.Tenant, r.Trigger, r.RuleID, r.AlertID, r.IncidentID, r.PlaybookID, r.PlaybookVersion, r.Status,
		sqlstore.FormatTime(r.QueuedAt), nullTime(r.StartedAt), nullTime(r.EnteredAt), nullTime(r.EndedAt), r.DurationMS,
		result, r.Error, mustJSON(r.Log), mustJSON(r.Calls), mustJSON(r.Actions), r.StartedBy, r.DryRun)
	return err
}

func (s *store) get(ctx context.Context, tenant, id string) (Run, error) {
	return scanRun(s.db.R.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE tenant = ? AND id = ?`, tenant, id))
}

func (s *store) list(ctx context.Context, tenant string, f Filter) ([]Run, error) {
	q := `SELECT ` + runCols + ` FROM runs WHERE tenant = ?`
	args := []any{tenant}
	if f.AlertID != "" {
		q += ` AND alert_id = ?`
		args = append(args, f.AlertID)
	}
	if f.PlaybookID != "" {
		q += ` AND playbook_id = ?`
		args = append(args, f.PlaybookID)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	q += ` ORDER BY queued_at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// claim takes the next queued run for owner, in one statement. The
// queue is fair between tenants rather than one FIFO: the next run is the
// oldest of the tenant with the fewest runs running, so a tenant whose
// rules queue a thousand runs delays another tenant's next run by at most
// the runs already running, not by its whole backlog. Within a tenant it
// is first in, first out.
func (s *store) claim(ctx context.Context, owner string, now time.Time) (Run, bool, error) {
	t := sqlstore.FormatTime(now)
	r, err := scanRun(s.db.W.QueryRowContext(ctx, `UPDATE runs SET status = 'running', owner = ?, started_at = ?, heartbeat_at = ?
		WHERE id = (
			WITH heads AS (
				SELECT tenant, MIN(queued_at) AS first FROM runs WHERE status = 'queued' GROUP BY tenant
			), busy AS (
				SELECT tenant, COUNT(*) AS n FROM runs WHERE status = 'running' GROUP BY tenant
			), next AS (
				SELECT h.tenant FROM heads h LEFT JOIN busy b ON b.tenant = h.tenant
				ORDER BY COALESCE(b.n, 0), h.first, h.tenant LIMIT 1
			)
			SELECT id FROM runs WHERE status = 'queued' AND tenant = (SELECT tenant FROM next)
			ORDER BY queued_at, id LIMIT 1
		) AND status = 'queued'
		RETURNING `+runCols, owner, t, t))
	if errors.Is(err, ErrNotFound) {
		return Run{}, false, nil
	}
	if err != nil {
		return Run{}, false, err
	}
	return r, true, nil
}

func (s *store) setInit(ctx context.Context, id, owner string, pid int, start uint64) error {
	_, err := s.db.W.ExecContext(ctx, `UPDATE runs SET init_pid = ?, init_start = ? WHERE id = ? AND owner = ? AND status = 'running'`,
		pid, int64(start), id, owner)
	return err
}

// heartbeat says owner still runs id, saves what the run recorded so far
// and tells whether someone asked to cancel it. held is false when the
// run is no longer this owner's (reaped meanwhile).
func (s *store) heartbeat(ctx context.Context, r Run, owner string, now time.Time) (cancel, held bool, err error) {
	var c int
	err = s.db.W.QueryRowContext(ctx, `UPDATE runs SET heartbeat_at = ?, entered_at = ?, log = ?, calls = ?, actions = ?
		WHERE id = ? AND owner = ? AND status = 'running' RETURNING cancel_requested`,
		sqlstore.FormatTime(now), nullTime(r.EnteredAt), mustJSON(r.Log), mustJSON(r.Calls), mustJSON(r.Actions), r.ID, owner).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	return c != 0, err == nil, err
}

// finish writes the end of a run owner holds; false when it no longer
// holds it.
func (s *store) finish(ctx context.Context, r Run, owner string) (bool, error) {
	var result any
	if r.Result != nil {
		result = string(r.Result)
	}
	res, err := s.db.W.ExecContext(ctx, `UPDATE runs SET status = ?, ended_at = ?, entered_at = ?, duration_ms = ?, result = ?, error = ?,
		log = ?, calls = ?, actions = ?, heartbeat_at = NULL WHERE id = ? AND owner = ? AND status = 'running'`,
		r.Status, nullTime(r.EndedAt), nullTime(r.EnteredAt), r.DurationMS, result, r.Error,
		mustJSON(r.Log), mustJSON(r.Calls), mustJSON(r.Actions), r.ID, owner)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// endQueued ends a queued run without running it (canceled, skipped).
func (s *store) endQueued(ctx context.Context, tenant, id string, st Status, msg string, now time.Time) (bool, error) {
	q := `UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ? AND status = 'queued'`
	args := []any{st, sqlstore.FormatTime(now), msg, id}
	if tenant != "" {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	res, err := s.db.W.ExecContext(ctx, q, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *store) requestCancel(ctx context.Context, tenant, id string) error {
	_, err := s.db.W.ExecContext(ctx, `UPDATE runs SET cancel_requested = 1 WHERE tenant = ? AND id = ? AND status = 'running'`, tenant, id)
	return err
}

// abandoned is a run the reaper ended, with where its sandbox ran.
type abandoned struct {
	Run
	owner     string
	initPID   int
	initStart uint64
}

// reap ends the running runs whose heartbeat is older than staleBefore,
// and those of owners the caller knows are dead (its own previous
// incarnations: deadOwnerPrefix), as abandoned.
func (s *store) reap(ctx context.Context, staleBefore time.Time, deadOwnerPrefix string, now time.Time) ([]abandoned, error) {
	like := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(deadOwnerPrefix) + "%"
	if deadOwnerPrefix == "" {
		like = "\x00never"
	}
	rows, err := s.db.W.QueryContext(ctx, `UPDATE runs SET status = 'abandoned', ended_at = ?, heartbeat_at = NULL,
		error = 'The runner running it stopped (the gateway was restarted or died); the run was abandoned.'
		WHERE status = 'running' AND (heartbeat_at < ? OR owner LIKE ? ESCAPE '\')
		RETURNING `+runCols+`, owner, init_pid, init_start`, sqlstore.FormatTime(now), sqlstore.FormatTime(staleBefore), like)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []abandoned
	for rows.Next() {
		var a abandoned
		var start int64
		var r Run
		var queued string
		var started, entered, ended, result sql.NullString
		var dur sql.NullInt64
		var logJSON, calls, actions string
		var dry int
		if err := rows.Scan(&r.ID, &r.Tenant, &r.Trigger, &r.RuleID, &r.AlertID, &r.IncidentID, &r.PlaybookID, &r.PlaybookVersion,
			&r.Status, &queued, &started, &entered, &ended, &dur, &result, &r.Error, &logJSON, &calls, &actions, &r.StartedBy, &dry,
			&a.owner, &a.initPID, &start); err != nil {
			return nil, err
		}
		if st, err := sqlstore.ParseTime(started.String); err == nil && started.Valid {
			r.StartedAt = &st
		}
		a.Run, a.initStart = r, uint64(start)
		out = append(out, a)
	}
	return out, rows.Err()
}
