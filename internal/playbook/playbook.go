// Package playbook owns playbook records: the bundle format, collecting a
// playbook folder out of a workspace (as an untrusted tar stream), checking
// it without ever running it, and storing versions. A saved playbook starts
// disabled; activation makes one version that passed validation the one
// that runs (the active version), and a later save adds a version without
// putting it live: it runs only once it is activated in turn.
package playbook

import (
	"context"
	"time"

	"github.com/playbookstudio/gateway/internal/fault"
)

// Status of a playbook.
const (
	StatusDisabled = "disabled"
	StatusActive   = "active"
)

// File is one file of a bundle, its path relative to the playbook folder
// with forward slashes.
type File struct {
	Path    string
	Content []byte
}

// FileInfo describes a stored file.
type FileInfo struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Problem is one finding about a bundle: an error refuses the save, a
// warning is kept with the version.
type Problem struct {
	Path    string `json:"path"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// Report is what validation found.
type Report struct {
	Errors   []Problem `json:"errors"`
	Warnings []Problem `json:"warnings"`
	// Skipped lists what collection left out (symlinks, devices, the
	// agent's .agent/ folder), for the user to know.
	Skipped []Problem `json:"skipped,omitempty"`
	// Lines is the line count of playbook.py.
	Lines int `json:"lines"`
}

// Passed is true when the bundle has no errors.
func (r Report) Passed() bool { return len(r.Errors) == 0 }

// Bundle is a collected playbook folder.
type Bundle struct {
	Files   []File
	Skipped []Problem
}

// Playbook is a playbook record (the API's Playbook).
type Playbook struct {
	ID             string `json:"id"`
	Tenant         string `json:"-"`
	Name           string `json:"name"`
	Description    string `json:"description"`
	Status         string `json:"status"`
	CurrentVersion int    `json:"currentVersion"`
	// LatestVersion is CurrentVersion under the name the status line
	// ("v3 active · v4 saved, not active") uses; the store fills both.
	LatestVersion int `json:"latestVersion"`
	// ActiveVersion is the version that runs: nil while disabled, set
	// only by activation, never by a save.
	ActiveVersion *int      `json:"activeVersion"`
	CreatedAt     time.Time `json:"createdAt"`
	CreatedBy     string    `json:"createdBy"`
	UpdatedAt     time.Time `json:"updatedAt"`
	UpdatedBy     string    `json:"updatedBy"`
}

// Version is one saved version (the API's Version).
type Version struct {
	Number   int        `json:"number"`
	SavedAt  time.Time  `json:"savedAt"`
	SavedBy  string     `json:"savedBy"`
	Lines    int        `json:"lines"`
	Files    []FileInfo `json:"files"`
	Warnings []Problem  `json:"warnings"`
	// Fence is the fencing token of the edit session that saved it.
	Fence  int64  `json:"-"`
	Report Report `json:"-"`
	// Documentation is README.md; FlowDiagram the Mermaid source of its
	// first mermaid block.
	Documentation string `json:"-"`
	FlowDiagram   string `json:"-"`
}

// NewVersion is what a save stores.
type NewVersion struct {
	// ID is, for Create only, the id the new playbook takes: the UUID its
	// first edit session reserved, which names its workspace folder.
	// Empty: a fresh one.
	ID            string
	SavedBy       string
	Fence         int64
	Files         []File
	Report        Report
	Description   string // from manifest.json, when present
	Documentation string
	FlowDiagram   string
}

// Errors of the store, mapped to the API's codes.
var (
	ErrNotFound  = fault.New(fault.NotFound, "not_found", "There is no such playbook.")
	ErrNameTaken = fault.New(fault.Conflict, "playbook_name_taken", "A playbook of that name exists already.")
	ErrLimit     = fault.New(fault.Conflict, "playbook_limit", "Your organisation has reached its playbook limit.")
	ErrActive    = fault.New(fault.Conflict, "playbook_active", "Deactivate the playbook before deleting it.")
	ErrNotValid  = fault.New(fault.Conflict, "playbook_not_valid", "Only a version that passed validation can be activated. Fix the problems and save again.")
	// ErrNoVersion is an activation naming a version the playbook lacks.
	ErrNoVersion = fault.New(fault.NotFound, "version_not_found", "The playbook has no such version. Pick one from its version list.")
	// ErrNotActive is asking for the active version of a disabled playbook.
	ErrNotActive = fault.New(fault.Conflict, "playbook_not_active", "The playbook is not active: activate a version first.")
	// ErrIDTaken is a Create with an id another playbook has.
	ErrIDTaken = fault.New(fault.Conflict, "playbook_id_taken", "This new playbook's id is in use already. Start it again from the portal.")
)

// Store keeps playbooks and their versions. The SQLite implementation is
// the embedded default; the interface is shaped so Postgres can fill it.
type Store interface {
	// Create makes a new disabled playbook with its first version, under
	// v.ID when given (a UUID; ErrIDTaken when in use). Names are unique
	// per tenant, compared case-insensitively; at most limit playbooks per
	// tenant.
	Create(ctx context.Context, tenant, name string, limit int, v NewVersion) (Playbook, Version, error)
	// AddVersion appends a version to an existing playbook. It never
	// changes what runs: the active version, if any, stays active.
	AddVersion(ctx context.Context, tenant, id string, v NewVersion) (Playbook, Version, error)
	Get(ctx context.Context, tenant, id string) (Playbook, error)
	// GetByName finds a playbook by name, case-insensitively.
	GetByName(ctx context.Context, tenant, name string) (Playbook, error)
	List(ctx context.Context, tenant string) ([]Playbook, error)
	Count(ctx context.Context, tenant string) (int, error)
	// Versions lists a playbook's versions, newest first, without contents.
	Versions(ctx context.Context, tenant, id string) ([]Version, error)
	// Version returns one version with its files' contents.
	Version(ctx context.Context, tenant, id string, number int) (Version, []File, error)
	// Activate makes version the one that runs (0: the latest), replacing
	// any active one. The version must exist (ErrNoVersion) and have
	// passed validation (ErrNotValid).
	Activate(ctx context.Context, tenant, id string, version int, by string) (Playbook, error)
	// Deactivate stops the playbook running; nothing is active after it.
	Deactivate(ctx context.Context, tenant, id, by string) (Playbook, error)
	// ActiveVersion returns the version that runs, with its files: what a
	// runner executes. A disabled playbook answers ErrNotActive.
	ActiveVersion(ctx context.Context, tenant, id string) (Version, []File, error)
	// Delete removes a disabled playbook (ErrActive otherwise).
	Delete(ctx context.Context, tenant, id string) error
	Ping(ctx context.Context) error
	Close() error
}
