// Package workspace owns the users' code-server workspaces: one per user,
// started on demand, reused while it lives, stopped when idle (never while
// an edit session holds it), found again after a gateway restart. A
// Runtime does the starting and stopping (a local process, a Docker
// container, later a Kubernetes pod); the Manager decides when, and every
// operation on a workspace — start, stop, dial, copying files in and out —
// goes through the Manager, one lifecycle change at a time per workspace.
package workspace

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/playbookstudio/gateway/internal/fault"
)

// Spec is what a runtime needs to start one user's workspace.
type Spec struct {
	Key    string // stable, name-safe id of the workspace (see KeyFor)
	Owner  string // the user's id (OIDC sub)
	Tenant string
	// Env is added to the workspace's environment: the gateway's URL and
	// the workspace's scoped token. Nothing else of the gateway's own
	// environment ever reaches a workspace.
	Env map[string]string
	// TokenHash is the hash of the workspace's gateway token. Runtimes keep
	// it with the workspace (a label, a file) so that a restarted gateway
	// can honour the token of a workspace it adopts.
	TokenHash string
}

// Observed is a workspace a runtime found running (or stopped) on its own,
// for reconcile after a gateway restart.
type Observed struct {
	Key       string
	Owner     string
	Tenant    string
	TokenHash string
	Running   bool
}

// Health is code-server's /healthz answer.
type Health struct {
	Status        string    `json:"status"` // "alive" or "expired"
	LastHeartbeat time.Time `json:"-"`
}

// DialFunc reaches a workspace's code-server; the address argument is
// ignored (the runtime knows where its workspace listens).
type DialFunc func(ctx context.Context) (net.Conn, error)

// Runtime starts and stops workspaces. Implementations must be safe for
// concurrent use; the Manager never runs two operations on one key at once.
type Runtime interface {
	// Name is "local" or "docker".
	Name() string
	// Start creates the workspace if needed and starts it. It returns once
	// code-server was launched, not when it is ready (the Manager polls
	// Health). Files persist across Stop and Start.
	Start(ctx context.Context, spec Spec) error
	// Stop stops a workspace, keeping its files. Stopping a stopped or
	// unknown workspace is not an error.
	Stop(ctx context.Context, key string) error
	// Remove stops the workspace and deletes it with its files.
	Remove(ctx context.Context, key string) error
	// List reports the workspaces this runtime manages (by their labels),
	// running or not.
	List(ctx context.Context) ([]Observed, error)
	// Health asks the workspace's code-server for /healthz (through
	// Dialer; implementations use ProbeHealth).
	Health(ctx context.Context, key string) (Health, error)
	// Dialer returns how to reach the workspace's code-server.
	Dialer(ctx context.Context, key string) (DialFunc, error)
	// CopyOut streams the folder at path (relative to the workspace's
	// project folder) as a tar archive whose entries are relative to it.
	CopyOut(ctx context.Context, key, path string) (io.ReadCloser, error)
	// CopyIn extracts a tar archive into the folder at path (relative to
	// the project folder), creating it if needed.
	CopyIn(ctx context.Context, key, path string, archive io.Reader) error
	// ProjectPath is the project folder of the workspace key as its
	// code-server sees it: playbook folders are created below it, and the
	// workbench opens them by this path.
	ProjectPath(key string) string
	// Close releases the runtime's own resources; workspaces keep running.
	Close() error
}

// ErrNotFound means there is no workspace under that key (or, from
// CopyOut and CopyIn, no such folder in it).
var ErrNotFound = fault.New(fault.NotFound, "no_workspace", "You have no workspace yet; it starts when you open a playbook.")

// ProjectDir is where the workspace's files live inside the workspace:
// playbook folders are created below it.
const ProjectDir = "/home/coder/project"
