package cgroup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A fake unified tree: the gateway (pid 42) alone in /system.slice/gw.service.
func fakeV2(t *testing.T, controllers, procs string) string {
	root := t.TempDir()
	write(t, filepath.Join(root, "cgroup.controllers"), "cpu io memory pids\n")
	own := filepath.Join(root, "system.slice", "gw.service")
	write(t, filepath.Join(own, "cgroup.controllers"), controllers)
	write(t, filepath.Join(own, "cgroup.subtree_control"), "")
	write(t, filepath.Join(own, "cgroup.procs"), procs)
	return root
}

func TestV2MovesTheGatewayIntoALeafAndLimitsRuns(t *testing.T) {
	root := fakeV2(t, "cpu memory pids\n", "42\n")
	m, err := New(Config{Root: root, Self: "0::/system.slice/gw.service\n", PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(root, "system.slice", "gw.service")
	if got := read(t, filepath.Join(own, "gateway", "cgroup.procs")); got != "42" {
		t.Fatalf("gateway leaf procs %q, want 42", got)
	}
	if got := read(t, filepath.Join(own, "cgroup.subtree_control")); got != "+memory +pids" {
		t.Fatalf("own subtree_control %q", got)
	}
	if got := read(t, filepath.Join(own, "playbookstudio", "cgroup.subtree_control")); got != "+memory +pids" {
		t.Fatalf("runs subtree_control %q", got)
	}
	g, err := m.Create("run-1", Limits{Memory: 64 << 20, Pids: 32})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(own, "playbookstudio", "run-1")
	for f, want := range map[string]string{"memory.max": "67108864", "memory.swap.max": "0", "pids.max": "32"} {
		if got := read(t, filepath.Join(dir, f)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if p := g.Procs(); len(p) != 1 || p[0] != filepath.Join(dir, "cgroup.procs") {
		t.Fatalf("Procs %v", p)
	}
}

func TestV2Refusals(t *testing.T) {
	self := "0::/system.slice/gw.service\n"
	if _, err := New(Config{Root: fakeV2(t, "cpu memory pids\n", "42\n43\n"), Self: self, PID: 42}); err == nil || !strings.Contains(err.Error(), "other processes (43)") {
		t.Fatalf("a shared group: %v", err)
	}
	if _, err := New(Config{Root: fakeV2(t, "cpu memory\n", "42\n"), Self: self, PID: 42}); err == nil || !strings.Contains(err.Error(), "pids controller is not available") {
		t.Fatalf("no pids controller: %v", err)
	}
	if _, err := New(Config{Root: fakeV2(t, "cpu memory pids\n", "42\n"), Self: "0::/../etc\n", PID: 42}); err == nil {
		t.Fatal("a path with .. was accepted")
	}
	m, err := New(Config{Root: fakeV2(t, "cpu memory pids\n", "42\n"), Self: self, PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if _, err := m.Create(bad, Limits{}); err == nil {
			t.Errorf("group name %q accepted", bad)
		}
	}
}

func TestV1LimitsPerController(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "memory", "svc", "cgroup.procs"), "42\n")
	write(t, filepath.Join(root, "pids", "cgroup.procs"), "42\n")
	m, err := New(Config{Root: root, Self: "8:pids:/\n4:memory:/svc\n0::/\n", PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Create("run-2", Limits{Memory: 32 << 20, Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(root, "memory", "svc", "playbookstudio", "run-2", "memory.limit_in_bytes")); got != "33554432" {
		t.Fatalf("memory limit %q", got)
	}
	if got := read(t, filepath.Join(root, "pids", "playbookstudio", "run-2", "pids.max")); got != "8" {
		t.Fatalf("pids.max %q", got)
	}
	if len(g.Procs()) != 2 {
		t.Fatalf("v1 joins two hierarchies: %v", g.Procs())
	}
	if _, err := New(Config{Root: root, Self: "4:memory:/svc\n", PID: 42}); err == nil || !strings.Contains(err.Error(), "no pids controller") {
		t.Fatalf("no pids hierarchy: %v", err)
	}
}

// TestHostGroups uses the host's real hierarchy (root only): a process
// in a group cannot fork past pids.max nor allocate past the memory
// limit, and Kill empties the group.
func TestHostGroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making groups needs root (or a delegated group)")
	}
	m, err := New(Config{Name: "playbookstudio-test"})
	if err != nil {
		t.Fatalf("this root host has no usable cgroups: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Remove(); err != nil {
			t.Error(err)
		}
	})
	id := "t" + strconv.Itoa(os.Getpid())
	g, err := m.Create(id, Limits{Memory: 48 << 20, Pids: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = g.Kill(5 * time.Second)
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	}()
	join := `for f in ` + strings.Join(g.Procs(), " ") + `; do echo $$ > "$f" || exit 125; done; `
	// Forks: 20 background sleeps against pids.max 6.
	out, _ := exec.Command("/bin/sh", "-c", join+`n=0; for i in $(seq 20); do sleep 30 >/dev/null 2>&1 & n=$((n+1)); done 2>/dev/null; echo started`).CombinedOutput()
	pids, err := g.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) == 0 || len(pids) > 6 {
		t.Fatalf("%d processes in a group limited to 6 (output %q)", len(pids), out)
	}
	if err := g.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if pids, _ := g.PIDs(); len(pids) != 0 {
		t.Fatalf("after Kill: %v", pids)
	}
	// Memory: python allocating 200 MiB in a 48 MiB group is ended by the kernel.
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 missing")
	}
	before := g.OOMKills()
	err = exec.Command("/bin/sh", "-c", join+`exec `+py+` -c 'b = bytearray(200 << 20); b[::4096] = b"x" * len(b[::4096]); print("survived")'`).Run()
	if err == nil {
		t.Fatal("a process allocating 200 MiB in a 48 MiB group survived")
	}
	if g.OOMKills() <= before {
		t.Errorf("the kernel's oom_kill count did not grow (error %v)", err)
	}
}
