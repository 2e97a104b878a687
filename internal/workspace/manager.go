package workspace

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/kv"
)

// Phase is where a workspace is in its life, as the portal shows it.
type Phase string

const (
	PhaseCreating Phase = "creating"
	PhaseStarting Phase = "starting"
	PhaseReady    Phase = "ready"
	PhaseFailed   Phase = "failed"
	PhaseStopped  Phase = "stopped"
)

// Status is a workspace as the API reports it.
type Status struct {
	Key            string    `json:"-"`
	Owner          string    `json:"-"`
	OwnerName      string    `json:"-"` // for administrators' lists
	Tenant         string    `json:"-"`
	Runtime        string    `json:"runtime"`
	State          Phase     `json:"state"`
	Error          string    `json:"error,omitempty"`
	StartedAt      time.Time `json:"startedAt,omitzero"`
	ReadyAt        time.Time `json:"readyAt,omitzero"`
	LastActivityAt time.Time `json:"lastActivityAt,omitzero"`
}

// tooManySpawns is the Busy refusal when MAX_CONCURRENT_SPAWNS starts are
// already under way; the caller should try again after its RetryAfter.
func tooManySpawns() error {
	return &fault.Error{Kind: fault.Busy, Code: "too_many_spawns", RetryAfter: 5 * time.Second,
		Message: "Too many workspaces are starting right now. Try again in a few seconds."}
}

// errStillStarting refuses to stop a workspace while it starts.
var errStillStarting = fault.New(fault.Conflict, "workspace_busy", "Your workspace is still starting; it can be stopped once it is ready.")

// Config tunes the Manager.
type Config struct {
	IdleTimeout time.Duration // stop after this long without activity
	// TokenTTL bounds a workspace token's record (default 12 h); it is
	// renewed while a live edit session holds the workspace. The token is
	// honoured only while such a session lives anyway (package server).
	TokenTTL            time.Duration
	MaxConcurrentSpawns int
	ReadyTimeout        time.Duration // from Start to a healthy code-server
	// GatewayURL is the gateway as workspaces reach it
	// (PLAYBOOK_GATEWAY_URL in the workspace).
	GatewayURL string
	Now        func() time.Time
}

// Manager keeps one workspace per user over a Runtime.
type Manager struct {
	rt    Runtime
	store kv.Store
	log   *slog.Logger
	cfg   Config
	spawn chan struct{} // a token per start under way

	ctx    context.Context // the manager's lifetime: starts survive their request
	cancel context.CancelFunc
	wg     sync.WaitGroup

	ops keyOps // one lifecycle change at a time per key (ops.go)

	mu    sync.Mutex
	ws    map[string]*entry
	holds map[string]int // live edit sessions per key: never idle
}

type entry struct {
	key, owner, tenant string
	ownerName          string // display name, when known
	phase              Phase
	err                error
	startedAt, readyAt time.Time
	done               chan struct{} // closed when the current start ends
	lastActivity       atomic.Int64  // unix nanoseconds
	tokenHash          string
	dial               DialFunc // cached while ready (ops.go)
}

// Token records are what a workspace's PLAYBOOK_GATEWAY_TOKEN stands for.
const tokenPrefix = "ws-token:"

// defaultTokenTTL bounds a token's record even if a stop is missed; a
// restart mints a new one anyway.
const defaultTokenTTL = 12 * time.Hour

// TokenInfo is what a valid workspace token proves.
type TokenInfo struct {
	Key    string `json:"key"`
	Owner  string `json:"owner"`
	Tenant string `json:"tenant"`
}

// NewManager validates cfg. Call Reconcile once before serving, and Close
// at shutdown.
func NewManager(cfg Config, rt Runtime, store kv.Store, log *slog.Logger) (*Manager, error) {
	switch {
	case rt == nil || store == nil || log == nil:
		return nil, errors.New("workspace: runtime, store and logger are required")
	case cfg.IdleTimeout <= 0:
		return nil, errors.New("workspace: idle timeout must be positive")
	case cfg.MaxConcurrentSpawns <= 0:
		return nil, errors.New("workspace: MAX_CONCURRENT_SPAWNS must be positive")
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = defaultTokenTTL
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{rt: rt, store: store, log: log, cfg: cfg, spawn: make(chan struct{}, cfg.MaxConcurrentSpawns),
		ctx: ctx, cancel: cancel, ws: map[string]*entry{}, holds: map[string]int{}}
	return m, nil
}

// Hold marks the workspace key as in use by a live edit session, which
// the idle culler never stops; calling the returned function (once; later
// calls do nothing) gives the hold back.
func (m *Manager) Hold(key string) (release func()) {
	m.mu.Lock()
	m.holds[key]++
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			if m.holds[key]--; m.holds[key] <= 0 {
				delete(m.holds, key)
			}
			m.mu.Unlock()
		})
	}
}

func (m *Manager) held(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.holds[key] > 0
}

// Ensure makes sure the user's workspace runs or is starting, and returns
// its status at once; Wait blocks until it is ready or failed. Concurrent
// calls for one user start one workspace.
func (m *Manager) Ensure(ctx context.Context, tenant, owner string) (Status, error) {
	key := KeyFor(tenant, owner)
	m.mu.Lock()
	e := m.ws[key]
	if e != nil && (e.phase == PhaseReady || e.phase == PhaseCreating || e.phase == PhaseStarting) {
		if e.phase == PhaseReady {
			e.touch(m.cfg.Now())
		}
		st := m.statusLocked(e)
		m.mu.Unlock()
		return st, nil
	}
	select {
	case m.spawn <- struct{}{}:
	default:
		m.mu.Unlock()
		return Status{}, tooManySpawns()
	}
	if e == nil {
		e = &entry{key: key, owner: owner, tenant: tenant}
		m.ws[key] = e
	}
	e.phase, e.err = PhaseCreating, nil
	e.startedAt, e.readyAt = m.cfg.Now(), time.Time{}
	e.done = make(chan struct{})
	e.touch(m.cfg.Now())
	st := m.statusLocked(e)
	m.mu.Unlock()

	m.wg.Add(1)
	go m.start(e)
	return st, nil
}

// Wait blocks until the user's current start ends (or ctx does) and
// returns the status then.
func (m *Manager) Wait(ctx context.Context, tenant, owner string) (Status, error) {
	key := KeyFor(tenant, owner)
	m.mu.Lock()
	e := m.ws[key]
	if e == nil {
		m.mu.Unlock()
		return Status{}, ErrNotFound
	}
	done := e.done
	m.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return Status{}, ctx.Err()
		}
	}
	return m.Status(tenant, owner)
}

// Status reports the user's workspace, or ErrNotFound.
func (m *Manager) Status(tenant, owner string) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.ws[KeyFor(tenant, owner)]
	if e == nil {
		return Status{}, ErrNotFound
	}
	return m.statusLocked(e), nil
}

// NameOwner records the display name of a workspace's owner (who opened
// it last), for administrators' lists; ids alone are opaque there.
func (m *Manager) NameOwner(tenant, owner, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.ws[KeyFor(tenant, owner)]; e != nil && name != "" {
		e.ownerName = name
	}
}

// StatusOf reports the workspace key, or ErrNotFound.
func (m *Manager) StatusOf(key string) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.ws[key]
	if e == nil {
		return Status{}, ErrNotFound
	}
	return m.statusLocked(e), nil
}

// List reports every workspace the manager knows.
func (m *Manager) List() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.ws))
	for _, e := range m.ws {
		out = append(out, m.statusLocked(e))
	}
	return out
}

func (m *Manager) statusLocked(e *entry) Status {
	st := Status{Key: e.key, Owner: e.owner, OwnerName: e.ownerName, Tenant: e.tenant, Runtime: m.rt.Name(), State: e.phase,
		StartedAt: e.startedAt, ReadyAt: e.readyAt, LastActivityAt: time.Unix(0, e.lastActivity.Load()).UTC()}
	if e.err != nil {
		st.Error = e.err.Error()
	}
	return st
}

func (e *entry) touch(now time.Time) { e.lastActivity.Store(now.UnixNano()) }

// Touch records activity (proxied traffic) on a workspace; it is cheap
// enough to call on every request.
func (m *Manager) Touch(key string) {
	m.mu.Lock()
	e := m.ws[key]
	m.mu.Unlock()
	if e != nil {
		e.touch(m.cfg.Now())
	}
}

func (m *Manager) start(e *entry) {
	defer m.wg.Done()
	defer func() { <-m.spawn }()
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ReadyTimeout)
	defer cancel()
	err := m.startAndWait(ctx, e)
	if err != nil {
		m.log.Error("workspace failed to start", "key", e.key, "owner", e.owner, "runtime", m.rt.Name(), "err", err)
		// Leave nothing half-started behind (the files stay), and only
		// then report the failure: whoever waits sees a clean state.
		stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if serr := m.ops.exclusive(stopCtx, e.key, func() error { return m.rt.Stop(stopCtx, e.key) }); serr != nil {
			m.log.Error("workspace stop after failed start", "key", e.key, "err", serr)
		}
		cancel()
		m.dropToken(e)
	}
	m.mu.Lock()
	if err != nil {
		e.phase, e.err = PhaseFailed, err
	} else {
		e.phase, e.readyAt = PhaseReady, m.cfg.Now()
		e.touch(m.cfg.Now())
	}
	close(e.done)
	m.mu.Unlock()
	if err != nil {
		return
	}
	m.log.Info("workspace ready", "key", e.key, "owner", e.owner, "runtime", m.rt.Name(), "seconds", e.readyAt.Sub(e.startedAt).Seconds())
}

func (m *Manager) startAndWait(ctx context.Context, e *entry) error {
	token, hash := newToken()
	info, _ := json.Marshal(TokenInfo{Key: e.key, Owner: e.owner, Tenant: e.tenant})
	m.dropToken(e)
	if err := m.store.Set(ctx, tokenPrefix+hash, info, m.cfg.TokenTTL); err != nil {
		return fmt.Errorf("store the workspace token: %w", err)
	}
	m.mu.Lock()
	e.tokenHash = hash
	m.mu.Unlock()
	spec := Spec{Key: e.key, Owner: e.owner, Tenant: e.tenant, TokenHash: hash, Env: map[string]string{
		"PLAYBOOK_GATEWAY_URL":   m.cfg.GatewayURL,
		"PLAYBOOK_GATEWAY_TOKEN": token,
	}}
	err := m.ops.exclusive(ctx, e.key, func() error {
		m.mu.Lock()
		e.dial = nil
		m.mu.Unlock()
		return m.rt.Start(ctx, spec)
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	e.phase = PhaseStarting
	m.mu.Unlock()
	return m.waitHealthy(ctx, e.key)
}

// waitHealthy polls /healthz every 20 ms for the first seconds (code-server
// usually answers within one, and every poll saved is start-up time the
// user waits), then backs off.
func (m *Manager) waitHealthy(ctx context.Context, key string) error {
	delay := 20 * time.Millisecond
	fastUntil := time.Now().Add(3 * time.Second)
	var last error
	for {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := m.rt.Health(hctx, key)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("code-server did not become ready within %s: %v", m.cfg.ReadyTimeout, last)
		case <-time.After(delay):
		}
		if time.Now().After(fastUntil) && delay < 250*time.Millisecond {
			delay += delay / 2
		}
	}
}

func newToken() (token, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token = "pbw_" + base64.RawURLEncoding.EncodeToString(b)
	return token, tokenHash(token)
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (m *Manager) dropToken(e *entry) {
	m.mu.Lock()
	h := e.tokenHash
	e.tokenHash = ""
	m.mu.Unlock()
	if h != "" {
		_ = m.store.Delete(context.Background(), tokenPrefix+h)
	}
}

// ErrBadToken means a workspace token is unknown or its workspace stopped.
var ErrBadToken = errors.New("workspace: unknown workspace token")

// Authenticate tells which workspace and owner a PLAYBOOK_GATEWAY_TOKEN
// belongs to.
func (m *Manager) Authenticate(ctx context.Context, token string) (TokenInfo, error) {
	if len(token) < 10 || len(token) > 200 {
		return TokenInfo{}, ErrBadToken
	}
	raw, err := m.store.Get(ctx, tokenPrefix+tokenHash(token))
	if errors.Is(err, kv.ErrNotFound) {
		return TokenInfo{}, ErrBadToken
	}
	if err != nil {
		return TokenInfo{}, err
	}
	var info TokenInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return TokenInfo{}, err
	}
	return info, nil
}

// Stop stops the user's workspace unless it has a live edit session.
func (m *Manager) Stop(ctx context.Context, tenant, owner string) error {
	key := KeyFor(tenant, owner)
	if m.held(key) {
		return errInUse
	}
	return m.stop(ctx, key, "requested")
}

// errInUse refuses to stop a workspace a live edit session holds.
var errInUse = fault.New(fault.Conflict, "workspace_busy", "Your workspace serves an open editor; close the editor first.")

// StopKey stops the workspace key for reason (an administrator's).
func (m *Manager) StopKey(ctx context.Context, key, reason string) error {
	return m.stop(ctx, key, reason)
}

func (m *Manager) stop(ctx context.Context, key, reason string) error {
	m.mu.Lock()
	e := m.ws[key]
	if e == nil {
		m.mu.Unlock()
		return ErrNotFound
	}
	if e.phase == PhaseCreating || e.phase == PhaseStarting {
		m.mu.Unlock()
		return errStillStarting
	}
	m.mu.Unlock()
	err := m.ops.exclusive(ctx, key, func() error {
		m.mu.Lock()
		e.dial = nil
		m.mu.Unlock()
		return m.rt.Stop(ctx, key)
	})
	if err != nil {
		return err
	}
	m.dropToken(e)
	m.mu.Lock()
	if e.phase == PhaseReady {
		e.phase = PhaseStopped
	}
	m.mu.Unlock()
	m.log.Info("workspace stopped", "key", key, "owner", e.owner, "reason", reason)
	return nil
}

// Reconcile adopts the workspaces still running from before a restart and
// stops strays: ones without an owner, or that do not answer.
func (m *Manager) Reconcile(ctx context.Context) error {
	found, err := m.rt.List(ctx)
	if err != nil {
		return fmt.Errorf("workspace: reconcile: %w", err)
	}
	for _, o := range found {
		if !o.Running {
			continue
		}
		stray := o.Owner == "" || o.Key != KeyFor(o.Tenant, o.Owner)
		if !stray {
			hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, herr := m.rt.Health(hctx, o.Key)
			cancel()
			stray = herr != nil
		}
		if stray {
			m.log.Warn("stopping stray workspace", "key", o.Key)
			if err := m.ops.exclusive(ctx, o.Key, func() error { return m.rt.Stop(ctx, o.Key) }); err != nil {
				m.log.Error("stop stray workspace", "key", o.Key, "err", err)
			}
			continue
		}
		e := &entry{key: o.Key, owner: o.Owner, tenant: o.Tenant, phase: PhaseReady,
			startedAt: m.cfg.Now(), readyAt: m.cfg.Now(), tokenHash: o.TokenHash, done: closedChan()}
		e.touch(m.cfg.Now())
		if o.TokenHash != "" {
			info, _ := json.Marshal(TokenInfo{Key: o.Key, Owner: o.Owner, Tenant: o.Tenant})
			if err := m.store.Set(ctx, tokenPrefix+o.TokenHash, info, m.cfg.TokenTTL); err != nil {
				return fmt.Errorf("workspace: reconcile: %w", err)
			}
		}
		m.mu.Lock()
		m.ws[o.Key] = e
		m.mu.Unlock()
		m.log.Info("adopted running workspace", "key", o.Key, "owner", o.Owner)
	}
	return nil
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// CullIdle stops every ready workspace idle for longer than the idle
// timeout, unless it has a live edit session or code-server saw a
// heartbeat (an open workbench) within the timeout. Run it periodically
// (RunCuller) or call it from tests.
func (m *Manager) CullIdle(ctx context.Context) {
	now := m.cfg.Now()
	m.mu.Lock()
	var idle []*entry
	for _, e := range m.ws {
		if e.phase == PhaseReady && now.Sub(time.Unix(0, e.lastActivity.Load())) > m.cfg.IdleTimeout {
			idle = append(idle, e)
		}
	}
	m.mu.Unlock()
	for _, e := range idle {
		if m.held(e.key) {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		h, err := m.rt.Health(hctx, e.key)
		cancel()
		if err == nil && !h.LastHeartbeat.IsZero() && now.Sub(h.LastHeartbeat) < m.cfg.IdleTimeout {
			e.touch(h.LastHeartbeat)
			continue
		}
		if err := m.stop(ctx, e.key, "idle"); err != nil {
			m.log.Error("stop idle workspace", "key", e.key, "err", err)
		}
	}
}

// RenewTokens renews the token records of the workspaces that live edit
// sessions hold; the others' records run out on their own.
func (m *Manager) RenewTokens(ctx context.Context) {
	m.mu.Lock()
	var renew []*entry
	for key, n := range m.holds {
		if e := m.ws[key]; n > 0 && e != nil && e.phase == PhaseReady && e.tokenHash != "" {
			renew = append(renew, e)
		}
	}
	m.mu.Unlock()
	for _, e := range renew {
		m.mu.Lock()
		hash := e.tokenHash
		m.mu.Unlock()
		info, _ := json.Marshal(TokenInfo{Key: e.key, Owner: e.owner, Tenant: e.tenant})
		if err := m.store.Set(ctx, tokenPrefix+hash, info, m.cfg.TokenTTL); err != nil {
			m.log.Error("renew a workspace token", "key", e.key, "err", err)
		}
	}
}

// RunCuller calls CullIdle and RenewTokens every interval until Close.
func (m *Manager) RunCuller(interval time.Duration) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
				m.CullIdle(m.ctx)
				m.RenewTokens(m.ctx)
			}
		}
	}()
}

// Close stops the culler and any start under way; running workspaces are
// left running, to be adopted by the next gateway.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	return m.rt.Close()
}
