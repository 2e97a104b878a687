package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cleanups run in reverse order at the end, on error and on Ctrl-C.
type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

func (c *cleanups) run() {
	for {
		c.mu.Lock()
		if len(c.fns) == 0 {
			c.mu.Unlock()
			return
		}
		f := c.fns[len(c.fns)-1]
		c.fns = c.fns[:len(c.fns)-1]
		c.mu.Unlock()
		f()
	}
}

// proc is a child process this program started; stop ends it by its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
	log  string
}

// startProc starts bin in its own process group (so a Ctrl-C on the
// terminal reaches only this program, which then stops its children in
// order) with Pdeathsig, so nothing outlives a crash of this program.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig (SIGTERM for most), then SIGKILL after grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func (p *proc) logTail(n int) string {
	raw, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHTTP polls url until it answers 200; p, when set, must not exit.
func waitHTTP(ctx context.Context, url string, within time.Duration, p *proc) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited:\n%s", p.name, p.logTail(20))
		}
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				hc.CloseIdleConnections()
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready: %v", url, last)
}

// repoRoot is the module root: the working directory or a parent with
// this module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(raw, []byte("module github.com/playbookstudio/gateway\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the gateway module (make bench)")
		}
		dir = parent
	}
}

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat (100
// on every Linux architecture Go supports).
const clkTck = 100

// cpuTime is utime+stime of pid, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(raw[i+2:]))
	// Fields after the command: state(3) ppid(4) … utime(14) stime(15).
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// rssKiB is VmRSS of pid, from /proc/PID/status.
func rssKiB(pid int) (int64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// children lists the processes whose parent is pid (nginx's workers).
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+2:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// procGroup is what the memory and CPU figures read: one process (the
// gateway) or a master and its workers (nginx).
type procGroup struct {
	pid          int
	withChildren bool
}

func (g procGroup) pids() []int {
	ps := []int{g.pid}
	if g.withChildren {
		ps = append(ps, children(g.pid)...)
	}
	return ps
}

func (g procGroup) rssKiB() (int64, error) {
	var sum int64
	for _, p := range g.pids() {
		n, err := rssKiB(p)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

func (g procGroup) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, p := range g.pids() {
		n, err := cpuTime(p)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}
