package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/cgroup"
)

// TestSandboxJoinsItsCgroup: every process of a sandbox, from bwrap on,
// is in the groups the Spec names, so the group's limits bound the whole
// sandbox (here: pids.max against twenty background sleeps).
func TestSandboxJoinsItsCgroup(t *testing.T) {
	s := newSandbox(t)
	if os.Geteuid() != 0 {
		t.Skip("groups need root")
	}
	m, err := cgroup.New(cgroup.Config{Name: "playbookstudio-sbtest"})
	if err != nil {
		t.Fatalf("this root host has no usable cgroups: %v", err)
	}
	g, err := m.Create("sb"+strconv.Itoa(os.Getpid()), cgroup.Limits{Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = g.Kill(5 * time.Second)
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
		if err := m.Remove(); err != nil {
			t.Error(err)
		}
	})
	py := `
import os, time
kids, fails = [], 0
for i in range(20):
    try:
        pid = os.fork()
    except OSError:
        fails += 1
        continue
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    kids.append(pid)
print(len(kids), fails)
for k in kids:
    os.waitpid(k, 0)
`
	out := run(t, s, Spec{Env: []string{"PATH=/usr/bin:/bin"}, Cgroups: g.Procs()}, "exec python3 -I -S -c '"+py+"'")
	var kids, fails int
	if _, err := fmt.Sscan(out, &kids, &fails); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	// bwrap (2 processes) and python leave room for 5 children under
	// pids.max 8; the rest of the 20 forks fail.
	if kids > 5 || fails == 0 || kids+fails != 20 {
		t.Fatalf("%d children forked, %d refused, in a sandbox whose group allows 8 processes in all", kids, fails)
	}

	// A bad file name is refused before anything starts.
	if _, err := s.Start(Spec{Argv: []string{"/bin/true"}, UID: testUID, GID: testUID, Cgroups: []string{"/tmp/x"}}); err == nil {
		t.Fatal("a file that is not cgroup.procs was accepted")
	}
}
