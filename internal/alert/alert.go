// Package alert owns sources (a SIEM workspace or any sender) and their
// ingestion keys, alert ingestion (Microsoft Graph security alert v2
// objects, kept as posted), incidents (alerts sharing an incidentId),
// comments, updates and each alert's activity history.
//
// For the runner (internal/runner), the Service offers, with plain
// signatures and fault errors (alert_not_found, invalid_alert_update):
//
//	Get(ctx, tenant, id string) (Alert, error)           // the alert's JSON, IncidentID, SourceID
//	Comment(ctx, tenant, id string, by Actor, text string) error
//	Update(ctx, tenant, id string, by Actor, u Update) (Alert, error) // status, assignedTo, classification, determination
//	RecordRun(ctx, tenant, alertID string, row RunActivity) error     // one "run" row per RunID, updated in place
//
// Actor{Name: "playbook Isolate host v3"} is enough for a run's actions;
// Set("resolved") and Clear() build an Update's fields.
package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Limits of POST /api/alerts (shared/API.md).
const (
	MaxBatch     = 100
	MaxBodyBytes = 1 << 20
)

// Actor is who did something: a user, a source, a playbook run. Name is
// what the activity shows.
type Actor struct {
	Tenant, ID, Name string
}

func (a Actor) label() string {
	if a.Name != "" {
		return a.Name
	}
	if a.ID != "" {
		return a.ID
	}
	return "system"
}

// Source is a sender of alerts.
type Source struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"-"`
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
}

// SourceView is a source as GET /api/sources shows it to one caller.
type SourceView struct {
	Source
	Accessible bool `json:"accessible"`
}

// Key is an ingestion key as stored: only its SHA-256.
type Key struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"-"`
	SourceID  string    `json:"sourceId"`
	Hash      []byte    `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
}

// NewKey is a key as its creation answers it, the one time it is shown.
type NewKey struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// Alert is a stored alert. JSON is the Graph object as posted, with the
// gateway's updates and comments applied; the other fields are read from
// it (and the source), for filters and the runner.
type Alert struct {
	Tenant     string
	ID         string
	SourceID   string
	SourceName string
	IncidentID string
	Title      string
	Severity   string
	Status     string
	// CreatedAt is createdDateTime; SourceUpdatedAt the lastUpdateDateTime
	// of the last accepted post (zero when it had none): a re-post
	// replaces the alert only when its own is newer. Local updates do not
	// move it, so they never make the sender's next update look stale.
	CreatedAt       time.Time
	SourceUpdatedAt time.Time
	ReceivedAt      time.Time
	UpdatedAt       time.Time
	JSON            json.RawMessage
}

// MarshalJSON is the alert's own JSON object.
func (a Alert) MarshalJSON() ([]byte, error) { return a.JSON, nil }

// SourceRef is the "source" beside an alert in the API.
type SourceRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// withFields is the alert's JSON object with extra top-level fields, for
// the API's "source" and "activity".
func withFields(a Alert, extra map[string]any) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(a.JSON, &m); err != nil {
		return nil, err
	}
	for k, v := range extra {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m[k] = b
	}
	return json.Marshal(m)
}

// Activity kinds (shared/API.md).
const (
	KindCreated = "created"
	KindUpdated = "updated"
	KindComment = "comment"
	KindRun     = "run"
)

// Activity is one row of an alert's history.
type Activity struct {
	AlertID string    `json:"alertId"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Actor   string    `json:"actor"`
	// Detail is for a person: the comment's text, what changed, or for a
	// run "run playbook …: status in N s".
	Detail string `json:"detail"`
	RunID  string `json:"runId,omitempty"`
	// Run is a run row's detail as fields, for the portal.
	Run *RunActivity `json:"run,omitempty"`
}

// RunActivity is a run as an alert's activity shows it. Recording the
// same RunID again replaces the row's details (queued → running →
// succeeded) and keeps its place.
type RunActivity struct {
	RunID           string    `json:"runId"`
	At              time.Time `json:"at"` // when the run was requested
	Actor           string    `json:"actor"`
	RuleID          string    `json:"ruleId,omitempty"`
	RuleName        string    `json:"ruleName,omitempty"`
	PlaybookID      string    `json:"playbookId"`
	PlaybookName    string    `json:"playbookName,omitempty"`
	PlaybookVersion int       `json:"playbookVersion"`
	Status          string    `json:"status"`
	DurationMS      *int64    `json:"durationMs,omitempty"`
}

func (r RunActivity) detail() string {
	var b strings.Builder
	b.WriteString("run playbook ")
	name := r.PlaybookName
	if name == "" {
		name = r.PlaybookID
	}
	fmt.Fprintf(&b, "%s v%d", name, r.PlaybookVersion)
	if r.RuleName != "" {
		fmt.Fprintf(&b, " (rule %s)", r.RuleName)
	}
	b.WriteString(": ")
	b.WriteString(r.Status)
	if r.DurationMS != nil {
		fmt.Fprintf(&b, " in %.1f s", float64(*r.DurationMS)/1000)
	}
	return b.String()
}

// Opt is one field of an Update: absent (zero), set to a value, or
// cleared (JSON null).
type Opt struct {
	Present bool
	Null    bool
	Value   string
}

// Set is an Opt with a value.
func Set(v string) Opt { return Opt{Present: true, Value: v} }

// Clear is an Opt that removes the value (JSON null).
func Clear() Opt { return Opt{Present: true, Null: true} }

// UnmarshalJSON reads a string or null; only present fields are decoded,
// so a zero Opt stays absent.
func (o *Opt) UnmarshalJSON(b []byte) error {
	o.Present = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// Update is PATCH /api/alerts/{id}, and a playbook's set_alert_status and
// assign_alert.
type Update struct {
	Status         Opt `json:"status"`
	AssignedTo     Opt `json:"assignedTo"`
	Classification Opt `json:"classification"`
	Determination  Opt `json:"determination"`
}

// Result is one alert of a POST /api/alerts answer.
type Result struct {
	ID      string   `json:"id"`
	Created bool     `json:"created"`
	Runs    []string `json:"runs"`
}

// Incident is GET /api/incidents/{id}.
type Incident struct {
	ID       string            `json:"id"`
	Alerts   []json.RawMessage `json:"alerts"`
	Activity []Activity        `json:"activity"`
}

// IncidentSummary is one row of GET /api/incidents.
type IncidentSummary struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	Severity   string    `json:"severity"`
	Status     string    `json:"status"`
	AlertCount int       `json:"alertCount"`
	Sources    []string  `json:"sources"`
	FirstAt    time.Time `json:"firstAt"`
	LastAt     time.Time `json:"lastAt"`
}

// Filter selects alerts for the list.
type Filter struct {
	Status, Severity, SourceID, IncidentID string
	Limit                                  int
}

// Graph's enumerations (alert v2). Posted alerts keep any value; PATCH
// accepts only these.
var (
	Severities      = []string{"unknown", "informational", "low", "medium", "high", "unknownFutureValue"}
	Statuses        = []string{"unknown", "new", "inProgress", "resolved", "unknownFutureValue"}
	Classifications = []string{"unknown", "falsePositive", "truePositive", "informationalExpectedActivity", "unknownFutureValue"}
	Determinations  = []string{"unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware", "other",
		"multiStagedAttack", "compromisedAccount", "phishing", "maliciousUserActivity", "notMalicious",
		"notEnoughDataToValidate", "confirmedActivity", "lineOfBusinessApplication", "unknownFutureValue"}
)

// severityRank orders severities for incidents; unknown values rank 0.
func severityRank(s string) int {
	switch strings.ToLower(s) {
	case "informational":
		return 1
	case "low":
		return 2
	case "medium":
		return 3
	case "high":
		return 4
	}
	return 0
}
