// Package kv holds the gateway's small shared state (portal sessions, IDE
// tickets, counters) behind one interface, in memory for a single node or in
// Redis when several gateway replicas must agree.
package kv

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned for a key that does not exist or has expired.
var ErrNotFound = errors.New("kv: not found")

// Store is a byte-valued map with expiry. Every value has a TTL: nothing
// the gateway keeps here should outlive its purpose.
type Store interface {
	// Get returns the value under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl (> 0), replacing any older value.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Take returns the value under key and deletes it in one step, so that
	// of two concurrent callers only one gets it (single-use tickets).
	Take(ctx context.Context, key string) ([]byte, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Ping reports whether the store answers (for /readyz).
	Ping(ctx context.Context) error
	// Name says which backend this is, for logs and /readyz.
	Name() string
	Close() error
}
