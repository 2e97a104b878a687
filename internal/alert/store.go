package alert

import (
	"context"
	"fmt"

	"github.com/playbookstudio/gateway/internal/fault"
)

// Refusals of the store and the service, with the API's codes.
var (
	ErrAlertNotFound    = fault.New(fault.NotFound, "alert_not_found", "There is no such alert.")
	ErrIncidentNotFound = fault.New(fault.NotFound, "incident_not_found", "There is no such incident.")
	ErrSourceNotFound   = fault.New(fault.NotFound, "source_not_found", "There is no such source.")
	ErrKeyNotFound      = fault.New(fault.NotFound, "source_key_not_found", "There is no such key of this source.")
	ErrSourceNameTaken  = fault.New(fault.Conflict, "source_name_taken", "A source of that name exists already; pick another name.")
)

// CodeAlertOtherSource is the code of OtherSource's refusal.
const CodeAlertOtherSource = "alert_other_source"

// OtherSource is the refusal of a post whose index-th alert has the id of
// an alert another source of the tenant sent: only the source that
// created an alert may update it, or any key of the tenant could rewrite
// any alert. It names the id (and no other source: the caller needs the
// id to fix its post, not to learn who else sends).
func OtherSource(index int, id string) error {
	return fault.New(fault.Conflict, CodeAlertOtherSource, fmt.Sprintf("Alert %d: the alert %q belongs to another source, "+
		"and only the source that created an alert may update it. Nothing of this post was stored.", index, id)).
		With("index", index).With("id", id)
}

// Put is one alert of a post for PutAlerts, with the activity row its
// creation or its update records.
type Put struct {
	Alert              Alert
	OnCreate, OnUpdate Activity
}

// Outcome is what a post did to a stored alert.
type Outcome int

const (
	Unchanged Outcome = iota // known, and the post was not newer
	Created
	Updated
)

func (o Outcome) String() string {
	switch o {
	case Unchanged:
		return "unchanged"
	case Created:
		return "created"
	case Updated:
		return "updated"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Store keeps sources, keys, alerts and activity. The SQLite
// implementation is the embedded default; the interface is shaped so
// Postgres can fill it (the read-modify-write calls are one transaction
// each), and storetest is the suite both must pass. Alerts of one tenant
// are never seen through another's calls.
type Store interface {
	CreateSource(ctx context.Context, s Source) error // ErrSourceNameTaken, names compared case-insensitively
	GetSource(ctx context.Context, tenant, id string) (Source, error)
	GetSourceByName(ctx context.Context, tenant, name string) (Source, error)
	ListSources(ctx context.Context, tenant string) ([]Source, error) // by name
	// DeleteSource removes the source and its keys; its alerts stay.
	DeleteSource(ctx context.Context, tenant, id string) error

	AddKey(ctx context.Context, k Key) error // ErrSourceNotFound
	// GetKey finds a key by id alone: a key names its own tenant.
	GetKey(ctx context.Context, id string) (Key, error)
	ListKeys(ctx context.Context, tenant, sourceID string) ([]Key, error)
	DeleteKey(ctx context.Context, tenant, sourceID, id string) error

	// PutAlerts stores the alerts of one post, in order and in one
	// transaction: a new id is inserted (with its OnCreate row); a known
	// one is replaced (with its OnUpdate row) when its SourceUpdatedAt is
	// after the stored one, and otherwise left as it is. A known id whose
	// alert has another SourceID refuses the whole call with
	// OtherSource(index, id). Any error writes nothing: a post is stored
	// whole or not at all. Outcomes are in the order of puts.
	PutAlerts(ctx context.Context, puts []Put) ([]Outcome, error)
	GetAlert(ctx context.Context, tenant, id string) (Alert, error)
	// ListAlerts is newest createdDateTime first.
	ListAlerts(ctx context.Context, tenant string, f Filter) ([]Alert, error)
	// ModifyAlert reads the alert, lets fn change it and name the
	// activity rows, and writes both, in one transaction. An error from
	// fn is returned as it is and nothing is written.
	ModifyAlert(ctx context.Context, tenant, id string, fn func(*Alert) ([]Activity, error)) (Alert, error)
	// PutRunActivity adds a's run row, or replaces the details of the row
	// of the same RunID (keeping its time).
	PutRunActivity(ctx context.Context, tenant, alertID string, a Activity) error
	// Activity lists the rows of the alerts, oldest first.
	Activity(ctx context.Context, tenant string, alertIDs []string) ([]Activity, error)
	// Incidents lists the tenant's incidents, latest activity first.
	Incidents(ctx context.Context, tenant string, limit int) ([]IncidentSummary, error)

	// FirstTime records name once: true the first time it is called with
	// that name on this store (the local defaults are created once).
	FirstTime(ctx context.Context, name string) (bool, error)
	Ping(ctx context.Context) error
	Close() error
}
