package editlock_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/testsvc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// factory returns a Locker for one subtest and a function that lets time
// pass for it (a fake clock for Memory, real sleep for Redis).
type factory func(t *testing.T) (editlock.Locker, func(time.Duration))

func req(tenant, sid, user, playbook string) editlock.Request {
	return editlock.Request{
		Holder: editlock.Holder{
			SessionID: sid, Tenant: tenant, UserID: user,
			UserName: "Name of " + user, Playbook: playbook,
		},
		TTL: time.Minute,
	}
}

func acquire(t *testing.T, l editlock.Locker, r editlock.Request) editlock.Holder {
	t.Helper()
	res, err := l.Acquire(context.Background(), r)
	if err != nil {
		t.Fatalf("Acquire %s/%s/%s: %v", r.Holder.SessionID, r.Holder.UserID, r.Holder.Playbook, err)
	}
	return res.Holder
}

func wantHolder(t *testing.T, what string, got editlock.Holder, err error, want editlock.Holder) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got.SessionID != want.SessionID || got.Fence != want.Fence || got.UserName != want.UserName ||
		!got.AcquiredAt.Equal(want.AcquiredAt) {
		t.Fatalf("%s = %+v, want %+v", what, got, want)
	}
}

func sessions(hs []editlock.Holder) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.SessionID)
	}
	return out
}

// conformance runs the same behaviour checks against every Locker.
func conformance(t *testing.T, newLocker factory) {
	ctx := context.Background()
	// Each subtest uses its own tenant, so Redis state never leaks between them.
	tenant := func(t *testing.T) string { return "tenant " + t.Name() }

	t.Run("one session per user under contention", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []editlock.Holder
			busy    []*editlock.UserBusyError
			other   []error
		)
		for i := range 200 {
			wg.Go(func() {
				res, err := l.Acquire(ctx, req(tn, fmt.Sprint("s", i), "alice", fmt.Sprint("p", i)))
				mu.Lock()
				defer mu.Unlock()
				var ub *editlock.UserBusyError
				switch {
				case err == nil:
					winners = append(winners, res.Holder)
				case errors.As(err, &ub):
					busy = append(busy, ub)
				default:
					other = append(other, err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 || len(busy) != 199 || len(other) != 0 {
			t.Fatalf("winners %d, busy %d, other %v; want 1, 199, none", len(winners), len(busy), other)
		}
		for _, b := range busy {
			if b.Holder.SessionID != winners[0].SessionID {
				t.Fatalf("UserBusyError names %s, winner is %s", b.Holder.SessionID, winners[0].SessionID)
			}
		}
		got, err := l.UserHolder(ctx, tn, "alice")
		wantHolder(t, "UserHolder", got, err, winners[0])
	})

	t.Run("different users and playbooks all win", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		var wg sync.WaitGroup
		errs := make([]error, 200)
		for i := range 200 {
			wg.Go(func() {
				_, errs[i] = l.Acquire(ctx, req(tn, fmt.Sprint("s", i), fmt.Sprint("u", i), fmt.Sprint("p", i)))
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		hs, err := l.List(ctx, tn)
		if err != nil || len(hs) != 200 {
			t.Fatalf("List = %d holders, %v; want 200", len(hs), err)
		}
	})

	t.Run("one editor per playbook", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []editlock.Holder
			locked  []*editlock.PlaybookLockedError
		)
		for i := range 50 {
			wg.Go(func() {
				res, err := l.Acquire(ctx, req(tn, fmt.Sprint("s", i), fmt.Sprint("u", i), "new:weekly report"))
				mu.Lock()
				defer mu.Unlock()
				var pl *editlock.PlaybookLockedError
				switch {
				case err == nil:
					winners = append(winners, res.Holder)
				case errors.As(err, &pl):
					locked = append(locked, pl)
				default:
					t.Errorf("Acquire: %v", err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 || len(locked) != 49 {
			t.Fatalf("winners %d, locked %d; want 1, 49", len(winners), len(locked))
		}
		for _, pl := range locked {
			if pl.Holder.UserName != winners[0].UserName || pl.Holder.UserID != winners[0].UserID {
				t.Fatalf("PlaybookLockedError names %+v, winner is %+v", pl.Holder, winners[0])
			}
		}
		var pl *editlock.PlaybookLockedError
		_, err := l.Acquire(ctx, req(tn, "late", "late-user", "new:weekly report"))
		if !errors.As(err, &pl) || pl.Error() != `editlock: playbook "new:weekly report" is being edited by `+winners[0].UserName {
			t.Fatalf("late Acquire: %v", err)
		}
	})

	t.Run("re-acquire is idempotent", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		h := acquire(t, l, req(tn, "s1", "alice", "p1"))
		res, err := l.Acquire(ctx, req(tn, "s1", "alice", "p1"))
		wantHolder(t, "second Acquire", res.Holder, err, h)
		if res.TakenOver != nil {
			t.Fatalf("TakenOver = %+v, want nil", res.TakenOver)
		}
		if h.Fence <= 0 || h.Tenant != tn || h.UserID != "alice" || h.Playbook != "p1" || h.AcquiredAt.IsZero() {
			t.Fatalf("holder = %+v", h)
		}
	})

	t.Run("session id is bound to its user and playbook", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		acquire(t, l, req(tn, "s1", "alice", "p1"))
		for _, r := range []editlock.Request{req(tn, "s1", "alice", "p2"), req(tn, "s1", "bob", "p1")} {
			if _, err := l.Acquire(ctx, r); !errors.Is(err, editlock.ErrSessionInUse) {
				t.Fatalf("Acquire %+v: %v, want ErrSessionInUse", r.Holder, err)
			}
		}
	})

	t.Run("takeover releases the user's own other session", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		old := acquire(t, l, req(tn, "s1", "alice", "p1"))
		var ub *editlock.UserBusyError
		if _, err := l.Acquire(ctx, req(tn, "s2", "alice", "p2")); !errors.As(err, &ub) || ub.Holder.SessionID != "s1" {
			t.Fatalf("Acquire without takeover: %v, want UserBusyError naming s1", err)
		}
		r := req(tn, "s2", "alice", "p2")
		r.Takeover = true
		res, err := l.Acquire(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if res.TakenOver == nil {
			t.Fatal("TakenOver is nil")
		}
		wantHolder(t, "TakenOver", *res.TakenOver, nil, old)
		if err := l.Renew(ctx, old, time.Minute); !errors.Is(err, editlock.ErrLost) {
			t.Fatalf("Renew taken-over session: %v, want ErrLost", err)
		}
		if _, err := l.PlaybookHolder(ctx, tn, "p1"); !errors.Is(err, editlock.ErrNotHeld) {
			t.Fatalf("old playbook: %v, want ErrNotHeld", err)
		}
		got, err := l.UserHolder(ctx, tn, "alice")
		wantHolder(t, "UserHolder", got, err, res.Holder)
	})

	t.Run("own other session on the same playbook", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		old := acquire(t, l, req(tn, "s1", "alice", "p1"))
		var pl *editlock.PlaybookLockedError
		if _, err := l.Acquire(ctx, req(tn, "s2", "alice", "p1")); !errors.As(err, &pl) || pl.Holder.SessionID != "s1" {
			t.Fatalf("Acquire without takeover: %v, want PlaybookLockedError naming s1", err)
		}
		r := req(tn, "s2", "alice", "p1")
		r.Takeover = true
		res, err := l.Acquire(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if res.TakenOver == nil || res.TakenOver.SessionID != "s1" || res.Holder.Fence <= old.Fence {
			t.Fatalf("takeover = %+v (taken %+v), old fence %d", res.Holder, res.TakenOver, old.Fence)
		}
		if err := l.CheckFence(ctx, old); !errors.Is(err, editlock.ErrStaleFence) {
			t.Fatalf("CheckFence of taken-over session: %v", err)
		}
		if err := l.CheckFence(ctx, res.Holder); err != nil {
			t.Fatalf("CheckFence of new session: %v", err)
		}
	})

	t.Run("takeover never takes another user's lock", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		bob := acquire(t, l, req(tn, "b1", "bob", "shared"))
		alice := acquire(t, l, req(tn, "a1", "alice", "mine"))
		r := req(tn, "a2", "alice", "shared")
		r.Takeover = true
		var pl *editlock.PlaybookLockedError
		if _, err := l.Acquire(ctx, r); !errors.As(err, &pl) || pl.Holder.UserName != bob.UserName {
			t.Fatalf("takeover of bob's playbook: %v, want PlaybookLockedError naming bob", err)
		}
		// Nothing changed: both sessions still hold their locks.
		got, err := l.PlaybookHolder(ctx, tn, "shared")
		wantHolder(t, "shared holder", got, err, bob)
		got, err = l.UserHolder(ctx, tn, "alice")
		wantHolder(t, "alice's session", got, err, alice)
		if err := l.Renew(ctx, alice, time.Minute); err != nil {
			t.Fatalf("Renew alice: %v", err)
		}
	})

	t.Run("expiry without renewal", func(t *testing.T) {
		l, advance := newLocker(t)
		tn := tenant(t)
		r := req(tn, "s1", "alice", "p1")
		r.TTL = 300 * time.Millisecond
		h := acquire(t, l, r)
		advance(500 * time.Millisecond)
		if _, err := l.UserHolder(ctx, tn, "alice"); !errors.Is(err, editlock.ErrNotHeld) {
			t.Fatalf("UserHolder after expiry: %v", err)
		}
		if _, err := l.PlaybookHolder(ctx, tn, "p1"); !errors.Is(err, editlock.ErrNotHeld) {
			t.Fatalf("PlaybookHolder after expiry: %v", err)
		}
		if err := l.Renew(ctx, h, time.Minute); !errors.Is(err, editlock.ErrLost) {
			t.Fatalf("Renew after expiry: %v, want ErrLost", err)
		}
		if hs, err := l.List(ctx, tn); err != nil || len(hs) != 0 {
			t.Fatalf("List after expiry = %v, %v", sessions(hs), err)
		}
		acquire(t, l, req(tn, "s2", "bob", "p1"))
	})

	t.Run("renewal keeps the lock past several TTLs", func(t *testing.T) {
		l, advance := newLocker(t)
		tn := tenant(t)
		r := req(tn, "s1", "alice", "p1")
		r.TTL = 300 * time.Millisecond
		h := acquire(t, l, r)
		for range 10 {
			advance(100 * time.Millisecond)
			if err := l.Renew(ctx, h, r.TTL); err != nil {
				t.Fatalf("Renew: %v", err)
			}
		}
		got, err := l.PlaybookHolder(ctx, tn, "p1")
		wantHolder(t, "PlaybookHolder after 1s", got, err, h)
		var pl *editlock.PlaybookLockedError
		if _, err := l.Acquire(ctx, req(tn, "s2", "bob", "p1")); !errors.As(err, &pl) {
			t.Fatalf("Acquire of renewed lock: %v", err)
		}
	})

	t.Run("stale fence is refused", func(t *testing.T) {
		l, advance := newLocker(t)
		tn := tenant(t)
		r := req(tn, "s1", "alice", "p1")
		r.TTL = 300 * time.Millisecond
		old := acquire(t, l, r)
		if err := l.CheckFence(ctx, old); err != nil {
			t.Fatalf("CheckFence of holder: %v", err)
		}
		wrong := old
		wrong.Fence--
		if err := l.CheckFence(ctx, wrong); !errors.Is(err, editlock.ErrStaleFence) {
			t.Fatalf("CheckFence with older fence: %v", err)
		}
		advance(500 * time.Millisecond)
		if err := l.CheckFence(ctx, old); !errors.Is(err, editlock.ErrStaleFence) {
			t.Fatalf("CheckFence after expiry: %v", err)
		}
		next := acquire(t, l, req(tn, "s2", "bob", "p1"))
		if next.Fence <= old.Fence {
			t.Fatalf("fence after expiry %d, want > %d", next.Fence, old.Fence)
		}
		if err := l.CheckFence(ctx, old); !errors.Is(err, editlock.ErrStaleFence) {
			t.Fatalf("CheckFence of old holder: %v", err)
		}
		if err := l.CheckFence(ctx, next); err != nil {
			t.Fatalf("CheckFence of new holder: %v", err)
		}
		// Releasing does not reset the counter either.
		if err := l.Release(ctx, next); err != nil {
			t.Fatal(err)
		}
		third := acquire(t, l, req(tn, "s3", "carol", "p1"))
		if third.Fence <= next.Fence {
			t.Fatalf("fence after release %d, want > %d", third.Fence, next.Fence)
		}
	})

	t.Run("release is compare-and-delete", func(t *testing.T) {
		l, advance := newLocker(t)
		tn := tenant(t)
		r := req(tn, "s1", "alice", "p1")
		r.TTL = 300 * time.Millisecond
		old := acquire(t, l, r)
		advance(500 * time.Millisecond)
		// The same user and playbook, in a newer session.
		next := acquire(t, l, req(tn, "s2", "alice", "p1"))
		if err := l.Release(ctx, old); !errors.Is(err, editlock.ErrLost) {
			t.Fatalf("Release of lost lock: %v, want ErrLost", err)
		}
		got, err := l.UserHolder(ctx, tn, "alice")
		wantHolder(t, "UserHolder", got, err, next)
		got, err = l.PlaybookHolder(ctx, tn, "p1")
		wantHolder(t, "PlaybookHolder", got, err, next)
		if err := l.Release(ctx, next); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := l.Release(ctx, next); !errors.Is(err, editlock.ErrLost) {
			t.Fatalf("second Release: %v, want ErrLost", err)
		}
		if _, err := l.PlaybookHolder(ctx, tn, "p1"); !errors.Is(err, editlock.ErrNotHeld) {
			t.Fatalf("after Release: %v", err)
		}
		acquire(t, l, req(tn, "s3", "bob", "p1"))
	})

	t.Run("force release", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		h := acquire(t, l, req(tn, "s1", "alice", "p1"))
		got, err := l.ForceRelease(ctx, tn, "s1")
		wantHolder(t, "ForceRelease", got, err, h)
		if _, err := l.UserHolder(ctx, tn, "alice"); !errors.Is(err, editlock.ErrNotHeld) {
			t.Fatalf("UserHolder: %v", err)
		}
		if _, err := l.PlaybookHolder(ctx, tn, "p1"); !errors.Is(err, editlock.ErrNotHeld) {
			t.Fatalf("PlaybookHolder: %v", err)
		}
		if err := l.Renew(ctx, h, time.Minute); !errors.Is(err, editlock.ErrLost) {
			t.Fatalf("Renew: %v", err)
		}
		if _, err := l.ForceRelease(ctx, tn, "s1"); !errors.Is(err, editlock.ErrNotHeld) {
			t.Fatalf("second ForceRelease: %v", err)
		}
		if _, err := l.ForceRelease(ctx, tn, "never"); !errors.Is(err, editlock.ErrNotHeld) {
			t.Fatalf("ForceRelease of unknown session: %v", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		l, advance := newLocker(t)
		tn := tenant(t)
		step := func() { advance(2 * time.Millisecond) }
		acquire(t, l, req(tn, "a", "u1", "p1"))
		step()
		short := req(tn, "gone", "u2", "p2")
		short.TTL = 300 * time.Millisecond
		acquire(t, l, short)
		step()
		acquire(t, l, req(tn, "b", "u3", "p3"))
		step()
		acquire(t, l, req(tn, "c", "u4", "p4"))
		acquire(t, l, req(tn+" other", "d", "u1", "p1"))
		advance(500 * time.Millisecond)
		hs, err := l.List(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		if got := sessions(hs); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("List = %v, want [a b c]", got)
		}
		if !slices.IsSortedFunc(hs, func(a, b editlock.Holder) int { return a.AcquiredAt.Compare(b.AcquiredAt) }) {
			t.Fatalf("List is not sorted by AcquiredAt: %+v", hs)
		}
		if hs, err := l.List(ctx, "empty tenant"); err != nil || len(hs) != 0 {
			t.Fatalf("List of empty tenant = %v, %v", hs, err)
		}
	})

	t.Run("tenants are separate", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		a := acquire(t, l, req(tn+" a", "s1", "alice", "p1"))
		b := acquire(t, l, req(tn+" b", "s1", "alice", "p1"))
		if err := l.CheckFence(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := l.CheckFence(ctx, b); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("invalid input", func(t *testing.T) {
		l, _ := newLocker(t)
		tn := tenant(t)
		bad := map[string]editlock.Request{
			"no tenant":      req("", "s", "u", "p"),
			"brace tenant":   req("a{b}", "s", "u", "p"),
			"no session":     req(tn, "", "u", "p"),
			"no user":        req(tn, "s", "", "p"),
			"no playbook":    req(tn, "s", "u", ""),
			"zero ttl":       func() editlock.Request { r := req(tn, "s", "u", "p"); r.TTL = 0; return r }(),
			"sub-ms ttl":     func() editlock.Request { r := req(tn, "s", "u", "p"); r.TTL = time.Microsecond; return r }(),
			"negative ttl":   func() editlock.Request { r := req(tn, "s", "u", "p"); r.TTL = -time.Second; return r }(),
			"closing brace}": req("x}", "s", "u", "p"),
		}
		for name, r := range bad {
			if _, err := l.Acquire(ctx, r); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		if _, err := l.List(ctx, ""); err == nil {
			t.Error("List of empty tenant name accepted")
		}
		if err := l.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestMemory(t *testing.T) {
	conformance(t, func(t *testing.T) (editlock.Locker, func(time.Duration)) {
		c := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		return editlock.NewMemory(c.Now), c.Advance
	})
}

func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:         addr,
		DialTimeout:  time.Second,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedis(t *testing.T) {
	srv := testsvc.StartRedis(t)
	client := newClient(t, srv.Addr)
	conformance(t, func(t *testing.T) (editlock.Locker, func(time.Duration)) {
		l, err := editlock.NewRedis(client, nil)
		if err != nil {
			t.Fatal(err)
		}
		return l, time.Sleep
	})
}

func TestNewRedisRejectsNilClient(t *testing.T) {
	if _, err := editlock.NewRedis(nil, nil); err == nil {
		t.Fatal("nil client accepted")
	}
}

func TestRedisGoneAndBack(t *testing.T) {
	srv := testsvc.StartRedis(t)
	l, err := editlock.NewRedis(newClient(t, srv.Addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := acquire(t, l, req("t", "s1", "alice", "p1"))

	srv.Stop()
	// Every call fails fast with an error that is none of the answers a
	// working Redis gives, so callers can tell "try later" from "no".
	sentinels := []error{editlock.ErrLost, editlock.ErrNotHeld, editlock.ErrStaleFence, editlock.ErrSessionInUse}
	calls := map[string]func() error{
		"Renew":          func() error { return l.Renew(ctx, h, time.Minute) },
		"Acquire":        func() error { _, err := l.Acquire(ctx, req("t", "s2", "bob", "p2")); return err },
		"Release":        func() error { return l.Release(ctx, h) },
		"CheckFence":     func() error { return l.CheckFence(ctx, h) },
		"PlaybookHolder": func() error { _, err := l.PlaybookHolder(ctx, "t", "p1"); return err },
		"UserHolder":     func() error { _, err := l.UserHolder(ctx, "t", "alice"); return err },
		"ForceRelease":   func() error { _, err := l.ForceRelease(ctx, "t", "s1"); return err },
		"List":           func() error { _, err := l.List(ctx, "t"); return err },
		"Ping":           func() error { return l.Ping(ctx) },
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Go(func() {
			start := time.Now()
			err := call()
			took := time.Since(start)
			if err == nil {
				t.Errorf("%s succeeded with Redis stopped", name)
				return
			}
			var ub *editlock.UserBusyError
			var pl *editlock.PlaybookLockedError
			if slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(err, s) }) ||
				errors.As(err, &ub) || errors.As(err, &pl) {
				t.Errorf("%s with Redis stopped = %v, want a connection error", name, err)
			}
			if took > 3*time.Second {
				t.Errorf("%s took %v with Redis stopped", name, took)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for l.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Ping still failing after restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Redis came back empty: the old lease is gone, and fencing tokens
	// still only grow (the counter is seeded from the clock).
	if err := l.Renew(ctx, h, time.Minute); !errors.Is(err, editlock.ErrLost) {
		t.Fatalf("Renew after restart: %v, want ErrLost", err)
	}
	next := acquire(t, l, req("t", "s2", "bob", "p1"))
	if next.Fence <= h.Fence {
		t.Fatalf("fence after Redis restart %d, want > %d", next.Fence, h.Fence)
	}
	if err := l.CheckFence(ctx, h); !errors.Is(err, editlock.ErrStaleFence) {
		t.Fatalf("CheckFence of pre-restart holder: %v", err)
	}
}

// BenchmarkAcquireRelease measures one Acquire plus one Release on a local
// Redis (one round trip each) and reports the 99th percentile of the pair.
func BenchmarkAcquireRelease(b *testing.B) {
	srv := testsvc.StartRedis(b)
	l, err := editlock.NewRedis(newClient(b, srv.Addr), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		res, err := l.Acquire(ctx, req("bench", fmt.Sprint("s", i), fmt.Sprint("u", i%64), fmt.Sprint("p", i%256)))
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx, res.Holder); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	p99 := took[(len(took)*99)/100]
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}
