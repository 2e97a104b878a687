// Package runner runs playbooks: a queue of runs in the store that any
// number of runner processes may share (a claim is one UPDATE that names
// its owner), RUN_CONCURRENCY workers per process woken the moment a run
// is queued, heartbeats and a reaper for runs whose runner died, and each
// run executed by a Sandbox (bubblewrap here) where the runtime module
// (runtime/pbs_runtime.py) calls run(alert, ctx). ctx reaches the gateway
// over one unix socket per run (ctxserver.go): integration calls go
// through the egress with the run's tenant, so the sandbox never holds a
// secret, and alert actions go through Alerts.
package runner

import (
	"context"
	"encoding/json"
	"time"

	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/playbook"
)

// Status is where a run stands.
type Status string

const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimedOut  Status = "timed_out"
	StatusCanceled  Status = "canceled"
	// StatusAbandoned: its runner died while it ran.
	StatusAbandoned Status = "abandoned"
	// StatusSkipped: it could not start (its playbook is no longer active).
	StatusSkipped Status = "skipped"
)

// Ended tells whether s is final.
func (s Status) Ended() bool { return s != StatusQueued && s != StatusRunning }

// ValidStatus tells whether s names a status (for list filters).
func ValidStatus(s string) bool {
	switch Status(s) {
	case StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusTimedOut, StatusCanceled, StatusAbandoned, StatusSkipped:
		return true
	}
	return false
}

// Trigger is what asked for a run.
type Trigger string

const (
	TriggerRule   Trigger = "rule"
	TriggerManual Trigger = "manual"
	TriggerTest   Trigger = "test"
)

// LogLine is one line of a run's log.
type LogLine struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
	// By is who wrote it: ByPlaybook or ByGateway (a note of the
	// gateway's, which a playbook cannot write); empty in runs recorded
	// before lines said.
	By string `json:"by"`
}

// Call is one integration call of a run: never its headers, bodies or
// query (which could carry what the playbook was given).
type Call struct {
	At          time.Time `json:"at"`
	Integration string    `json:"integration"`
	Method      string    `json:"method"`
	Path        string    `json:"path"`
	Status      int       `json:"status"`
	DurationMS  int64     `json:"durationMs"`
	Error       string    `json:"error,omitempty"`
}

// Action is one ctx action of a run (comment_on_alert, assign_alert,
// set_alert_status, notify, block_user, disable_user).
type Action struct {
	At     time.Time `json:"at"`
	Type   string    `json:"type"`
	Detail string    `json:"detail"`
	Error  string    `json:"error,omitempty"`
}

// Run is the record of API.md's "Runs".
type Run struct {
	ID              string          `json:"id"`
	Tenant          string          `json:"-"`
	Trigger         Trigger         `json:"trigger"`
	RuleID          string          `json:"ruleId"`
	AlertID         string          `json:"alertId"`
	IncidentID      string          `json:"incidentId"`
	PlaybookID      string          `json:"playbookId"`
	PlaybookVersion int             `json:"playbookVersion"`
	Status          Status          `json:"status"`
	QueuedAt        time.Time       `json:"queuedAt"`
	StartedAt       *time.Time      `json:"startedAt"`
	EndedAt         *time.Time      `json:"endedAt"`
	DurationMS      *int64          `json:"durationMs"`
	Result          json.RawMessage `json:"result"`
	Error           string          `json:"error"`
	Log             []LogLine       `json:"log"`
	Calls           []Call          `json:"calls"`
	Actions         []Action        `json:"actions"`
	StartedBy       string          `json:"startedBy"`
	DryRun          bool            `json:"dryRun"`
	// EnteredAt is when run() was entered (the bench's start latency).
	EnteredAt *time.Time `json:"-"`
}

// AlertInfo is what a run needs of an alert.
type AlertInfo struct {
	// JSON is the alert as run(alert, ctx) receives it (Graph security
	// alert v2).
	JSON       json.RawMessage
	IncidentID string
}

// AlertAction is a change a playbook makes to its alert.
type AlertAction struct {
	Type  string // "comment", "assign" or "status"
	Value string // the comment's text, the owner, the status
	Actor string // "playbook <name> (run <id>)"
}

// RunSummary is the "run playbook" row of an alert's activity.
type RunSummary struct {
	RunID           string
	RuleID          string
	PlaybookID      string
	PlaybookVersion int
	Status          Status
	DurationMS      int64
	At              time.Time
}

// Alerts is what the runner needs of the alert service (internal/alert
// implements it; tests use a double). Get answers a fault of kind
// NotFound for an unknown alert.
type Alerts interface {
	Get(ctx context.Context, tenant, alertID string) (AlertInfo, error)
	Act(ctx context.Context, tenant, alertID string, a AlertAction) error
	RecordRun(ctx context.Context, tenant, alertID string, s RunSummary) error
}

// Playbooks is what the runner needs of the playbook store.
type Playbooks interface {
	ActiveVersion(ctx context.Context, tenant, id string) (playbook.Version, []playbook.File, error)
	Version(ctx context.Context, tenant, id string, number int) (playbook.Version, []playbook.File, error)
}

// Profiles looks an integration profile up by name for ctx.integration:
// its base URL, or a NotFound fault. Optional: without it, any name is
// accepted and the egress refuses unknown ones at the call.
type Profiles interface {
	BaseURL(ctx context.Context, tenant, name string) (string, error)
}

// Request asks for a run.
type Request struct {
	Tenant     string
	Trigger    Trigger
	RuleID     string
	AlertID    string
	PlaybookID string
	// Version is the version to run; 0: the active one.
	Version   int
	StartedBy string
	DryRun    bool
}

// Filter narrows a list of runs.
type Filter struct {
	AlertID, PlaybookID string
	Status              Status
	Limit               int
}

// Refusals.
var (
	ErrNotFound  = fault.New(fault.NotFound, "run_not_found", "There is no such run.")
	ErrNotActive = fault.New(fault.Conflict, "playbook_not_active", "The playbook has no active version to run. Activate a version first, or name one.")
	ErrEnded     = fault.New(fault.Conflict, "run_ended", "The run has already ended.")
)
