package editsession_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/fault"
)

// TestRedisGoneAndBack: when the lock service stops answering, live
// sessions end with a reason a person can read, new ones are refused as
// unavailable (503), and everything works again once Redis is back.
func TestRedisGoneAndBack(t *testing.T) {
	f := newFixture(t, opts{redis: true})
	st := f.startNamed(t, alice, "Alpha")
	ticket := ticketOf(t, st)
	f.svc.Touch(st.ID)
	f.svc.RenewAll(ctx)
	f.mustLive(t, st.ID)

	f.srv.Stop()
	began := time.Now()
	f.svc.RenewAll(ctx)
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("a renewal round with Redis down took %v", took)
	}
	f.mustNotLive(t, st.ID)
	r := f.ends.of(st.ID)
	if len(r) != 1 {
		t.Fatalf("OnEnd = %q, want one call", r)
	}
	contains(t, "OnEnd reason", r[0], "lock service")
	if f.svc.EndedReason(st.ID) != r[0] {
		t.Errorf("EndedReason = %q", f.svc.EndedReason(st.ID))
	}
	if ev := f.event(t, "session.end", st.ID); ev.Detail["reason"] != "lock store unavailable" {
		t.Errorf("audit = %+v", ev)
	}
	if f.gauge.Value() != 0 {
		t.Errorf("gauge = %v, want 0", f.gauge.Value())
	}

	// Every call that needs Redis says "unavailable", not "no".
	for name, call := range map[string]func() error{
		"Start": func() error {
			_, err := f.svc.Start(ctx, bob, editsession.StartRequest{Name: "Beta"})
			return err
		},
		"Start with takeover": func() error {
			_, err := f.svc.Start(ctx, alice, editsession.StartRequest{Name: "Alpha", Takeover: true})
			return err
		},
		"Current":      func() error { _, err := f.svc.Current(ctx, alice); return err },
		"Get":          func() error { _, err := f.svc.Get(ctx, alice, st.ID); return err },
		"End":          func() error { return f.svc.End(ctx, alice, st.ID) },
		"Terminate":    func() error { return f.svc.Terminate(ctx, admin, st.ID) },
		"List":         func() error { _, err := f.svc.List(ctx, tenant); return err },
		"CheckFence":   func() error { return f.svc.CheckFence(ctx, &st.Session) },
		"RedeemTicket": func() error { _, err := f.svc.RedeemTicket(ctx, ticket); return err },
	} {
		err := call()
		if fault.KindOf(err) != fault.Unavailable {
			t.Errorf("%s with Redis down = %v, want ErrUnavailable", name, err)
		}
		if errors.Is(err, editsession.ErrNotFound) || errors.Is(err, editlock.ErrStaleFence) {
			t.Errorf("%s with Redis down = %v: an answer, not unavailability", name, err)
		}
	}
	if f.gauge.Value() != 0 || f.ends.count() != 1 {
		t.Errorf("gauge %v, ends %+v after failed calls", f.gauge.Value(), f.ends.ends)
	}

	f.srv.Restart()
	// The server restarted empty: alice's old lock is gone with it.
	st2 := f.startNamed(t, alice, "Alpha")
	if _, err := f.svc.RedeemTicket(ctx, ticketOf(t, st2)); err != nil {
		t.Fatalf("ticket after restart: %v", err)
	}
	f.startNamed(t, bob, "Beta")
	f.svc.RenewAll(ctx)
	f.mustLive(t, st2.ID)
	if err := f.svc.CheckFence(ctx, &st2.Session); err != nil {
		t.Fatalf("CheckFence after restart: %v", err)
	}
	if f.gauge.Value() != 2 {
		t.Errorf("gauge = %v, want 2", f.gauge.Value())
	}
}

// TestRedisRenewalRealTime runs the renewal with leases on Redis's clock.
func TestRedisRenewalRealTime(t *testing.T) {
	f := newFixture(t, opts{redis: true, ttl: time.Second})
	st := f.startNamed(t, alice, "Alpha")
	for range 4 { // 1.6 s: longer than the lease
		f.clock.Advance(400 * time.Millisecond)
		f.svc.Touch(st.ID)
		f.svc.RenewAll(ctx)
		f.mustLive(t, st.ID)
	}
	if err := f.svc.CheckFence(ctx, &st.Session); err != nil {
		t.Fatalf("CheckFence after renewals: %v", err)
	}
	_, err := f.svc.Start(ctx, bob, editsession.StartRequest{Name: "Alpha"})
	refusal(t, err, fault.Conflict, "playbook_locked")

	f.clock.Advance(1100 * time.Millisecond)
	f.svc.RenewAll(ctx)
	f.mustNotLive(t, st.ID)
	contains(t, "reason", f.svc.EndedReason(st.ID), "no activity")
	f.startNamed(t, bob, "Alpha")
}

// TestRedisTwoGateways: two gateways over one Redis see each other's
// sessions, and one notices when the other ended or took over its session.
func TestRedisTwoGateways(t *testing.T) {
	a := newFixture(t, opts{redis: true})
	b := newFixture(t, opts{srv: a.srv})

	st := a.startNamed(t, alice, "Alpha Plan")
	cur, err := b.svc.Current(ctx, alice)
	if err != nil || cur.ID != st.ID || cur.Name != "Alpha Plan" || cur.Folder != st.Folder || !strings.HasPrefix(cur.Folder, "alpha-plan--") || cur.FencingToken != st.FencingToken {
		t.Fatalf("Current on the other gateway = %+v, %v", cur, err)
	}
	if _, ok := b.svc.Live(st.ID); ok {
		t.Fatal("the other gateway serves the session")
	}
	if got, err := b.svc.Get(ctx, alice, st.ID); err != nil || got.Name != "Alpha Plan" {
		t.Fatalf("Get on the other gateway = %+v, %v", got, err)
	}
	if _, err := b.svc.Get(ctx, bob, st.ID); !errors.Is(err, editsession.ErrNotFound) {
		t.Fatalf("Get by bob on the other gateway = %v", err)
	}
	_, err = b.svc.Start(ctx, alice, editsession.StartRequest{Name: "Beta"})
	if r := refusal(t, err, fault.Conflict, "user_has_session"); otherOf(r) == nil || otherOf(r).ID != st.ID || otherOf(r).Name != "Alpha Plan" {
		t.Fatalf("Other = %+v", otherOf(r))
	}
	_, err = b.svc.Start(ctx, bob, editsession.StartRequest{Name: "alpha plan"})
	contains(t, "message", refusal(t, err, fault.Conflict, "playbook_locked").Message, alice.Name)
	if l, err := b.svc.List(ctx, tenant); err != nil || len(l) != 1 || l[0].Name != "Alpha Plan" {
		t.Fatalf("List on the other gateway = %+v, %v", l, err)
	}

	t.Run("terminated elsewhere", func(t *testing.T) {
		if err := b.svc.Terminate(ctx, admin, st.ID); err != nil {
			t.Fatal(err)
		}
		a.svc.Touch(st.ID)
		a.svc.RenewAll(ctx)
		a.mustNotLive(t, st.ID)
		if r := a.ends.of(st.ID); len(r) != 1 || !strings.Contains(r[0], "elsewhere") {
			t.Fatalf("OnEnd on the serving gateway = %q", r)
		}
	})

	t.Run("taken over elsewhere", func(t *testing.T) {
		first := a.startNamed(t, alice, "Gamma")
		second := b.start(t, alice, editsession.StartRequest{Name: "Delta", Takeover: true})
		if second.TakenOver == nil || second.TakenOver.ID != first.ID || second.TakenOver.Name != "Gamma" {
			t.Fatalf("takenOver = %+v", second.TakenOver)
		}
		a.mustLive(t, first.ID) // until its next renewal
		a.svc.Touch(first.ID)
		a.svc.RenewAll(ctx)
		a.mustNotLive(t, first.ID)
		if err := a.svc.CheckFence(ctx, &first.Session); !errors.Is(err, editlock.ErrStaleFence) {
			t.Fatalf("CheckFence of the taken-over session = %v", err)
		}
		b.mustLive(t, second.ID)
		// Gamma is free again.
		a.startNamed(t, bob, "Gamma")
	})
}
