// Package logbuf batches high-volume log lines. A Writer passes what is
// written to it straight through, and holds what is written to its
// Deferred side for up to an interval (or until 64 KiB pile up), so that
// thousands of access-log lines a second cost a write(2) every ~100 ms
// instead of one each. Order is kept: a direct write first writes out the
// deferred lines before it. Close writes out the rest; nothing is lost at
// shutdown.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// flushAt is how much deferred output is written out without waiting for
// the interval.
const flushAt = 64 << 10

// Writer is safe for concurrent use.
type Writer struct {
	out   io.Writer
	every time.Duration

	wmu sync.Mutex // serialises writes to out

	mu     sync.Mutex // guards the fields below
	buf    []byte
	spare  []byte
	timer  *time.Timer
	armed  bool
	closed bool
}

// New returns a Writer over out whose deferred lines wait at most every.
func New(out io.Writer, every time.Duration) *Writer {
	return &Writer{out: out, every: every}
}

// Write writes p now, after the deferred lines still held.
func (w *Writer) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if held := w.take(); len(held) > 0 {
		_, _ = w.out.Write(held)
		w.give(held)
	}
	return w.out.Write(p)
}

// Deferred is the side whose writes are batched.
func (w *Writer) Deferred() io.Writer { return deferred{w} }

type deferred struct{ w *Writer }

func (d deferred) Write(p []byte) (int, error) {
	w := d.w
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.Write(p)
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= flushAt
	if !full && !w.armed {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(w.every, func() { _ = w.Flush() })
		} else {
			w.timer.Reset(w.every)
		}
	}
	w.mu.Unlock()
	if full {
		_ = w.Flush()
	}
	return len(p), nil
}

// Flush writes out the deferred lines.
func (w *Writer) Flush() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	held := w.take()
	if len(held) == 0 {
		return nil
	}
	_, err := w.out.Write(held)
	w.give(held)
	return err
}

// Close writes out the deferred lines; later writes on either side go
// straight through.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	return w.Flush()
}

// take swaps the held lines out (they are written outside w.mu, so that
// deferred writers never wait for I/O).
func (w *Writer) take() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	held := w.buf
	w.buf = w.spare[:0]
	w.spare = nil
	w.armed = false
	return held
}

// give hands a written-out buffer back for reuse.
func (w *Writer) give(b []byte) {
	if cap(b) > 4*flushAt {
		return
	}
	w.mu.Lock()
	if w.spare == nil {
		w.spare = b[:0]
	}
	w.mu.Unlock()
}

// Handler is an slog.Handler that writes at once, with a Deferred
// variant for high-volume records (access logs) that may wait.
type Handler struct {
	now, later slog.Handler
}

// NewHandler pairs a handler over a Writer with the same handler over its
// Deferred side.
func NewHandler(now, later slog.Handler) *Handler { return &Handler{now: now, later: later} }

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.now.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error { return h.now.Handle(ctx, r) }

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{now: h.now.WithAttrs(as), later: h.later.WithAttrs(as)}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{now: h.now.WithGroup(name), later: h.later.WithGroup(name)}
}

// Deferred is the handler whose records may wait for the next flush.
func (h *Handler) Deferred() slog.Handler { return h.later }
