package workspace_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/workspace"
	"github.com/playbookstudio/gateway/internal/workspace/workspacetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newTestManager(t *testing.T, rt workspace.Runtime, cfg workspace.Config) (*workspace.Manager, *clock) {
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
	m, err := workspace.NewManager(cfg, rt, kv.NewMemory(nil), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, c
}

func TestNewManagerValidates(t *testing.T) {
	rt := workspacetest.New()
	store := kv.NewMemory(nil)
	log := slog.New(slog.DiscardHandler)
	for name, tc := range map[string]struct {
		cfg workspace.Config
		rt  workspace.Runtime
	}{
		"no runtime":    {workspace.Config{IdleTimeout: time.Minute, MaxConcurrentSpawns: 1}, nil},
		"no idle":       {workspace.Config{MaxConcurrentSpawns: 1}, rt},
		"no max spawns": {workspace.Config{IdleTimeout: time.Minute}, rt},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := workspace.NewManager(tc.cfg, tc.rt, store, log); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestConcurrentEnsuresStartOne(t *testing.T) {
	rt := workspacetest.New()
	rt.HealthyAfter = 2
	rt.StartDelay = 20 * time.Millisecond
	m, _ := newTestManager(t, rt, workspace.Config{})
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
	if err != nil || st.State != workspace.PhaseReady {
		t.Fatalf("Wait = %+v, %v", st, err)
	}
	if failures.Load() != 0 {
		t.Fatalf("%d ensures failed", failures.Load())
	}
	if n, _ := rt.Counts(workspace.KeyFor("default", "alice")); n != 1 {
		t.Fatalf("started %d times, want 1", n)
	}
	// Warm: no new start.
	st, err = m.Ensure(context.Background(), "default", "alice")
	if n, _ := rt.Counts(workspace.KeyFor("default", "alice")); err != nil || st.State != workspace.PhaseReady || n != 1 {
		t.Fatalf("warm ensure = %+v, %v (starts %d)", st, err, n)
	}
}

func TestThreeUsersThreeWorkspaces(t *testing.T) {
	rt := workspacetest.New()
	m, _ := newTestManager(t, rt, workspace.Config{})
	for _, u := range []string{"a", "b", "c"} {
		if _, err := m.Ensure(context.Background(), "default", u); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"a", "b", "c"} {
		if st, _ := m.Wait(context.Background(), "default", u); st.State != workspace.PhaseReady {
			t.Fatalf("%s: %+v", u, st)
		}
	}
	for _, u := range []string{"a", "b", "c"} {
		if !rt.Running(workspace.KeyFor("default", u)) {
			t.Fatalf("%s's workspace does not run", u)
		}
	}
}

func TestMaxConcurrentSpawns(t *testing.T) {
	rt := workspacetest.New()
	rt.StartDelay = 100 * time.Millisecond
	m, _ := newTestManager(t, rt, workspace.Config{MaxConcurrentSpawns: 2})
	for _, u := range []string{"a", "b"} {
		if _, err := m.Ensure(context.Background(), "default", u); err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.Ensure(context.Background(), "default", "c")
	if f, ok := fault.As(err); !ok || f.Kind != fault.Busy || f.Code != "too_many_spawns" || f.RetryAfter <= 0 {
		t.Fatalf("third spawn: %v, want a Busy too_many_spawns with a RetryAfter", err)
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
	rt := workspacetest.New()
	rt.HealthyAfter = -1
	m, _ := newTestManager(t, rt, workspace.Config{ReadyTimeout: 300 * time.Millisecond})
	m.Ensure(context.Background(), "default", "alice")
	st, _ := m.Wait(context.Background(), "default", "alice")
	if st.State != workspace.PhaseFailed || st.Error == "" {
		t.Fatalf("status %+v, want failed with a message", st)
	}
	key := workspace.KeyFor("default", "alice")
	if _, stops := rt.Counts(key); stops != 1 || rt.Running(key) {
		t.Fatalf("stops %d, running %v: a half-started workspace was left", stops, rt.Running(key))
	}
	// The token died with it.
	if _, err := m.Authenticate(context.Background(), lastToken(rt, key)); !errors.Is(err, workspace.ErrBadToken) {
		t.Fatalf("token of a failed workspace still valid: %v", err)
	}
	// A retry starts again.
	rt.Lock()
	rt.HealthyAfter = 0
	rt.Unlock()
	m.Ensure(context.Background(), "default", "alice")
	if st, _ := m.Wait(context.Background(), "default", "alice"); st.State != workspace.PhaseReady {
		t.Fatalf("retry: %+v", st)
	}
}

func lastToken(rt *workspacetest.Runtime, key string) string {
	if s, ok := rt.Spec(key); ok {
		return s.Env["PLAYBOOK_GATEWAY_TOKEN"]
	}
	return "pbw_not-running-token"
}

func TestStartErrorIsReported(t *testing.T) {
	rt := workspacetest.New()
	rt.StartErr = errors.New("docker: image localhost/x not found; build it with make image")
	m, _ := newTestManager(t, rt, workspace.Config{})
	m.Ensure(context.Background(), "default", "alice")
	st, _ := m.Wait(context.Background(), "default", "alice")
	if st.State != workspace.PhaseFailed || st.Error != rt.StartErr.Error() {
		t.Fatalf("status %+v", st)
	}
}

func TestTokenBoundToWorkspaceAndOwner(t *testing.T) {
	rt := workspacetest.New()
	m, _ := newTestManager(t, rt, workspace.Config{})
	key := readyWorkspace(t, m, "t1", "alice")
	spec, _ := rt.Spec(key)
	if spec.Env["PLAYBOOK_GATEWAY_URL"] != "http://gateway.test" {
		t.Fatalf("env %v", spec.Env)
	}
	if len(spec.Env) != 2 {
		t.Fatalf("workspace env carries more than the gateway URL and token: %v", spec.Env)
	}
	info, err := m.Authenticate(context.Background(), spec.Env["PLAYBOOK_GATEWAY_TOKEN"])
	if err != nil || info != (workspace.TokenInfo{Key: key, Owner: "alice", Tenant: "t1"}) {
		t.Fatalf("Authenticate = %+v, %v", info, err)
	}
	if _, err := m.Authenticate(context.Background(), spec.Env["PLAYBOOK_GATEWAY_TOKEN"]+"x"); !errors.Is(err, workspace.ErrBadToken) {
		t.Fatalf("forged token: %v", err)
	}
	// Stopping revokes the token; a new start mints a new one.
	if err := m.Stop(context.Background(), "t1", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Authenticate(context.Background(), spec.Env["PLAYBOOK_GATEWAY_TOKEN"]); !errors.Is(err, workspace.ErrBadToken) {
		t.Fatalf("token after stop: %v", err)
	}
	m.Ensure(context.Background(), "t1", "alice")
	m.Wait(context.Background(), "t1", "alice")
	if lastToken(rt, key) == spec.Env["PLAYBOOK_GATEWAY_TOKEN"] {
		t.Fatal("a restarted workspace got the same token")
	}
}

func TestIdleCull(t *testing.T) {
	rt := workspacetest.New()
	m, c := newTestManager(t, rt, workspace.Config{IdleTimeout: 30 * time.Minute})
	for _, u := range []string{"idle", "busy", "active", "heartbeat"} {
		m.Ensure(context.Background(), "default", u)
		m.Wait(context.Background(), "default", u)
	}
	// A live edit session holds "busy"'s workspace; a hold given back
	// counts no more.
	release := m.Hold(workspace.KeyFor("default", "busy"))
	defer release()
	m.Hold(workspace.KeyFor("default", "idle"))()
	c.Add(20 * time.Minute)
	m.Touch(workspace.KeyFor("default", "active"))
	c.Add(11 * time.Minute)
	// The heartbeat user's code-server saw a workbench 5 minutes ago.
	rt.Lock()
	rt.Heartbeat = c.Now().Add(-5 * time.Minute)
	rt.Unlock()
	m.CullIdle(context.Background())
	// The fake's heartbeat applies to every workspace: none is stopped.
	for _, u := range []string{"idle", "busy", "active", "heartbeat"} {
		if st, _ := m.Status("default", u); st.State != workspace.PhaseReady {
			t.Fatalf("%s stopped despite a recent heartbeat", u)
		}
	}
	rt.Lock()
	rt.Heartbeat = time.Time{}
	rt.Unlock()
	c.Add(31 * time.Minute)
	m.Touch(workspace.KeyFor("default", "active"))
	m.CullIdle(context.Background())
	want := map[string]workspace.Phase{"idle": workspace.PhaseStopped, "busy": workspace.PhaseReady, "active": workspace.PhaseReady, "heartbeat": workspace.PhaseStopped}
	for u, ph := range want {
		st, _ := m.Status("default", u)
		if st.State != ph {
			t.Errorf("%s: %s, want %s", u, st.State, ph)
		}
	}
	// A stopped workspace starts again on the next ensure.
	m.Ensure(context.Background(), "default", "idle")
	if st, _ := m.Wait(context.Background(), "default", "idle"); st.State != workspace.PhaseReady {
		t.Fatalf("restart: %+v", st)
	}
}

func TestReconcile(t *testing.T) {
	rt := workspacetest.New()
	alice := workspace.KeyFor("default", "alice")
	rt.HealthyAfter = 0
	rt.Listed = []workspace.Observed{
		{Key: alice, Owner: "alice", Tenant: "default", TokenHash: hashOf("pbw_alice-old-token"), Running: true},
		{Key: "0000000000000bad", Owner: "mallory", Tenant: "default", Running: true}, // key does not match owner
		{Key: workspace.KeyFor("default", "bob"), Owner: "bob", Tenant: "default", Running: false},
	}
	m, _ := newTestManager(t, rt, workspace.Config{})
	if err := m.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status("default", "alice")
	if err != nil || st.State != workspace.PhaseReady {
		t.Fatalf("alice not adopted: %+v %v", st, err)
	}
	if _, stops := rt.Counts("0000000000000bad"); stops != 1 {
		t.Fatal("stray not stopped")
	}
	if _, err := m.Status("default", "bob"); !errors.Is(err, workspace.ErrNotFound) {
		t.Fatal("a stopped workspace was adopted as live")
	}
	if info, err := m.Authenticate(context.Background(), "pbw_alice-old-token"); err != nil || info.Owner != "alice" {
		t.Fatalf("adopted workspace's token: %+v %v", info, err)
	}
	// Ensure reuses the adopted workspace.
	m.Ensure(context.Background(), "default", "alice")
	if starts, _ := rt.Counts(alice); starts != 0 {
		t.Fatal("adopted workspace started again")
	}
}

func hashOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// A copy under way holds off a stop of the same workspace until the copy
// is closed: the runtime never sees the two race.
func TestCopyHoldsOffStop(t *testing.T) {
	rt := workspacetest.New()
	m, _ := newTestManager(t, rt, workspace.Config{})
	key := readyWorkspace(t, m, "default", "alice")
	rt.WriteFile(key, "pb/playbook.py", []byte("def run(alert, ctx):\n    return {}\n"))
	rc, err := m.CopyOut(context.Background(), key, "pb")
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- m.Stop(context.Background(), "default", "alice") }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a copy was open", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, stops := rt.Counts(key); stops != 0 {
		t.Fatal("the runtime was told to stop during the copy")
	}
	// A copy that asks while the stop waits queues behind it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := m.CopyIn(ctx, key, "pb", bytes.NewReader(nil)); err == nil {
		t.Error("a copy overtook a waiting stop")
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	rc.Close() // closing twice gives back one share only
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if _, stops := rt.Counts(key); stops != 1 {
		t.Fatalf("stops = %d, want 1", stops)
	}
}

// Dial reaches the workspace through the runtime's dialer.
func TestDialAndProjectPath(t *testing.T) {
	rt := workspacetest.New()
	a, b := net.Pipe()
	defer b.Close()
	rt.DialFunc = func(context.Context) (net.Conn, error) { return a, nil }
	rt.Root = "/srv/ws/project"
	m, _ := newTestManager(t, rt, workspace.Config{})
	key := readyWorkspace(t, m, "default", "alice")
	c, err := m.Dial(context.Background(), key)
	if err != nil || c != a {
		t.Fatalf("Dial = %v, %v", c, err)
	}
	c.Close()
	if rt.Dials() != 1 {
		t.Errorf("%d dials", rt.Dials())
	}
	if p := m.ProjectPath(key); p != "/srv/ws/project" {
		t.Errorf("ProjectPath = %q", p)
	}
}

// readyWorkspace starts user's workspace, waits for it and returns its key.
func readyWorkspace(t *testing.T, m *workspace.Manager, tenant, user string) string {
	t.Helper()
	if _, err := m.Ensure(context.Background(), tenant, user); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Wait(context.Background(), tenant, user); err != nil || st.State != workspace.PhaseReady {
		t.Fatalf("workspace of %s: %+v, %v", user, st, err)
	}
	return workspace.KeyFor(tenant, user)
}

// A workspace token's record runs out after TokenTTL unless a live edit
// session holds the workspace; adoption after a restart does not give it
// days more.
func TestTokenRecordLivesOnlyWhileHeld(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	rt := workspacetest.New()
	store := kv.NewMemory(c.Now)
	m, err := workspace.NewManager(workspace.Config{IdleTimeout: 24 * time.Hour, MaxConcurrentSpawns: 2, TokenTTL: time.Hour, Now: c.Now}, rt, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	key := readyWorkspace(t, m, "t1", "alice")
	token := lastToken(rt, key)
	release := m.Hold(key)
	for range 3 { // three hours, renewed every 50 minutes
		c.Add(50 * time.Minute)
		m.RenewTokens(context.Background())
	}
	if _, err := m.Authenticate(context.Background(), token); err != nil {
		t.Fatalf("a held workspace's token ran out: %v", err)
	}
	release()
	c.Add(50 * time.Minute)
	m.RenewTokens(context.Background())
	c.Add(11 * time.Minute)
	if _, err := m.Authenticate(context.Background(), token); !errors.Is(err, workspace.ErrBadToken) {
		t.Fatalf("an unheld workspace's token outlived TokenTTL: %v", err)
	}

	// Stopping is refused while held, and allowed to an administrator's
	// StopKey (which terminates the sessions first).
	release = m.Hold(key)
	if err := m.Stop(context.Background(), "t1", "alice"); fault.CodeOf(err) != "workspace_busy" {
		t.Fatalf("Stop of a held workspace: %v", err)
	}
	release()
	if err := m.StopKey(context.Background(), key, "test"); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.StatusOf(key); st.State != workspace.PhaseStopped {
		t.Fatalf("after StopKey: %+v", st)
	}
}
