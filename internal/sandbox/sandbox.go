// Package sandbox owns the one way this host starts an untrusted process:
// bubblewrap (Debian's bubblewrap package). The process gets its own PID,
// IPC, UTS, mount and (unless asked otherwise) network namespaces with a
// fresh /proc; the system read-only; only the folders a Spec binds; an
// unprivileged host uid of its own when the gateway runs as root; no
// capabilities, no_new_privs, and a process limit for that uid. The local
// workspace runtime uses it, and the playbook runner will.
//
// Run as root, bubblewrap makes the namespaces and mounts with root's
// rights (so bind sources may sit in folders only root can enter), and
// the command is then started through setpriv as the Spec's uid with
// every capability gone. Run as another user, bubblewrap adds a user
// namespace and the command keeps that user's uid: the namespaces still
// hide everything not bound, but files created belong to the gateway's
// uid (the README says so).
//
// Every sandbox also gets a seccomp filter (seccomp.go; bwrap loads it
// right before it executes the command), because as root there is no
// user namespace to hold the process back from making one of its own:
// unshare(CLONE_NEWUSER) would hand it every capability inside, and with
// them nf_tables, mounts and the rest of the kernel's usual exploit
// surface. The filter refuses (EPERM) unshare and clone with any
// CLONE_NEW* flag; clone3 answers ENOSYS (its flags are out of a
// filter's reach; glibc falls back to clone); it refuses io_uring, bpf,
// keyrings, perf_event_open, userfaultfd, setns, mounts and the new mount
// API, modules, kexec, ptrace and process_vm_*, file handles, swap,
// reboot, syslog, acct, quotactl, TIOCSTI and TIOCLINUX, personalities
// that weaken a process's hardening, and every call of another ABI
// (i386 and x32 on x86_64, aarch32 on arm64). Everything else, fork and
// threads included, is allowed. Only amd64 and arm64 have a filter: on
// another architecture New refuses.
package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config says where the tools are; empty fields are looked up on PATH.
type Config struct {
	Bwrap, Setpriv, Prlimit string
}

// Sandbox starts sandboxed processes.
type Sandbox struct {
	bwrap, setpriv, prlimit string
	root                    bool
	seccomp                 []byte // the filter bwrap loads, see seccomp.go
}

// New finds the tools and refuses, with a sentence naming the package,
// when one is missing, or on an architecture without a seccomp filter.
func New(cfg Config) (*Sandbox, error) {
	filter, err := seccompProgram(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	find := func(p, name, pkg string) (string, error) {
		if p == "" {
			p = name
		}
		full, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("sandbox: %s is not installed (Debian package %s): %w", name, pkg, err)
		}
		return full, nil
	}
	s := &Sandbox{root: os.Geteuid() == 0, seccomp: filter}
	if s.bwrap, err = find(cfg.Bwrap, "bwrap", "bubblewrap"); err != nil {
		return nil, err
	}
	if s.root {
		if s.setpriv, err = find(cfg.Setpriv, "setpriv", "util-linux"); err != nil {
			return nil, err
		}
		if s.prlimit, err = find(cfg.Prlimit, "prlimit", "util-linux"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// SeparateUIDs tells whether sandboxed processes get the Spec's uid (the
// gateway runs as root) or keep the gateway's.
func (s *Sandbox) SeparateUIDs() bool { return s.root }

// Bind makes a host path visible inside.
type Bind struct {
	Host, Inside string
	Writable     bool
}

// File is a read-only file placed inside (for example /etc/passwd).
type File struct {
	Inside  string
	Content []byte
}

// Spec is one sandboxed process.
type Spec struct {
	Argv []string // the command, as seen inside
	// Env is the command's whole environment: nothing else of the
	// caller's reaches it. It is passed as the process environment, not
	// on the command line, so that other users cannot read it with ps.
	Env      []string
	UID, GID int // host ids to run as when the caller is root (never 0)
	Binds    []Bind
	Files    []File
	Dirs     []string // empty folders to create inside (mode 0755)
	Dir      string   // working directory inside
	Network  bool     // share the host's network; default: loopback only
	Hostname string   // default "sandbox"
	MaxProcs int      // RLIMIT_NPROC for the uid (root callers only; 0: none)
	TmpSize  int64    // size of the /tmp tmpfs in bytes (0: the kernel's default, half the memory)
	// Cgroups are cgroup.procs files (package cgroup) the sandbox joins
	// before bubblewrap starts, so that every process of it is in the
	// group from its first fork.
	Cgroups []string
	// Stdout and Stderr receive the command's output (nil: discarded).
	Stdout, Stderr *os.File
}

// Process is a started sandbox.
type Process struct {
	// PID is bubblewrap's on the host; Init is the sandbox's PID 1 as the
	// host sees it: killing Init ends everything inside.
	PID, Init int
	cmd       *exec.Cmd
}

// Wait waits for bubblewrap to exit.
func (p *Process) Wait() error { return p.cmd.Wait() }

// Start starts spec and returns once the sandbox's namespaces exist.
// The sandbox has a process group of its own and no parent-death signal:
// it outlives its starter (a restarted gateway adopts workspaces).
func (s *Sandbox) Start(spec Spec) (*Process, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("sandbox: no command")
	}
	if s.root && (spec.UID <= 0 || spec.GID <= 0) {
		return nil, errors.New("sandbox: a root caller must name a uid and gid other than 0")
	}
	args, files, err := s.args(spec)
	if err != nil {
		return nil, err
	}
	// The options go through a pipe (--args): the host paths they name
	// stay out of /proc/PID/cmdline, which every user can read. The
	// command itself must follow on the command line.
	sep := slices.Index(args, "--")
	opts, command := args[:sep], args[sep:]
	argsR, argsW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	infoR, infoW, err := os.Pipe()
	if err != nil {
		argsR.Close()
		argsW.Close()
		return nil, err
	}
	defer infoR.Close()
	extra := append([]*os.File{argsR, infoW}, files...)
	closeAll := func() {
		for _, f := range extra {
			f.Close()
		}
	}
	cmd := exec.Command(s.bwrap, append([]string{"--args", "3"}, command...)...)
	if len(spec.Cgroups) > 0 {
		// A shell joins the groups, then becomes bwrap (same PID, same
		// descriptors): a group joined after bwrap started would miss
		// the children it had already forked.
		for _, g := range spec.Cgroups {
			if !filepath.IsAbs(g) || filepath.Base(g) != "cgroup.procs" {
				closeAll()
				argsW.Close()
				return nil, fmt.Errorf("sandbox: %q is not a cgroup.procs file", g)
			}
		}
		join := `while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"`
		cmd = exec.Command("/bin/sh", append(append(append([]string{"-c", join, "sh"}, spec.Cgroups...), "--", s.bwrap, "--args", "3"), command...)...)
	}
	cmd.Env = spec.Env
	cmd.ExtraFiles = extra
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		closeAll()
		argsW.Close()
		return nil, fmt.Errorf("sandbox: start bwrap: %w", err)
	}
	closeAll()
	go func() {
		_, _ = argsW.Write(nulJoin(opts))
		argsW.Close()
	}()
	p := &Process{PID: cmd.Process.Pid, cmd: cmd}
	init, err := readInit(infoR, 10*time.Second)
	if err != nil {
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, fmt.Errorf("sandbox: bwrap did not start the sandbox: %w", err)
	}
	p.Init = init
	return p, nil
}

// args builds bubblewrap's arguments and the files whose descriptors
// they name (from 5 up: 3 is the arguments, 4 the info pipe).
func (s *Sandbox) args(spec Spec) ([]string, []*os.File, error) {
	host := spec.Hostname
	if host == "" {
		host = "sandbox"
	}
	a := []string{"--unshare-ipc", "--unshare-pid", "--unshare-uts", "--hostname", host, "--unshare-cgroup-try", "--new-session", "--info-fd", "4"}
	if !s.root {
		a = append(a, "--unshare-user", "--disable-userns")
	}
	if !spec.Network {
		a = append(a, "--unshare-net")
	}
	a = append(a,
		"--ro-bind", "/usr", "/usr",
		"--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
		"--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
		"--proc", "/proc", "--dev", "/dev",
	)
	if spec.TmpSize > 0 {
		a = append(a, "--size", strconv.FormatInt(spec.TmpSize, 10))
	}
	a = append(a,
		"--perms", "1777", "--tmpfs", "/tmp",
		"--perms", "0755", "--dir", "/etc",
	)
	// What programs need of /etc, read-only; nothing of the gateway's.
	etc := []string{"/etc/ssl", "/etc/ca-certificates", "/etc/alternatives", "/etc/localtime"}
	if spec.Network {
		etc = append(etc, "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf")
	}
	for _, p := range etc {
		if _, err := os.Stat(p); err == nil {
			a = append(a, "--ro-bind", p, p)
		}
	}
	for _, d := range spec.Dirs {
		a = append(a, "--perms", "0755", "--dir", d)
	}
	for _, b := range spec.Binds {
		if !filepath.IsAbs(b.Host) || !filepath.IsAbs(b.Inside) {
			return nil, nil, fmt.Errorf("sandbox: bind %s → %s: paths must be absolute", b.Host, b.Inside)
		}
		a = append(a, "--perms", "0755", "--dir", filepath.Dir(b.Inside))
		op := "--ro-bind"
		if b.Writable {
			op = "--bind"
		}
		a = append(a, op, b.Host, b.Inside)
	}
	// The seccomp filter first (fd 5), then the files.
	filter, err := dataPipe(s.seccomp)
	if err != nil {
		return nil, nil, err
	}
	files := []*os.File{filter}
	a = append(a, "--seccomp", "5")
	for _, f := range spec.Files {
		r, err := dataPipe(f.Content)
		if err != nil {
			for _, o := range files {
				o.Close()
			}
			return nil, nil, err
		}
		files = append(files, r)
		a = append(a, "--perms", "0755", "--dir", filepath.Dir(f.Inside),
			"--perms", "0644", "--ro-bind-data", strconv.Itoa(4+len(files)), f.Inside)
	}
	if spec.Dir != "" {
		a = append(a, "--chdir", spec.Dir)
	}
	a = append(a, "--")
	if s.root {
		if spec.MaxProcs > 0 {
			n := strconv.Itoa(spec.MaxProcs)
			a = append(a, s.prlimit, "--nproc="+n+":"+n, "--")
		}
		id := strconv.Itoa(spec.UID)
		a = append(a, s.setpriv, "--reuid="+id, "--regid="+strconv.Itoa(spec.GID), "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--")
	}
	return append(a, spec.Argv...), files, nil
}

// dataPipe is a pipe holding content (small files: it must fit the
// pipe's buffer, 64 KiB, since bwrap reads it after we return).
func dataPipe(content []byte) (*os.File, error) {
	if len(content) > 60<<10 {
		return nil, errors.New("sandbox: a file placed inside must stay under 60 KiB")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	_, err = w.Write(content)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func nulJoin(args []string) []byte {
	var b bytes.Buffer
	for _, a := range args {
		b.WriteString(a)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// readInit reads bwrap's info JSON for the sandbox's PID 1.
func readInit(r *os.File, within time.Duration) (int, error) {
	_ = r.SetReadDeadline(time.Now().Add(within))
	var info struct {
		ChildPID int `json:"child-pid"`
	}
	raw, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, err
	}
	if err := json.Unmarshal(raw, &info); err != nil || info.ChildPID <= 0 {
		return 0, fmt.Errorf("no sandbox PID in %q", strings.TrimSpace(string(raw)))
	}
	return info.ChildPID, nil
}

// Kill ends the sandbox whose PID 1 is init (as the host sees it): with
// its init gone, the kernel ends every process of its PID namespace.
// SIGTERM would be ignored (PID 1 of a namespace has no default handler).
func Kill(init int) error {
	if init <= 0 {
		return nil
	}
	if err := syscall.Kill(init, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sandbox: kill %d: %w", init, err)
	}
	return nil
}

// StartTime is a process's start time (clock ticks after boot, from
// /proc/PID/stat), which with its PID names it for good: a reused PID
// has another start time.
func StartTime(pid int) (uint64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, errors.New("sandbox: unreadable stat")
	}
	fields := strings.Fields(string(raw[i+1:]))
	// Fields after "(comm)": state is 3rd of the file, starttime the 22nd.
	if len(fields) < 20 {
		return 0, errors.New("sandbox: short stat")
	}
	if fields[0] == "Z" {
		return 0, errors.New("sandbox: zombie")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// Alive reports whether pid still is the process that started at start.
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := StartTime(pid)
	return err == nil && st == start
}
