package editsession_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
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
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/testsvc"
	"github.com/playbookstudio/gateway/internal/workspace"
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

// fakeRuntime is a workspace runtime whose workspaces are healthy as soon
// as they are started. A non-nil gate holds every Start until it is closed.
type fakeRuntime struct {
	mu      sync.Mutex
	running map[string]bool
	starts  map[string]int
	stops   map[string]int
	gate    chan struct{}
}

func newRuntime() *fakeRuntime {
	return &fakeRuntime{running: map[string]bool{}, starts: map[string]int{}, stops: map[string]int{}}
}

func (f *fakeRuntime) Name() string { return "fake" }

func (f *fakeRuntime) Start(ctx context.Context, s workspace.Spec) error {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts[s.Key]++
	f.running[s.Key] = true
	return nil
}

func (f *fakeRuntime) Stop(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops[key]++
	delete(f.running, key)
	return nil
}

func (f *fakeRuntime) Remove(ctx context.Context, key string) error { return f.Stop(ctx, key) }
func (f *fakeRuntime) List(context.Context) ([]workspace.Observed, error) {
	return nil, nil
}

func (f *fakeRuntime) Health(_ context.Context, key string) (workspace.Health, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running[key] {
		return workspace.Health{}, errors.New("not running")
	}
	return workspace.Health{Status: "alive"}, nil
}

func (f *fakeRuntime) Dialer(context.Context, string) (workspace.DialFunc, error) {
	return func(context.Context) (net.Conn, error) { return nil, errors.New("fake runtime") }, nil
}

func (f *fakeRuntime) CopyOut(context.Context, string, string) (io.ReadCloser, error) {
	return nil, workspace.ErrNotFound
}
func (f *fakeRuntime) CopyIn(context.Context, string, string, io.Reader) error { return nil }
func (f *fakeRuntime) Close() error                                            { return nil }

func (f *fakeRuntime) counts(key string) (starts, stops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[key], f.stops[key]
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
	rt         *fakeRuntime
	catalog    *catalog
}

type fixture struct {
	svc   *editsession.Service
	mgr   *workspace.Manager
	rt    *fakeRuntime
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
		f.rt = newRuntime()
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
	}, f.locks, f.mgr, store, f.audit, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.svc.Close() })
	f.svc.OnEnd(f.ends.add)
	if o.catalog != nil {
		f.svc.SetCatalog(o.catalog)
	}
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

// refusal asserts err is a *Refusal with status and code.
func refusal(t *testing.T, err error, status int, code string) *editsession.Refusal {
	t.Helper()
	var r *editsession.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("err = %v (%T), want a Refusal %d %s", err, err, status, code)
	}
	if r.Status != status || r.Code != code {
		t.Fatalf("refusal = %d %s (%q), want %d %s", r.Status, r.Code, r.Message, status, code)
	}
	if r.Message == "" {
		t.Fatalf("refusal %s has no message", code)
	}
	return r
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
