package alert

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/fault"
)

// Config is what the Service works with.
type Config struct {
	Store Store
	Audit audit.Log
	Log   *slog.Logger
	Now   func() time.Time
}

// Service is sources, keys, ingestion, alerts, incidents and activity
// over a Store.
type Service struct {
	store Store
	audit audit.Log
	log   *slog.Logger
	now   func() time.Time
}

// New checks cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Audit == nil || cfg.Log == nil {
		return nil, errors.New("alert: store, audit and log are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{store: cfg.Store, audit: cfg.Audit, log: cfg.Log, now: cfg.Now}, nil
}

func (s *Service) stamp() time.Time { return s.now().UTC().Round(0) }

// unavailable hides a store's failure behind a refusal naming no detail.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := fault.As(err); ok || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fault.Wrap(fault.Unavailable, "unavailable", "Alerts cannot be read or written right now. Try again in a moment.", err)
}

func (s *Service) record(ctx context.Context, by Actor, action, target string, detail map[string]string) {
	actor := by.label()
	if by.ID != "" && by.ID != actor {
		actor += " (" + by.ID + ")"
	}
	if err := s.audit.Record(ctx, audit.Event{Tenant: by.Tenant, Actor: actor, Action: action, Target: target, Detail: detail}); err != nil {
		s.log.Error("audit", "action", action, "err", err)
	}
}

// ---- sources

const (
	maxNameLen   = 100
	maxGroups    = 50
	maxGroupLen  = 256
	keyPrefix    = "pbsk_"
	maxTextBytes = 16 << 10
)

func invalidSource(msg string) error { return fault.New(fault.Invalid, "invalid_source", msg) }

func checkName(name string) error {
	if strings.TrimSpace(name) == "" {
		return invalidSource("A source needs a name.")
	}
	if len([]rune(name)) > maxNameLen {
		return invalidSource(fmt.Sprintf("A source's name is at most %d characters.", maxNameLen))
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return invalidSource("A source's name may not hold control characters.")
		}
	}
	return nil
}

func cleanGroups(groups []string) ([]string, error) {
	if len(groups) > maxGroups {
		return nil, invalidSource(fmt.Sprintf("A source has at most %d groups.", maxGroups))
	}
	out := []string{}
	for _, g := range groups {
		g = strings.TrimSpace(g)
		if g == "" || len(g) > maxGroupLen {
			return nil, invalidSource(fmt.Sprintf("Each group is a name of 1 to %d characters.", maxGroupLen))
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// CreateSource adds a source (POST /api/admin/sources).
func (s *Service) CreateSource(ctx context.Context, by Actor, name string, groups []string) (Source, error) {
	name = strings.TrimSpace(name)
	if err := checkName(name); err != nil {
		return Source{}, err
	}
	g, err := cleanGroups(groups)
	if err != nil {
		return Source{}, err
	}
	src := Source{ID: uuid.NewString(), Tenant: by.Tenant, Name: name, Groups: g, CreatedAt: s.stamp(), CreatedBy: by.label()}
	if err := s.store.CreateSource(ctx, src); err != nil {
		return Source{}, unavailable(err)
	}
	s.record(ctx, by, "source.create", src.ID, map[string]string{"name": name})
	return src, nil
}

// Sources lists the tenant's sources, each saying whether the caller (its
// roles and groups) may target it in a rule: an automation user, and the
// source's groups empty or sharing one with the caller's.
func (s *Service) Sources(ctx context.Context, tenant string, automation bool, groups []string) ([]SourceView, error) {
	list, err := s.store.ListSources(ctx, tenant)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]SourceView, 0, len(list))
	for _, src := range list {
		out = append(out, SourceView{Source: src, Accessible: Accessible(src, automation, groups)})
	}
	return out, nil
}

// Accessible says whether a caller may target src (rules, posting as a
// user).
func Accessible(src Source, automation bool, groups []string) bool {
	if !automation {
		return false
	}
	if len(src.Groups) == 0 {
		return true
	}
	for _, g := range src.Groups {
		if slices.Contains(groups, g) {
			return true
		}
	}
	return false
}

// Source is one source of the tenant.
func (s *Service) Source(ctx context.Context, tenant, id string) (Source, error) {
	src, err := s.store.GetSource(ctx, tenant, id)
	return src, unavailable(err)
}

// SourceByName is one source of the tenant by name (case-insensitively).
func (s *Service) SourceByName(ctx context.Context, tenant, name string) (Source, error) {
	src, err := s.store.GetSourceByName(ctx, tenant, name)
	return src, unavailable(err)
}

// DeleteSource removes a source and its keys; its alerts stay.
func (s *Service) DeleteSource(ctx context.Context, by Actor, id string) error {
	if err := s.store.DeleteSource(ctx, by.Tenant, id); err != nil {
		return unavailable(err)
	}
	s.record(ctx, by, "source.delete", id, nil)
	return nil
}

// Keys lists a source's keys (never a key itself).
func (s *Service) Keys(ctx context.Context, tenant, sourceID string) ([]Key, error) {
	if _, err := s.store.GetSource(ctx, tenant, sourceID); err != nil {
		return nil, unavailable(err)
	}
	keys, err := s.store.ListKeys(ctx, tenant, sourceID)
	return keys, unavailable(err)
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// CreateKey makes an ingestion key for a source. The key is returned this
// once; only its SHA-256 is kept. Its id is inside it, so checking a key
// reads one row by id and compares hashes in constant time: no look-up by
// the secret itself.
func (s *Service) CreateKey(ctx context.Context, by Actor, sourceID string) (NewKey, error) {
	id := uuid.New()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return NewKey{}, err
	}
	key := keyPrefix + strings.ReplaceAll(id.String(), "-", "") + "_" + base64.RawURLEncoding.EncodeToString(secret)
	k := Key{ID: id.String(), Tenant: by.Tenant, SourceID: sourceID, Hash: hashKey(key), CreatedAt: s.stamp(), CreatedBy: by.label()}
	if err := s.store.AddKey(ctx, k); err != nil {
		return NewKey{}, unavailable(err)
	}
	s.record(ctx, by, "source.key.create", sourceID, map[string]string{"keyId": k.ID})
	return NewKey{ID: k.ID, Key: key}, nil
}

// DeleteKey revokes a key at once.
func (s *Service) DeleteKey(ctx context.Context, by Actor, sourceID, keyID string) error {
	if err := s.store.DeleteKey(ctx, by.Tenant, sourceID, keyID); err != nil {
		return unavailable(err)
	}
	s.record(ctx, by, "source.key.delete", sourceID, map[string]string{"keyId": keyID})
	return nil
}

// ErrBadKey is a source key that is not (or no longer) valid.
var ErrBadKey = fault.New(fault.Forbidden, "unauthenticated", "This source key is not valid.")

// Authenticate finds the source of an ingestion key. ErrBadKey for any
// key that is malformed, unknown, revoked or of a deleted source.
func (s *Service) Authenticate(ctx context.Context, key string) (Source, error) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok || len(key) > 200 {
		return Source{}, ErrBadKey
	}
	rawID, _, ok := strings.Cut(rest, "_")
	id, err := uuid.Parse(rawID)
	if !ok || err != nil || len(rawID) != 32 {
		return Source{}, ErrBadKey
	}
	k, err := s.store.GetKey(ctx, id.String())
	if errors.Is(err, ErrKeyNotFound) {
		return Source{}, ErrBadKey
	}
	if err != nil {
		return Source{}, unavailable(err)
	}
	if subtle.ConstantTimeCompare(hashKey(key), k.Hash) != 1 {
		return Source{}, ErrBadKey
	}
	src, err := s.store.GetSource(ctx, k.Tenant, k.SourceID)
	if errors.Is(err, ErrSourceNotFound) {
		return Source{}, ErrBadKey
	}
	return src, unavailable(err)
}

// ---- ingestion

// Ingest stores the alerts of one POST /api/alerts body for src: each new
// id is created, a known one replaced when its lastUpdateDateTime is
// newer, otherwise left as it is. by is who posted (the source itself, or
// a user). The post is stored whole or not at all: a refused alert (a bad
// field, or an id another source's alert has, OtherSource) refuses all of
// it.
func (s *Service) Ingest(ctx context.Context, src Source, by Actor, body []byte) ([]Result, error) {
	in, err := Parse(body, s.now())
	if err != nil {
		return nil, err
	}
	now := s.stamp()
	puts := make([]Put, 0, len(in))
	for _, a := range in {
		puts = append(puts, Put{
			Alert: Alert{Tenant: src.Tenant, ID: a.ID, SourceID: src.ID, SourceName: src.Name, IncidentID: a.IncidentID,
				Title: a.Title, Severity: a.Severity, Status: a.Status, CreatedAt: a.CreatedAt, SourceUpdatedAt: a.LastUpdate,
				ReceivedAt: now, UpdatedAt: now, JSON: a.JSON},
			OnCreate: Activity{At: now, Kind: KindCreated, Actor: by.label(), Detail: "alert received from source " + src.Name},
			OnUpdate: Activity{At: now, Kind: KindUpdated, Actor: by.label(), Detail: "alert updated by source " + src.Name},
		})
	}
	outcomes, err := s.store.PutAlerts(ctx, puts)
	if err != nil {
		if f, ok := fault.As(err); ok && f.Code == CodeAlertOtherSource {
			// A misconfigured sender, or a key used to tamper with
			// another source's alerts: worth an operator's look.
			s.log.Warn("alert: post of another source's alert refused", "tenant", src.Tenant, "source", src.ID,
				"by", by.label(), "alert", f.Details["id"])
		}
		return nil, unavailable(err)
	}
	out := make([]Result, 0, len(in))
	for i, a := range in {
		out = append(out, Result{ID: a.ID, Created: outcomes[i] == Created, Runs: []string{}})
	}
	return out, nil
}

// ---- reading

// Get is one alert of the tenant.
func (s *Service) Get(ctx context.Context, tenant, id string) (Alert, error) {
	a, err := s.store.GetAlert(ctx, tenant, id)
	return a, unavailable(err)
}

// List lists alerts, each with its "source".
func (s *Service) List(ctx context.Context, tenant string, f Filter) ([]json.RawMessage, error) {
	list, err := s.store.ListAlerts(ctx, tenant, f)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]json.RawMessage, 0, len(list))
	for _, a := range list {
		b, err := withFields(a, map[string]any{"source": SourceRef{ID: a.SourceID, Name: a.SourceName}})
		if err != nil {
			return nil, unavailable(err)
		}
		out = append(out, b)
	}
	return out, nil
}

// View is GET /api/alerts/{id}: the alert plus "source" and "activity".
func (s *Service) View(ctx context.Context, tenant, id string) (json.RawMessage, error) {
	a, err := s.Get(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	act, err := s.store.Activity(ctx, tenant, []string{id})
	if err != nil {
		return nil, unavailable(err)
	}
	b, err := withFields(a, map[string]any{"source": SourceRef{ID: a.SourceID, Name: a.SourceName}, "activity": act})
	return b, unavailable(err)
}

// Activity is an alert's history, oldest first.
func (s *Service) Activity(ctx context.Context, tenant, id string) ([]Activity, error) {
	if _, err := s.Get(ctx, tenant, id); err != nil {
		return nil, err
	}
	act, err := s.store.Activity(ctx, tenant, []string{id})
	return act, unavailable(err)
}

// Incident is an incident's alerts and their merged activity.
func (s *Service) Incident(ctx context.Context, tenant, id string) (Incident, error) {
	if id == "" {
		return Incident{}, ErrIncidentNotFound
	}
	list, err := s.store.ListAlerts(ctx, tenant, Filter{IncidentID: id})
	if err != nil {
		return Incident{}, unavailable(err)
	}
	if len(list) == 0 {
		return Incident{}, ErrIncidentNotFound
	}
	inc := Incident{ID: id, Alerts: []json.RawMessage{}}
	ids := make([]string, 0, len(list))
	for _, a := range list {
		b, err := withFields(a, map[string]any{"source": SourceRef{ID: a.SourceID, Name: a.SourceName}})
		if err != nil {
			return Incident{}, unavailable(err)
		}
		inc.Alerts = append(inc.Alerts, b)
		ids = append(ids, a.ID)
	}
	if inc.Activity, err = s.store.Activity(ctx, tenant, ids); err != nil {
		return Incident{}, unavailable(err)
	}
	return inc, nil
}

// Incidents lists the tenant's incidents, latest first.
func (s *Service) Incidents(ctx context.Context, tenant string, limit int) ([]IncidentSummary, error) {
	list, err := s.store.Incidents(ctx, tenant, limit)
	return list, unavailable(err)
}

// ---- changes

func invalidUpdate(field, msg string) error {
	return fault.New(fault.Invalid, "invalid_alert_update", msg).With("field", field)
}

func checkEnum(field string, o Opt, allowed []string, nullable bool) error {
	if !o.Present {
		return nil
	}
	if o.Null {
		if nullable {
			return nil
		}
		return invalidUpdate(field, fmt.Sprintf("%s cannot be null.", field))
	}
	if !slices.Contains(allowed, o.Value) {
		return invalidUpdate(field, fmt.Sprintf("%s %q is not one of %s.", field, o.Value, strings.Join(allowed, ", ")))
	}
	return nil
}

// Update changes an alert's status, assignedTo, classification or
// determination (absent fields stay), and records one "updated" row.
func (s *Service) Update(ctx context.Context, tenant, id string, by Actor, u Update) (Alert, error) {
	if !u.Status.Present && !u.AssignedTo.Present && !u.Classification.Present && !u.Determination.Present {
		return Alert{}, invalidUpdate("", "Name at least one of status, assignedTo, classification, determination.")
	}
	if err := checkEnum("status", u.Status, Statuses, false); err != nil {
		return Alert{}, err
	}
	if err := checkEnum("classification", u.Classification, Classifications, true); err != nil {
		return Alert{}, err
	}
	if err := checkEnum("determination", u.Determination, Determinations, true); err != nil {
		return Alert{}, err
	}
	if u.AssignedTo.Present && !u.AssignedTo.Null {
		if len(u.AssignedTo.Value) > maxGroupLen || strings.TrimSpace(u.AssignedTo.Value) == "" {
			return Alert{}, invalidUpdate("assignedTo", fmt.Sprintf("assignedTo is a name of 1 to %d characters, or null to unassign.", maxGroupLen))
		}
	}
	a, err := s.store.ModifyAlert(ctx, tenant, id, func(a *Alert) ([]Activity, error) {
		var m map[string]any
		if err := json.Unmarshal(a.JSON, &m); err != nil {
			return nil, err
		}
		now := s.stamp()
		var changes []string
		set := func(field string, o Opt) {
			if !o.Present {
				return
			}
			var v any
			shown := "none"
			if !o.Null {
				v, shown = o.Value, o.Value
			}
			if m[field] == v {
				return
			}
			m[field] = v
			changes = append(changes, field+" → "+shown)
		}
		set("status", u.Status)
		set("assignedTo", u.AssignedTo)
		set("classification", u.Classification)
		set("determination", u.Determination)
		if len(changes) == 0 {
			return nil, nil
		}
		if u.Status.Present {
			a.Status = u.Status.Value
			if a.Status == "resolved" {
				m["resolvedDateTime"] = now.Format(time.RFC3339Nano)
			} else {
				m["resolvedDateTime"] = nil
			}
		}
		m["lastUpdateDateTime"] = now.Format(time.RFC3339Nano)
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		a.JSON, a.UpdatedAt = b, now
		return []Activity{{At: now, Kind: KindUpdated, Actor: by.label(), Detail: strings.Join(changes, ", ")}}, nil
	})
	return a, unavailable(err)
}

// Comment adds a comment: to the alert's own "comments" (Graph's
// alertComment shape, so a playbook reading the alert sees it) and as a
// "comment" row of its activity.
func (s *Service) Comment(ctx context.Context, tenant, id string, by Actor, text string) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return fault.New(fault.Invalid, "invalid_comment", "A comment needs some text.")
	}
	if len(text) > maxTextBytes {
		return fault.New(fault.Invalid, "invalid_comment", fmt.Sprintf("A comment is at most %d bytes.", maxTextBytes))
	}
	_, err := s.store.ModifyAlert(ctx, tenant, id, func(a *Alert) ([]Activity, error) {
		var m map[string]any
		if err := json.Unmarshal(a.JSON, &m); err != nil {
			return nil, err
		}
		now := s.stamp()
		list, _ := m["comments"].([]any)
		m["comments"] = append(list, map[string]any{"comment": text, "createdByDisplayName": by.label(),
			"createdDateTime": now.Format(time.RFC3339Nano)})
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		a.JSON, a.UpdatedAt = b, now
		return []Activity{{At: now, Kind: KindComment, Actor: by.label(), Detail: text}}, nil
	})
	return unavailable(err)
}

// RecordRun adds or updates the "run" row of row.RunID in the alert's
// activity.
func (s *Service) RecordRun(ctx context.Context, tenant, alertID string, row RunActivity) error {
	if row.RunID == "" || row.Status == "" {
		return errors.New("alert: a run row needs a run id and a status")
	}
	if row.At.IsZero() {
		row.At = s.stamp()
	}
	row.At = row.At.UTC().Round(0)
	if row.Actor == "" {
		row.Actor = "system"
	}
	r := row
	return unavailable(s.store.PutRunActivity(ctx, tenant, alertID, Activity{At: row.At, Kind: KindRun, Actor: row.Actor,
		Detail: row.detail(), RunID: row.RunID, Run: &r}))
}
