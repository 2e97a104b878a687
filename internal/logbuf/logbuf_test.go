package logbuf

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink is a concurrency-safe bytes.Buffer that counts writes.
type sink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.buf.Write(p)
}

func (s *sink) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.buf.String() }
func (s *sink) Writes() int    { s.mu.Lock(); defer s.mu.Unlock(); return s.writes }

func TestDirectWritesGoOutAtOnce(t *testing.T) {
	var out sink
	w := New(&out, time.Hour)
	defer w.Close()
	fmt.Fprint(w, "now\n")
	if out.String() != "now\n" {
		t.Fatalf("out = %q", out.String())
	}
}

func TestDeferredWritesWaitAndKeepTheirOrder(t *testing.T) {
	var out sink
	w := New(&out, time.Hour)
	defer w.Close()
	fmt.Fprint(w.Deferred(), "a\n")
	fmt.Fprint(w.Deferred(), "b\n")
	if out.String() != "" {
		t.Fatalf("deferred lines went out before a flush: %q", out.String())
	}
	// A direct line writes the held ones out before itself.
	fmt.Fprint(w, "c\n")
	if out.String() != "a\nb\nc\n" {
		t.Fatalf("out = %q, want a, b, c in order", out.String())
	}
	if out.Writes() != 2 {
		t.Errorf("%d writes, want 2 (the batch, then the direct line)", out.Writes())
	}
}

func TestTheIntervalFlushes(t *testing.T) {
	var out sink
	w := New(&out, 5*time.Millisecond)
	defer w.Close()
	fmt.Fprint(w.Deferred(), "later\n")
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "later\n" {
		if time.Now().After(deadline) {
			t.Fatal("the timer never flushed")
		}
		time.Sleep(time.Millisecond)
	}
	// The timer re-arms for the next batch.
	fmt.Fprint(w.Deferred(), "again\n")
	for out.String() != "later\nagain\n" {
		if time.Now().After(deadline) {
			t.Fatalf("the second batch never went out: %q", out.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAFullBufferFlushesWithoutWaiting(t *testing.T) {
	var out sink
	w := New(&out, time.Hour)
	defer w.Close()
	line := strings.Repeat("x", 1023) + "\n"
	for range flushAt / len(line) {
		fmt.Fprint(w.Deferred(), line)
	}
	if got := len(out.String()); got != flushAt {
		t.Fatalf("%d bytes out after %d deferred, want all of them", got, flushAt)
	}
}

func TestCloseWritesTheRestAndLaterWritesPassThrough(t *testing.T) {
	var out sink
	w := New(&out, time.Hour)
	fmt.Fprint(w.Deferred(), "held\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "held\n" {
		t.Fatalf("Close left %q", out.String())
	}
	fmt.Fprint(w.Deferred(), "after\n")
	if out.String() != "held\nafter\n" {
		t.Fatalf("a deferred write after Close waited: %q", out.String())
	}
}

func TestConcurrentWritersLoseNoLine(t *testing.T) {
	var out sink
	w := New(&out, time.Millisecond)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for j := range lines {
				line := fmt.Sprintf("w%d-%d\n", i, j)
				if j%3 == 0 {
					fmt.Fprint(w, line)
				} else {
					fmt.Fprint(w.Deferred(), line)
				}
			}
		})
	}
	wg.Wait()
	w.Close()
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines out, want %d", len(got), writers*lines)
	}
	seen := map[string]bool{}
	for _, l := range got {
		if seen[l] {
			t.Fatalf("line %q twice", l)
		}
		seen[l] = true
	}
	// Each writer's lines keep their order.
	next := make([]int, writers)
	for _, l := range got {
		var i, j int
		if _, err := fmt.Sscanf(l, "w%d-%d", &i, &j); err != nil {
			t.Fatalf("torn line %q", l)
		}
		if j < next[i] {
			t.Fatalf("writer %d's line %d came after %d", i, j, next[i])
		}
		next[i] = j
	}
}

func TestHandlerSendsDeferredRecordsToTheDeferredSide(t *testing.T) {
	var out sink
	w := New(&out, time.Hour)
	defer w.Close()
	h := NewHandler(slog.NewTextHandler(w, nil), slog.NewTextHandler(w.Deferred(), nil))
	log := slog.New(h).With("request_id", "r1")
	slog.New(log.Handler().(*Handler).Deferred()).Info("access")
	if out.String() != "" {
		t.Fatalf("a deferred record went out at once: %q", out.String())
	}
	log.Info("now")
	s := out.String()
	if !strings.Contains(s, "msg=access request_id=r1") || !strings.Contains(s, "msg=now request_id=r1") {
		t.Fatalf("records lost their attributes or order: %q", s)
	}
	if strings.Index(s, "access") > strings.Index(s, "now") {
		t.Fatalf("order: %q", s)
	}
	if !h.Enabled(context.Background(), slog.LevelInfo) || h.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled does not follow the handler's level")
	}
	g := slog.New(h.WithGroup("g"))
	g.Info("grouped", "k", "v")
	if !strings.Contains(out.String(), "g.k=v") {
		t.Errorf("WithGroup lost: %q", out.String())
	}
}
