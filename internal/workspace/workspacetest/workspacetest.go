// Package workspacetest is the one test double of workspace.Runtime: its
// workspaces live in memory, become healthy as soon as they start (or
// after a set number of health checks), keep their files as a real
// runtime does (CopyIn and CopyOut speak tar), and are reached through a
// dial function the test chooses.
package workspacetest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/playbookstudio/gateway/internal/workspace"
)

var _ workspace.Runtime = (*Runtime)(nil)

// Runtime is an in-memory workspace runtime. Set its exported fields
// before handing it to a Manager; change them later only under Lock.
type Runtime struct {
	// Gate, when not nil, holds every Start until it is closed (or the
	// start's context ends).
	Gate chan struct{}
	// StartDelay is slept at the beginning of every Start.
	StartDelay time.Duration
	// StartErr, when set, fails every Start (after counting it).
	StartErr error
	// HealthyAfter is how many health checks of a started workspace fail
	// before it answers (0: healthy at once; negative: never).
	HealthyAfter int
	// Heartbeat is the last heartbeat its code-server reports.
	Heartbeat time.Time
	// Listed is what List reports (workspaces "found running").
	Listed []workspace.Observed
	// DialFunc reaches every workspace's code-server; nil refuses.
	DialFunc workspace.DialFunc
	// Root is the project folder ProjectPath reports (default
	// workspace.ProjectDir).
	Root string

	mu      sync.Mutex
	running map[string]workspace.Spec
	starts  map[string]int
	stops   map[string]int
	health  map[string]int
	files   map[string]map[string][]byte // key → path → content
	dials   atomic.Int64
}

// New returns a runtime whose workspaces are healthy at once.
func New() *Runtime { return &Runtime{} }

// Lock and Unlock guard changes to the exported fields after start.
func (r *Runtime) Lock()   { r.mu.Lock() }
func (r *Runtime) Unlock() { r.mu.Unlock() }

func (r *Runtime) initLocked() {
	if r.running == nil {
		r.running, r.starts, r.stops = map[string]workspace.Spec{}, map[string]int{}, map[string]int{}
		r.health, r.files = map[string]int{}, map[string]map[string][]byte{}
	}
}

func (r *Runtime) Name() string { return "test" }

func (r *Runtime) Start(ctx context.Context, s workspace.Spec) error {
	if r.StartDelay > 0 {
		select {
		case <-time.After(r.StartDelay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.Gate != nil {
		select {
		case <-r.Gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.initLocked()
	r.starts[s.Key]++
	if r.StartErr != nil {
		return r.StartErr
	}
	r.running[s.Key] = s
	r.health[s.Key] = 0
	return nil
}

func (r *Runtime) Stop(_ context.Context, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.initLocked()
	r.stops[key]++
	delete(r.running, key)
	return nil
}

// Remove stops the workspace and forgets its files.
func (r *Runtime) Remove(ctx context.Context, key string) error {
	_ = r.Stop(ctx, key)
	r.mu.Lock()
	delete(r.files, key)
	r.mu.Unlock()
	return nil
}

func (r *Runtime) List(context.Context) ([]workspace.Observed, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]workspace.Observed(nil), r.Listed...), nil
}

func (r *Runtime) Health(_ context.Context, key string) (workspace.Health, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.initLocked()
	if _, ok := r.running[key]; !ok {
		// A listed workspace counts as running (it was "found").
		for _, o := range r.Listed {
			if o.Key == key && o.Running {
				return workspace.Health{Status: "alive", LastHeartbeat: r.Heartbeat}, nil
			}
		}
		return workspace.Health{}, errors.New("workspacetest: not running")
	}
	r.health[key]++
	if r.HealthyAfter < 0 || r.health[key] <= r.HealthyAfter {
		return workspace.Health{}, errors.New("workspacetest: not ready yet")
	}
	return workspace.Health{Status: "alive", LastHeartbeat: r.Heartbeat}, nil
}

func (r *Runtime) Dialer(context.Context, string) (workspace.DialFunc, error) {
	return func(ctx context.Context) (net.Conn, error) {
		r.dials.Add(1)
		r.mu.Lock()
		d := r.DialFunc
		r.mu.Unlock()
		if d == nil {
			return nil, errors.New("workspacetest: no dial function set")
		}
		return d(ctx)
	}, nil
}

// CopyOut archives the files under dir; a folder with no files is
// workspace.ErrNotFound, as on a real runtime.
func (r *Runtime) CopyOut(_ context.Context, key, dir string) (io.ReadCloser, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prefix := strings.Trim(path.Clean("/"+dir), "/") + "/"
	var names []string
	for p := range r.files[key] {
		if strings.HasPrefix(p, prefix) {
			names = append(names, p)
		}
	}
	if len(names) == 0 {
		if _, ok := r.files[key][strings.TrimSuffix(prefix, "/")+"/."]; !ok {
			return nil, workspace.ErrNotFound
		}
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		if strings.HasSuffix(p, "/.") {
			continue
		}
		c := r.files[key][p]
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, prefix), Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		_, _ = tw.Write(c)
	}
	_ = tw.Close()
	return io.NopCloser(&buf), nil
}

// CopyIn extracts regular files of a tar archive below dir (the folder
// itself is recorded, so an empty archive creates it).
func (r *Runtime) CopyIn(_ context.Context, key, dir string, archive io.Reader) error {
	base := strings.Trim(path.Clean("/"+dir), "/")
	got := map[string][]byte{base + "/.": nil}
	tr := tar.NewReader(archive)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("workspacetest: archive: %w", err)
		}
		name := path.Clean("/" + h.Name)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		got[base+name] = b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.initLocked()
	if r.files[key] == nil {
		r.files[key] = map[string][]byte{}
	}
	for p, b := range got {
		r.files[key][p] = b
	}
	return nil
}

// ProjectPath is Root, or workspace.ProjectDir.
func (r *Runtime) ProjectPath(string) string {
	if r.Root != "" {
		return r.Root
	}
	return workspace.ProjectDir
}

func (r *Runtime) Close() error { return nil }

// WriteFile puts a file into a workspace's project folder, as the person
// in the IDE would.
func (r *Runtime) WriteFile(key, name string, content []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.initLocked()
	if r.files[key] == nil {
		r.files[key] = map[string][]byte{}
	}
	r.files[key][strings.Trim(path.Clean("/"+name), "/")] = content
}

// File reads a file of a workspace's project folder.
func (r *Runtime) File(key, name string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.files[key][strings.Trim(path.Clean("/"+name), "/")]
	return b, ok
}

// HasFolder reports whether the folder was created (by CopyIn) or holds files.
func (r *Runtime) HasFolder(key, dir string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	base := strings.Trim(path.Clean("/"+dir), "/")
	for p := range r.files[key] {
		if p == base+"/." || strings.HasPrefix(p, base+"/") {
			return true
		}
	}
	return false
}

// Running reports whether key runs.
func (r *Runtime) Running(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.running[key]
	return ok
}

// Spec is the spec key was last started with.
func (r *Runtime) Spec(key string) (workspace.Spec, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.running[key]
	return s, ok
}

// Counts are the starts and stops of key so far.
func (r *Runtime) Counts(key string) (starts, stops int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts[key], r.stops[key]
}

// HealthChecks is how many times key's health was asked since its start.
func (r *Runtime) HealthChecks(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.health[key]
}

// Dials is how many connections were dialled.
func (r *Runtime) Dials() int64 { return r.dials.Load() }
