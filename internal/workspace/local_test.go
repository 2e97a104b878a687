package workspace_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/sandbox"
	"github.com/playbookstudio/gateway/internal/testsvc"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// newLocal is a local runtime over dir, sandboxed or not.
func newLocal(t *testing.T, dir string, sandboxed bool) *workspace.Local {
	t.Helper()
	cfg := workspace.LocalConfig{
		CodeServer:    testsvc.CodeServer(t),
		Dir:           dir,
		ExtensionVSIX: testsvc.ExtensionVSIX(t),
		Path:          "/usr/local/bin:/usr/bin:/bin",
	}
	if sandboxed {
		sb, err := sandbox.New(sandbox.Config{})
		if err != nil {
			t.Fatalf("the sandbox (scripts/setup.sh installs bubblewrap): %v", err)
		}
		cfg.Sandbox = sb
	}
	rt, err := workspace.NewLocal(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// eachMode runs fn over the sandboxed runtime (the gateway's default) and
// the plain one.
func eachMode(t *testing.T, fn func(t *testing.T, sandboxed bool)) {
	t.Run("sandboxed", func(t *testing.T) { fn(t, true) })
	t.Run("plain", func(t *testing.T) { fn(t, false) })
}

type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

func newManager(t *testing.T, rt workspace.Runtime, store kv.Store, c *testClock) *workspace.Manager {
	t.Helper()
	m, err := workspace.NewManager(workspace.Config{
		IdleTimeout: 30 * time.Minute, MaxConcurrentSpawns: 4, ReadyTimeout: 30 * time.Second,
		GatewayURL: "http://127.0.0.1:1", Now: c.Now,
	}, rt, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func pidOf(t *testing.T, dir, key string) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "ws", key, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(`"pid":`))
	j := bytes.IndexAny(raw[i+6:], ",}")
	pid, _ := strconv.Atoi(string(raw[i+6 : i+6+j]))
	return pid
}

func processAlive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func tarOf(t *testing.T, files map[string]string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	return &buf
}

func filesOf(t *testing.T, rc io.ReadCloser) map[string]string {
	t.Helper()
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			out[h.Name] = string(b)
		} else if h.Typeflag == tar.TypeSymlink {
			out[h.Name] = "symlink→" + h.Linkname
		}
	}
}

// TestLocalRuntimeLifecycle runs the real code-server: start, ready,
// reuse, files in and out, idle stop, restart with files intact, and
// adoption by a restarted gateway.
func TestLocalRuntimeLifecycle(t *testing.T) {
	t.Setenv("OIDC_CLIENT_SECRET", "gateway-secret-must-not-leak")
	eachMode(t, testLocalLifecycle)
}

func testLocalLifecycle(t *testing.T, sandboxed bool) {
	dir := t.TempDir()
	rt := newLocal(t, dir, sandboxed)
	store := kv.NewMemory(nil)
	clk := &testClock{now: time.Now()}
	m := newManager(t, rt, store, clk)
	ctx := context.Background()
	key := workspace.KeyFor("default", "alice")
	t.Cleanup(func() { rt.Remove(context.Background(), key) })

	begin := time.Now()
	if _, err := m.Ensure(ctx, "default", "alice"); err != nil {
		t.Fatal(err)
	}
	st, err := m.Wait(ctx, "default", "alice")
	if err != nil || st.State != workspace.PhaseReady {
		log, _ := os.ReadFile(filepath.Join(dir, "ws", key, "code-server.log"))
		t.Cleanup(func() {})
		t.Fatalf("status %+v, %v\n%s", st, err, log)
	}
	t.Logf("cold start to ready: %s", time.Since(begin))
	h, err := rt.Health(ctx, key)
	if err != nil || (h.Status != "alive" && h.Status != "expired") {
		t.Fatalf("health %+v %v", h, err)
	}

	// A unix socket, mode 0600, in a folder only its uid enters, and no
	// TCP port.
	sock := filepath.Join(dir, "run", key, "cs.sock")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket folder %v %v", fi.Mode(), err)
	}
	pid := pidOf(t, dir, key)
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if bytes.Contains(cmdline, []byte("--bind-addr")) || !bytes.Contains(cmdline, []byte("--socket")) {
		t.Fatalf("code-server command line: %q", cmdline)
	}
	if sandboxed && bytes.Contains(cmdline, []byte(dir)) {
		t.Fatalf("the sandbox's command line names host paths: %q", cmdline)
	}
	// Its own process group, and none of the gateway's environment.
	if pgid, _ := syscall.Getpgid(pid); pgid != pid {
		t.Fatalf("pgid %d, want its own group %d", pgid, pid)
	}
	environ, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if bytes.Contains(environ, []byte("gateway-secret-must-not-leak")) {
		t.Fatal("the gateway's secret reached the workspace's environment")
	}
	if !bytes.Contains(environ, []byte("PLAYBOOK_GATEWAY_TOKEN=pbw_")) || !bytes.Contains(environ, []byte("PLAYBOOK_GATEWAY_URL=http://127.0.0.1:1")) {
		t.Fatal("the workspace lacks its gateway URL and token")
	}
	token := ""
	for _, kv := range strings.Split(string(environ), "\x00") {
		if v, ok := strings.CutPrefix(kv, "PLAYBOOK_GATEWAY_TOKEN="); ok {
			token = v
		}
	}
	if testsvc.ExtensionVSIX(t) != "" {
		matches, _ := filepath.Glob(filepath.Join(dir, "ws", key, "home", ".code-server", "extensions", "playbookstudio.playbook-agent-*"))
		if len(matches) != 1 {
			t.Fatalf("the agent extension is not preinstalled: %v", matches)
		}
	}

	// Files in and out, symlinks archived as links, never followed.
	if err := rt.CopyIn(ctx, key, "phishing-triage", tarOf(t, map[string]string{"playbook.py": "def run(alert, ctx):\n    return {}\n", "docs/README.md": "# Phishing\n"})); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/etc/passwd", filepath.Join(dir, "ws", key, "home", "project", "phishing-triage", "passwd"))
	rc, err := rt.CopyOut(ctx, key, "phishing-triage")
	if err != nil {
		t.Fatal(err)
	}
	got := filesOf(t, rc)
	if got["playbook.py"] == "" || got["docs/README.md"] != "# Phishing\n" || got["passwd"] != "symlink→/etc/passwd" {
		t.Fatalf("copied out %v", got)
	}
	for _, bad := range []string{"../x", "/etc", "a/../../b"} {
		if _, err := rt.CopyOut(ctx, key, bad); err == nil {
			t.Errorf("CopyOut(%q) accepted", bad)
		}
	}
	if err := rt.CopyIn(ctx, key, "x", tarOf(t, map[string]string{"../../escape": "x"})); err == nil {
		t.Error("CopyIn accepted an entry leaving its folder")
	}

	// Reuse: a warm ensure keeps the same process.
	if st, _ := m.Ensure(ctx, "default", "alice"); st.State != workspace.PhaseReady || pidOf(t, dir, key) != pid {
		t.Fatalf("warm ensure: %+v", st)
	}

	// A restarted gateway adopts the running workspace and its token.
	m.Close()
	rt2 := newLocal(t, dir, sandboxed)
	m2 := newManager(t, rt2, store, clk)
	defer m2.Close()
	if err := m2.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := m2.Status("default", "alice"); err != nil || st.State != workspace.PhaseReady {
		t.Fatalf("not adopted: %+v %v", st, err)
	}
	if info, err := m2.Authenticate(ctx, token); err != nil || info.Owner != "alice" {
		t.Fatalf("adopted token: %+v %v", info, err)
	}
	if pidOf(t, dir, key) != pid {
		t.Fatal("adoption restarted the process")
	}

	// Idle stop: the whole process group ends; the files stay.
	clk.now = clk.now.Add(31 * time.Minute)
	m2.CullIdle(ctx)
	if st, _ := m2.Status("default", "alice"); st.State != workspace.PhaseStopped {
		t.Fatalf("after idle: %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(pid) {
		t.Fatal("code-server still runs after the idle stop")
	}
	if _, err := m2.Authenticate(ctx, token); err == nil {
		t.Fatal("a stopped workspace's token still works")
	}

	// Start again: files intact.
	begin = time.Now()
	m2.Ensure(ctx, "default", "alice")
	if st, _ := m2.Wait(ctx, "default", "alice"); st.State != workspace.PhaseReady {
		t.Fatalf("restart: %+v", st)
	}
	t.Logf("restart to ready: %s", time.Since(begin))
	rc, err = rt2.CopyOut(ctx, key, "phishing-triage")
	if err != nil {
		t.Fatal(err)
	}
	if got := filesOf(t, rc); got["docs/README.md"] != "# Phishing\n" {
		t.Fatalf("files after restart: %v", got)
	}
	if err := rt2.Stop(ctx, key); err != nil {
		t.Fatal(err)
	}
}

func TestLocalRuntimeRejectsBadConfig(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if _, err := workspace.NewLocal(workspace.LocalConfig{CodeServer: "/nonexistent/code-server", Dir: t.TempDir()}, log); err == nil || !strings.Contains(err.Error(), "code-server not found") {
		t.Fatalf("missing code-server: %v", err)
	}
	long := "/" + strings.Repeat("d", 120)
	if _, err := workspace.NewLocal(workspace.LocalConfig{CodeServer: testsvc.CodeServer(t), Dir: long}, log); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("long DATA_DIR: %v", err)
	}
	if _, err := workspace.NewLocal(workspace.LocalConfig{CodeServer: testsvc.CodeServer(t), Dir: "relative"}, log); err == nil {
		t.Fatal("relative dir accepted")
	}
}
