package kv

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Memory is the single-node Store. Expired entries are dropped when read
// and swept now and then on writes, so no background goroutine is needed.
type Memory struct {
	mu        sync.Mutex
	items     map[string]memItem
	now       func() time.Time
	lastSweep time.Time
}

type memItem struct {
	value   []byte
	expires time.Time
}

var _ Store = (*Memory)(nil)

// sweepEvery bounds how often a write pays for a full sweep.
const sweepEvery = time.Minute

// NewMemory returns an empty in-memory store. now may be nil (time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{items: map[string]memItem{}, now: now, lastSweep: now()}
}

func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[key]
	if !ok || !m.now().Before(it.expires) {
		delete(m.items, key)
		return nil, ErrNotFound
	}
	return append([]byte(nil), it.value...), nil
}

func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("kv: ttl must be positive")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.Sub(m.lastSweep) > sweepEvery {
		for k, it := range m.items {
			if !now.Before(it.expires) {
				delete(m.items, k)
			}
		}
		m.lastSweep = now
	}
	m.items[key] = memItem{value: append([]byte(nil), value...), expires: now.Add(ttl)}
	return nil
}

func (m *Memory) Take(ctx context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[key]
	delete(m.items, key)
	if !ok || !m.now().Before(it.expires) {
		return nil, ErrNotFound
	}
	return it.value, nil
}

func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
	return nil
}

func (m *Memory) Ping(context.Context) error { return nil }
func (m *Memory) Name() string               { return "memory" }
func (m *Memory) Close() error               { return nil }
