package workspace_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

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
// stub workspace image (cached across runs).
func newDockerEnv(t *testing.T) *dockerEnv {
	t.Helper()
	p := testsvc.StartPodman(t)
	e := &dockerEnv{t: t, podman: p, image: testsvc.BuildStubImage(t, p)}
	api, err := client.NewClientWithOpts(client.WithHost(p.DockerHost), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	e.api = api
	return e
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
	for _, m := range info.Mounts {
		if m.Type != "volume" || m.Destination != workspace.ProjectDir || m.Name != "pbs-ws-"+key {
			t.Errorf("unexpected mount %+v", m)
		}
		if strings.Contains(m.Source, "docker.sock") || strings.Contains(m.Source, "podman.sock") {
			t.Errorf("API socket mounted: %+v", m)
		}
	}
	if len(info.Mounts) != 1 {
		t.Errorf("mounts = %+v; want only the project volume", info.Mounts)
	}
	// Podman lists named volumes among Binds too ("name:/path:opts"); a
	// host path there ("/…:…") would be a bind mount.
	for _, b := range hc.Binds {
		if strings.HasPrefix(b, "/") || !strings.HasPrefix(b, "pbs-ws-"+key+":") {
			t.Errorf("bind mount %q", b)
		}
	}
	for _, b := range info.NetworkSettings.Ports["8080/tcp"] {
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
	start := time.Now()
	if err := d.Start(ctx, spec(key, map[string]string{"STUB_MODE": "unhealthy"})); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Start took %s with StartWatch 1s", el)
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
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Start without an API took %s", el)
	}
	t.Logf("error: %v", err)
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
	if err == nil || !strings.Contains(err.Error(), "in time") {
		t.Errorf("Start against a mute API: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Start against a mute API took %s", el)
	}
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
		p := info.NetworkSettings.Ports["8080/tcp"][0].HostPort
		if other, dup := ports[p]; dup {
			t.Errorf("%s and %s share host port %s", k, other, p)
		}
		ports[p] = k
	}
	if len(subnets) != 3 {
		t.Errorf("subnets: %v", subnets)
	}
	// From inside the first workspace: its own name resolves and answers,
	// the others' do not resolve at all (no shared network).
	if _, body := get(t, d, keys[0], "/dial/pbs-ws-"+keys[0]+":8080"); body != "reachable" {
		t.Errorf("a workspace cannot reach itself by name: %s", body)
	}
	for _, other := range keys[1:] {
		if _, body := get(t, d, keys[0], "/dial/pbs-ws-"+other+":8080"); body == "reachable" {
			t.Errorf("workspace %s reaches workspace %s", keys[0], other)
		}
	}
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
// connects it to the workspace's network, and from inside it the
// workspace answers by name.
func TestDockerNetworkMode(t *testing.T) {
	e := newDockerEnv(t)
	ctx := ctxT(t, time.Minute)
	gwName := "pbs-test-gw-" + runID
	if _, err := e.podman.Podman("run", "-d", "--name", gwName, "--user", "1000:1000", "-p", "127.0.0.1::8080", e.image); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = e.podman.Podman("rm", "-f", "-t", "0", gwName) })
	gw := e.runtime(func(c *workspace.DockerConfig) {
		c.Mode = workspace.DockerModeNetwork
		c.GatewayContainer = gwName
		c.InternalNetworks = true
		// From the test process the workspace's name does not resolve
		// (it is not on the network), so Start cannot see it ready.
		c.StartWatch = 300 * time.Millisecond
	})
	key := e.key(0)
	if err := gw.Start(ctx, spec(key, nil)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, err := e.api.ContainerInspect(ctx, gwName)
	if err != nil {
		t.Fatal(err)
	}
	if info.NetworkSettings.Networks["pbs-ws-"+key] == nil {
		t.Fatalf("the gateway container is not on the workspace's network: %v", info.NetworkSettings.Networks)
	}
	ws, _ := e.api.ContainerInspect(ctx, "pbs-ws-"+key)
	if len(ws.NetworkSettings.Ports["8080/tcp"]) != 0 {
		t.Errorf("network mode published a port: %v", ws.NetworkSettings.Ports)
	}
	// Ask the "gateway" (through its own published port) to reach the
	// workspace by name.
	port := info.NetworkSettings.Ports["8080/tcp"][0].HostPort
	url := "http://127.0.0.1:" + port + "/dial/pbs-ws-" + key + ":8080"
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = string(b); body == "reachable" {
			break
		}
	}
	if body != "reachable" {
		t.Errorf("the gateway container cannot reach the workspace by name: %s", body)
	}
	// And the workspace reaches the gateway by its alias (the gateway's
	// URL inside workspaces): gateway → workspace → gateway.
	url = "http://127.0.0.1:" + port + "/get?url=" + neturl.QueryEscape("http://pbs-ws-"+key+":8080/dial/pbs-gateway:8080")
	if resp, err := http.Get(url); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "reachable" {
			t.Errorf("the workspace cannot reach the gateway by its alias: %s", b)
		}
	}
	if err := gw.Remove(ctx, key); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	info, _ = e.api.ContainerInspect(ctx, gwName)
	if info.NetworkSettings.Networks["pbs-ws-"+key] != nil {
		t.Error("the gateway container is still on a removed workspace's network")
	}
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
	if got.User != "1000:1000" || got.Mode != workspace.DockerModePublish || got.NamePrefix != "pbs-ws-" || got.StartWatch <= 0 {
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
