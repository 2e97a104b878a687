// Package sqlstore opens the gateway's embedded SQLite databases the one
// way they are all opened: a file of mode 0600 in a 0700 folder, a single
// writer connection (so this process's writes queue instead of failing with
// SQLITE_BUSY) in WAL mode with foreign keys on, a pool of query-only
// readers beside it, and the owner's numbered migrations applied.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/playbookstudio/gateway/internal/fault"
	"modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrSchemaTooNew is returned by Open when the database was migrated by a
// newer program than this one: its schema holds versions this binary does
// not know, and writing to it could corrupt it.
var ErrSchemaTooNew = errors.New("sqlstore: the database schema is newer than this program")

// TimeFormat is RFC 3339 in UTC with a fixed nine-digit fraction, so stored
// times round-trip to the nanosecond and sort as text.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// busyTimeoutMS bounds how long a connection waits for a lock held by
// another process on the same file. Writers of this process never contend:
// they share one connection.
const busyTimeoutMS = 10000

// Options say what to open.
type Options struct {
	// Path is the database file.
	Path string
	// Migrations holds files named NNNN_what.sql in Dir, applied in order.
	Migrations fs.FS
	Dir        string
	// Label prefixes errors ("playbook: sqlite").
	Label string
}

// DB is an opened database: W writes (one connection, transactions start
// with BEGIN IMMEDIATE), R reads (query-only connections that WAL lets run
// alongside the writer).
type DB struct {
	W, R *sql.DB
}

// Close closes both pools.
func (d *DB) Close() error { return errors.Join(d.R.Close(), d.W.Close()) }

// Open opens (creating when needed) the database at o.Path and brings its
// schema up to date.
func Open(o Options) (*DB, error) {
	label := o.Label
	if label == "" {
		label = "sqlstore"
	}
	fail := func(err error) error { return fmt.Errorf("%s: %w", label, err) }
	if o.Path == "" || o.Path == ":memory:" || strings.HasPrefix(o.Path, "file:") {
		return nil, fmt.Errorf("%s: need a file path, got %q", label, o.Path)
	}
	if strings.ContainsAny(o.Path, "?#") {
		return nil, fmt.Errorf("%s: path %q must not contain ? or #", label, o.Path)
	}
	if o.Migrations == nil {
		return nil, fmt.Errorf("%s: no migrations", label)
	}
	ms, err := loadMigrations(o.Migrations, o.Dir)
	if err != nil {
		return nil, fail(err)
	}
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fail(err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fail(err)
	}
	// Create the file ourselves so it gets 0600 whatever the umask; SQLite
	// gives its -wal and -shm files the main file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fail(err)
	}
	f.Close()
	if err := os.Chmod(abs, 0o600); err != nil {
		return nil, fail(err)
	}

	bt := strconv.Itoa(busyTimeoutMS)
	w, err := sql.Open("sqlite", abs+"?_busy_timeout="+bt+"&_foreign_keys=1&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate")
	if err != nil {
		return nil, fail(err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := migrate(ctx, w, ms, label); err != nil {
		w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite", abs+"?_busy_timeout="+bt+"&_foreign_keys=1&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fail(err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fail(err)
	}
	return &DB{W: w, R: r}, nil
}

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	if dir == "" {
		dir = "."
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("bad migration file name %q", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("two migrations numbered %d", ms[i].version)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations")
	}
	return ms, nil
}

// migrate applies the migrations the database lacks, each in its own
// transaction, and refuses a database that knows versions this program
// does not.
func migrate(ctx context.Context, db *sql.DB, ms []migration, label string) error {
	fail := func(err error) error { return fmt.Errorf("%s: %w", label, err) }
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fail(err)
	}
	known := map[int]bool{}
	for _, m := range ms {
		known[m.version] = true
	}
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fail(err)
	}
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fail(err)
		}
		if !known[v] {
			rows.Close()
			return fmt.Errorf("%s: %w: the database has schema version %d, this program knows up to %d",
				label, ErrSchemaTooNew, v, ms[len(ms)-1].version)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fail(err)
	}
	rows.Close()

	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if err := applyMigration(ctx, db, m); err != nil {
			return fmt.Errorf("%s: migration %s: %w", label, m.name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Another process may have applied it since we looked.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		m.version, FormatTime(time.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

// FormatTime is t as stored: TimeFormat in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime reads a stored time.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// IsUnique reports whether err is a UNIQUE or PRIMARY KEY constraint
// failure.
func IsUnique(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		// SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
		return e.Code() == 2067 || e.Code() == 1555
	}
	return false
}

// Wrap says where a database error happened ("alert: sqlite: insert: …").
// A domain's refusals (faults) and the caller's cancellation pass as they
// are, so callers can still tell them apart.
func Wrap(label, op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := fault.As(err); ok || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%s: %s: %w", label, op, err)
}
