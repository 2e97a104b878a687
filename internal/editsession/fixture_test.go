package editsession_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/testsvc"
	"github.com/playbookstudio/gateway/internal/workspace"
	"github.com/playbookstudio/gateway/internal/workspace/workspacetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const tenant = "acme"

var (
	alice = editsession.Identity{ID: "u-alice", Name: "Alice Liddell", Tenant: tenant}
	bob   = editsession.Identity{ID: "u-bob", Name: "Bob Builder", Tenant: tenant}
	admin = editsession.Identity{ID: "u-admin", Name: "Ada Admin", Tenant: tenant, Admin: true}
	// eve has alice's user id in another tenant.
	eve = editsession.Identity{ID: "u-alice", Name: "Eve", Tenant: "other"}

	t0 = time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
)

// clock is the injected clock: fake (moved by Advance) or, for tests over a
// real Redis whose leases run on Redis's own clock, the real one.
type clock struct {
	mu   sync.Mutex
	now  time.Time
	real bool
}

func (c *clock) Now() time.Time {
	if c.real {
		return time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	if c.real {
		time.Sleep(d)
		return
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// gauge is a fake Config.LiveGauge.
type gauge struct {
	mu   sync.Mutex
	v    float64
	sets int
}

func (g *gauge) Set(v float64)  { g.mu.Lock(); g.v = v; g.sets++; g.mu.Unlock() }
func (g *gauge) Value() float64 { g.mu.Lock(); defer g.mu.Unlock(); return g.v }

// endLog records what OnEnd subscribers are told.
type endLog struct {
	mu   sync.Mutex
	ends []endEvent
}

type endEvent struct{ id, reason string }

func (l *endLog) add(id, reason string) {
	l.mu.Lock()
	l.ends = append(l.ends, endEvent{id, reason})
	l.mu.Unlock()
}

// of returns the reasons given for id, in order.
func (l *endLog) of(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.ends {
		if e.id == id {
			out = append(out, e.reason)
		}
	}
	return out
}

func (l *endLog) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.ends) }

// catalog is a fake Catalog.
type catalog struct {
	mu         sync.Mutex
	names      map[string]string // tenant/id → name
	nameErr    error
	newNameErr error
	calls      []string
}

func (c *catalog) PlaybookName(_ context.Context, tenant, id string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "name "+tenant+"/"+id)
	if c.nameErr != nil {
		return "", c.nameErr
	}
	n, ok := c.names[tenant+"/"+id]
	if !ok {
		return "", editsession.ErrPlaybookNotFound
	}
	return n, nil
}

func (c *catalog) CheckNewName(_ context.Context, tenant, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "new "+tenant+"/"+name)
	return c.newNameErr
}

func (c *catalog) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// opts choose a fixture's backend and settings; zero values are defaults.
type opts struct {
	redis      bool           // a real Redis (a fresh server unless srv)
	srv        *testsvc.Redis // an existing server to share
	ttl        time.Duration  // default 2 minutes
	ticketTTL  time.Duration
	renewEvery time.Duration // default an hour: tests call RenewAll
	spawns     int
	rt         *workspacetest.Runtime
	catalog    *catalog
	records    *editsession.Records
}

type fixture struct {
	svc   *editsession.Service
	mgr   *workspace.Manager
	rt    *workspacetest.Runtime
	clock *clock
	audit *audit.Memory
	ends  *endLog
	gauge *gauge
	locks editlock.Locker
	srv   *testsvc.Redis
	ttl   time.Duration
}

var hosts = mustHostPattern("http://{session}.ide.localhost:8080")

func mustHostPattern(s string) config.HostPattern {
	p, err := config.ParseHostPattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// redisClient is a go-redis client with short timeouts, so that calls to a
// stopped server fail fast.
func redisClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:         addr,
		DialTimeout:  500 * time.Millisecond,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		MaxRetries:   1,
		// go-redis retries a refused dial 5 times, 100 ms apart, by
		// default: once is enough here.
		DialerRetries: 1,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func newFixture(t *testing.T, o opts) *fixture {
	t.Helper()
	f := &fixture{rt: o.rt, ends: &endLog{}, gauge: &gauge{}, ttl: o.ttl}
	if f.rt == nil {
		f.rt = workspacetest.New()
	}
	if f.ttl == 0 {
		f.ttl = 2 * time.Minute
	}
	if o.renewEvery == 0 {
		o.renewEvery = time.Hour
	}
	if o.spawns == 0 {
		o.spawns = 4
	}
	var store kv.Store
	if o.redis || o.srv != nil {
		f.clock = &clock{real: true}
		f.srv = o.srv
		if f.srv == nil {
			f.srv = testsvc.StartRedis(t)
		}
		l, err := editlock.NewRedis(redisClient(t, f.srv.Addr), f.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		f.locks = l
		rs, err := kv.NewRedis(f.srv.URL, "test:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		store = rs
	} else {
		f.clock = &clock{now: t0}
		f.locks = editlock.NewMemory(f.clock.Now)
		store = kv.NewMemory(f.clock.Now)
	}
	var err error
	f.audit, err = audit.NewMemory(discard(), f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	f.mgr, err = workspace.NewManager(workspace.Config{
		IdleTimeout:         30 * time.Minute,
		MaxConcurrentSpawns: o.spawns,
		ReadyTimeout:        5 * time.Second,
		GatewayURL:          "http://gateway.test",
		Now:                 f.clock.Now,
	}, f.rt, kv.NewMemory(f.clock.Now), discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.mgr.Close() })
	f.svc, err = editsession.New(editsession.Config{
		TTL:        f.ttl,
		IDEURL:     hosts.URL,
		TicketTTL:  o.ticketTTL,
		Now:        f.clock.Now,
		LiveGauge:  f.gauge,
		RenewEvery: o.renewEvery,
	}, editsession.Deps{Locks: f.locks, Workspaces: f.mgr, Store: store, Audit: f.audit, Log: discard(), Catalog: catalogOf(o), Records: o.records})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.svc.Close() })
	f.svc.OnEnd(f.ends.add)
	return f
}

// eachBackend runs fn over the in-memory locks and store, and over a real
// Redis.
func eachBackend(t *testing.T, fn func(t *testing.T, o opts)) {
	t.Run("memory", func(t *testing.T) { fn(t, opts{}) })
	t.Run("redis", func(t *testing.T) { fn(t, opts{redis: true}) })
}

func (f *fixture) start(t *testing.T, who editsession.Identity, req editsession.StartRequest) *editsession.Started {
	t.Helper()
	st, err := f.svc.Start(context.Background(), who, req)
	if err != nil {
		t.Fatalf("Start(%s, %+v): %v", who.Name, req, err)
	}
	return st
}

func (f *fixture) startNamed(t *testing.T, who editsession.Identity, name string) *editsession.Started {
	t.Helper()
	return f.start(t, who, editsession.StartRequest{Name: name})
}

// waitReady waits for who's workspace start to finish.
func (f *fixture) waitReady(t *testing.T, who editsession.Identity) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := f.mgr.Wait(ctx, who.Tenant, who.ID)
	if err != nil || st.State != workspace.PhaseReady {
		t.Fatalf("workspace of %s: %+v, %v; want ready", who.Name, st, err)
	}
	// Then the session prepares its folder (in the background).
	for {
		cur, err := f.svc.Current(ctx, who)
		if err != nil || cur.State == string(workspace.PhaseReady) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the session of %s did not become ready: %+v", who.Name, cur)
		case <-time.After(time.Millisecond):
		}
	}
}

// events returns the tenant's audit events with action, oldest first.
func (f *fixture) events(t *testing.T, tenant, action string) []audit.Event {
	t.Helper()
	all, err := f.audit.Recent(context.Background(), tenant, audit.MaxRecent)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Action == action {
			out = append(out, all[i])
		}
	}
	return out
}

// event returns the one audit event with action and target.
func (f *fixture) event(t *testing.T, action, target string) audit.Event {
	t.Helper()
	var found []audit.Event
	for _, e := range f.events(t, tenant, action) {
		if e.Target == target {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("audit %s on %s: %d events, want 1: %+v", action, target, len(found), found)
	}
	return found[0]
}

func (f *fixture) mustLive(t *testing.T, id string) *editsession.Session {
	t.Helper()
	s, ok := f.svc.Live(id)
	if !ok {
		t.Fatalf("session %s is not live (ended: %q)", id, f.svc.EndedReason(id))
	}
	return s
}

func (f *fixture) mustNotLive(t *testing.T, id string) {
	t.Helper()
	if _, ok := f.svc.Live(id); ok {
		t.Fatalf("session %s is still live", id)
	}
}

// catalogOf is o's catalog as the interface (nil when there is none).
func catalogOf(o opts) editsession.Catalog {
	if o.catalog == nil {
		return nil
	}
	return o.catalog
}

// refusal asserts err is a refusal of kind with code.
func refusal(t *testing.T, err error, kind fault.Kind, code string) *fault.Error {
	t.Helper()
	r, ok := fault.As(err)
	if !ok {
		t.Fatalf("err = %v (%T), want a refusal %v %s", err, err, kind, code)
	}
	if r.Kind != kind || r.Code != code {
		t.Fatalf("refusal = %v %s (%q), want %v %s", r.Kind, r.Code, r.Message, kind, code)
	}
	if r.Message == "" {
		t.Fatalf("refusal %s has no message", code)
	}
	return r
}

// otherOf is the other session a user_has_session refusal names.
func otherOf(r *fault.Error) *editsession.Session {
	s, _ := r.Details["session"].(*editsession.Session)
	return s
}

// ticketOf checks the shape of an IDE URL and returns its ticket.
func ticketOf(t *testing.T, st *editsession.Started) string {
	t.Helper()
	prefix := "http://" + st.ID + ".ide.localhost:8080/_gw/enter?ticket="
	if !strings.HasPrefix(st.IDEURL, prefix) {
		t.Fatalf("ideUrl = %q, want prefix %q", st.IDEURL, prefix)
	}
	u, err := url.Parse(st.IDEURL)
	if err != nil {
		t.Fatal(err)
	}
	ticket := u.Query().Get("ticket")
	if ticket == "" || st.IDEURL != prefix+ticket {
		t.Fatalf("ideUrl %q: ticket %q is not URL-safe or missing", st.IDEURL, ticket)
	}
	return ticket
}

func contains(t *testing.T, what, s, sub string) {
	t.Helper()
	if !strings.Contains(strings.ToLower(s), strings.ToLower(sub)) {
		t.Fatalf("%s = %q, want it to mention %q", what, s, sub)
	}
}
