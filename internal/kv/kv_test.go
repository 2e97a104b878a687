package kv_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/testsvc"
)

// conformance runs the same behaviour checks against every Store.
func conformance(t *testing.T, s kv.Store, expire func(time.Duration)) {
	ctx := context.Background()
	t.Run("missing", func(t *testing.T) {
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("Get missing: %v", err)
		}
		if _, err := s.Take(ctx, "nope"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("Take missing: %v", err)
		}
		if err := s.Delete(ctx, "nope"); err != nil {
			t.Fatalf("Delete missing: %v", err)
		}
	})
	t.Run("set get delete", func(t *testing.T) {
		if err := s.Set(ctx, "a", []byte("1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "a", []byte("2"), time.Minute); err != nil {
			t.Fatal(err)
		}
		v, err := s.Get(ctx, "a")
		if err != nil || string(v) != "2" {
			t.Fatalf("Get = %q, %v; want 2", v, err)
		}
		if err := s.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "a"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("after Delete: %v", err)
		}
	})
	t.Run("ttl", func(t *testing.T) {
		if err := s.Set(ctx, "short", []byte("x"), 0); err == nil {
			t.Fatal("zero ttl accepted")
		}
		if err := s.Set(ctx, "short", []byte("x"), 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		expire(120 * time.Millisecond)
		if _, err := s.Get(ctx, "short"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("expired key still there: %v", err)
		}
	})
	t.Run("take is single use under contention", func(t *testing.T) {
		if err := s.Set(ctx, "ticket", []byte("t"), time.Minute); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if v, err := s.Take(ctx, "ticket"); err == nil && string(v) == "t" {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d callers took the ticket, want 1", wins.Load())
		}
	})
	t.Run("ping", func(t *testing.T) {
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMemory(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := kv.NewMemory(clock)
	conformance(t, s, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() })
}

func TestRedis(t *testing.T) {
	srv := testsvc.StartRedis(t)
	s, err := kv.NewRedis(srv.URL, "test:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conformance(t, s, time.Sleep)
}

func TestRedisGoneAndBack(t *testing.T) {
	srv := testsvc.StartRedis(t)
	s, err := kv.NewRedis(srv.URL, "test:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	srv.Stop()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis stopped")
	}
	if _, err := s.Get(ctx, "x"); err == nil || errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get with Redis stopped = %v, want a connection error (not ErrNotFound)", err)
	}
	srv.Restart()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
}

func TestNewRedisHidesPassword(t *testing.T) {
	_, err := kv.NewRedis("redis://:hunter2@[bad", "")
	if err == nil {
		t.Fatal("bad URL accepted")
	}
	if got := err.Error(); strings.Contains(got, "hunter2") {
		t.Fatalf("error leaks the password: %s", got)
	}
}
