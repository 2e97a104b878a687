package alert

import (
	"context"

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

// Outcome is what a post did to a stored alert.
type Outcome int

const (
	Unchanged Outcome = iota // known, and the post was not newer
	Created
	Updated
)

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

	// PutAlert inserts a (with onCreate) or, when a's SourceUpdatedAt is
	// after the stored one, replaces it (with onUpdate), in one
	// transaction; otherwise it changes nothing. It returns the alert as
	// stored after the call.
	PutAlert(ctx context.Context, a Alert, onCreate, onUpdate Activity) (Outcome, Alert, error)
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
