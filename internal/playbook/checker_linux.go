package playbook

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// How the checker's limits are set. Go's syscall.SysProcAttr has no
// rlimits to apply between fork and exec, so there were three ways:
// exec through util-linux's prlimit(1) (one more binary the gateway's
// image must carry, and its exit codes mixed with Python's), have
// checker.py limit itself with the resource module (the limits would then
// hang on the checked program's own first lines being right), or set them
// from here with prlimit(2) on the started child. This does the last: the
// child is started, and while Python is still waiting for its standard
// input, before the first byte of the bundle is written, the gateway sets
// its limits and checks that they hold. Python's own start-up runs
// unlimited, which is fine: it is the hostile input that must not, and
// it has not been read yet. A limit that cannot be set fails the check
// closed: the child is killed and the bundle never sent.

// rlimit is one resource limit.
type rlimit struct {
	resource int
	lim      unix.Rlimit
}

// checkerLimits are the resource limits set on a started checker.
func (v *Validator) checkerLimits() []rlimit {
	cpu := uint64(v.cpuSeconds())
	mem := uint64(v.memoryLimit())
	return []rlimit{
		// Address space: a parser that wants more gets MemoryError.
		{unix.RLIMIT_AS, unix.Rlimit{Cur: mem, Max: mem}},
		// CPU time: SIGXCPU at the soft limit, SIGKILL a second later
		// should it be caught or ignored.
		{unix.RLIMIT_CPU, unix.Rlimit{Cur: cpu, Max: cpu + 1}},
		// No new processes. The checker never starts one (nothing of the
		// bundle is run), so this is a second wall; note that Linux does
		// not enforce RLIMIT_NPROC on root or on CAP_SYS_RESOURCE, where
		// the first wall (only ast.parse) and the process group kill
		// remain.
		{unix.RLIMIT_NPROC, unix.Rlimit{Cur: 0, Max: 0}},
		// No files written, no core dumps of a crashed parser, few files
		// opened (its start-up opened what it needs).
		{unix.RLIMIT_FSIZE, unix.Rlimit{Cur: 0, Max: 0}},
		{unix.RLIMIT_CORE, unix.Rlimit{Cur: 0, Max: 0}},
		{unix.RLIMIT_NOFILE, unix.Rlimit{Cur: 32, Max: 32}},
	}
}

// limitChecker sets the started checker's limits (above), lowers its
// priority so that the gateway's own requests go first, and makes it the
// kernel's first choice should memory run out on the machine.
func (v *Validator) limitChecker(pid int) error {
	for _, l := range v.checkerLimits() {
		lim := l.lim
		if err := unix.Prlimit(pid, l.resource, &lim, nil); err != nil {
			return fmt.Errorf("setting limit %d of the checker: %w", l.resource, err)
		}
		var got unix.Rlimit
		if err := unix.Prlimit(pid, l.resource, nil, &got); err != nil || got != l.lim {
			return fmt.Errorf("limit %d of the checker is %+v, not %+v (%v)", l.resource, got, l.lim, err)
		}
	}
	// Best effort: a checker at normal priority or OOM score is still
	// bounded by the limits above.
	if v.nice > 0 {
		_ = unix.Setpriority(unix.PRIO_PROCESS, pid, v.nice)
	}
	_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte("1000"), 0)
	return nil
}

// isolate puts the checker in a process group of its own, so that
// stopping it stops anything it might have started.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// endGroup waits for the checker to exit, without reaping it, then kills
// whatever is left of its process group (a process it started, which the
// limits prevent except for root). While the checker is not reaped its
// group id cannot be taken by another, so the kill reaches only its own.
func endGroup(pid int) {
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// stopSignal names the signal that ended the checker: "cpu" for the CPU
// limit (SIGXCPU, or SIGKILL after cpuUsed reached the limit), "crash"
// for a fault of the interpreter, "" when it was not a signal.
func stopSignal(state *os.ProcessState, cpuLimitReached bool) (kind, name string) {
	if state == nil {
		return "", ""
	}
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return "", ""
	}
	sig := ws.Signal()
	switch {
	case sig == syscall.SIGXCPU, sig == syscall.SIGKILL && cpuLimitReached:
		return "cpu", sig.String()
	case sig == syscall.SIGSEGV, sig == syscall.SIGBUS, sig == syscall.SIGABRT, sig == syscall.SIGILL, sig == syscall.SIGFPE:
		return "crash", sig.String()
	}
	return "signal", sig.String()
}
