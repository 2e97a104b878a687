package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/sandbox"
)

const tenant = "t1"

// fakeAlerts is the alert service's double.
type fakeAlerts struct {
	mu     sync.Mutex
	alerts map[string]AlertInfo
	acts   []AlertAction
	rows   []RunSummary
}

func (f *fakeAlerts) Get(_ context.Context, tn, id string) (AlertInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.alerts[tn+"/"+id]
	if !ok {
		return AlertInfo{}, fault.New(fault.NotFound, "alert_not_found", "There is no such alert.")
	}
	return a, nil
}

func (f *fakeAlerts) Act(_ context.Context, _, _ string, a AlertAction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acts = append(f.acts, a)
	return nil
}

func (f *fakeAlerts) RecordRun(_ context.Context, _, _ string, s RunSummary) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows = append(f.rows, s)
	return nil
}

func (f *fakeAlerts) put(id string, alert map[string]any) {
	raw, _ := json.Marshal(alert)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alerts[tenant+"/"+id] = AlertInfo{JSON: raw, IncidentID: "inc-1"}
}

// fakeBooks holds playbooks as one version each, all active.
type fakeBooks struct {
	mu    sync.Mutex
	books map[string]string // id → playbook.py
}

func (f *fakeBooks) files(id string) ([]playbook.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	src, ok := f.books[id]
	if !ok {
		return nil, fault.New(fault.NotFound, "playbook_not_found", "There is no such playbook.")
	}
	return []playbook.File{{Path: "playbook.py", Content: []byte(src)}, {Path: "helpers/util.py", Content: []byte("X = 1\n")}}, nil
}

func (f *fakeBooks) ActiveVersion(_ context.Context, _, id string) (playbook.Version, []playbook.File, error) {
	if id == "inactive" {
		return playbook.Version{}, nil, playbook.ErrNotActive
	}
	fs, err := f.files(id)
	return playbook.Version{Number: 1}, fs, err
}

func (f *fakeBooks) Version(_ context.Context, _, id string, n int) (playbook.Version, []playbook.File, error) {
	fs, err := f.files(id)
	return playbook.Version{Number: n}, fs, err
}

func (f *fakeBooks) add(id, src string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.books[id] = src
}

// headerEgress stands in for internal/egress: it sends calls of profile
// "Svc" to base with the profile's secret in a header, as the real one
// adds credentials the sandbox never sees.
type headerEgress struct {
	base   string
	secret string
}

func (e *headerEgress) Do(ctx context.Context, r egress.Request) (*egress.Response, error) {
	if r.Profile != "Svc" {
		return nil, fault.New(fault.NotFound, "integration_not_found", fmt.Sprintf("There is no integration profile named %q.", r.Profile))
	}
	u := e.base + r.Path
	if len(r.Query) > 0 {
		u += "?" + r.Query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, strings.NewReader(string(r.Body)))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	req.Header.Set("X-Api-Key", e.secret)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &egress.Response{Status: resp.StatusCode, Header: resp.Header, Body: body, Duration: time.Since(start)}, nil
}

// profileDouble opens profiles by name, as integration.Service does.
type profileDouble map[string]integration.Opened

func (d profileDouble) Open(_ context.Context, _, name string) (integration.Opened, error) {
	if p, ok := d[name]; ok {
		return p, nil
	}
	return integration.Opened{}, fault.New(fault.NotFound, "integration_not_found", fmt.Sprintf("There is no integration profile named %q.", name))
}

type env struct {
	svc     *Service
	alerts  *fakeAlerts
	books   *fakeBooks
	dataDir string
	bw      *Bwrap
	egress  egress.Doer
}

func needBwrap(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bubblewrap (bwrap) is not installed: the runner's sandbox tests need it (apt-get install bubblewrap)")
	}
	sb, err := sandbox.New(sandbox.Config{})
	if err != nil {
		t.Skipf("sandbox unavailable: %v", err)
	}
	return sb
}

func testBwrap(t *testing.T) *Bwrap {
	sb := needBwrap(t)
	bw, err := NewBwrap(sb, BwrapConfig{Memory: 256 << 20, CPUTime: time.Minute, FileSize: 32 << 20, MaxProcs: 64, TmpSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return bw
}

func newEnv(t *testing.T, cfg Config, out egress.Doer) *env {
	t.Helper()
	e := &env{alerts: &fakeAlerts{alerts: map[string]AlertInfo{}}, books: &fakeBooks{books: map[string]string{}}, bw: testBwrap(t)}
	e.dataDir = t.TempDir()
	if out == nil {
		out = &headerEgress{base: "http://127.0.0.1:1", secret: "unused-secret"}
	}
	e.egress = out
	e.alerts.put("a1", map[string]any{"id": "a1", "title": "Suspicious sign-in", "incidentId": "inc-1"})
	e.start(t, cfg)
	return e
}

func (e *env) start(t *testing.T, cfg Config) {
	t.Helper()
	cfg.DataDir = e.dataDir
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 2
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.Node == "" {
		cfg.Node = "test"
	}
	svc, err := New(cfg, Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Sandbox: e.bw, Egress: e.egress, Alerts: e.alerts, Playbooks: e.books})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	t.Cleanup(func() { svc.Close() })
}

func (e *env) run(t *testing.T, id, src string) Run {
	t.Helper()
	e.books.add(id, src)
	r, err := e.svc.Enqueue(context.Background(), Request{Tenant: tenant, AlertID: "a1", PlaybookID: id, StartedBy: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wait returns the run once it has ended (the deadline only keeps a
// broken test from hanging).
func (e *env) wait(t *testing.T, id string) Run {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		r, err := e.svc.Get(context.Background(), tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Ended() {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %s did not end", id)
	return Run{}
}

func TestIntegrationCallThroughEgress(t *testing.T) {
	const secret = "s3cr3t-api-key-value"
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String()+" key="+r.Header.Get("X-Api-Key"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"user":%q,"q":%q}`, strings.TrimPrefix(r.URL.Path, "/users/"), r.URL.Query().Get("q"))
	}))
	defer srv.Close()
	// The real egress, over a profile double: it adds the API key the
	// sandbox never sees.
	_, allow, _ := net.ParseCIDR("127.0.0.1/32")
	out, err := egress.New(egress.Config{AllowCIDRs: []*net.IPNet{allow}}, profileDouble{
		"Svc": {Profile: integration.Profile{Name: "Svc", BaseURL: srv.URL, AuthMethod: integration.APIKey,
			Config: integration.Config{In: "header", Name: "X-Api-Key"}}, Secrets: integration.Secrets{APIKey: secret}},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Config{}, out)
	r := e.run(t, "pb1", `
from playbook_sdk import IntegrationError
from helpers.util import X

def run(alert, ctx):
    svc = ctx.integration("Svc")
    resp = svc.get("/users/alice", params={"q": "1"})
    ctx.log("got %d" % resp.status)
    print("printed line")
    try:
        ctx.integration("Svc").post("/nowhere", json={"a": 1})
        missing = None
    except IntegrationError as e:
        missing = str(e)
    try:
        ctx.integration("Nope").get("/x")
    except IntegrationError as e:
        missing = str(e)
    ctx.comment_on_alert("checked alice")
    ctx.set_alert_status("inProgress")
    ctx.notify("soc", "hello")
    return {"alert": alert["id"], "answer": resp.json(), "x": X, "missing": missing}
`)
	got := e.wait(t, r.ID)
	if got.Status != StatusSucceeded {
		t.Fatalf("status %s: %s\nlog: %+v", got.Status, got.Error, got.Log)
	}
	var res map[string]any
	if err := json.Unmarshal(got.Result, &res); err != nil {
		t.Fatal(err)
	}
	if ans, _ := res["answer"].(map[string]any); ans["user"] != "alice" || ans["q"] != "1" || res["alert"] != "a1" {
		t.Fatalf("result %s", got.Result)
	}
	if m, _ := res["missing"].(string); !strings.Contains(m, "Nope") {
		t.Fatalf("an unknown profile should raise IntegrationError naming it, got %q", m)
	}
	mu.Lock()
	if len(seen) != 2 || seen[0] != "GET /users/alice?q=1 key="+secret {
		t.Fatalf("the server saw %q", seen)
	}
	mu.Unlock()
	if len(got.Calls) != 3 || got.Calls[0].Integration != "Svc" || got.Calls[0].Method != "GET" || got.Calls[0].Path != "/users/alice" || got.Calls[0].Status != 200 {
		t.Fatalf("calls %+v", got.Calls)
	}
	if got.Calls[2].Integration != "Nope" || got.Calls[2].Error == "" {
		t.Fatalf("the refused call should be recorded with its error: %+v", got.Calls[2])
	}
	raw, _ := json.Marshal(got)
	if strings.Contains(string(raw), secret) {
		t.Fatalf("the run's record holds the secret: %s", raw)
	}
	if len(got.Actions) != 3 || got.Actions[0].Type != "comment_on_alert" || got.Actions[2].Detail != "soc: hello" {
		t.Fatalf("actions %+v", got.Actions)
	}
	var logs []string
	for _, l := range got.Log {
		logs = append(logs, l.Message)
	}
	if !strings.Contains(strings.Join(logs, "|"), "got 200") || !strings.Contains(strings.Join(logs, "|"), "printed line") {
		t.Fatalf("log %q", logs)
	}
	e.alerts.mu.Lock()
	defer e.alerts.mu.Unlock()
	if len(e.alerts.acts) != 2 || e.alerts.acts[0].Type != "comment" || e.alerts.acts[1].Value != "inProgress" {
		t.Fatalf("alert actions %+v", e.alerts.acts)
	}
	if len(e.alerts.rows) != 1 || e.alerts.rows[0].RunID != r.ID || e.alerts.rows[0].Status != StatusSucceeded {
		t.Fatalf("activity rows %+v", e.alerts.rows)
	}
	if got.EnteredAt == nil || got.StartedAt == nil || got.IncidentID != "inc-1" || got.PlaybookVersion != 1 {
		t.Fatalf("record %+v", got)
	}
}

// TestContainment runs a playbook that tries to get out every way the
// issue names; each attempt must fail inside the run, and a run beside it
// must succeed.
func TestContainment(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	outside := filepath.Join(t.TempDir(), "outside.txt")
	if err := os.WriteFile(outside, []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dataDir, "marker"), []byte("gateway data"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.alerts.put("probe", map[string]any{"id": "probe", "port": ln.Addr().(*net.TCPAddr).Port,
		"dataDir": e.dataDir, "outside": outside, "incidentId": "inc-2"})
	e.books.add("escape", `
import os, socket, time

def attempt(fn):
    try:
        return "ALLOWED: %r" % (fn(),)
    except BaseException as e:
        return "blocked: %s: %s" % (type(e).__name__, e)

def read(p):
    with open(p, "rb") as f:
        return f.read(100)

def fork_many():
    kids = []
    try:
        for _ in range(10000):
            pid = os.fork()
            if pid == 0:
                try:
                    time.sleep(60)
                finally:
                    os._exit(0)
            kids.append(pid)
    finally:
        for k in kids:
            os.kill(k, 9)
            os.waitpid(k, 0)
    return len(kids)

def fill_tmp():
    with open("/tmp/fill", "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20))
    return "64 MiB written"

def run(alert, ctx):
    out = {
        "environ": attempt(lambda: read("/proc/1/environ")),
        "datadir": attempt(lambda: os.listdir(alert["dataDir"])),
        "marker": attempt(lambda: read(alert["dataDir"] + "/marker")),
        "outside": attempt(lambda: read(alert["outside"])),
        "root": attempt(lambda: os.listdir("/root")),
        "work": attempt(lambda: read("/work/main/go.mod")),
        "write_playbook": attempt(lambda: open("/playbook/x.py", "w").write("x")),
        "connect": attempt(lambda: socket.create_connection(("127.0.0.1", alert["port"]), timeout=3).close()),
        "fork": attempt(fork_many),
        "memory": attempt(lambda: len(bytearray(4 << 30))),
        "tmpfs": attempt(fill_tmp),
    }
    out["interfaces"] = sorted(n for _, n in socket.if_nameindex())
    with open("/proc/net/dev") as f:
        out["netdev"] = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
    with open("/proc/net/route") as f:
        out["routes"] = len(f.readlines()) - 1
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["uid"] = os.getuid()
    out["env"] = sorted(os.environ)
    return out
`)
	r1, err := e.svc.Enqueue(context.Background(), Request{Tenant: tenant, AlertID: "probe", PlaybookID: "escape"})
	if err != nil {
		t.Fatal(err)
	}
	r2 := e.run(t, "fine", "def run(alert, ctx):\n    return {'ok': True}\n")
	got := e.wait(t, r1.ID)
	if got.Status != StatusSucceeded {
		t.Fatalf("status %s: %s %+v", got.Status, got.Error, got.Log)
	}
	var res map[string]any
	if err := json.Unmarshal(got.Result, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("inside: %s", got.Result)
	for _, k := range []string{"environ", "datadir", "marker", "outside", "root", "work", "write_playbook", "connect", "fork", "memory", "tmpfs"} {
		if v, _ := res[k].(string); !strings.HasPrefix(v, "blocked: ") {
			t.Errorf("%s: %v", k, res[k])
		}
	}
	if fmt.Sprint(res["interfaces"]) != "[lo]" || fmt.Sprint(res["netdev"]) != "[lo]" {
		t.Errorf("the run's network namespace should hold only lo: %v %v", res["interfaces"], res["netdev"])
	}
	if fmt.Sprint(res["routes"]) != "0" {
		t.Errorf("the run should have no IPv4 route: %v", res["routes"])
	}
	if pids, _ := res["pids"].([]any); len(pids) > 3 {
		t.Errorf("the run should see only its own processes, saw %v", pids)
	}
	if os.Geteuid() == 0 {
		if uid, _ := res["uid"].(float64); uid < 1000 {
			t.Errorf("the run should have an unprivileged uid, has %v", res["uid"])
		}
	}
	// PWD is bubblewrap's (--chdir); nothing of the gateway's.
	if fmt.Sprint(res["env"]) != "[HOME LANG PATH PWD TMPDIR]" {
		t.Errorf("the run's environment should be clean: %v", res["env"])
	}
	select {
	case <-accepted:
		t.Error("the host's listener accepted a connection from the run")
	default:
	}
	if other := e.wait(t, r2.ID); other.Status != StatusSucceeded {
		t.Fatalf("the run beside it: %s %s", other.Status, other.Error)
	}
}

func TestTimeoutKillsEverything(t *testing.T) {
	e := newEnv(t, Config{Timeout: 3 * time.Second, Concurrency: 1}, nil)
	r := e.run(t, "spin", `
import os, time
def run(alert, ctx):
    for _ in range(5):
        if os.fork() == 0:
            while True:
                pass
    while True:
        pass
`)
	got := e.wait(t, r.ID)
	if got.Status != StatusTimedOut {
		t.Fatalf("status %s: %s", got.Status, got.Error)
	}
	if *got.DurationMS < 3000 {
		t.Fatalf("ended after %d ms, before RUN_TIMEOUT", *got.DurationMS)
	}
	t.Logf("timed out after %d ms", *got.DurationMS)
	if os.Geteuid() == 0 {
		if left := processesOf(e.bw.UID(0)); len(left) > 0 {
			t.Fatalf("processes of the run's uid %d left: %v", e.bw.UID(0), left)
		}
	}
	if !strings.Contains(got.Error, "RUN_TIMEOUT") {
		t.Fatalf("error %q should name RUN_TIMEOUT", got.Error)
	}
}

// processesOf lists the host processes running as uid.
func processesOf(uid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + en.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" && f[1] == strconv.Itoa(uid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

func TestFailures(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	cases := []struct {
		name, src, want string
	}{
		{"not JSON", "def run(alert, ctx):\n    return {1, 2}\n", "must return JSON"},
		{"exception", "def run(alert, ctx):\n    raise ValueError('bad input here')\n", "ValueError: bad input here"},
		{"no run", "x = 1\n", "defines no run"},
		{"syntax", "def run(alert, ctx)\n    pass\n", "SyntaxError"},
		{"exit", "import os\ndef run(alert, ctx):\n    os._exit(3)\n", "exit status 3"},
		{"bad status", "def run(alert, ctx):\n    ctx.set_alert_status('done')\n", "set_alert_status takes"},
	}
	ids := map[string]string{}
	for _, c := range cases {
		ids[c.name] = e.run(t, strings.ReplaceAll(c.name, " ", "-"), c.src).ID
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := e.wait(t, ids[c.name])
			if got.Status != StatusFailed || !strings.Contains(got.Error, c.want) {
				t.Fatalf("status %s, error %q; want failed with %q", got.Status, got.Error, c.want)
			}
		})
	}
	if got := e.wait(t, ids["exception"]); !strings.Contains(got.Error, "Traceback") {
		t.Fatalf("an exception's error should carry the traceback: %q", got.Error)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, Config{Concurrency: 1}, nil)
	running := e.run(t, "spin", "def run(alert, ctx):\n    ctx.log('spinning')\n    while True:\n        pass\n")
	queued := e.run(t, "later", "def run(alert, ctx):\n    return {}\n")
	// The first is claimed by the only worker; the second waits.
	got, err := e.svc.Cancel(context.Background(), tenant, queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusCanceled {
		t.Fatalf("queued run after cancel: %s", got.Status)
	}
	for {
		r, _ := e.svc.Get(context.Background(), tenant, running.ID)
		if r.Status == StatusRunning {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.svc.Cancel(context.Background(), tenant, running.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.wait(t, running.ID); got.Status != StatusCanceled {
		t.Fatalf("running run after cancel: %s %s", got.Status, got.Error)
	}
	if _, err := e.svc.Cancel(context.Background(), tenant, running.ID); err != ErrEnded {
		t.Fatalf("cancelling an ended run: %v", err)
	}
}

func TestEnqueueRefusals(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	ctx := context.Background()
	if _, err := e.svc.Enqueue(ctx, Request{Tenant: tenant, AlertID: "nope", PlaybookID: "x"}); err == nil {
		t.Fatal("an unknown alert was accepted")
	}
	if _, err := e.svc.Enqueue(ctx, Request{Tenant: tenant, AlertID: "a1", PlaybookID: "inactive"}); err != ErrNotActive {
		t.Fatalf("inactive playbook: %v", err)
	}
	r, err := e.svc.Enqueue(ctx, Request{Tenant: tenant, AlertID: "a1", PlaybookID: "inactive", Trigger: TriggerRule, RuleID: "r1"})
	if err != nil || r.Status != StatusSkipped {
		t.Fatalf("a rule's run of an inactive playbook should be skipped: %+v %v", r, err)
	}
	if _, err := e.svc.Get(ctx, "other-tenant", r.ID); err != ErrNotFound {
		t.Fatalf("another tenant's run: %v", err)
	}
	if _, err := e.svc.List(ctx, tenant, Filter{Status: "weird"}); err == nil {
		t.Fatal("a bad status filter was accepted")
	}
	list, err := e.svc.List(ctx, tenant, Filter{PlaybookID: "inactive", Status: StatusSkipped})
	if err != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("list: %+v %v", list, err)
	}
}

// TestRestart: a new Service on the same store abandons the run a dead
// runner held (stale heartbeat) and starts the queued one.
func TestRestart(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	e.svc.Close()
	st, err := openStore(filepath.Join(e.dataDir, "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	e.books.add("empty", "def run(alert, ctx):\n    return {}\n")
	old := time.Now().Add(-time.Hour)
	mk := func(id string, st Status) Run {
		return Run{ID: id, Tenant: tenant, Trigger: TriggerManual, AlertID: "a1", PlaybookID: "empty", PlaybookVersion: 1,
			Status: st, QueuedAt: old, Log: []LogLine{}, Calls: []Call{}, Actions: []Action{}}
	}
	stale := mk("00000000-0000-4000-8000-000000000001", StatusQueued)
	queued := mk("00000000-0000-4000-8000-000000000002", StatusQueued)
	for _, r := range []Run{stale, queued} {
		if err := st.insert(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := st.claim(context.Background(), "elsewhere/dead", old); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	st.Close()
	e.start(t, Config{Heartbeat: time.Second})
	if got := e.wait(t, stale.ID); got.Status != StatusAbandoned {
		t.Fatalf("stale run: %s", got.Status)
	}
	if got := e.wait(t, queued.ID); got.Status != StatusSucceeded {
		t.Fatalf("queued run: %s %s", got.Status, got.Error)
	}
}

// TestRestartSameNode: runs a previous process of this node held are
// abandoned at start even with a fresh heartbeat, and their sandbox ended.
func TestRestartSameNode(t *testing.T) {
	e := newEnv(t, Config{Node: "n1", Concurrency: 1}, nil)
	r := e.run(t, "spin", "def run(alert, ctx):\n    ctx.log('in')\n    while True:\n        pass\n")
	var init int
	for init == 0 {
		var pid int
		_ = e.svc.st.db.R.QueryRow(`SELECT init_pid FROM runs WHERE id = ?`, r.ID).Scan(&pid)
		init = pid
		time.Sleep(10 * time.Millisecond)
	}
	// A second process of node n1 starts while the first still "runs":
	// it must treat the first as dead (as after SIGKILL).
	first := e.svc
	e.start(t, Config{Node: "n1", Concurrency: 1})
	got, err := e.svc.Get(context.Background(), tenant, r.ID)
	if err != nil || got.Status != StatusAbandoned {
		t.Fatalf("after restart: %s %v", got.Status, err)
	}
	// SIGKILL is delivered asynchronously: give the kernel a moment (the
	// deadline only keeps a broken test from hanging).
	waitSandboxGone(t, init)
	first.Close()
	if got, _ := e.svc.Get(context.Background(), tenant, r.ID); got.Status != StatusAbandoned {
		t.Fatalf("the dead runner's late end overwrote the reaped run: %s", got.Status)
	}
}

// waitSandboxGone waits for an abandoned run's sandbox (its PID 1) to be
// gone: SIGKILL is delivered asynchronously (the deadline only keeps a
// broken test from hanging).
func waitSandboxGone(t *testing.T, init int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := sandbox.StartTime(init); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned run's sandbox (pid %d) still runs", init)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
