package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/testsvc"
)

const testUID = 3_999_001

func newSandbox(t *testing.T) *Sandbox {
	t.Helper()
	s, err := New(Config{})
	if err != nil {
		t.Skipf("no sandbox here: %v", err)
	}
	return s
}

// run starts spec's command with a shell script and returns its output.
func run(t *testing.T, s *Sandbox, spec Spec, script string) string {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	spec.Argv = []string{"/bin/sh", "-c", script}
	spec.Stdout, spec.Stderr = out, out
	if spec.UID == 0 {
		spec.UID, spec.GID = testUID, testUID
	}
	p, err := s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		raw, _ := os.ReadFile(out.Name())
		t.Fatalf("sandboxed script: %v\n%s", err, raw)
	}
	raw, _ := os.ReadFile(out.Name())
	return string(raw)
}

func TestTheSandboxSeesOnlyWhatItIsGiven(t *testing.T) {
	s := newSandbox(t)
	// The folders sit below one only root may enter: the sandbox still
	// binds them.
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	rw, ro := filepath.Join(private, "rw"), filepath.Join(private, "ro")
	for _, d := range []string{rw, ro} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if s.SeparateUIDs() {
		os.Chown(rw, testUID, testUID)
		os.Chown(ro, testUID, testUID)
	}
	os.WriteFile(filepath.Join(ro, "given"), []byte("ro"), 0o644)
	secret := filepath.Join(private, "secret")
	os.WriteFile(secret, []byte("gateway secret"), 0o644)
	os.Setenv("PBS_SANDBOX_TEST_SECRET", "must-not-leak")
	defer os.Unsetenv("PBS_SANDBOX_TEST_SECRET")

	out := run(t, s, Spec{
		Env:   []string{"PATH=/usr/bin:/bin", "ONLY=this"},
		Binds: []Bind{{Host: rw, Inside: "/work/rw", Writable: true}, {Host: ro, Inside: "/work/ro"}},
		Files: []File{{Inside: "/etc/passwd", Content: []byte("coder:x:3999001:3999001::/work/rw:/bin/sh\n")}},
		Dir:   "/work/rw",
	}, `
echo "uid=$(id -u)"
echo "env=$(env | sort | tr '\n' ' ')"
echo written > /work/rw/out && echo "rw=ok"
echo x > /work/ro/x 2>/dev/null && echo "ro=writable" || echo "ro=readonly"
cat /work/ro/given; echo
test -e `+secret+` && echo "secret=visible" || echo "secret=hidden"
ls /proc | grep -c '^[0-9]' | sed 's/^/procs=/'
cat /proc/1/environ 2>/dev/null | tr '\0' '\n' | grep -c PBS_SANDBOX_TEST_SECRET | sed 's/^/leak=/'
grep -c ':' /proc/net/dev | sed 's/^/ifaces=/'
grep -v '^ *lo:' /proc/net/dev | grep -c ':' | sed 's/^/nonlo=/'
grep '^CapEff' /proc/self/status
grep '^NoNewPrivs' /proc/self/status
echo x > /usr/x 2>/dev/null && echo "usr=writable" || echo "usr=readonly"
test -e /etc/shadow && echo "shadow=visible" || echo "shadow=hidden"
`)
	want := []string{"rw=ok", "ro=readonly", "ro", "secret=hidden", "leak=0", "nonlo=0", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "usr=readonly", "shadow=hidden"}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("sandbox output lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(out, "env=ONLY=this PATH=/usr/bin:/bin") {
		t.Errorf("environment not exactly the given one:\n%s", out)
	}
	if s.SeparateUIDs() && !strings.Contains(out, "uid=3999001") {
		t.Errorf("not run as the given uid:\n%s", out)
	}
	// PID 1 and the shell, perhaps a subshell: never the host's processes.
	if n := procsSeen(out); n < 1 || n > 5 {
		t.Errorf("the sandbox sees %d processes, want PID 1, the shell and its pipeline only:\n%s", n, out)
	}
	b, err := os.ReadFile(filepath.Join(rw, "out"))
	if err != nil || string(b) != "written\n" {
		t.Errorf("the writable folder: %q %v", b, err)
	}
	if s.SeparateUIDs() {
		st, _ := os.Stat(filepath.Join(rw, "out"))
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != testUID {
			t.Errorf("a file written inside belongs to uid %d on the host", uid)
		}
	}
}

// procsSeen is the count the script printed as procs=N (0 if none).
func procsSeen(out string) int {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "procs="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// A listener on the host's loopback is not reachable from a sandbox
// without the host's network: shown by inspection (its network namespace
// has no interface but lo), and by a connection that finds nobody on its
// own loopback.
func TestNoHostLoopbackWithoutNetwork(t *testing.T) {
	s := newSandbox(t)
	port := testsvc.HostService(t, "host-service\n")
	// bash, for its /dev/tcp (Debian's /bin/sh is dash).
	out := run(t, s, Spec{Env: []string{"PATH=/usr/bin:/bin"}}, `bash -c 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " " | tr "\n" " "; echo; (exec 3<>/dev/tcp/127.0.0.1/`+strconv.Itoa(port)+`) 2>/dev/null && echo reached || echo refused'`)
	if !strings.HasPrefix(out, "lo \n") {
		t.Errorf("interfaces inside: %q, want only lo", out)
	}
	if strings.Contains(out, "reached") {
		t.Errorf("the host's loopback listener was reachable:\n%s", out)
	}
	// The cloud metadata address has no route at all (asked of the
	// routing table; nothing is sent).
	if _, err := exec.LookPath("ip"); err == nil {
		out = run(t, s, Spec{Env: []string{"PATH=/usr/bin:/bin"}}, `ip route get 169.254.169.254 2>&1; ip route get 10.0.0.1 2>&1; hostname`)
		if strings.Count(out, "unreachable") != 2 || !strings.Contains(out, "sandbox") {
			t.Errorf("routes inside: %q, want both unreachable and the hostname sandbox", out)
		}
	}
}

func TestKillEndsEverythingInside(t *testing.T) {
	s := newSandbox(t)
	spec := Spec{Env: []string{"PATH=/usr/bin:/bin"}, Argv: []string{"/bin/sh", "-c", "sleep 300 & sleep 300 & wait"}, UID: testUID, GID: testUID}
	p, err := s.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	start, err := StartTime(p.Init)
	if err != nil || !Alive(p.Init, start) {
		t.Fatalf("init %d not alive: %v", p.Init, err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	if err := Kill(p.Init); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("bwrap did not exit after its sandbox's init was killed")
	}
	if Alive(p.Init, start) {
		t.Error("init still alive")
	}
	if Alive(p.Init, start+1) || Alive(-1, 0) {
		t.Error("Alive matched a wrong start time")
	}
}

func TestSpecChecks(t *testing.T) {
	s := newSandbox(t)
	if _, err := s.Start(Spec{}); err == nil {
		t.Error("a spec without a command started")
	}
	if s.SeparateUIDs() {
		if _, err := s.Start(Spec{Argv: []string{"/bin/true"}}); err == nil || !strings.Contains(err.Error(), "uid") {
			t.Errorf("a root caller without a uid: %v", err)
		}
	}
	if _, err := s.Start(Spec{Argv: []string{"/bin/true"}, UID: testUID, GID: testUID, Binds: []Bind{{Host: "relative", Inside: "/x"}}}); err == nil {
		t.Error("a relative bind was accepted")
	}
	if _, err := New(Config{Bwrap: "/nonexistent/bwrap"}); err == nil || !strings.Contains(err.Error(), "bubblewrap") {
		t.Errorf("a missing bwrap: %v", err)
	}
}
