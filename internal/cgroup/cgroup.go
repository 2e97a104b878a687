// Package cgroup gives each playbook run a control group of its own, so
// that the run as a whole, not each of its processes, is bounded: an
// rlimit on address space is per process (a run of 64 processes could
// use 64 times RUN_MEMORY), and RLIMIT_NPROC counts a uid, not a run.
// The group's memory limit and process limit hold for everything the run
// starts, and ending the run can kill whatever is in the group.
//
// Both cgroup layouts are handled: the unified hierarchy (cgroup v2, the
// default of Debian 12 with systemd) and the legacy one with the memory
// and pids controllers mounted apart (v1, which some container hosts
// still use). Groups are made under the gateway's own group, so a
// service manager's or container's limits still hold above them.
//
// The gateway must be able to write there: root, or a delegated subtree
// (systemd's Delegate=yes, a container with its own cgroup namespace).
// Without that New says why, and the runner keeps its per-process limits.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits bound one group. Zero leaves that limit unset.
type Limits struct {
	Memory int64 // bytes of memory (and, on v1, of memory+swap where the kernel counts it)
	Pids   int   // processes and threads
}

// Config says where the hierarchy is; the zero value is the host's.
type Config struct {
	// Root is where cgroup file systems are mounted (default /sys/fs/cgroup).
	Root string
	// Self is the content of /proc/self/cgroup (default: read it). Tests
	// set both to a fake tree.
	Self string
	// Name is the folder made under the gateway's group for the groups
	// (default "playbookstudio").
	Name string
	// PID is the process moved into a leaf on v2 (default: this process).
	PID int
}

// Manager makes groups.
type Manager struct {
	v2 bool
	// parents are the folders the groups are made in: one on v2, one per
	// controller (memory, pids) on v1.
	parents map[string]string
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// New finds the gateway's own group and prepares the folder groups are
// made in; the error says why that is impossible here.
func New(cfg Config) (*Manager, error) {
	if cfg.Root == "" {
		cfg.Root = "/sys/fs/cgroup"
	}
	if cfg.Name == "" {
		cfg.Name = "playbookstudio"
	}
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("cgroup: %q is not a usable folder name", cfg.Name)
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	if cfg.Self == "" {
		raw, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		cfg.Self = string(raw)
	}
	own, err := parseSelf(cfg.Self)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, "cgroup.controllers")); err == nil {
		return newV2(cfg, own[""])
	}
	return newV1(cfg, own)
}

// parseSelf reads /proc/self/cgroup: "id:controllers:path" lines, keyed
// by controller ("" for the unified hierarchy).
func parseSelf(s string) (map[string]string, error) {
	own := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		p := parts[2]
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
			return nil, fmt.Errorf("cgroup: unexpected path %q in /proc/self/cgroup", p)
		}
		if parts[1] == "" {
			own[""] = p
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = p
		}
	}
	if len(own) == 0 {
		return nil, errors.New("cgroup: /proc/self/cgroup names no group")
	}
	return own, nil
}

func newV1(cfg Config, own map[string]string) (*Manager, error) {
	m := &Manager{parents: map[string]string{}}
	for _, c := range []string{"memory", "pids"} {
		p, ok := own[c]
		if !ok {
			return nil, fmt.Errorf("cgroup: no %s controller: neither a unified hierarchy (cgroup v2) nor a v1 %s hierarchy is mounted", c, c)
		}
		dir := filepath.Join(cfg.Root, c, p, cfg.Name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup: cannot make %s (the gateway needs root or a delegated group): %w", dir, err)
		}
		m.parents[c] = dir
	}
	return m, nil
}

// newV2 prepares <own>/<name> with the memory and pids controllers on
// for its children. A v2 group with processes cannot pass controllers to
// children ("no internal processes"), so when the gateway's own group
// has them off, the gateway moves itself into a leaf <own>/gateway first
// — only when it is alone there: it never moves processes it did not
// start.
func newV2(cfg Config, own string) (*Manager, error) {
	if own == "" {
		return nil, errors.New("cgroup: /proc/self/cgroup has no unified (0::) line")
	}
	base := filepath.Join(cfg.Root, own)
	avail, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	for _, c := range []string{"memory", "pids"} {
		if !hasWord(avail, c) {
			return nil, fmt.Errorf("cgroup: the %s controller is not available in %s (delegate it to the gateway's service)", c, base)
		}
	}
	on, err := os.ReadFile(filepath.Join(base, "cgroup.subtree_control"))
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	if !hasWord(on, "memory") || !hasWord(on, "pids") {
		procs, err := os.ReadFile(filepath.Join(base, "cgroup.procs"))
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		if others := otherPIDs(procs, cfg.PID); len(others) > 0 {
			return nil, fmt.Errorf("cgroup: %s holds other processes (%s) besides the gateway, so it cannot hand controllers to run groups; run the gateway in a group of its own (a systemd service with Delegate=yes, or a container)", base, strings.Join(others, ", "))
		}
		leaf := filepath.Join(base, "gateway")
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup: cannot make %s (the gateway needs root or a delegated group): %w", leaf, err)
		}
		if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(cfg.PID)); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(base, "cgroup.subtree_control"), "+memory +pids"); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(base, cfg.Name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup: cannot make %s: %w", dir, err)
	}
	if err := writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+memory +pids"); err != nil {
		return nil, err
	}
	return &Manager{v2: true, parents: map[string]string{"": dir}}, nil
}

func hasWord(b []byte, w string) bool {
	for _, f := range bytes.Fields(b) {
		if string(f) == w {
			return true
		}
	}
	return false
}

func otherPIDs(procs []byte, self int) []string {
	var out []string
	for _, f := range strings.Fields(string(procs)) {
		if f != strconv.Itoa(self) {
			out = append(out, f)
		}
	}
	return out
}

func writeFile(path, content string) error {
	// O_TRUNC is what the kernel's files expect of a write; O_CREATE lets
	// the fake trees of tests record it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cgroup: write %q to %s: %w", content, path, err)
	}
	return nil
}

// Group is one run's group.
type Group struct {
	v2   bool
	dirs []string // one per hierarchy (v1: memory then pids)
}

// Create makes the group id with its limits. A group of that name left
// by a dead gateway is emptied and reused.
func (m *Manager) Create(id string, l Limits) (*Group, error) {
	if !nameRE.MatchString(id) {
		return nil, fmt.Errorf("cgroup: %q is not a usable group name", id)
	}
	g := &Group{v2: m.v2}
	if m.v2 {
		g.dirs = []string{filepath.Join(m.parents[""], id)}
	} else {
		g.dirs = []string{filepath.Join(m.parents["memory"], id), filepath.Join(m.parents["pids"], id)}
	}
	for _, d := range g.dirs {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	if err := g.limit(l); err != nil {
		_ = g.Remove()
		return nil, err
	}
	return g, nil
}

func (g *Group) limit(l Limits) error {
	var files [][2]string
	if g.v2 {
		if l.Memory > 0 {
			m := strconv.FormatInt(l.Memory, 10)
			// No swap: a run past its memory is ended, not paged out.
			files = append(files, [2]string{filepath.Join(g.dirs[0], "memory.max"), m},
				[2]string{filepath.Join(g.dirs[0], "memory.swap.max"), "0"})
		}
		if l.Pids > 0 {
			files = append(files, [2]string{filepath.Join(g.dirs[0], "pids.max"), strconv.Itoa(l.Pids)})
		}
	} else {
		if l.Memory > 0 {
			files = append(files, [2]string{filepath.Join(g.dirs[0], "memory.limit_in_bytes"), strconv.FormatInt(l.Memory, 10)})
		}
		if l.Pids > 0 {
			files = append(files, [2]string{filepath.Join(g.dirs[1], "pids.max"), strconv.Itoa(l.Pids)})
		}
	}
	for _, f := range files {
		err := writeFile(f[0], f[1])
		// memory.swap.max is missing where swap accounting is off; then
		// there is nothing to bound.
		if err != nil && !(strings.HasSuffix(f[0], "memory.swap.max") && errors.Is(err, os.ErrNotExist)) {
			return err
		}
	}
	if !g.v2 && l.Memory > 0 {
		// memsw exists only with swap accounting; it cannot be below the
		// memory limit, which is set first.
		p := filepath.Join(g.dirs[0], "memory.memsw.limit_in_bytes")
		if _, err := os.Stat(p); err == nil {
			if err := writeFile(p, strconv.FormatInt(l.Memory, 10)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Procs are the files a process writes its PID to, to join the group
// (every hierarchy's), before it starts anything of the run.
func (g *Group) Procs() []string {
	out := make([]string, len(g.dirs))
	for i, d := range g.dirs {
		out[i] = filepath.Join(d, "cgroup.procs")
	}
	return out
}

// PIDs lists the processes in the group.
func (g *Group) PIDs() ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for _, d := range g.dirs {
		raw, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		for _, f := range strings.Fields(string(raw)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

// OOMKills is how many processes of the group the kernel ended for
// want of memory (0 where the kernel does not say).
func (g *Group) OOMKills() int {
	file, key := filepath.Join(g.dirs[0], "memory.events"), "oom_kill"
	if !g.v2 {
		file = filepath.Join(g.dirs[0], "memory.oom_control")
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// Kill ends every process in the group and waits, up to within, for the
// group to empty.
func (g *Group) Kill(within time.Duration) error {
	if g.v2 {
		// cgroup.kill (Linux 5.14) kills atomically, racing no fork.
		if err := writeFile(filepath.Join(g.dirs[0], "cgroup.kill"), "1"); err == nil {
			return g.waitEmpty(within)
		}
	}
	deadline := time.Now().Add(within)
	for {
		pids, err := g.PIDs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: %d processes still in %s", len(pids), g.dirs[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (g *Group) waitEmpty(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		pids, err := g.PIDs()
		if err != nil || len(pids) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: %d processes still in %s", len(pids), g.dirs[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Remove deletes the group's folders (they must be empty of processes).
func (g *Group) Remove() error {
	var errs []error
	for _, d := range g.dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Remove deletes the folder groups are made in, when no group is left in
// it (a test's, or a gateway's that stops making groups).
func (m *Manager) Remove() error {
	var errs []error
	for _, p := range m.parents {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup: %w", err))
		}
	}
	return errors.Join(errs...)
}
