package runner

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/playbookstudio/gateway/internal/sandbox"
)

//go:embed runtime/pbs_runtime.py
var runtimePy []byte

// maxOpenFiles is a run's RLIMIT_NOFILE. A playbook needs a handful of
// descriptors (the ctx socket, a few files and pipes); the cap keeps one
// run from holding many connections to the gateway's socket (each costs
// the gateway a goroutine and buffers until refused) or many open files.
const maxOpenFiles = 256

// Where things are inside a run's sandbox (the runtime module knows them).
const (
	insidePlaybook = "/playbook"
	insideSocket   = "/run/pbs"
	insideRuntime  = "/opt/pbs/pbs_runtime.py"
	socketName     = "ctx.sock"
)

// Job is one run for a Sandbox to execute.
type Job struct {
	RunID string
	// Slot is the worker running it (0 … RUN_CONCURRENCY-1): each slot has
	// a host uid of its own, so a run's process limit and its leftovers
	// never touch another run's.
	Slot int
	// PlaybookDir holds the version's files (read-only inside);
	// SocketDir the ctx socket.
	PlaybookDir, SocketDir string
	// Output receives what the runtime writes to stdout and stderr.
	Output io.Writer
	// Started is told the sandbox's PID 1 (host view) and its start time.
	Started func(init int, start uint64)
}

// Exit is how a sandboxed runtime ended.
type Exit struct {
	Code int // exit status; -1 when killed by a signal
	// Signal that ended it (0: none).
	Signal syscall.Signal
}

// Sandbox executes the runtime for a job and returns when it has ended
// and nothing of it is left. Cancelling ctx kills the whole process tree.
type Sandbox interface {
	Run(ctx context.Context, j Job) (Exit, error)
}

// BwrapConfig are the limits of a sandboxed run.
type BwrapConfig struct {
	Python  string // the runs' python3, under /usr (default /usr/bin/python3)
	UIDBase int    // host uid of slot 0 (root gateways only); default 2,900,000
	// Memory is RLIMIT_AS (address space) in bytes.
	Memory int64
	// CPUTime is RLIMIT_CPU: a run spinning past RUN_TIMEOUT after its
	// runner died still ends.
	CPUTime time.Duration
	// FileSize is RLIMIT_FSIZE in bytes; MaxProcs RLIMIT_NPROC of the slot's uid.
	FileSize int64
	MaxProcs int
	// TmpSize is the size of the run's /tmp (a tmpfs).
	TmpSize int64
}

// Bwrap runs jobs in bubblewrap through package sandbox: own network
// namespace (only loopback, no route out: the ctx socket is the one way
// to the gateway), own PID namespace and fresh /proc, the slot's
// unprivileged uid, a clean environment, the playbook read-only, a small
// /tmp, and rlimits.
type Bwrap struct {
	sb      *sandbox.Sandbox
	cfg     BwrapConfig
	python  string
	prlimit string
}

var _ Sandbox = (*Bwrap)(nil)

// NewBwrap checks the tools and the limits.
func NewBwrap(sb *sandbox.Sandbox, cfg BwrapConfig) (*Bwrap, error) {
	if sb == nil {
		return nil, errors.New("runner: bwrap: no sandbox")
	}
	if cfg.Memory < 32<<20 || cfg.FileSize <= 0 || cfg.MaxProcs <= 0 || cfg.CPUTime < time.Second || cfg.TmpSize <= 0 {
		return nil, fmt.Errorf("runner: bwrap: limits must be set (memory ≥ 32 MiB, file size, processes, CPU time ≥ 1s, tmp size): %+v", cfg)
	}
	if cfg.UIDBase == 0 {
		cfg.UIDBase = 2_900_000
	}
	if cfg.UIDBase < 1000 {
		return nil, fmt.Errorf("runner: bwrap: uid base %d is a system uid", cfg.UIDBase)
	}
	py := cfg.Python
	if py == "" {
		py = "/usr/bin/python3"
	}
	full, err := exec.LookPath(py)
	if err != nil {
		return nil, fmt.Errorf("runner: bwrap: %s not found: %w", py, err)
	}
	// Only /usr is inside the sandbox (a pyenv shim or a venv is not).
	if !strings.HasPrefix(full, "/usr/") {
		return nil, fmt.Errorf("runner: bwrap: the runs' Python must live under /usr (the sandbox binds only /usr); %s does not", full)
	}
	pl, err := exec.LookPath("prlimit")
	if err != nil {
		return nil, fmt.Errorf("runner: bwrap: prlimit is not installed (Debian package util-linux): %w", err)
	}
	return &Bwrap{sb: sb, cfg: cfg, python: full, prlimit: pl}, nil
}

// UID is the host uid of a slot (0 when sandboxes keep the gateway's).
func (b *Bwrap) UID(slot int) int {
	if !b.sb.SeparateUIDs() {
		return 0
	}
	return b.cfg.UIDBase + slot
}

// Run implements Sandbox.
func (b *Bwrap) Run(ctx context.Context, j Job) (Exit, error) {
	out := j.Output
	if out == nil {
		out = io.Discard
	}
	r, w, err := os.Pipe()
	if err != nil {
		return Exit{}, err
	}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, r)
		r.Close()
		close(copied)
	}()
	cpu := strconv.FormatInt(int64((b.cfg.CPUTime+time.Second-1)/time.Second), 10)
	// prlimit runs inside, already as the slot's uid: lowering one's own
	// limits needs no privilege, and the limits hold from the first byte
	// Python maps.
	argv := []string{b.prlimit,
		"--as=" + strconv.FormatInt(b.cfg.Memory, 10),
		"--cpu=" + cpu,
		"--fsize=" + strconv.FormatInt(b.cfg.FileSize, 10),
		"--core=0",
		"--nofile=" + strconv.Itoa(maxOpenFiles) + ":" + strconv.Itoa(maxOpenFiles),
		"--",
		b.python, "-I", "-S", "-B", insideRuntime}
	spec := sandbox.Spec{
		Argv: argv,
		Env:  []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp", "TMPDIR=/tmp"},
		UID:  b.UID(j.Slot), GID: b.UID(j.Slot),
		Binds: []sandbox.Bind{
			{Host: j.PlaybookDir, Inside: insidePlaybook},
			{Host: j.SocketDir, Inside: insideSocket},
		},
		Files:    []sandbox.File{{Inside: insideRuntime, Content: runtimePy}},
		Dir:      "/tmp",
		Hostname: "run",
		MaxProcs: b.cfg.MaxProcs,
		TmpSize:  b.cfg.TmpSize,
		Stdout:   w, Stderr: w,
	}
	p, err := b.sb.Start(spec)
	w.Close()
	if err != nil {
		<-copied
		return Exit{}, err
	}
	if j.Started != nil {
		st, _ := sandbox.StartTime(p.Init)
		j.Started(p.Init, st)
	}
	waited := make(chan error, 1)
	go func() { waited <- p.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		// With its PID 1 gone the kernel ends every process of the
		// namespace; bwrap's own group goes too.
		_ = sandbox.Kill(p.Init)
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		werr = <-waited
	}
	<-copied
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return Exit{}, werr
	}
	if ee != nil {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return Exit{Code: -1, Signal: ws.Signal()}, ctx.Err()
		}
		return Exit{Code: ee.ExitCode()}, ctx.Err()
	}
	return Exit{}, ctx.Err()
}
