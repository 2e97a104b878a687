// Package audit keeps the log of who did what and when: sign-ins, edit
// sessions starting, ending, taken over or terminated, saves and
// activations. It keeps a bounded recent tail per tenant for the portal;
// every event is also written to the gateway's structured log, which is
// where long-term retention belongs.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event is one audit entry.
type Event struct {
	At     time.Time         `json:"at"`
	Tenant string            `json:"-"`
	Actor  string            `json:"actor"`  // who (user id and name, or "system")
	Action string            `json:"action"` // e.g. sign_in, session.start, session.terminate
	Target string            `json:"target"` // what it was done to (a session or playbook id)
	Detail map[string]string `json:"detail,omitempty"`
}

// Log records and lists events.
type Log interface {
	Record(ctx context.Context, e Event) error
	// Recent returns up to limit events of tenant, newest first.
	Recent(ctx context.Context, tenant string, limit int) ([]Event, error)
}

// MaxRecent is how many events per tenant the tail keeps.
const MaxRecent = 1000

// Memory keeps the tail in this process.
type Memory struct {
	log *slog.Logger
	now func() time.Time
	mu  sync.Mutex
	by  map[string][]Event // per tenant, oldest first
}

var _ Log = (*Memory)(nil)

// NewMemory returns an empty in-process log that also writes each event
// to log.
func NewMemory(log *slog.Logger, now func() time.Time) (*Memory, error) {
	if log == nil {
		return nil, errors.New("audit: logger is required")
	}
	if now == nil {
		now = time.Now
	}
	return &Memory{log: log, now: now, by: map[string][]Event{}}, nil
}

func (m *Memory) Record(ctx context.Context, e Event) error {
	e = stamp(e, m.now)
	write(ctx, m.log, e)
	m.mu.Lock()
	defer m.mu.Unlock()
	l := append(m.by[e.Tenant], e)
	if len(l) > MaxRecent {
		l = l[len(l)-MaxRecent:]
	}
	m.by[e.Tenant] = l
	return nil
}

func (m *Memory) Recent(_ context.Context, tenant string, limit int) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.by[tenant]
	limit = clamp(limit)
	out := make([]Event, 0, min(limit, len(l)))
	for i := len(l) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, l[i])
	}
	return out, nil
}

// Redis keeps the tail in a capped Redis list per tenant, shared by
// replicas.
type Redis struct {
	client *redis.Client
	log    *slog.Logger
	now    func() time.Time
}

var _ Log = (*Redis)(nil)

// NewRedis returns a log over client.
func NewRedis(client *redis.Client, log *slog.Logger, now func() time.Time) (*Redis, error) {
	if client == nil || log == nil {
		return nil, errors.New("audit: redis client and logger are required")
	}
	if now == nil {
		now = time.Now
	}
	return &Redis{client: client, log: log, now: now}, nil
}

func redisKey(tenant string) string { return "pbs:audit:{" + tenant + "}" }

func (r *Redis) Record(ctx context.Context, e Event) error {
	e = stamp(e, r.now)
	write(ctx, r.log, e)
	raw, _ := json.Marshal(e)
	pipe := r.client.TxPipeline()
	pipe.LPush(ctx, redisKey(e.Tenant), raw)
	pipe.LTrim(ctx, redisKey(e.Tenant), 0, MaxRecent-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("audit: redis: %w", err)
	}
	return nil
}

func (r *Redis) Recent(ctx context.Context, tenant string, limit int) ([]Event, error) {
	raws, err := r.client.LRange(ctx, redisKey(tenant), 0, int64(clamp(limit))-1).Result()
	if err != nil {
		return nil, fmt.Errorf("audit: redis: %w", err)
	}
	out := make([]Event, 0, len(raws))
	for _, raw := range raws {
		var e Event
		if json.Unmarshal([]byte(raw), &e) == nil {
			e.Tenant = tenant
			out = append(out, e)
		}
	}
	return out, nil
}

func stamp(e Event, now func() time.Time) Event {
	if e.At.IsZero() {
		e.At = now().UTC()
	}
	return e
}

// write puts the event in the structured log: the durable record.
func write(ctx context.Context, log *slog.Logger, e Event) {
	log.InfoContext(ctx, "audit", "action", e.Action, "actor", e.Actor, "target", e.Target, "tenant", e.Tenant, "detail", e.Detail)
}

func clamp(limit int) int {
	if limit <= 0 || limit > MaxRecent {
		return 100
	}
	return limit
}
