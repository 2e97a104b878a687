package runner

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/sandbox"
)

// The child process of TestSIGKILLedRunner: a runner on the data
// directory named by PBS_RUNNER_CHILD that queues a spinning run and an
// empty one (one slot: the empty one waits) and serves until killed.
const childEnv = "PBS_RUNNER_CHILD"

const (
	spinSrc  = "def run(alert, ctx):\n    ctx.log('in')\n    while True:\n        pass\n"
	emptySrc = "def run(alert, ctx):\n    return {'ok': True}\n"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

func runChild(dir string) int {
	t := &testing.T{} // only for the helpers' signatures; the child never fails through it
	e := &env{alerts: &fakeAlerts{alerts: map[string]AlertInfo{}}, books: &fakeBooks{books: map[string]string{}}, dataDir: dir,
		egress: &headerEgress{base: "http://127.0.0.1:1", secret: "unused"}}
	sb, err := sandbox.New(sandbox.Config{})
	if err != nil {
		return 3
	}
	if e.bw, err = NewBwrap(sb, BwrapConfig{Memory: 256 << 20, CPUTime: time.Minute, FileSize: 32 << 20, MaxProcs: 64, TmpSize: 8 << 20}); err != nil {
		return 3
	}
	e.alerts.put("a1", map[string]any{"id": "a1", "title": "Suspicious sign-in", "incidentId": "inc-1"})
	e.start(t, Config{Node: "n1", Concurrency: 1})
	e.run(t, "spin", spinSrc)
	e.run(t, "empty", emptySrc)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	<-stop // never comes: the test sends SIGKILL
	return 0
}

// TestSIGKILLedRunner: a runner process killed with SIGKILL mid-run
// (nothing of it gets to clean up) leaves a run "running" in the store;
// the next runner of the node marks it abandoned, kills its sandbox, and
// starts the run that was queued behind it.
func TestSIGKILLedRunner(t *testing.T) {
	needBwrap(t)
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+dir)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _, _ = child.Process.Wait() })

	// The new runner, started once the child's run is in its sandbox.
	e := &env{alerts: &fakeAlerts{alerts: map[string]AlertInfo{}}, books: &fakeBooks{books: map[string]string{}}, bw: testBwrap(t), dataDir: dir,
		egress: &headerEgress{base: "http://127.0.0.1:1", secret: "unused"}}
	e.alerts.put("a1", map[string]any{"id": "a1", "title": "Suspicious sign-in", "incidentId": "inc-1"})
	e.books.add("spin", spinSrc)
	e.books.add("empty", emptySrc)
	st, err := openStore(filepath.Join(dir, "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	var spinID string
	var init int
	for deadline := time.Now().Add(60 * time.Second); init == 0; {
		_ = st.db.R.QueryRow(`SELECT id, init_pid FROM runs WHERE playbook_id = 'spin' AND status = 'running'`).Scan(&spinID, &init)
		if time.Now().After(deadline) {
			t.Fatal("the child's run never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st.Close()
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = child.Process.Wait()

	e.start(t, Config{Node: "n1", Concurrency: 1})
	got, err := e.svc.Get(context.Background(), tenant, spinID)
	if err != nil || got.Status != StatusAbandoned {
		t.Fatalf("the killed runner's run: %s %v, want abandoned", got.Status, err)
	}
	waitSandboxGone(t, init)
	runs, err := e.svc.List(context.Background(), tenant, Filter{PlaybookID: "empty"})
	if err != nil || len(runs) != 1 {
		t.Fatalf("the queued run: %v %v", runs, err)
	}
	if r := e.wait(t, runs[0].ID); r.Status != StatusSucceeded {
		t.Fatalf("the run queued behind it: %s %s", r.Status, r.Error)
	}
}
