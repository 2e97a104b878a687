package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/sandbox"
)

// Config is the runner's part of the gateway's configuration.
type Config struct {
	// DataDir holds runs.db and, while they run, each run's folder.
	DataDir string
	// Concurrency is RUN_CONCURRENCY: runs this process executes at once.
	Concurrency int
	// Timeout is RUN_TIMEOUT: a run still going then is killed (timed_out).
	Timeout time.Duration
	// Heartbeat is how often a running run says it is alive (default
	// 5s); one silent for three heartbeats is abandoned by any runner.
	Heartbeat time.Duration
	// Poll is how often idle workers look for runs another process
	// queued (default 2s); runs queued here wake them at once.
	Poll time.Duration
	// Node names this host in claims (default: the host name). Runs a
	// previous process of the same node left running are abandoned at
	// start and their sandboxes ended.
	Node string
}

// Deps are what the runner calls.
type Deps struct {
	Log       *slog.Logger
	Sandbox   Sandbox
	Egress    egress.Doer
	Alerts    Alerts
	Playbooks Playbooks
	Profiles  Profiles         // optional
	Now       func() time.Time // optional (tests)
}

// Service is the queue and its workers.
type Service struct {
	cfg      Config
	log      *slog.Logger
	sb       Sandbox
	egress   egress.Doer
	alerts   Alerts
	books    Playbooks
	profiles Profiles
	now      func() time.Time
	st       *store
	owner    string
	runsDir  string

	wake    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	active  map[string]*active
	closing sync.Once
}

// active is a run this process executes.
type active struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

var (
	errCanceled = errors.New("canceled")
	errClosing  = errors.New("the gateway stopped")
	errLost     = errors.New("the run's claim was lost")
)

// New opens DataDir/runs.db, abandons what a dead predecessor left
// running, and starts the workers; queued runs start at once.
func New(cfg Config, d Deps) (*Service, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("runner: no data folder")
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 256 {
		return nil, fmt.Errorf("runner: RUN_CONCURRENCY must be 1 to 256, got %d", cfg.Concurrency)
	}
	if cfg.Timeout < time.Second {
		return nil, fmt.Errorf("runner: RUN_TIMEOUT must be at least 1s, got %s", cfg.Timeout)
	}
	if d.Log == nil || d.Sandbox == nil || d.Egress == nil || d.Alerts == nil || d.Playbooks == nil {
		return nil, errors.New("runner: log, sandbox, egress, alerts and playbooks are required")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		cfg.Node = h
	}
	if strings.Contains(cfg.Node, "/") {
		return nil, fmt.Errorf("runner: node name %q must not contain /", cfg.Node)
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	runsDir := filepath.Join(cfg.DataDir, "runs")
	if err := os.MkdirAll(runsDir, 0o700); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	st, err := openStore(filepath.Join(cfg.DataDir, "runs.db"))
	if err != nil {
		return nil, err
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	s := &Service{
		cfg: cfg, log: d.Log, sb: d.Sandbox, egress: d.Egress, alerts: d.Alerts, books: d.Playbooks, profiles: d.Profiles,
		now: now, st: st, owner: cfg.Node + "/" + hex.EncodeToString(nonce[:]), runsDir: runsDir,
		wake: make(chan struct{}, cfg.Concurrency), stop: make(chan struct{}), active: map[string]*active{},
	}
	// What a previous process of this node left running is dead (or
	// orphaned): abandon it now, not after the heartbeat goes stale.
	s.reap(cfg.Node + "/")
	s.cleanFolders()
	for i := range cfg.Concurrency {
		s.wg.Add(1)
		go s.worker(i)
	}
	s.wg.Add(1)
	go s.reaper()
	return s, nil
}

// Close stops the workers; runs in flight are killed and abandoned.
func (s *Service) Close() error {
	s.closing.Do(func() {
		close(s.stop)
		s.mu.Lock()
		for _, a := range s.active {
			a.cancel(errClosing)
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s.st.Close()
}

// Owner is this process's name in claims.
func (s *Service) Owner() string { return s.owner }

func (s *Service) wakeAll() {
	for range s.cfg.Concurrency {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Enqueue queues a run of req's playbook on req's alert; a rule's run of
// a playbook no longer active is recorded as skipped.
func (s *Service) Enqueue(ctx context.Context, req Request) (Run, error) {
	switch {
	case req.Tenant == "":
		return Run{}, errors.New("runner: a run needs a tenant")
	case req.AlertID == "":
		return Run{}, fault.New(fault.Invalid, "invalid_run", "alertId is required: the alert the playbook runs on.")
	case req.PlaybookID == "":
		return Run{}, fault.New(fault.Invalid, "invalid_run", "A run needs a playbook.")
	case req.Version < 0:
		return Run{}, fault.New(fault.Invalid, "invalid_run", "version must be a positive version number.")
	}
	if req.Trigger == "" {
		req.Trigger = TriggerManual
	}
	alert, err := s.alerts.Get(ctx, req.Tenant, req.AlertID)
	if err != nil {
		return Run{}, err
	}
	r := Run{ID: uuid.NewString(), Tenant: req.Tenant, Trigger: req.Trigger, RuleID: req.RuleID, AlertID: req.AlertID,
		IncidentID: alert.IncidentID, PlaybookID: req.PlaybookID, Status: StatusQueued, QueuedAt: s.now().UTC(),
		StartedBy: req.StartedBy, DryRun: req.DryRun, Log: []LogLine{}, Calls: []Call{}, Actions: []Action{}}
	if req.Version == 0 {
		v, _, err := s.books.ActiveVersion(ctx, req.Tenant, req.PlaybookID)
		if errors.Is(err, playbook.ErrNotActive) {
			if req.Trigger != TriggerRule {
				return Run{}, ErrNotActive
			}
			r.Status, r.Error = StatusSkipped, "The playbook is no longer active."
			t := r.QueuedAt
			r.EndedAt = &t
			if err := s.st.insert(ctx, r); err != nil {
				return Run{}, fmt.Errorf("runner: record run: %w", err)
			}
			s.recordActivity(r)
			return r, nil
		}
		if err != nil {
			return Run{}, err
		}
		r.PlaybookVersion = v.Number
	} else {
		if _, _, err := s.books.Version(ctx, req.Tenant, req.PlaybookID, req.Version); err != nil {
			return Run{}, err
		}
		r.PlaybookVersion = req.Version
	}
	if err := s.st.insert(ctx, r); err != nil {
		return Run{}, fmt.Errorf("runner: record run: %w", err)
	}
	s.wakeAll()
	return r, nil
}

// Get is one run of tenant.
func (s *Service) Get(ctx context.Context, tenant, id string) (Run, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Run{}, ErrNotFound
	}
	return s.st.get(ctx, tenant, strings.ToLower(id))
}

// List is tenant's runs, newest first (limit 1…500, default 50).
func (s *Service) List(ctx context.Context, tenant string, f Filter) ([]Run, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 500)
	if f.Status != "" && !ValidStatus(string(f.Status)) {
		return nil, fault.New(fault.Invalid, "invalid_filter", fmt.Sprintf("status %q is not a run status (queued, running, succeeded, failed, timed_out, canceled, abandoned, skipped).", f.Status))
	}
	return s.st.list(ctx, tenant, f)
}

// Cancel ends a queued run at once, and kills a running one (here, or
// through its runner's next heartbeat elsewhere).
func (s *Service) Cancel(ctx context.Context, tenant, id string) (Run, error) {
	r, err := s.Get(ctx, tenant, id)
	if err != nil {
		return Run{}, err
	}
	switch r.Status {
	case StatusQueued:
		ok, err := s.st.endQueued(ctx, tenant, r.ID, StatusCanceled, "Canceled before it started.", s.now())
		if err != nil {
			return Run{}, err
		}
		if ok {
			r, err = s.st.get(ctx, tenant, r.ID)
			if err == nil {
				s.recordActivity(r)
			}
			return r, err
		}
		// Claimed meanwhile: cancel it running.
	case StatusRunning:
	default:
		return r, ErrEnded
	}
	if err := s.st.requestCancel(ctx, tenant, r.ID); err != nil {
		return Run{}, err
	}
	s.mu.Lock()
	a := s.active[r.ID]
	s.mu.Unlock()
	if a != nil {
		a.cancel(errCanceled)
		select {
		case <-a.done:
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
		}
	}
	return s.st.get(ctx, tenant, r.ID)
}

func (s *Service) worker(slot int) {
	defer s.wg.Done()
	poll := time.NewTicker(s.cfg.Poll)
	defer poll.Stop()
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		r, ok, err := s.st.claim(context.Background(), s.owner, s.now())
		if err != nil {
			s.log.Error("runner: claim failed", "err", err)
		}
		if ok {
			s.execute(slot, r)
			continue
		}
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-poll.C:
		}
	}
}

func (s *Service) reaper() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.reap("")
		}
	}
}

// reap abandons runs whose heartbeat is stale, or held by dead
// incarnations of this node (deadPrefix), ending their sandboxes when
// they ran on this node.
func (s *Service) reap(deadPrefix string) {
	now := s.now()
	got, err := s.st.reap(context.Background(), now.Add(-3*s.cfg.Heartbeat), deadPrefix, now)
	if err != nil {
		s.log.Error("runner: reap failed", "err", err)
		return
	}
	for _, a := range got {
		if strings.HasPrefix(a.owner, s.cfg.Node+"/") && a.initPID > 0 && sandbox.Alive(a.initPID, a.initStart) {
			_ = sandbox.Kill(a.initPID)
		}
		s.log.Warn("runner: run abandoned", "run", a.ID, "owner", a.owner)
		r, err := s.st.get(context.Background(), a.Tenant, a.ID)
		if err == nil {
			s.recordActivity(r)
		}
	}
}

// cleanFolders removes run folders no run of this process uses (left by
// a process that died).
func (s *Service) cleanFolders() {
	entries, _ := os.ReadDir(s.runsDir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(s.runsDir, e.Name()))
	}
}

func (s *Service) recordActivity(r Run) {
	var dur int64
	if r.DurationMS != nil {
		dur = *r.DurationMS
	}
	at := r.QueuedAt
	if r.EndedAt != nil {
		at = *r.EndedAt
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.alerts.RecordRun(ctx, r.Tenant, r.AlertID, RunSummary{RunID: r.ID, RuleID: r.RuleID, PlaybookID: r.PlaybookID,
		PlaybookVersion: r.PlaybookVersion, Status: r.Status, DurationMS: dur, At: at}); err != nil {
		s.log.Warn("runner: activity row not recorded", "run", r.ID, "alert", r.AlertID, "err", err)
	}
}

// tail keeps the last n bytes written to it.
type tail struct {
	mu  sync.Mutex
	n   int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.n {
		t.buf = append([]byte{}, t.buf[len(t.buf)-t.n:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.buf), "")
}

// execute runs one claimed run to its end.
func (s *Service) execute(slot int, r Run) {
	ctx, cancel := context.WithCancelCause(context.Background())
	a := &active{cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.active[r.ID] = a
	s.mu.Unlock()
	defer func() {
		cancel(nil)
		s.mu.Lock()
		delete(s.active, r.ID)
		s.mu.Unlock()
		close(a.done)
	}()
	select {
	case <-s.stop:
		cancel(errClosing)
	default:
	}
	started := s.now()
	if r.StartedAt != nil {
		started = *r.StartedAt
	}
	sess := newSession(s, r, started)
	out := &tail{n: 8 << 10}
	status, msg := s.runSandboxed(ctx, slot, &r, sess, out)

	ended := s.now()
	sess.snapshot(&r)
	if o := strings.TrimSpace(out.String()); o != "" && status != StatusSucceeded {
		for _, line := range strings.Split(o, "\n") {
			// What the runtime wrote to stdout or stderr: the playbook's
			// (its code runs in that process).
			r.Log = append(r.Log, LogLine{At: ended, Message: "runtime: " + cutUTF8(line, maxLogLine), By: ByPlaybook})
		}
	}
	r.Status, r.Error = status, cutUTF8(msg, maxErrorBytes)
	if status == StatusSucceeded {
		// Already cut to maxResultBytes (storedResult).
		r.Result = sess.result
	}
	r.EndedAt = &ended
	d := ended.Sub(started).Milliseconds()
	r.DurationMS = &d
	held, err := s.st.finish(context.Background(), r, s.owner)
	if err != nil {
		s.log.Error("runner: the run's end was not recorded", "run", r.ID, "err", err)
		return
	}
	if !held {
		s.log.Warn("runner: run was reaped while it ran", "run", r.ID)
		return
	}
	s.recordActivity(r)
}

// runSandboxed prepares the run's folder and socket, runs the sandbox
// under RUN_TIMEOUT with heartbeats, and says how it ended.
func (s *Service) runSandboxed(ctx context.Context, slot int, r *Run, sess *session, out *tail) (Status, string) {
	fail := func(format string, a ...any) (Status, string) { return StatusFailed, fmt.Sprintf(format, a...) }
	_, files, err := s.books.Version(ctx, r.Tenant, r.PlaybookID, r.PlaybookVersion)
	if err != nil {
		return fail("Version %d of the playbook cannot be read: %s", r.PlaybookVersion, publicMessage(err))
	}
	alert, err := s.alerts.Get(ctx, r.Tenant, r.AlertID)
	if err != nil {
		return fail("The alert cannot be read: %s", publicMessage(err))
	}
	sess.alert = alert.JSON
	dir := filepath.Join(s.runsDir, r.ID)
	defer os.RemoveAll(dir)
	pbDir, sockDir := filepath.Join(dir, "playbook"), filepath.Join(dir, "sock")
	if err := writeFiles(pbDir, files); err != nil {
		s.log.Error("runner: write playbook files", "run", r.ID, "err", err)
		return fail("The playbook's files could not be prepared for the run.")
	}
	if err := os.MkdirAll(sockDir, 0o755); err != nil {
		return fail("The run's folder could not be made.")
	}
	_ = os.Chmod(sockDir, 0o755)
	sockPath := filepath.Join(sockDir, socketName)
	ln, err := net.Listen("unix", sockPath)
	if err != nil {
		s.log.Error("runner: listen", "run", r.ID, "err", err)
		return fail("The run's ctx socket could not be opened.")
	}
	// The sandbox's uid must be able to connect; the socket's folder is
	// reachable only through the sandbox's bind (DATA_DIR is 0700).
	_ = os.Chmod(sockPath, 0o666)
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { sess.serve(serveCtx, ln); close(served) }()
	defer func() { stopServe(); <-served }()

	runCtx, cancelTimeout := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancelTimeout()
	hbDone := make(chan struct{})
	go s.heartbeats(runCtx, r, sess, hbDone)
	exit, err := s.sb.Run(runCtx, Job{RunID: r.ID, Slot: slot, PlaybookDir: pbDir, SocketDir: sockDir, Output: out,
		Started: func(init int, start uint64) {
			if err := s.st.setInit(context.Background(), r.ID, s.owner, init, start); err != nil {
				s.log.Warn("runner: record sandbox pid", "run", r.ID, "err", err)
			}
		}})
	cancelTimeout()
	<-hbDone
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCanceled):
		return StatusCanceled, "Canceled while it ran."
	case errors.Is(cause, errClosing):
		return StatusAbandoned, "The gateway stopped while the run was going; the run was abandoned."
	case errors.Is(cause, errLost):
		return StatusAbandoned, "The run's claim was lost (its heartbeat went stale)."
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return StatusTimedOut, fmt.Sprintf("The run passed RUN_TIMEOUT (%s) and was killed.", s.cfg.Timeout)
	}
	if err != nil {
		s.log.Error("runner: sandbox", "run", r.ID, "err", err)
		return fail("The run's sandbox could not start.")
	}
	// Let the socket's last answer land before reading the outcome.
	stopServe()
	<-served
	sess.mu.Lock()
	finished, failure, tb, result := sess.finished, sess.failure, sess.traceback, sess.result
	sess.mu.Unlock()
	switch {
	case finished && failure != "":
		if tb != "" {
			failure += "\n\n" + tb
		}
		return StatusFailed, failure
	case finished && result != nil:
		return StatusSucceeded, ""
	case exit.Signal != 0:
		return fail("The run's runtime was killed by signal %d (%s) before it returned: a limit (CPU time, memory, file size) was probably reached.", int(exit.Signal), exit.Signal)
	default:
		return fail("The run's runtime ended (exit status %d) without a result.", exit.Code)
	}
}

func (s *Service) heartbeats(ctx context.Context, r *Run, sess *session, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap := *r
		sess.snapshot(&snap)
		cancel, held, err := s.st.heartbeat(context.Background(), snap, s.owner, s.now())
		if err != nil {
			s.log.Warn("runner: heartbeat", "run", r.ID, "err", err)
			continue
		}
		s.mu.Lock()
		a := s.active[r.ID]
		s.mu.Unlock()
		if a == nil {
			continue
		}
		if !held {
			a.cancel(errLost)
		} else if cancel {
			a.cancel(errCanceled)
		}
	}
}

func publicMessage(err error) string {
	if f, ok := fault.As(err); ok {
		return f.Message
	}
	return "the store did not answer"
}

// writeFiles writes a version's files under dir, read-only for the run
// (owned by the gateway, mode 0644 in 0755 folders).
func writeFiles(dir string, files []playbook.File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		clean := filepath.Clean(filepath.FromSlash(f.Path))
		if f.Path == "" || filepath.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("unsafe file path %q", f.Path)
		}
		p := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Content, 0o644); err != nil {
			return err
		}
	}
	return nil
}
