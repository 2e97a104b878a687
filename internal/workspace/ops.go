package workspace

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Every operation on one workspace goes through the Manager, which runs
// them one lifecycle change at a time per key: a start, a stop or a
// removal waits for the copies and dials under way on that workspace and
// holds back new ones until it is done; copies and dials of one workspace
// run side by side. The runtime never sees a copy racing a stop.

// opWeight is what a lifecycle change takes of a key's semaphore (all of
// it); a copy or a dial takes one.
const opWeight = 1 << 20

// keyOps holds one semaphore per workspace key. Keys are one per user, so
// the map stays as small as the set of users.
type keyOps struct {
	mu  sync.Mutex
	sem map[string]*semaphore.Weighted
}

func (k *keyOps) of(key string) *semaphore.Weighted {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sem == nil {
		k.sem = map[string]*semaphore.Weighted{}
	}
	s := k.sem[key]
	if s == nil {
		s = semaphore.NewWeighted(opWeight)
		k.sem[key] = s
	}
	return s
}

// exclusive runs f with no other operation on key under way.
func (k *keyOps) exclusive(ctx context.Context, key string, f func() error) error {
	s := k.of(key)
	if err := s.Acquire(ctx, opWeight); err != nil {
		return fmt.Errorf("workspace: waiting for other operations on it: %w", err)
	}
	defer s.Release(opWeight)
	return f()
}

// shared takes a share of key for a copy or a dial; release gives it back.
func (k *keyOps) shared(ctx context.Context, key string) (release func(), err error) {
	s := k.of(key)
	if err := s.Acquire(ctx, 1); err != nil {
		return nil, fmt.Errorf("workspace: waiting for it to start or stop: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { s.Release(1) }) }, nil
}

// Dial opens a connection to the workspace's code-server (the IDE proxy's
// upstream). The dialer is looked up once per start and kept.
func (m *Manager) Dial(ctx context.Context, key string) (net.Conn, error) {
	m.mu.Lock()
	e := m.ws[key]
	var d DialFunc
	if e != nil {
		d = e.dial
	}
	m.mu.Unlock()
	if d == nil {
		release, err := m.ops.shared(ctx, key)
		if err != nil {
			return nil, err
		}
		d, err = m.rt.Dialer(ctx, key)
		release()
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		if e != nil && e.phase == PhaseReady {
			e.dial = d
		}
		m.mu.Unlock()
	}
	return d(ctx)
}

// CopyIn extracts a tar archive into the folder at path (relative to the
// workspace's project folder), creating it if needed.
func (m *Manager) CopyIn(ctx context.Context, key, path string, archive io.Reader) error {
	release, err := m.ops.shared(ctx, key)
	if err != nil {
		return err
	}
	defer release()
	return m.rt.CopyIn(ctx, key, path, archive)
}

// CopyOut streams the folder at path as a tar archive. The workspace is
// not stopped or restarted until the archive is closed.
func (m *Manager) CopyOut(ctx context.Context, key, path string) (io.ReadCloser, error) {
	release, err := m.ops.shared(ctx, key)
	if err != nil {
		return nil, err
	}
	rc, err := m.rt.CopyOut(ctx, key, path)
	if err != nil {
		release()
		return nil, err
	}
	return &releasingReader{ReadCloser: rc, release: release}, nil
}

type releasingReader struct {
	io.ReadCloser
	release func()
}

func (r *releasingReader) Close() error {
	defer r.release()
	return r.ReadCloser.Close()
}

// ProjectPath is the project folder as the workspace's code-server sees it
// (the folder the workbench opens playbook folders under).
func (m *Manager) ProjectPath(key string) string { return m.rt.ProjectPath(key) }
