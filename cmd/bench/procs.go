package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/playbookstudio/gateway/internal/child"
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

// proc is a process this program started (internal/child): stop ends it
// by its PID.
type proc = child.Proc

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
