package workspace

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/kv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRuntime is a test double: it records calls and becomes healthy
// after healthyAfter Health calls (never, if negative).
type fakeRuntime struct {
	mu           sync.Mutex
	starts       map[string]int
	stops        map[string]int
	running      map[string]Spec
	healthCalls  map[string]int
	healthyAfter int
	startDelay   time.Duration
	startErr     error
	heartbeat    time.Time
	listed       []Observed
}

func newFake() *fakeRuntime {
	return &fakeRuntime{starts: map[string]int{}, stops: map[string]int{}, running: map[string]Spec{}, healthCalls: map[string]int{}}
}

func (f *fakeRuntime) Name() string { return "fake" }
func (f *fakeRuntime) Start(ctx context.Context, s Spec) error {
	time.Sleep(f.startDelay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts[s.Key]++
	if f.startErr != nil {
		return f.startErr
	}
	f.running[s.Key] = s
	return nil
}
func (f *fakeRuntime) Stop(ctx context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops[key]++
	delete(f.running, key)
	return nil
}
func (f *fakeRuntime) Remove(ctx context.Context, key string) error { return f.Stop(ctx, key) }
func (f *fakeRuntime) List(ctx context.Context) ([]Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listed, nil
}
func (f *fakeRuntime) Health(ctx context.Context, key string) (Health, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthCalls[key]++
	if _, ok := f.running[key]; !ok {
		return Health{}, errors.New("not running")
	}
	if f.healthyAfter < 0 || f.healthCalls[key] <= f.healthyAfter {
		return Health{}, errors.New("not yet")
	}
	return Health{Status: "alive", LastHeartbeat: f.heartbeat}, nil
}
func (f *fakeRuntime) Dialer(ctx context.Context, key string) (DialFunc, error) {
	return func(context.Context) (net.Conn, error) { return nil, errors.New("fake") }, nil
}
func (f *fakeRuntime) CopyOut(ctx context.Context, key, path string) (io.ReadCloser, error) {
	return nil, ErrNotFound
}
func (f *fakeRuntime) CopyIn(ctx context.Context, key, path string, r io.Reader) error { return nil }
func (f *fakeRuntime) Close() error                                                    { return nil }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newTestManager(t *testing.T, rt Runtime, cfg Config) (*Manager, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxConcurrentSpawns == 0 {
		cfg.MaxConcurrentSpawns = 4
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 5 * time.Second
	}
	cfg.GatewayURL = "http://gateway.test"
	cfg.Now = c.Now
	m, err := NewManager(cfg, rt, kv.NewMemory(nil), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, c
}

func TestNewManagerValidates(t *testing.T) {
	rt := newFake()
	store := kv.NewMemory(nil)
	log := slog.New(slog.DiscardHandler)
	for name, tc := range map[string]struct {
		cfg Config
		rt  Runtime
	}{
		"no runtime":    {Config{IdleTimeout: time.Minute, MaxConcurrentSpawns: 1}, nil},
		"no idle":       {Config{MaxConcurrentSpawns: 1}, rt},
		"no max spawns": {Config{IdleTimeout: time.Minute}, rt},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewManager(tc.cfg, tc.rt, store, log); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestConcurrentEnsuresStartOne(t *testing.T) {
	rt := newFake()
	rt.healthyAfter = 2
	rt.startDelay = 20 * time.Millisecond
	m, _ := newTestManager(t, rt, Config{})
	var wg sync.WaitGroup
	var failures atomic.Int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Ensure(context.Background(), "default", "alice"); err != nil {
				failures.Add(1)
			}
		}()
	}
	wg.Wait()
	st, err := m.Wait(context.Background(), "default", "alice")
	if err != nil || st.State != PhaseReady {
		t.Fatalf("Wait = %+v, %v", st, err)
	}
	if failures.Load() != 0 {
		t.Fatalf("%d ensures failed", failures.Load())
	}
	if n := rt.starts[KeyFor("default", "alice")]; n != 1 {
		t.Fatalf("started %d times, want 1", n)
	}
	// Warm: no new start.
	st, err = m.Ensure(context.Background(), "default", "alice")
	if err != nil || st.State != PhaseReady || rt.starts[KeyFor("default", "alice")] != 1 {
		t.Fatalf("warm ensure = %+v, %v (starts %d)", st, err, rt.starts[KeyFor("default", "alice")])
	}
}

func TestThreeUsersThreeWorkspaces(t *testing.T) {
	rt := newFake()
	m, _ := newTestManager(t, rt, Config{})
	for _, u := range []string{"a", "b", "c"} {
		if _, err := m.Ensure(context.Background(), "default", u); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"a", "b", "c"} {
		if st, _ := m.Wait(context.Background(), "default", u); st.State != PhaseReady {
			t.Fatalf("%s: %+v", u, st)
		}
	}
	if len(rt.running) != 3 {
		t.Fatalf("running %d, want 3", len(rt.running))
	}
}

func TestMaxConcurrentSpawns(t *testing.T) {
	rt := newFake()
	rt.startDelay = 100 * time.Millisecond
	m, _ := newTestManager(t, rt, Config{MaxConcurrentSpawns: 2})
	for _, u := range []string{"a", "b"} {
		if _, err := m.Ensure(context.Background(), "default", u); err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.Ensure(context.Background(), "default", "c")
	var tm *TooManySpawns
	if !errors.As(err, &tm) || tm.RetryAfter <= 0 {
		t.Fatalf("third spawn: %v, want TooManySpawns", err)
	}
	// Once the starts finish, there is room again.
	m.Wait(context.Background(), "default", "a")
	m.Wait(context.Background(), "default", "b")
	if _, err := m.Ensure(context.Background(), "default", "c"); err != nil {
		t.Fatalf("after the others: %v", err)
	}
	m.Wait(context.Background(), "default", "c")
}

func TestReadinessTimeoutFailsAndCleansUp(t *testing.T) {
	rt := newFake()
	rt.healthyAfter = -1
	m, _ := newTestManager(t, rt, Config{ReadyTimeout: 300 * time.Millisecond})
	m.Ensure(context.Background(), "default", "alice")
	st, _ := m.Wait(context.Background(), "default", "alice")
	if st.State != PhaseFailed || st.Error == "" {
		t.Fatalf("status %+v, want failed with a message", st)
	}
	key := KeyFor("default", "alice")
	if rt.stops[key] != 1 || len(rt.running) != 0 {
		t.Fatalf("stops %d running %d: a half-started workspace was left", rt.stops[key], len(rt.running))
	}
	// The token died with it.
	if _, err := m.Authenticate(context.Background(), rt.lastToken(key)); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token of a failed workspace still valid: %v", err)
	}
	// A retry starts again.
	rt.mu.Lock()
	rt.healthyAfter = 0
	rt.mu.Unlock()
	m.Ensure(context.Background(), "default", "alice")
	if st, _ := m.Wait(context.Background(), "default", "alice"); st.State != PhaseReady {
		t.Fatalf("retry: %+v", st)
	}
}

func (f *fakeRuntime) lastToken(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, s := range f.running {
		if k == key {
			return s.Env["PLAYBOOK_GATEWAY_TOKEN"]
		}
	}
	return "pbw_not-running-token"
}

func TestStartErrorIsReported(t *testing.T) {
	rt := newFake()
	rt.startErr = errors.New("docker: image localhost/x not found; build it with make image")
	m, _ := newTestManager(t, rt, Config{})
	m.Ensure(context.Background(), "default", "alice")
	st, _ := m.Wait(context.Background(), "default", "alice")
	if st.State != PhaseFailed || st.Error != rt.startErr.Error() {
		t.Fatalf("status %+v", st)
	}
}

func TestTokenBoundToWorkspaceAndOwner(t *testing.T) {
	rt := newFake()
	m, _ := newTestManager(t, rt, Config{})
	m.Ensure(context.Background(), "t1", "alice")
	m.Wait(context.Background(), "t1", "alice")
	key := KeyFor("t1", "alice")
	spec := rt.running[key]
	if spec.Env["PLAYBOOK_GATEWAY_URL"] != "http://gateway.test" {
		t.Fatalf("env %v", spec.Env)
	}
	if len(spec.Env) != 2 {
		t.Fatalf("workspace env carries more than the gateway URL and token: %v", spec.Env)
	}
	info, err := m.Authenticate(context.Background(), spec.Env["PLAYBOOK_GATEWAY_TOKEN"])
	if err != nil || info != (TokenInfo{Key: key, Owner: "alice", Tenant: "t1"}) {
		t.Fatalf("Authenticate = %+v, %v", info, err)
	}
	if _, err := m.Authenticate(context.Background(), spec.Env["PLAYBOOK_GATEWAY_TOKEN"]+"x"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("forged token: %v", err)
	}
	// Stopping revokes the token; a new start mints a new one.
	if err := m.Stop(context.Background(), "t1", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Authenticate(context.Background(), spec.Env["PLAYBOOK_GATEWAY_TOKEN"]); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token after stop: %v", err)
	}
	m.Ensure(context.Background(), "t1", "alice")
	m.Wait(context.Background(), "t1", "alice")
	if rt.running[key].Env["PLAYBOOK_GATEWAY_TOKEN"] == spec.Env["PLAYBOOK_GATEWAY_TOKEN"] {
		t.Fatal("a restarted workspace got the same token")
	}
}

func TestIdleCull(t *testing.T) {
	rt := newFake()
	m, c := newTestManager(t, rt, Config{IdleTimeout: 30 * time.Minute})
	for _, u := range []string{"idle", "busy", "active", "heartbeat"} {
		m.Ensure(context.Background(), "default", u)
		m.Wait(context.Background(), "default", u)
	}
	busyKey := KeyFor("default", "busy")
	m.SetBusy(func(k string) bool { return k == busyKey })
	c.Add(20 * time.Minute)
	m.Touch(KeyFor("default", "active"))
	c.Add(11 * time.Minute)
	// The heartbeat user's code-server saw a workbench 5 minutes ago.
	rt.mu.Lock()
	rt.heartbeat = c.Now().Add(-5 * time.Minute)
	rt.mu.Unlock()
	m.CullIdle(context.Background())
	// The fake's heartbeat applies to every workspace: none is stopped.
	for _, u := range []string{"idle", "busy", "active", "heartbeat"} {
		if st, _ := m.Status("default", u); st.State != PhaseReady {
			t.Fatalf("%s stopped despite a recent heartbeat", u)
		}
	}
	rt.mu.Lock()
	rt.heartbeat = time.Time{}
	rt.mu.Unlock()
	c.Add(31 * time.Minute)
	m.Touch(KeyFor("default", "active"))
	m.CullIdle(context.Background())
	want := map[string]Phase{"idle": PhaseStopped, "busy": PhaseReady, "active": PhaseReady, "heartbeat": PhaseStopped}
	for u, ph := range want {
		st, _ := m.Status("default", u)
		if st.State != ph {
			t.Errorf("%s: %s, want %s", u, st.State, ph)
		}
	}
	// A stopped workspace starts again on the next ensure.
	m.Ensure(context.Background(), "default", "idle")
	if st, _ := m.Wait(context.Background(), "default", "idle"); st.State != PhaseReady {
		t.Fatalf("restart: %+v", st)
	}
}

func TestReconcile(t *testing.T) {
	rt := newFake()
	alice := KeyFor("default", "alice")
	rt.running[alice] = Spec{Key: alice}
	rt.running["0000000000000bad"] = Spec{Key: "0000000000000bad"}
	rt.running[KeyFor("default", "dead")] = Spec{}
	rt.healthyAfter = 0
	rt.listed = []Observed{
		{Key: alice, Owner: "alice", Tenant: "default", TokenHash: tokenHash("pbw_alice-old-token"), Running: true},
		{Key: "0000000000000bad", Owner: "mallory", Tenant: "default", Running: true}, // key does not match owner
		{Key: KeyFor("default", "bob"), Owner: "bob", Tenant: "default", Running: false},
	}
	m, _ := newTestManager(t, rt, Config{})
	if err := m.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status("default", "alice")
	if err != nil || st.State != PhaseReady {
		t.Fatalf("alice not adopted: %+v %v", st, err)
	}
	if rt.stops["0000000000000bad"] != 1 {
		t.Fatal("stray not stopped")
	}
	if _, err := m.Status("default", "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a stopped workspace was adopted as live")
	}
	if info, err := m.Authenticate(context.Background(), "pbw_alice-old-token"); err != nil || info.Owner != "alice" {
		t.Fatalf("adopted workspace's token: %+v %v", info, err)
	}
	// Ensure reuses the adopted workspace.
	m.Ensure(context.Background(), "default", "alice")
	if rt.starts[alice] != 0 {
		t.Fatal("adopted workspace started again")
	}
}
