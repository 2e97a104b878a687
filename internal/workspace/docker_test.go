package workspace_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/testsvc"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// RealImage is what `make image` builds.
const RealImage = "localhost/playbook-workspace:latest"

// runID keeps this test binary's workspaces apart from any other run's.
var runID = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

type dockerEnv struct {
	t      *testing.T
	podman *testsvc.Podman
	image  string
	api    *client.Client
}

// newDockerEnv starts a private Podman API for the test and builds the
// stub workspace image with the guard in front of it (both cached across
// runs).
func newDockerEnv(t *testing.T) *dockerEnv {
	t.Helper()
	p := testsvc.StartPodman(t)
	e := &dockerEnv{t: t, podman: p, image: buildGuardedStub(t, p, testsvc.BuildStubImage(t, p))}
	api, err := client.NewClientWithOpts(client.WithHost(p.DockerHost), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	e.api = api
	return e
}

// guardedStub is the stub image with the workspace guard (images/guard) as
// its LabelGuard: what the real image has in front of code-server. The
// stub keeps its own port 8080 (it cannot be told otherwise), on the
// container's loopback as the guard's upstream; the real image's
// code-server has no TCP port at all.
var guardedStub struct {
	sync.Mutex
	ref string
}

const guardedStubContainerfile = `FROM %s
COPY pbs-guard /pbs-guard
LABEL io.playbookstudio.guard=/pbs-guard
ENV PBS_GUARD_UPSTREAM=tcp:127.0.0.1:8080
`

func buildGuardedStub(t *testing.T, p *testsvc.Podman, stub string) string {
	t.Helper()
	guardedStub.Lock()
	defer guardedStub.Unlock()
	if guardedStub.ref != "" {
		return guardedStub.ref
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\x00%s\x00%s\x00", runtime.Version(), stub, guardedStubContainerfile)
	srcs, _ := filepath.Glob(filepath.Join(testsvc.RepoRoot(), "images", "guard", "*.go"))
	for _, f := range srcs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum.Write(b)
	}
	ref := "localhost/pbs-stub-guarded:" + hex.EncodeToString(sum.Sum(nil))[:16]
	if _, err := p.Podman("image", "exists", ref); err == nil {
		guardedStub.ref = ref
		return ref
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "pbs-guard"), "./images/guard")
	build.Dir = testsvc.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the guard: %v\n%s", err, out)
	}
	cf := filepath.Join(dir, "Containerfile")
	if err := os.WriteFile(cf, []byte(fmt.Sprintf(guardedStubContainerfile, stub)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Podman("build", "--quiet", "--network=none", "--file", cf, "--label", "io.playbookstudio.test-stub=1", "--tag", ref, dir); err != nil {
		t.Fatalf("guarded stub image: %v", err)
	}
	if out, err := p.Podman("images", "--noheading", "--format", "{{.Repository}}:{{.Tag}}", "localhost/pbs-stub-guarded"); err == nil {
		for _, old := range strings.Fields(out) {
			if old != ref {
				_, _ = p.Podman("rmi", old)
			}
		}
	}
	guardedStub.ref = ref
	return ref
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (e *dockerEnv) config() workspace.DockerConfig {
	return workspace.DockerConfig{
		Host:       e.podman.DockerHost,
		Image:      e.image,
		Memory:     256 << 20,
		NanoCPUs:   500_000_000,
		PidsLimit:  128,
		StartWatch: 3 * time.Second,
		APITimeout: 20 * time.Second,
	}
}

// runtime makes a Docker runtime on the test's Podman, closed at the end.
func (e *dockerEnv) runtime(mut func(*workspace.DockerConfig)) *workspace.Docker {
	e.t.Helper()
	cfg := e.config()
	if mut != nil {
		mut(&cfg)
	}
	d, err := workspace.NewDocker(cfg, testLogger(e.t))
	if err != nil {
		e.t.Fatalf("NewDocker: %v", err)
	}
	e.t.Cleanup(func() { d.Close() })
	return d
}

// key returns a fresh workspace key and removes everything made for it
// when the test ends, checking that nothing is left behind.
func (e *dockerEnv) key(i int) string {
	e.t.Helper()
	key := workspace.KeyFor("docker-test-"+runID, fmt.Sprintf("%s/%d", e.t.Name(), i))
	e.t.Cleanup(func() {
		d, err := workspace.NewDocker(e.config(), slog.New(slog.DiscardHandler))
		if err != nil {
			e.t.Errorf("cleanup: %v", err)
			return
		}
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Remove(ctx, key); err != nil {
			e.t.Errorf("cleanup: remove %s: %v", key, err)
		}
		e.assertGone(key, true)
	})
	return key
}

// assertGone checks that no container (and, with all, no volume or
// network) of key exists.
func (e *dockerEnv) assertGone(key string, all bool) {
	e.t.Helper()
	kinds := [][]string{{"ps", "-a", "--format", "{{.Names}}", "--filter", "name=^pbs-ws-" + key + "$"}}
	if all {
		kinds = append(kinds,
			[]string{"volume", "ls", "--format", "{{.Name}}", "--filter", "name=pbs-ws-" + key},
			[]string{"network", "ls", "--format", "{{.Name}}", "--filter", "name=pbs-ws-" + key})
	}
	for _, args := range kinds {
		out, err := e.podman.Podman(args...)
		if err != nil {
			e.t.Errorf("podman %v: %v", args, err)
			continue
		}
		if strings.TrimSpace(out) != "" {
			e.t.Errorf("left behind (%s): %s", args[0], out)
		}
	}
}

func spec(key string, env map[string]string) workspace.Spec {
	return workspace.Spec{Key: key, Owner: "user-" + key[:4], Tenant: "tenant-a", TokenHash: "th-" + key[:6], Env: env}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitReady polls Health until code-server answers. A fresh code-server
// says "expired" (no heartbeat yet) until its first request; the stub
// says "alive".
func waitReady(t *testing.T, rt workspace.Runtime, key string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < within {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		h, err := rt.Health(ctx, key)
		cancel()
		if err == nil && (h.Status == "alive" || h.Status == "expired") {
			return time.Since(start)
		}
		if err == nil {
			err = fmt.Errorf("status %q", h.Status)
		}
		last = err
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("workspace %s not ready within %s: %v", key, within, last)
	return 0
}

// get sends GET path to the workspace's code-server through the runtime's
// dialer (that is, through 127.0.0.1 and the published port).
func get(t *testing.T, rt workspace.Runtime, key, path string) (int, string) {
	t.Helper()
	ctx := ctxT(t, 15*time.Second)
	dial, err := rt.Dialer(ctx, key)
	if err != nil {
		t.Fatalf("Dialer: %v", err)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://workspace"+path, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func makeTar(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755})
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n]))})
		_, _ = tw.Write([]byte(files[n]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// readTar returns an archive's regular files (name → content) and all
// its names.
func readTar(t *testing.T, r io.Reader) (map[string]string, []string) {
	t.Helper()
	files := map[string]string{}
	var names []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, names
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		names = append(names, hdr.Name)
		if hdr.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[hdr.Name] = string(b)
		}
	}
}

func TestDockerStartHealthAndHardening(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(nil)
	key := e.key(0)
	t.Setenv("PBS_GATEWAY_SECRET_FOR_TEST", "must-not-leak")
	ctx := ctxT(t, time.Minute)

	start := time.Now()
	if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "tok-123"})); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitReady(t, d, key, 10*time.Second)
	t.Logf("stub cold start to healthy: %s", time.Since(start).Round(time.Millisecond))

	h, err := d.Health(ctx, key)
	if err != nil || h.Status != "alive" {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	// Start again: idempotent, same container.
	before, _ := e.api.ContainerInspect(ctx, "pbs-ws-"+key)
	if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "tok-123"})); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	info, err := e.api.ContainerInspect(ctx, "pbs-ws-"+key)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != before.ID {
		t.Errorf("second Start replaced the running container")
	}

	if info.Config.User != "1000:1000" {
		t.Errorf("User = %q, want 1000:1000", info.Config.User)
	}
	hc := info.HostConfig
	if !slices.Contains(hc.CapDrop, "ALL") && len(hc.CapDrop) < 14 {
		t.Errorf("CapDrop = %v, want ALL", hc.CapDrop)
	}
	if len(hc.CapAdd) != 0 {
		t.Errorf("CapAdd = %v", hc.CapAdd)
	}
	if !slices.ContainsFunc(hc.SecurityOpt, func(s string) bool { return strings.HasPrefix(s, "no-new-privileges") }) {
		t.Errorf("SecurityOpt = %v, want no-new-privileges", hc.SecurityOpt)
	}
	if hc.Privileged {
		t.Error("Privileged")
	}
	if hc.Memory != 256<<20 || hc.NanoCPUs != 500_000_000 || hc.PidsLimit == nil || *hc.PidsLimit != 128 {
		t.Errorf("limits: memory=%d nanoCPUs=%d pids=%v", hc.Memory, hc.NanoCPUs, hc.PidsLimit)
	}
	var volumes int
	for _, m := range info.Mounts {
		if m.Type == "tmpfs" {
			continue // listed by some engines; checked below
		}
		volumes++
		if m.Type != "volume" || m.Destination != workspace.ProjectDir || m.Name != "pbs-ws-"+key {
			t.Errorf("unexpected mount %+v", m)
		}
		if strings.Contains(m.Source, "docker.sock") || strings.Contains(m.Source, "podman.sock") {
			t.Errorf("API socket mounted: %+v", m)
		}
	}
	if volumes != 1 {
		t.Errorf("mounts = %+v; want only the project volume", info.Mounts)
	}
	// Podman lists named volumes among Binds too ("name:/path:opts"); a
	// host path there ("/…:…") would be a bind mount.
	for _, b := range hc.Binds {
		if strings.HasPrefix(b, "/") || !strings.HasPrefix(b, "pbs-ws-"+key+":") {
			t.Errorf("bind mount %q", b)
		}
	}
	// The root file system is read-only; the workspace writes its home,
	// /tmp and /run, tmpfs mounts of bounded size, and its project volume.
	if !hc.ReadonlyRootfs {
		t.Error("the root file system is writable")
	}
	for _, p := range []string{"/home/coder", "/tmp", "/run"} {
		if o, ok := hc.Tmpfs[p]; !ok || !strings.Contains(o, "size=") {
			t.Errorf("no bounded tmpfs on %s: %v", p, hc.Tmpfs)
		}
	}
	// The guard is the first process (and the init), code-server's (here
	// the stub's) port is not published, the guard's only on 127.0.0.1.
	if len(info.Config.Entrypoint) == 0 || info.Config.Entrypoint[0] != "/pbs-guard" {
		t.Errorf("entrypoint %v, want the guard", info.Config.Entrypoint)
	}
	if len(info.NetworkSettings.Ports["8080/tcp"]) != 0 {
		t.Errorf("code-server's own port is published: %v", info.NetworkSettings.Ports)
	}
	if len(info.NetworkSettings.Ports["8081/tcp"]) == 0 {
		t.Errorf("the guard's port is not published: %v", info.NetworkSettings.Ports)
	}
	for _, b := range info.NetworkSettings.Ports["8081/tcp"] {
		if b.HostIP != "127.0.0.1" {
			t.Errorf("port published on %q, want 127.0.0.1 only", b.HostIP)
		}
	}
	for k, want := range map[string]string{
		workspace.LabelWorkspace: "1", workspace.LabelKey: key, workspace.LabelOwner: "user-" + key[:4],
		workspace.LabelTenant: "tenant-a", workspace.LabelTokenHash: "th-" + key[:6],
	} {
		if got := info.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	// From inside: the process's user, capabilities, no_new_privs.
	_, status := get(t, d, key, "/status")
	for _, want := range []string{"Uid: 1000 1000 1000 1000", "CapEff: 0000000000000000", "CapBnd: 0000000000000000", "NoNewPrivs: 1"} {
		if !strings.Contains(status, want) {
			t.Errorf("inside the container, /proc/self/status lacks %q:\n%s", want, status)
		}
	}
	// The environment holds the spec's variables and nothing of ours.
	if code, v := get(t, d, key, "/env/PBS_WORKSPACE_TOKEN"); code != 200 || v != "tok-123" {
		t.Errorf("PBS_WORKSPACE_TOKEN = %d %q", code, v)
	}
	if code, _ := get(t, d, key, "/env/PBS_GATEWAY_SECRET_FOR_TEST"); code != 404 {
		t.Errorf("the gateway's environment reached the workspace")
	}
	// The guard keeps its secret from the process it runs.
	if code, _ := get(t, d, key, "/env/PBS_GUARD_SECRET"); code != 404 {
		t.Errorf("the guard's secret reached code-server's environment")
	}
	// The workspace user owns its project folder.
	if code, body := get(t, d, key, "/write/by-user.txt"); code != 200 {
		t.Errorf("the workspace user cannot write its project folder: %d %s", code, body)
	}
}

func TestDockerFilesPersistAcrossStopStart(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(nil)
	key := e.key(0)
	ctx := ctxT(t, time.Minute)
	if err := d.Start(ctx, spec(key, nil)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	files := map[string]string{
		"playbook.py":     "def run(alert, ctx):\n    return {}\n",
		"README.md":       "# Demo\n",
		"lib/helpers.py":  "X = 1\n",
		"empty-dir/":      "",
		"manifest.json":   `{"name":"demo"}`,
		"lib/deep/a.json": "{}",
	}
	if err := d.CopyIn(ctx, key, "playbooks/p1", makeTar(t, files)); err != nil {
		t.Fatalf("CopyIn: %v", err)
	}
	if err := d.Stop(ctx, key); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := d.Health(ctx, key); err == nil {
		t.Error("Health succeeded on a stopped workspace")
	}
	obs, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o := find(obs, key); o == nil || o.Running {
		t.Errorf("List after Stop: %+v", o)
	}
	if err := d.Stop(ctx, key); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	// A stopped workspace's files can be copied in and out.
	if err := d.CopyIn(ctx, key, "playbooks/p1/lib", makeTar(t, map[string]string{"while-stopped.txt": "s"})); err != nil {
		t.Errorf("CopyIn while stopped: %v", err)
	}
	files["lib/while-stopped.txt"] = "s"
	if rc, err := d.CopyOut(ctx, key, "playbooks/p1/lib"); err != nil {
		t.Errorf("CopyOut while stopped: %v", err)
	} else {
		got, _ := readTar(t, rc)
		rc.Close()
		if got["helpers.py"] != "X = 1\n" || got["while-stopped.txt"] != "s" {
			t.Errorf("CopyOut while stopped: %v", got)
		}
	}
	if err := d.Start(ctx, spec(key, nil)); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	waitReady(t, d, key, 10*time.Second)

	rc, err := d.CopyOut(ctx, key, "playbooks/p1")
	if err != nil {
		t.Fatalf("CopyOut: %v", err)
	}
	got, names := readTar(t, rc)
	rc.Close()
	for n, want := range files {
		if strings.HasSuffix(n, "/") {
			if !slices.Contains(names, n) {
				t.Errorf("folder %s missing from %v", n, names)
			}
			continue
		}
		if got[n] != want {
			t.Errorf("%s = %q, want %q", n, got[n], want)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "p1") || strings.HasPrefix(n, "/") || strings.Contains(n, "..") || n == "./" {
			t.Errorf("entry %q is not relative to the folder", n)
		}
	}
	if len(got) != 6 {
		t.Errorf("CopyOut files = %v", names)
	}

	// The whole project folder, and the owner of what CopyIn wrote.
	rc, err = d.CopyOut(ctx, key, ".")
	if err != nil {
		t.Fatalf("CopyOut(.): %v", err)
	}
	all, _ := readTar(t, rc)
	rc.Close()
	if all["playbooks/p1/lib/deep/a.json"] != "{}" {
		t.Errorf("CopyOut(.) = %v", all)
	}
	raw, _, err := e.api.CopyFromContainer(ctx, "pbs-ws-"+key, workspace.ProjectDir+"/playbooks")
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(raw)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Uid != 1000 || hdr.Gid != 1000 {
			t.Errorf("%s is owned by %d:%d, want the workspace user 1000:1000", hdr.Name, hdr.Uid, hdr.Gid)
		}
	}
	raw.Close()

	// Errors.
	if _, err := d.CopyOut(ctx, key, "playbooks/nope"); !errors.Is(err, workspace.ErrNotFound) {
		t.Errorf("CopyOut of a missing folder: %v, want ErrNotFound", err)
	}
	if _, err := d.CopyOut(ctx, key, "playbooks/p1/README.md"); err == nil {
		t.Error("CopyOut of a file succeeded")
	}
	for _, bad := range []string{"../x", "/etc", "a/../../b", "a\\b"} {
		if _, err := d.CopyOut(ctx, key, bad); err == nil {
			t.Errorf("CopyOut(%q) succeeded", bad)
		}
		if err := d.CopyIn(ctx, key, bad, makeTar(t, map[string]string{"f": "x"})); err == nil {
			t.Errorf("CopyIn(%q) succeeded", bad)
		}
	}
	if err := d.CopyIn(ctx, key, "p2", makeTar(t, map[string]string{"../escape.txt": "x"})); err == nil {
		t.Error("CopyIn of an entry leaving its folder succeeded")
	}
	// A symlink the workspace's user planted is not followed.
	if code, body := get(t, d, key, "/symlink/evil?to=/etc"); code != 200 {
		t.Fatalf("plant symlink: %d %s", code, body)
	}
	if err := d.CopyIn(ctx, key, "evil/sub", makeTar(t, map[string]string{"x.txt": "x"})); err == nil {
		t.Error("CopyIn through a symlink succeeded")
	}
	if _, err := d.CopyOut(ctx, key, "evil"); err == nil {
		t.Error("CopyOut of a symlink succeeded")
	}
	other := "0123456789abcdef"
	if err := d.CopyIn(ctx, other, "x", makeTar(t, nil)); !errors.Is(err, workspace.ErrNotFound) {
		t.Errorf("CopyIn to an unknown workspace: %v, want ErrNotFound", err)
	}
	if _, err := d.CopyOut(ctx, other, "x"); !errors.Is(err, workspace.ErrNotFound) {
		t.Errorf("CopyOut of an unknown workspace: %v, want ErrNotFound", err)
	}
}

func find(obs []workspace.Observed, key string) *workspace.Observed {
	for i := range obs {
		if obs[i].Key == key {
			return &obs[i]
		}
	}
	return nil
}

func TestDockerListAfterGatewayRestart(t *testing.T) {
	e := newDockerEnv(t)
	first := e.runtime(nil)
	key := e.key(0)
	stopped := e.key(1)
	ctx := ctxT(t, time.Minute)
	for _, k := range []string{key, stopped} {
		if err := first.Start(ctx, spec(k, nil)); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	if err := first.Stop(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	first.Close()

	second := e.runtime(nil) // a restarted gateway: knows nothing
	obs, err := second.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	o := find(obs, key)
	if o == nil {
		t.Fatalf("List after restart lacks %s: %+v", key, obs)
	}
	want := workspace.Observed{Key: key, Owner: "user-" + key[:4], Tenant: "tenant-a", TokenHash: "th-" + key[:6], Running: true}
	if *o != want {
		t.Errorf("Observed = %+v, want %+v", *o, want)
	}
	if o := find(obs, stopped); o == nil || o.Running {
		t.Errorf("stopped workspace in List: %+v", o)
	}
	waitReady(t, second, key, 10*time.Second)

	// Another deployment's workspaces (another name prefix) are not ours.
	third := e.runtime(func(c *workspace.DockerConfig) { c.NamePrefix = "pbs-other-" })
	obs, err = third.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if find(obs, key) != nil {
		t.Errorf("List with another name prefix found %s", key)
	}
}

func TestDockerMissingImage(t *testing.T) {
	e := newDockerEnv(t)
	const img = "localhost/pbs-no-such-image:never"
	d := e.runtime(func(c *workspace.DockerConfig) { c.Image = img })
	key := e.key(0)
	err := d.Start(ctxT(t, time.Minute), spec(key, nil))
	if err == nil || !strings.Contains(err.Error(), img) || !strings.Contains(err.Error(), "make image") {
		t.Fatalf("Start with a missing image: %v", err)
	}
	t.Logf("error: %v", err)
	e.assertGone(key, true)
}

func TestDockerContainerExitsWhileStarting(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(nil)
	key := e.key(0)
	ctx := ctxT(t, time.Minute)
	start := time.Now()
	err := d.Start(ctx, spec(key, map[string]string{"STUB_MODE": "exit3"}))
	if err == nil {
		t.Fatal("Start of a container that exits succeeded")
	}
	t.Logf("error after %s: %v", time.Since(start).Round(time.Millisecond), err)
	for _, want := range []string{"code 3", "told to fail at start"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	e.assertGone(key, false)
	obs, _ := d.List(ctx)
	if find(obs, key) != nil {
		t.Error("a half-started container is listed")
	}
	// The next Start (a fixed image, here: another environment) works.
	if err := d.Start(ctx, spec(key, nil)); err != nil {
		t.Fatalf("Start after a failed start: %v", err)
	}
	waitReady(t, d, key, 10*time.Second)
}

func TestDockerNeverHealthy(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(func(c *workspace.DockerConfig) { c.StartWatch = time.Second })
	key := e.key(0)
	ctx := ctxT(t, time.Minute)
	// Start returns once the container runs (after StartWatch), not when
	// code-server answers: this stub never does, so a Start that waited
	// for health would end only with ctx's deadline, as an error. (No
	// bound on the time itself: the machines are too noisy for one.)
	if err := d.Start(ctx, spec(key, map[string]string{"STUB_MODE": "unhealthy"})); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := d.Health(ctx, key); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Health of a never-ready workspace: %v", err)
	}
}

func TestDockerAPIGone(t *testing.T) {
	dir, err := os.MkdirTemp("", "pbs-gone-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := ctxT(t, time.Minute)

	// Nobody serves the socket.
	gone, err := workspace.NewDocker(workspace.DockerConfig{
		Host: "unix://" + filepath.Join(dir, "nobody.sock"), Image: "x", Memory: 256 << 20, NanoCPUs: 1e9, PidsLimit: 10,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	key := workspace.KeyFor("t", "gone")
	start := time.Now()
	err = gone.Start(ctx, spec(key, nil))
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Docker API") || !strings.Contains(err.Error(), "nobody.sock") {
		t.Errorf("Start without an API: %v", err)
	}
	// The error names the socket: Start did not wait for ctx's deadline.
	t.Logf("error after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if _, err := gone.List(ctx); err == nil {
		t.Error("List without an API succeeded")
	}
	if err := gone.Stop(ctx, key); err == nil {
		t.Error("Stop without an API succeeded")
	}
	if _, err := gone.Health(ctx, key); err == nil {
		t.Error("Health without an API succeeded")
	}
	if err := gone.Ping(ctx); err == nil {
		t.Error("Ping without an API succeeded")
	}

	// A socket that accepts and never answers: bounded by APITimeout.
	l, err := net.Listen("unix", filepath.Join(dir, "mute.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		l.Close()
		conns.Wait()
		for _, c := range held {
			c.Close()
		}
	}()
	mute, err := workspace.NewDocker(workspace.DockerConfig{
		Host: "unix://" + filepath.Join(dir, "mute.sock"), Image: "x", Memory: 256 << 20, NanoCPUs: 1e9, PidsLimit: 10,
		APITimeout: 500 * time.Millisecond,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	start = time.Now()
	err = mute.Start(ctx, spec(key, nil))
	// "in time" is APITimeout's error, not ctx's (a minute away).
	if err == nil || !strings.Contains(err.Error(), "in time") {
		t.Errorf("Start against a mute API: %v", err)
	}
	t.Logf("mute API: error after %s", time.Since(start).Round(time.Millisecond))
}

func TestDockerIsolation(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(nil)
	ctx := ctxT(t, time.Minute)
	keys := []string{e.key(0), e.key(1), e.key(2)}
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Start(ctx, spec(k, nil))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Start %s: %v", keys[i], err)
		}
	}
	subnets := map[string]string{}
	ports := map[string]string{}
	for _, k := range keys {
		waitReady(t, d, k, 10*time.Second)
		info, err := e.api.ContainerInspect(ctx, "pbs-ws-"+k)
		if err != nil {
			t.Fatal(err)
		}
		var nets []string
		for n := range info.NetworkSettings.Networks {
			nets = append(nets, n)
		}
		if len(nets) != 1 || nets[0] != "pbs-ws-"+k {
			t.Errorf("%s is on networks %v, want only its own", k, nets)
		}
		n, err := e.api.NetworkInspect(ctx, "pbs-ws-"+k, network.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range n.IPAM.Config {
			if other, dup := subnets[c.Subnet]; dup {
				t.Errorf("%s and %s share subnet %s", k, other, c.Subnet)
			}
			subnets[c.Subnet] = k
		}
		// Podman's Docker API creates bridges with netavark's isolate
		// option (like Docker's own isolation chains): traffic between
		// two such bridges is dropped. Its compat inspect hides the
		// option, so ask the podman command.
		if out, err := e.podman.Podman("network", "inspect", "--format", `{{index .Options "isolate"}}`, n.Name); err != nil || strings.TrimSpace(out) != "true" {
			t.Errorf("network %s is not isolated from other bridges: %q %v", n.Name, out, err)
		}
		if n.Internal {
			t.Errorf("publish mode network %s is internal (ports would not be forwarded)", n.Name)
		}
		p := info.NetworkSettings.Ports["8081/tcp"][0].HostPort
		if other, dup := ports[p]; dup {
			t.Errorf("%s and %s share host port %s", k, other, p)
		}
		ports[p] = k
	}
	if len(subnets) != 3 {
		t.Errorf("subnets: %v", subnets)
	}
	// No traffic goes to a container's address here (not even to show it
	// is dropped): what the kernel would do is read from A's namespace.
	// In publish mode A's only way towards B's address is its default
	// route, through the host. What stops it there is netavark's isolation
	// chain (the networks' isolate option, checked above), and netavark
	// 1.4 (Debian 12) does not keep that chain reliably: removing one
	// isolated network's last container drops the FORWARD jump into the
	// chain for every other network, and concurrent set-ups can lose
	// rules. So publish mode does not count on it: B's code-server has no
	// address at all (a unix socket inside B), and B's guard answers only
	// who proves B's secret (TestDockerGuardAnswersOnlyTheGateway). The
	// modes that must not route between workspaces do not: network mode's
	// internal networks (TestDockerNetworkMode) and socket mode's absent
	// network (TestDockerSocketMode).
	a, b := keys[0], keys[1]
	bInfo, _ := e.api.ContainerInspect(ctx, "pbs-ws-"+b)
	bIP := bInfo.NetworkSettings.Networks["pbs-ws-"+b].IPAddress
	route := inNetns(t, e.pid("pbs-ws-"+a), "ip", "route", "get", bIP)
	if !strings.Contains(route, "via ") {
		t.Errorf("A's route to B's address %s is not through the host: %s", bIP, route)
	}
	jump := strings.Contains(hostCmd(t, "iptables", "-S", "FORWARD"), "NETAVARK_ISOLATION_1")
	t.Logf("publish mode: A → B (%s) routes %s; the host's isolation chain is in FORWARD now: %v", bIP, strings.TrimSpace(route), jump)
}

// pid is the host PID of a running container's first process.
func (e *dockerEnv) pid(name string) int {
	e.t.Helper()
	info, err := e.api.ContainerInspect(context.Background(), name)
	if err != nil || info.State == nil || info.State.Pid == 0 {
		e.t.Fatalf("pid of %s: %v", name, err)
	}
	return info.State.Pid
}

// hostCmd runs a command of the host and returns its output.
func hostCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && ctx.Err() != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

// inNetns runs a host command (ip) in the network namespace of pid
// only: it looks at routes and links and sends nothing.
func inNetns(t *testing.T, pid int, args ...string) string {
	t.Helper()
	return hostCmd(t, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", "--"}, args...)...)
}

func TestDockerConcurrentStartsMakeOneContainer(t *testing.T) {
	e := newDockerEnv(t)
	a, b := e.runtime(nil), e.runtime(nil) // two gateway replicas
	key := e.key(0)
	ctx := ctxT(t, time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, rt := range []*workspace.Docker{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rt.Start(ctx, spec(key, nil))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent Start: %v", err)
		}
	}
	out, err := e.podman.Podman("ps", "-a", "--format", "{{.Names}}", "--filter", "label="+workspace.LabelKey+"="+key)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(out)); n != 1 {
		t.Errorf("%d containers for one key: %s", n, out)
	}
	waitReady(t, a, key, 10*time.Second)
	waitReady(t, b, key, 10*time.Second)
}

func TestDockerRecreatesOutdatedStoppedContainer(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(nil)
	key := e.key(0)
	ctx := ctxT(t, time.Minute)
	if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "one"})); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyIn(ctx, key, "keep", makeTar(t, map[string]string{"f.txt": "kept"})); err != nil {
		t.Fatal(err)
	}
	// Running: a new spec does not disturb it.
	if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "two"})); err != nil {
		t.Fatal(err)
	}
	if _, v := get(t, d, key, "/env/PBS_WORKSPACE_TOKEN"); v != "one" {
		t.Errorf("a running workspace was recreated: token %q", v)
	}
	if err := d.Stop(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "two"})); err != nil {
		t.Fatal(err)
	}
	if _, v := get(t, d, key, "/env/PBS_WORKSPACE_TOKEN"); v != "two" {
		t.Errorf("token after restart with a new spec = %q, want two", v)
	}
	rc, err := d.CopyOut(ctx, key, "keep")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := readTar(t, rc)
	rc.Close()
	if files["f.txt"] != "kept" {
		t.Errorf("files after recreate: %v", files)
	}
}

func TestDockerRemove(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(nil)
	key := e.key(0)
	ctx := ctxT(t, time.Minute)
	if err := d.Start(ctx, spec(key, nil)); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyIn(ctx, key, "p", makeTar(t, map[string]string{"f": "x"})); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, key); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	e.assertGone(key, true)
	if _, err := d.Health(ctx, key); !errors.Is(err, workspace.ErrNotFound) {
		t.Errorf("Health after Remove: %v, want ErrNotFound", err)
	}
	if err := d.Stop(ctx, key); err != nil {
		t.Errorf("Stop of a removed workspace: %v", err)
	}
	if err := d.Remove(ctx, key); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	// Starting again gives an empty project folder.
	if err := d.Start(ctx, spec(key, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CopyOut(ctx, key, "p"); !errors.Is(err, workspace.ErrNotFound) {
		t.Errorf("files survived Remove: %v", err)
	}
}

// TestDockerNetworkMode runs a stub container as "the gateway": Start
// connects it to each workspace's network under its alias, and the
// networks are internal: a workspace's only neighbour is the gateway, and
// it has no route to another workspace or off the host. No traffic is
// sent between containers (their addresses are not loopback): what the
// kernel would do is read from the workspaces' namespaces.
func TestDockerNetworkMode(t *testing.T) {
	e := newDockerEnv(t)
	ctx := ctxT(t, time.Minute)
	gwName := "pbs-test-gw-" + runID
	if _, err := e.podman.Podman("run", "-d", "--name", gwName, "--user", "1000:1000", e.image); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = e.podman.Podman("rm", "-f", "-t", "0", gwName) })
	mode := func(egress bool) *workspace.Docker {
		return e.runtime(func(c *workspace.DockerConfig) {
			c.Mode = workspace.DockerModeNetwork
			c.GatewayContainer = gwName
			c.Egress = egress
			// From the test process the workspace's name does not resolve
			// (it is not on the network), so Start cannot see it ready.
			c.StartWatch = 300 * time.Millisecond
		})
	}
	gw := mode(false)
	key, other := e.key(0), e.key(1)
	for _, k := range []string{key, other} {
		if err := gw.Start(ctx, spec(k, nil)); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	netName := "pbs-ws-" + key
	info, err := e.api.ContainerInspect(ctx, gwName)
	if err != nil {
		t.Fatal(err)
	}
	ep := info.NetworkSettings.Networks[netName]
	if ep == nil || info.NetworkSettings.Networks["pbs-ws-"+other] == nil {
		t.Fatalf("the gateway container is not on the workspaces' networks: %v", info.NetworkSettings.Networks)
	}
	if !slices.Contains(ep.Aliases, "pbs-gateway") {
		t.Errorf("the gateway joined without its alias: %v", ep.Aliases)
	}
	ws, _ := e.api.ContainerInspect(ctx, netName)
	if len(ws.NetworkSettings.Ports["8080/tcp"])+len(ws.NetworkSettings.Ports["8081/tcp"]) != 0 {
		t.Errorf("network mode published a port: %v", ws.NetworkSettings.Ports)
	}
	if len(ws.NetworkSettings.Networks) != 1 {
		t.Errorf("the workspace is on networks %v, want only its own", ws.NetworkSettings.Networks)
	}
	n, err := e.api.NetworkInspect(ctx, netName, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Internal {
		t.Errorf("network %s has a route off the host", netName)
	}
	// Inside the workspace's namespace: no default route, so nothing off
	// its own link has a route: not the other workspace, not the metadata
	// address; the gateway's address is on the link.
	wsPID := e.pid(netName)
	if routes := inNetns(t, wsPID, "ip", "route"); strings.Contains(routes, "default") {
		t.Errorf("the workspace has a default route:\n%s", routes)
	}
	oi, _ := e.api.ContainerInspect(ctx, "pbs-ws-"+other)
	otherIP := oi.NetworkSettings.Networks["pbs-ws-"+other].IPAddress
	for what, addr := range map[string]string{"the metadata address": "169.254.169.254", "the other workspace " + otherIP: otherIP, "a public address": "192.0.2.1"} {
		if out := inNetns(t, wsPID, "ip", "route", "get", addr); !strings.Contains(out, "unreachable") {
			t.Errorf("route to %s: %s", what, out)
		}
	}
	if out := inNetns(t, wsPID, "ip", "route", "get", ep.IPAddress); !strings.Contains(out, "dev eth0") || strings.Contains(out, "via") {
		t.Errorf("route to the gateway (%s): %s", ep.IPAddress, out)
	}
	// The guard listens on its port in the workspace's namespace (the
	// gateway dials pbs-ws-KEY:8081 there).
	if tcp := inNetns(t, wsPID, "cat", "/proc/net/tcp", "/proc/net/tcp6"); !listens(tcp, 8081) {
		t.Errorf("nothing listens on the guard's port:\n%s", tcp)
	}
	for _, k := range []string{key, other} {
		if err := gw.Remove(ctx, k); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	info, _ = e.api.ContainerInspect(ctx, gwName)
	if info.NetworkSettings.Networks[netName] != nil {
		t.Error("the gateway container is still on a removed workspace's network")
	}

	// With Egress the network is routed like publish mode's.
	egress := mode(true)
	key2 := e.key(2)
	if err := egress.Start(ctx, spec(key2, nil)); err != nil {
		t.Fatalf("Start with egress: %v", err)
	}
	if n, err := e.api.NetworkInspect(ctx, "pbs-ws-"+key2, network.InspectOptions{}); err != nil || n.Internal {
		t.Errorf("egress network: internal=%v %v", n.Internal, err)
	}
	if err := egress.Remove(ctx, key2); err != nil {
		t.Fatalf("Remove: %v", err)
	}
}

// listens reports whether /proc/net/tcp (or tcp6) text shows a listening
// socket on port.
func listens(procNetTCP string, port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(procNetTCP, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
			return true
		}
	}
	return false
}

func TestNewDockerValidates(t *testing.T) {
	ok := workspace.DockerConfig{Image: "img", Memory: 256 << 20, NanoCPUs: 1e9, PidsLimit: 100}
	for name, mut := range map[string]func(*workspace.DockerConfig){
		"no image":          func(c *workspace.DockerConfig) { c.Image = "" },
		"no memory":         func(c *workspace.DockerConfig) { c.Memory = 0 },
		"tiny memory":       func(c *workspace.DockerConfig) { c.Memory = 1 << 20 },
		"no cpus":           func(c *workspace.DockerConfig) { c.NanoCPUs = 0 },
		"no pids":           func(c *workspace.DockerConfig) { c.PidsLimit = -1 },
		"root user":         func(c *workspace.DockerConfig) { c.User = "0:0" },
		"named user":        func(c *workspace.DockerConfig) { c.User = "coder" },
		"bad mode":          func(c *workspace.DockerConfig) { c.Mode = "host" },
		"internal, publish": func(c *workspace.DockerConfig) { c.InternalNetworks = true },
		"bad prefix":        func(c *workspace.DockerConfig) { c.NamePrefix = "Bad/" },
		"bad alias":         func(c *workspace.DockerConfig) { c.Mode = "network"; c.GatewayContainer = "gw"; c.GatewayAlias = "x y" },
		"bad host":          func(c *workspace.DockerConfig) { c.Host = "::nonsense" },
		"negative timeout":  func(c *workspace.DockerConfig) { c.StartWatch = -1 },
		"egress, publish":   func(c *workspace.DockerConfig) { c.Egress = true },
		"egress, socket":    func(c *workspace.DockerConfig) { c.Mode = "socket"; c.Egress = true },
		"egress, internal": func(c *workspace.DockerConfig) {
			c.Mode = "network"
			c.GatewayContainer = "gw"
			c.Egress = true
			c.InternalNetworks = true
		},
		"internal, socket":    func(c *workspace.DockerConfig) { c.Mode = "socket"; c.InternalNetworks = true },
		"negative tmpfs":      func(c *workspace.DockerConfig) { c.TmpfsSize = -1 },
		"tiny tmpfs":          func(c *workspace.DockerConfig) { c.TmpfsSize = 1 << 20 },
		"negative volume":     func(c *workspace.DockerConfig) { c.VolumeSize = -1 },
		"api addr, publish":   func(c *workspace.DockerConfig) { c.APIAddr = "127.0.0.1:8080" },
		"api addr not local":  func(c *workspace.DockerConfig) { c.Mode = "socket"; c.APIAddr = "192.0.2.1:8080" },
		"api addr no port":    func(c *workspace.DockerConfig) { c.Mode = "socket"; c.APIAddr = "127.0.0.1" },
		"api addr named host": func(c *workspace.DockerConfig) { c.Mode = "socket"; c.APIAddr = "gateway:8080" },
		"api addr zero port":  func(c *workspace.DockerConfig) { c.Mode = "socket"; c.APIAddr = "127.0.0.1:0" },
		"socket mode typo":    func(c *workspace.DockerConfig) { c.Mode = "sockets" },
		"upper-case alias":    func(c *workspace.DockerConfig) { c.Mode = "network"; c.GatewayAlias = "Bad" },
	} {
		cfg := ok
		mut(&cfg)
		if d, err := workspace.NewDocker(cfg, nil); err == nil {
			d.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	d, err := workspace.NewDocker(ok, nil)
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	defer d.Close()
	got := d.Config()
	if got.User != "1000:1000" || got.Mode != workspace.DockerModePublish || got.NamePrefix != "pbs-ws-" || got.StartWatch <= 0 || got.TmpfsSize != 256<<20 || got.VolumeSize != 0 {
		t.Errorf("defaults: %+v", got)
	}
	if d.Name() != "docker" {
		t.Errorf("Name = %q", d.Name())
	}
	if _, err := d.Dialer(context.Background(), "../etc"); err == nil {
		t.Error("Dialer accepted a bad key")
	}
}

// TestDockerRealImage runs the real workspace image (code-server and the
// extension), built by `make image`. The Makefile sets PBS_TEST_REAL_IMAGE=1;
// without it the test is skipped so that plain `go test` during
// development does not need the 780 MB image.
func TestDockerRealImage(t *testing.T) {
	if os.Getenv("PBS_TEST_REAL_IMAGE") != "1" {
		t.Skip("set PBS_TEST_REAL_IMAGE=1 (make test does) after `make image` to run the real workspace image")
	}
	e := newDockerEnv(t)
	if _, err := e.podman.Podman("image", "exists", RealImage); err != nil {
		t.Fatalf("the workspace image %s is missing: build it with `make image` (images/build-offline.sh)", RealImage)
	}
	d := e.runtime(func(c *workspace.DockerConfig) {
		c.Image = RealImage
		c.Memory = 1 << 30
		c.NanoCPUs = 1e9
		c.PidsLimit = 512
		c.StartWatch = 20 * time.Second
	})
	ctx := ctxT(t, 3*time.Minute)
	var times []time.Duration
	var key string
	for i := range 3 {
		key = e.key(i)
		start := time.Now()
		if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "tok"})); err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitReady(t, d, key, 60*time.Second)
		times = append(times, time.Since(start))
		if i < 2 {
			if err := d.Remove(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(times)
	t.Logf("real image cold start to healthy: %v (median %s)", times, times[1].Round(time.Millisecond))

	// The workbench page loads through the published port (Go's client
	// follows code-server's redirect to ?folder=…), and that request is
	// activity: /healthz then says "alive".
	code, body := get(t, d, key, "/")
	if code != 200 || !strings.Contains(body, "workbench") {
		t.Errorf("GET / = %d, not code-server's workbench: %.200s", code, body)
	}
	if h, err := d.Health(ctx, key); err != nil || h.Status != "alive" {
		t.Errorf("Health after a request = %+v, %v; want alive", h, err)
	}
	// Tools the playbooks and the agent need, as the workspace user.
	for _, cmd := range [][]string{{"python3", "--version"}, {"git", "--version"}, {"id", "-u"}} {
		out := execIn(t, e.api, "pbs-ws-"+key, cmd)
		t.Logf("%v: %s", cmd, out)
		if cmd[0] == "id" && out != "1000" {
			t.Errorf("workspace runs as uid %s", out)
		}
	}
	if vsix := filepath.Join(testsvc.RepoRoot(), ".cache", "playbook-agent.vsix"); fileExists(vsix) {
		out := execIn(t, e.api, "pbs-ws-"+key, []string{"sh", "-c", "ls /home/coder/.local/share/code-server/extensions"})
		if !strings.Contains(out, "playbook-agent") {
			t.Errorf("the extension is not preinstalled: %s", out)
		}
	}
	// Files persist across Stop/Start with the real image too.
	if err := d.CopyIn(ctx, key, "pb", makeTar(t, map[string]string{"playbook.py": "x = 1\n"})); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "tok"})); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d, key, 60*time.Second)
	rc, err := d.CopyOut(ctx, key, "pb")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := readTar(t, rc)
	rc.Close()
	if files["playbook.py"] != "x = 1\n" {
		t.Errorf("files after restart: %v", files)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// execIn runs cmd in the container as its user and returns its output.
func execIn(t *testing.T, api *client.Client, name string, cmd []string) string {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	ex, err := api.ContainerExecCreate(ctx, name, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	att, err := api.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	defer att.Close()
	raw, _ := io.ReadAll(att.Reader)
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, bytes.NewReader(raw)); err != nil {
		out.Reset()
		out.Write(raw)
	}
	return strings.TrimSpace(out.String())
}

// getVia sends GET path over dial and returns the status and body.
func getVia(t *testing.T, dial workspace.DialFunc, path string) (int, string) {
	t.Helper()
	ctx := ctxT(t, 15*time.Second)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://workspace"+path, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// readAllFor reads what c sends within d.
func readAllFor(c net.Conn, d time.Duration) []byte {
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, _ := io.ReadAll(c)
	return b
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestDockerGuardAnswersOnlyTheGateway acts as a local user who found a
// workspace's published port: plain HTTP gets nothing, a handshake
// without the container's secret gets nothing; the gateway's dialer gets
// code-server.
func TestDockerGuardAnswersOnlyTheGateway(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(nil)
	key := e.key(0)
	ctx := ctxT(t, time.Minute)
	if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "tok-guarded"})); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d, key, 10*time.Second)
	info, err := e.api.ContainerInspect(ctx, "pbs-ws-"+key)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + info.NetworkSettings.Ports["8081/tcp"][0].HostPort

	// Plain HTTP, as to an unguarded code-server.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /env/PBS_WORKSPACE_TOKEN HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	if got := readAllFor(c, 5*time.Second); len(got) != 0 {
		t.Errorf("plain HTTP to the published port got an answer: %q", got)
	}
	c.Close()

	// The handshake without the secret: the guard's challenge comes, but
	// a made-up proof (and the request after it) gets nothing.
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "PBSG1 %s\n", randHex(16))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line := make([]byte, 0, 128)
	for b := make([]byte, 1); len(line) < 128; {
		if _, err := c.Read(b); err != nil || b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	if f := strings.Fields(string(line)); len(f) != 3 || f[0] != "ok" {
		t.Errorf("the guard's challenge: %q", line)
	}
	fmt.Fprintf(c, "%s\nGET /env/PBS_WORKSPACE_TOKEN HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", randHex(32))
	if got := readAllFor(c, 5*time.Second); len(got) != 0 {
		t.Errorf("a made-up proof got an answer: %q", got)
	}
	c.Close()

	// The gateway gets through.
	if _, v := get(t, d, key, "/env/PBS_WORKSPACE_TOKEN"); v != "tok-guarded" {
		t.Errorf("through the runtime's dialer: %q", v)
	}
	// The secret is the container's configuration (read with the engine's
	// API, which is root), not in what the workspace's processes see.
	if code, _ := get(t, d, key, "/env/PBS_GUARD_SECRET"); code != 404 {
		t.Error("the guard's secret is in code-server's environment")
	}
}

// TestDockerReplacedContainerGetsNoStaleTraffic replaces a workspace's
// container behind a gateway's back (another replica recreates it) and
// puts an impostor on the old container's port, as another user's
// container could be: the gateway's old dialer never sends it a request,
// and reaches the new container.
func TestDockerReplacedContainerGetsNoStaleTraffic(t *testing.T) {
	e := newDockerEnv(t)
	d, replica := e.runtime(nil), e.runtime(nil)
	key := e.key(0)
	ctx := ctxT(t, time.Minute)
	if err := d.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "first"})); err != nil {
		t.Fatal(err)
	}
	dial, err := d.Dialer(ctx, key) // looks the target up and keeps it
	if err != nil {
		t.Fatal(err)
	}
	if _, v := getVia(t, dial, "/env/PBS_WORKSPACE_TOKEN"); v != "first" {
		t.Fatalf("first container: %q", v)
	}
	before, _ := e.api.ContainerInspect(ctx, "pbs-ws-"+key)
	oldPort := before.NetworkSettings.Ports["8081/tcp"][0].HostPort

	// The other replica stops it and starts it with a new spec: a new
	// container, a new secret, a new port.
	if err := replica.Stop(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := replica.Start(ctx, spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": "second"})); err != nil {
		t.Fatal(err)
	}
	after, _ := e.api.ContainerInspect(ctx, "pbs-ws-"+key)
	if after.ID == before.ID {
		t.Fatal("the container was not replaced")
	}
	newPort := after.NetworkSettings.Ports["8081/tcp"][0].HostPort

	// Whoever holds the old port now answers like a guard that does not
	// know the secret, and records what it is sent.
	var mu sync.Mutex
	var received []byte
	var accepted int
	imp, err := net.Listen("tcp", "127.0.0.1:"+oldPort)
	switch {
	case newPort == oldPort:
		t.Logf("the new container got the old port %s again; its new secret alone must keep the old target out", oldPort)
	case err != nil:
		t.Logf("the old port %s is taken by someone else already (%v): the old target must not reach them either", oldPort, err)
	default:
		var wg sync.WaitGroup
		t.Cleanup(func() { imp.Close(); wg.Wait() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := imp.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				accepted++
				mu.Unlock()
				fmt.Fprintf(c, "ok %s %s\n", randHex(16), randHex(32))
				b := readAllFor(c, 2*time.Second)
				c.Close()
				mu.Lock()
				received = append(received, b...)
				mu.Unlock()
			}
		}()
	}

	// The old dialer, whose cached target is the old container's.
	for range 3 {
		if code, v := getVia(t, dial, "/env/PBS_WORKSPACE_TOKEN"); code != 200 || v != "second" {
			t.Fatalf("through the old dialer: %d %q, want the new container's token", code, v)
		}
	}
	if h, err := d.Health(ctx, key); err != nil || h.Status != "alive" {
		t.Errorf("Health through the old runtime: %+v %v", h, err)
	}
	time.Sleep(2500 * time.Millisecond) // let the impostor finish reading
	mu.Lock()
	defer mu.Unlock()
	if newPort != oldPort && accepted == 0 {
		t.Log("the old dialer did not even try the old port")
	}
	for _, line := range strings.SplitAfter(string(received), "\n") {
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "PBSG1 ") || len(line) != len("PBSG1 ")+32+1 {
			t.Errorf("the impostor on the old port received more than a hello: %q", received)
			break
		}
	}
	t.Logf("old port %s → new port %s; impostor accepted %d connection(s), received %q", oldPort, newPort, accepted, received)
}

// socketEnv makes a socket mode runtime with a name prefix of its own (the
// shared API volume is the prefix's), its API volume removed at the end,
// and a stand-in for the gateway's API on a loopback port.
type socketEnv struct {
	*dockerEnv
	prefix  string
	apiURL  string
	apiHits chan string
}

func newSocketEnv(t *testing.T) *socketEnv {
	e := &socketEnv{dockerEnv: newDockerEnv(t), prefix: "pbs-s" + runID + "-", apiHits: make(chan string, 100)}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case e.apiHits <- r.URL.Path:
		default:
		}
		fmt.Fprintf(w, "workspace api %s %s", r.URL.Path, r.Header.Get("Authorization"))
	}))
	t.Cleanup(api.Close)
	e.apiURL = api.URL // http://127.0.0.1:PORT
	// Runs after every runtime made later is closed (cleanups run last
	// first).
	t.Cleanup(func() { _, _ = e.podman.Podman("volume", "rm", "-f", e.prefix+"api") })
	return e
}

func (e *socketEnv) runtime() *workspace.Docker {
	return e.dockerEnv.runtime(func(c *workspace.DockerConfig) {
		c.Mode = workspace.DockerModeSocket
		c.NamePrefix = e.prefix
	})
}

// key is a fresh key whose workspace is removed at the end.
func (e *socketEnv) key(i int) string {
	key := workspace.KeyFor("docker-test-"+runID, fmt.Sprintf("%s/%d", e.t.Name(), i))
	e.t.Cleanup(func() {
		d, err := workspace.NewDocker(workspace.DockerConfig{Host: e.podman.DockerHost, Image: e.image, Memory: 256 << 20, NanoCPUs: 1e9, PidsLimit: 64,
			Mode: workspace.DockerModeSocket, NamePrefix: e.prefix}, slog.New(slog.DiscardHandler))
		if err != nil {
			e.t.Error(err)
			return
		}
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Remove(ctx, key); err != nil {
			e.t.Errorf("cleanup: remove %s: %v", key, err)
		}
		for _, v := range []string{e.prefix + key, e.prefix + key + "-run"} {
			if out, _ := e.podman.Podman("volume", "ls", "-q", "--filter", "name=^"+v+"$"); strings.TrimSpace(out) != "" {
				e.t.Errorf("left behind: volume %s", v)
			}
		}
	})
	return key
}

func (e *socketEnv) spec(key, token string) workspace.Spec {
	return spec(key, map[string]string{"PBS_WORKSPACE_TOKEN": token, "PLAYBOOK_GATEWAY_URL": e.apiURL})
}

// mountpoint is where the engine mounts a volume on this host.
func (e *dockerEnv) mountpoint(vol string) string {
	e.t.Helper()
	out, err := e.podman.Podman("volume", "inspect", "--format", "{{.Mountpoint}}", vol)
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// TestDockerSocketMode runs workspaces with no network at all: the
// gateway reaches each guard on a unix socket under the workspace's run
// volume, only root on the host can reach that socket, the workspace
// reaches the gateway's API on its loopback (through the API socket), and
// nothing else: not the host's loopback services, not the metadata
// address, not the other workspace.
func TestDockerSocketMode(t *testing.T) {
	e := newSocketEnv(t)
	d := e.runtime()
	ctx := ctxT(t, 2*time.Minute)
	a, b := e.key(0), e.key(1)
	for _, k := range []string{a, b} {
		if err := d.Start(ctx, e.spec(k, "tok-"+k[:4])); err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitReady(t, d, k, 10*time.Second)
	}
	info, err := e.api.ContainerInspect(ctx, e.prefix+a)
	if err != nil {
		t.Fatal(err)
	}
	if info.HostConfig.NetworkMode != "none" || len(info.NetworkSettings.Ports) != 0 {
		t.Errorf("network %q, ports %v: want none", info.HostConfig.NetworkMode, info.NetworkSettings.Ports)
	}
	if !info.HostConfig.ReadonlyRootfs {
		t.Error("the root file system is writable")
	}
	mounts := map[string]container.MountPoint{}
	for _, m := range info.Mounts {
		mounts[m.Destination] = m
	}
	if m := mounts["/run/playbook"]; m.Name != e.prefix+"api" || m.RW {
		t.Errorf("API volume mount: %+v", m)
	}
	if m := mounts["/run/pbs-guard"]; m.Name != e.prefix+a+"-run" || !m.RW {
		t.Errorf("run volume mount: %+v", m)
	}

	// Its namespace: only the loopback; no route anywhere else.
	pid := e.pid(e.prefix + a)
	if links := inNetns(t, pid, "ip", "-o", "link"); strings.Count(strings.TrimSpace(links), "\n") != 0 || !strings.Contains(links, ": lo:") {
		t.Errorf("links in the workspace: %s", links)
	}
	for _, addr := range []string{"169.254.169.254", "192.0.2.1", "10.89.0.1"} {
		if out := inNetns(t, pid, "ip", "route", "get", addr); !strings.Contains(out, "unreachable") {
			t.Errorf("route to %s: %s", addr, out)
		}
	}
	if out := inNetns(t, pid, "ip", "route", "get", "127.0.0.1"); !strings.Contains(out, "dev lo") {
		t.Errorf("127.0.0.1 in the workspace: %s", out)
	}

	// The guard's socket, on the host: in a folder of the workspace's uid,
	// mode 0700, below a folder only root enters.
	runDir := e.mountpoint(e.prefix + a + "-run")
	st, err := os.Stat(filepath.Join(runDir, "guard.sock"))
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("the guard's socket: %v %v", st, err)
	}
	if fi, err := os.Stat(runDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("run folder %s: %v %v", runDir, fi.Mode(), err)
	}
	rootOnly := false
	for dir := filepath.Dir(runDir); dir != "/"; dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 == 0 {
			rootOnly = true
			t.Logf("%s is %v: no other user passes", dir, fi.Mode())
			break
		}
	}
	if !rootOnly {
		t.Errorf("no folder above %s keeps other users out", runDir)
	}

	// From inside A: the gateway's API through its loopback; the host's
	// loopback listener (a Redis stand-in) is not there.
	redis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer redis.Close()
	if _, body := get(t, d, a, "/get?url="+url.QueryEscape(e.apiURL+"/api/workspace/session")); body != "workspace api /api/workspace/session " {
		t.Errorf("the gateway's API from inside: %q", body)
	}
	if _, body := get(t, d, a, "/dial/"+redis.Addr().String()); !strings.HasPrefix(body, "unreachable") {
		t.Errorf("the host's loopback listener from inside: %s", body)
	}
	if _, v := get(t, d, b, "/env/PBS_WORKSPACE_TOKEN"); v != "tok-"+b[:4] {
		t.Errorf("B's token: %q", v)
	}
	// Files in and out as in the other modes.
	if err := d.CopyIn(ctx, a, "pb", makeTar(t, map[string]string{"playbook.py": "x = 1\n"})); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, d, a, "/write/by-user.txt"); code != 200 {
		t.Errorf("the workspace user cannot write its project folder: %d %s", code, body)
	}
	rc, err := d.CopyOut(ctx, a, ".")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := readTar(t, rc)
	rc.Close()
	if files["pb/playbook.py"] != "x = 1\n" || files["by-user.txt"] == "" {
		t.Errorf("CopyOut: %v", files)
	}

	// Another replica (a restarted gateway) reaches B; the first one
	// keeps serving the API socket, and when it goes, the other takes it
	// over on its next look at a workspace.
	second := e.runtime()
	if _, v := get(t, second, b, "/env/PBS_WORKSPACE_TOKEN"); v != "tok-"+b[:4] {
		t.Errorf("B through another replica: %q", v)
	}
	d.Close()
	time.Sleep(2100 * time.Millisecond)
	if _, err := second.Health(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, second, b, "/get?url="+url.QueryEscape(e.apiURL+"/api/workspace/x")); body != "workspace api /api/workspace/x " {
		t.Errorf("the gateway's API after the first replica left: %q", body)
	}

	if err := second.Remove(ctx, a); err != nil {
		t.Fatal(err)
	}
	if out, _ := e.podman.Podman("volume", "ls", "-q", "--filter", "name="+e.prefix+a); strings.TrimSpace(out) != "" {
		t.Errorf("volumes left after Remove: %s", out)
	}
	// A non-loopback gateway URL could never be reached from a workspace
	// without a network: refused before anything is made.
	bad := spec(e.key(2), map[string]string{"PLAYBOOK_GATEWAY_URL": "https://playbooks.example.com"})
	if err := second.Start(ctx, bad); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("Start with a non-loopback gateway URL: %v", err)
	}
}

// TestDockerVolumeSize asks for a size limit on the project volume. Podman
// has one only on XFS with project quotas; elsewhere (these machines'
// ext4) Start must say so rather than run without it.
func TestDockerVolumeSize(t *testing.T) {
	e := newDockerEnv(t)
	d := e.runtime(func(c *workspace.DockerConfig) { c.VolumeSize = 64 << 20 })
	key := e.key(0)
	err := d.Start(ctxT(t, time.Minute), spec(key, nil))
	if err == nil {
		out, _ := e.podman.Podman("volume", "inspect", "--format", "{{json .Options}}", "pbs-ws-"+key)
		t.Logf("volume with a size limit (this host has project quotas): %s", out)
		if !strings.Contains(out, "size") {
			t.Errorf("the volume has no size option: %s", out)
		}
		return
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "XFS") || !strings.Contains(strings.ToLower(err.Error()), "quota") {
		t.Errorf("Start with a volume size on a host without project quotas: %v", err)
	}
}

// insideContainer runs script in a workspace container as its user would
// (podman exec as the container's uid, with a clean environment like the
// terminal code-server gives: an exec session would otherwise inherit the
// container's configured environment, the guard's secret included) and
// returns its output.
func (e *dockerEnv) insideContainer(name string, env []string, script string) string {
	e.t.Helper()
	args := append([]string{"exec", "--user", "1000:1000", name, "/usr/bin/env", "-i"}, env...)
	args = append(args, "/bin/bash", "-c", script)
	out, err := e.podman.Podman(args...)
	if err != nil && out == "" {
		e.t.Fatalf("inside %s: %v", name, err)
	}
	return out
}

// TestDockerContainmentRealImage acts from inside a real workspace (the
// workspace image, code-server and all) as its user would, in socket and
// publish modes: it finds nothing of the gateway's environment, of
// DATA_DIR, of the other workspace (its folder, its code-server's socket
// or port) or of the host's loopback services, cannot write the root file
// system, and has its own folder (and, in socket mode, the gateway's
// workspace API). What would take traffic to a non-loopback address is
// read from the container's namespace instead.
func TestDockerContainmentRealImage(t *testing.T) {
	if os.Getenv("PBS_TEST_REAL_IMAGE") != "1" {
		t.Skip("set PBS_TEST_REAL_IMAGE=1 (make test does) after `make image` to run the real workspace image")
	}
	t.Setenv("OIDC_CLIENT_SECRET", "gateway-secret-must-not-leak")
	for _, mode := range []string{workspace.DockerModeSocket, workspace.DockerModePublish} {
		t.Run(mode, func(t *testing.T) {
			e := newSocketEnv(t) // the API stand-in and a prefix of its own
			if _, err := e.podman.Podman("image", "exists", RealImage); err != nil {
				t.Fatalf("the workspace image %s is missing: build it with `make image` (images/build-offline.sh)", RealImage)
			}
			d := e.dockerEnv.runtime(func(c *workspace.DockerConfig) {
				c.Image = RealImage
				c.Mode = mode
				c.NamePrefix = e.prefix
				c.Memory = 1 << 30
				c.PidsLimit = 512
				c.StartWatch = 20 * time.Second
			})
			dataDir := t.TempDir()
			secretFile := filepath.Join(dataDir, "playbooks.db")
			if err := os.WriteFile(secretFile, []byte("every tenant's records"), 0o644); err != nil {
				t.Fatal(err)
			}
			gatewayURL := e.apiURL
			if mode == workspace.DockerModePublish {
				// In publish mode the gateway is reached off the loopback
				// (through the host's bridge address): not from a test.
				gatewayURL = "http://127.0.0.1:1"
			}
			m, err := workspace.NewManager(workspace.Config{IdleTimeout: time.Hour, MaxConcurrentSpawns: 2, ReadyTimeout: 60 * time.Second, GatewayURL: gatewayURL},
				d, kv.NewMemory(nil), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			tenant := "docker-test-" + runID
			alice, bob := e.key(0), e.key(1) // KeyFor(tenant, t.Name()+"/0"), …
			users := []string{t.Name() + "/0", t.Name() + "/1"}
			ctx := ctxT(t, 3*time.Minute)
			for _, u := range users {
				if _, err := m.Ensure(ctx, tenant, u); err != nil {
					t.Fatal(err)
				}
				if st, err := m.Wait(ctx, tenant, u); err != nil || st.State != workspace.PhaseReady {
					t.Fatalf("%s: %+v %v", u, st, err)
				}
			}
			if err := d.CopyIn(ctx, alice, "pb", makeTar(t, map[string]string{"playbook.py": "x = 1\n"})); err != nil {
				t.Fatal(err)
			}
			redis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer redis.Close()
			redisPort := strconv.Itoa(redis.Addr().(*net.TCPAddr).Port)
			bobInfo, _ := e.api.ContainerInspect(ctx, e.prefix+bob)
			bobFolder := e.mountpoint(e.prefix + bob)

			script := `
echo "whoami=$(id -un) $(id -u)"
echo "gateway-env=$(cat /proc/*/environ 2>/dev/null | tr '\0' '\n' | grep -c -e OIDC_CLIENT_SECRET -e gateway-secret -e PBS_GUARD_SECRET)"
cat /proc/1/environ >/dev/null 2>&1 && echo "guard-env=readable" || echo "guard-env=unreadable"
kill -KILL 1 2>/dev/null; sleep 0.2; kill -0 1 2>/dev/null && echo "guard=alive" || echo "guard=gone"
ls ` + dataDir + ` >/dev/null 2>&1 && echo "datadir=listed" || echo "datadir=hidden"
cat ` + secretFile + ` >/dev/null 2>&1 && echo "db=read" || echo "db=hidden"
ls ` + bobFolder + ` >/dev/null 2>&1 && echo "bob=listed" || echo "bob=hidden"
ls /home/coder/project/pb >/dev/null 2>&1 && echo "own=listed" || echo "own=missing"
echo edit >> /home/coder/project/pb/playbook.py && echo "own=writable" || echo "own=readonly"
(exec 3<>/dev/tcp/127.0.0.1/` + redisPort + `) 2>/dev/null && echo "redis=reached" || echo "redis=refused"
touch /usr/local/x 2>/dev/null && echo "rootfs=writable" || echo "rootfs=readonly"
touch /etc/passwd 2>/dev/null && echo "etc=writable" || echo "etc=readonly"
touch ~/.bash_history && git config --global user.name coder && echo "home=writable" || echo "home=readonly"
touch /tmp/x && echo "tmp=writable" || echo "tmp=readonly"
ls ~/.local/share/code-server/extensions | grep -q playbook-agent && echo "extension=present" || echo "extension=missing"
echo "interfaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
echo "tcp-listen=$(cat /proc/net/tcp /proc/net/tcp6 | awk '$4=="0A"{split($2,a,":"); print a[2]}' | sort -u | tr '\n' ' ')"
`
			want := []string{"whoami=coder 1000", "gateway-env=0", "guard-env=unreadable", "guard=alive", "datadir=hidden", "db=hidden", "bob=hidden",
				"own=listed", "own=writable", "redis=refused", "rootfs=readonly", "etc=readonly", "home=writable", "tmp=writable"}
			if fileExists(filepath.Join(testsvc.RepoRoot(), ".cache", "playbook-agent.vsix")) {
				want = append(want, "extension=present")
			}
			env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/coder", "PLAYBOOK_GATEWAY_URL=" + gatewayURL}
			switch mode {
			case workspace.DockerModeSocket:
				bobSock := filepath.Join(e.mountpoint(e.prefix+bob+"-run"), "guard.sock")
				script += `
node -e 'require("net").connect("` + bobSock + `").on("connect",()=>console.log("bob-socket=reached")).on("error",()=>console.log("bob-socket=refused"))'
node -e 'require("http").get(process.env.PLAYBOOK_GATEWAY_URL+"/api/workspace/session",{headers:{Authorization:"Bearer t"}},r=>{let b="";r.on("data",d=>b+=d).on("end",()=>console.log("api="+r.statusCode+" "+b))}).on("error",e=>console.log("api=error "+e.message))'
`
				apiPort := e.apiURL[strings.LastIndex(e.apiURL, ":")+1:]
				want = append(want, "bob-socket=refused", "api=200 workspace api /api/workspace/session Bearer t", "interfaces=lo ",
					// Only the guard's forwarder to the gateway's API, on the
					// loopback: code-server has no TCP port.
					fmt.Sprintf("tcp-listen=%04X \n", mustAtoi(t, apiPort)))
			case workspace.DockerModePublish:
				bobPort := bobInfo.NetworkSettings.Ports["8081/tcp"][0].HostPort
				script += `(exec 3<>/dev/tcp/127.0.0.1/` + bobPort + `) 2>/dev/null && echo "bob-port=reached" || echo "bob-port=refused"
`
				// Only the guard listens: code-server has no TCP port.
				want = append(want, "bob-port=refused", "tcp-listen=1F91 \n")
			}
			out := e.insideContainer(e.prefix+alice, env, script)
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("inside alice's workspace: no %q in:\n%s", w, out)
				}
			}
			// The file alice's user edited is hers, and the gateway reads
			// it back.
			rc, err := d.CopyOut(ctx, alice, "pb")
			if err != nil {
				t.Fatal(err)
			}
			if files, _ := readTar(t, rc); files["playbook.py"] != "x = 1\nedit\n" {
				t.Errorf("copied out %q", files["playbook.py"])
			}
			rc.Close()

			// By inspection, from the host: alice's 127.0.0.1 is her own
			// namespace's (not the host's, where the Redis stand-in
			// listens), the kernel there refuses to send to 127/8 off the
			// loopback, and the guard holds no capability to forge such
			// packets or change routes.
			pid := e.pid(e.prefix + alice)
			self, _ := os.Readlink("/proc/self/ns/net")
			theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
			if self == theirs || theirs == "" {
				t.Errorf("alice shares the host's network namespace (%s)", theirs)
			}
			if out := inNetns(t, pid, "ip", "route", "get", "127.0.0.1"); !strings.Contains(out, "dev lo") {
				t.Errorf("127.0.0.1 in alice's namespace: %s", out)
			}
			if out := inNetns(t, pid, "cat", "/proc/sys/net/ipv4/conf/all/route_localnet"); strings.TrimSpace(out) != "0" {
				t.Errorf("route_localnet in alice's namespace: %s", out)
			}
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			for _, w := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
				if !strings.Contains(string(status), w) {
					t.Errorf("the guard's status lacks %q", w)
				}
			}
			metadata := inNetns(t, pid, "ip", "route", "get", "169.254.169.254")
			switch mode {
			case workspace.DockerModeSocket:
				if !strings.Contains(metadata, "unreachable") {
					t.Errorf("route to the metadata address: %s", metadata)
				}
			case workspace.DockerModePublish:
				// Publish mode's networks are routed (the engines forward
				// published ports only into routed networks): the metadata
				// address is as reachable as from the host. A documented
				// limit of this mode; socket and network modes have no
				// such route.
				t.Logf("publish mode, route to the metadata address: %s", strings.TrimSpace(metadata))
			}
			t.Logf("inside alice's workspace (%s mode):\n%s", mode, out)
		})
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDockerRefusesWhatHasNoGuard: an image without the guard is refused
// with the way out, and a running container made before the guard (by an
// older gateway) is not dialled but recreated by the next Start.
func TestDockerRefusesWhatHasNoGuard(t *testing.T) {
	e := newDockerEnv(t)
	plain := testsvc.BuildStubImage(t, e.podman) // the stub without the guard
	ctx := ctxT(t, time.Minute)
	noGuard := e.runtime(func(c *workspace.DockerConfig) { c.Image = plain })
	key := e.key(0)
	err := noGuard.Start(ctx, spec(key, nil))
	if err == nil || !strings.Contains(err.Error(), "no guard") || !strings.Contains(err.Error(), "make image") {
		t.Errorf("Start with an image without the guard: %v", err)
	}

	// An old gateway's container: the plain stub on 8080, published.
	old := e.key(1)
	if _, err := e.podman.Podman("run", "-d", "--name", "pbs-ws-"+old, "--user", "1000:1000", "-p", "127.0.0.1::8080",
		"--label", workspace.LabelWorkspace+"=1", "--label", workspace.LabelKey+"="+old, plain); err != nil {
		t.Fatal(err)
	}
	d := e.runtime(nil)
	if _, err := d.Dialer(ctx, old); err == nil || !strings.Contains(err.Error(), "predates the guard") {
		t.Errorf("Dialer of a container without the guard: %v", err)
	}
	before, _ := e.api.ContainerInspect(ctx, "pbs-ws-"+old)
	if err := d.Start(ctx, spec(old, map[string]string{"PBS_WORKSPACE_TOKEN": "now-guarded"})); err != nil {
		t.Fatal(err)
	}
	after, _ := e.api.ContainerInspect(ctx, "pbs-ws-"+old)
	if after.ID == before.ID {
		t.Error("the container without the guard was kept")
	}
	if _, v := get(t, d, old, "/env/PBS_WORKSPACE_TOKEN"); v != "now-guarded" {
		t.Errorf("after recreation: %q", v)
	}
}
