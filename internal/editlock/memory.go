package editlock

import (
	"context"
	"sync"
	"time"
)

// Memory is the single-gateway Locker. It keeps the same three locks as
// Redis (per user, per playbook, per session) with one expiry per session;
// expired entries are dropped when met and swept now and then on writes,
// so no background goroutine is needed.
type Memory struct {
	mu        sync.Mutex
	now       func() time.Time
	sessions  map[tenantID]*memSession // by session id
	users     map[tenantID]string      // user id → session id
	playbooks map[tenantID]string      // playbook → session id
	fences    map[tenantID]memFence    // playbook → newest fence
	lastSweep time.Time
}

type tenantID struct{ tenant, id string }

type memSession struct {
	h       Holder
	expires time.Time
}

type memFence struct {
	n       int64
	expires time.Time
}

var _ Locker = (*Memory)(nil)

// sweepEvery bounds how often a write pays for a full sweep.
const sweepEvery = time.Minute

// NewMemory returns an empty in-memory Locker. now is its clock for leases,
// AcquiredAt and fence seeds; nil means time.Now.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now:       now,
		sessions:  map[tenantID]*memSession{},
		users:     map[tenantID]string{},
		playbooks: map[tenantID]string{},
		fences:    map[tenantID]memFence{},
		lastSweep: now(),
	}
}

// session returns the live session, dropping it when it has expired.
// Callers hold mu.
func (m *Memory) session(tenant, sid string, now time.Time) *memSession {
	s, ok := m.sessions[tenantID{tenant, sid}]
	if !ok {
		return nil
	}
	if !now.Before(s.expires) {
		m.drop(s)
		return nil
	}
	return s
}

// holderOf returns the live session an index entry names, forgetting the
// entry when that session is gone. Callers hold mu.
func (m *Memory) holderOf(index map[tenantID]string, key tenantID, now time.Time) *memSession {
	sid, ok := index[key]
	if !ok {
		return nil
	}
	s := m.session(key.tenant, sid, now)
	if s == nil {
		delete(index, key)
	}
	return s
}

// drop deletes a session and the index entries that still name it.
func (m *Memory) drop(s *memSession) {
	h := s.h
	delete(m.sessions, tenantID{h.Tenant, h.SessionID})
	if u := (tenantID{h.Tenant, h.UserID}); m.users[u] == h.SessionID {
		delete(m.users, u)
	}
	if p := (tenantID{h.Tenant, h.Playbook}); m.playbooks[p] == h.SessionID {
		delete(m.playbooks, p)
	}
}

func (m *Memory) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for _, s := range m.sessions {
		if !now.Before(s.expires) {
			m.drop(s)
		}
	}
	for k, f := range m.fences {
		if !now.Before(f.expires) {
			delete(m.fences, k)
		}
	}
}

func (m *Memory) Acquire(_ context.Context, r Request) (Result, error) {
	h := r.Holder
	if err := validHolder(h); err != nil {
		return Result{}, err
	}
	if err := validTTL(r.TTL); err != nil {
		return Result{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	userKey, pbKey := tenantID{h.Tenant, h.UserID}, tenantID{h.Tenant, h.Playbook}

	if s := m.session(h.Tenant, h.SessionID, now); s != nil {
		if s.h.UserID != h.UserID || s.h.Playbook != h.Playbook {
			return Result{}, ErrSessionInUse
		}
		s.expires = now.Add(r.TTL)
		m.keepFence(pbKey, now, r.TTL)
		return Result{Holder: s.h}, nil
	}

	var taken *Holder
	if s := m.holderOf(m.playbooks, pbKey, now); s != nil {
		if s.h.UserID != h.UserID || !r.Takeover {
			return Result{}, &PlaybookLockedError{Holder: s.h}
		}
		m.drop(s)
		t := s.h
		taken = &t
	}
	if s := m.holderOf(m.users, userKey, now); s != nil {
		if !r.Takeover {
			return Result{}, &UserBusyError{Holder: s.h}
		}
		m.drop(s)
		t := s.h
		taken = &t
	}

	f, ok := m.fences[pbKey]
	if !ok || !now.Before(f.expires) {
		f.n = now.UnixMilli()
	}
	f.n++
	m.fences[pbKey] = f
	m.keepFence(pbKey, now, r.TTL)

	h.Fence = f.n
	h.AcquiredAt = stamp(now)
	m.sessions[tenantID{h.Tenant, h.SessionID}] = &memSession{h: h, expires: now.Add(r.TTL)}
	m.users[userKey] = h.SessionID
	m.playbooks[pbKey] = h.SessionID
	return Result{Holder: h, TakenOver: taken}, nil
}

func (m *Memory) keepFence(pbKey tenantID, now time.Time, ttl time.Duration) {
	if f, ok := m.fences[pbKey]; ok {
		f.expires = now.Add(fenceKeepFor(ttl))
		m.fences[pbKey] = f
	}
}

// owned returns the live session h names if it still holds both locks.
func (m *Memory) owned(h Holder, now time.Time) *memSession {
	s := m.session(h.Tenant, h.SessionID, now)
	if s == nil || m.users[tenantID{h.Tenant, h.UserID}] != h.SessionID ||
		m.playbooks[tenantID{h.Tenant, h.Playbook}] != h.SessionID {
		return nil
	}
	return s
}

func (m *Memory) Renew(_ context.Context, h Holder, ttl time.Duration) error {
	if err := validHolder(h); err != nil {
		return err
	}
	if err := validTTL(ttl); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	s := m.owned(h, now)
	if s == nil {
		return ErrLost
	}
	s.expires = now.Add(ttl)
	m.keepFence(tenantID{h.Tenant, h.Playbook}, now, ttl)
	return nil
}

func (m *Memory) Release(_ context.Context, h Holder) error {
	if err := validHolder(h); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	s := m.owned(h, now)
	if s == nil {
		// Whatever is left of the session (nothing, in practice) goes too;
		// a newer holder's locks name another session and stay.
		if s, ok := m.sessions[tenantID{h.Tenant, h.SessionID}]; ok {
			m.drop(s)
		}
		return ErrLost
	}
	m.drop(s)
	return nil
}

func (m *Memory) UserHolder(_ context.Context, tenant, userID string) (Holder, error) {
	return m.holder(m.users, tenant, userID)
}

func (m *Memory) PlaybookHolder(_ context.Context, tenant, playbook string) (Holder, error) {
	return m.holder(m.playbooks, tenant, playbook)
}

func (m *Memory) holder(index map[tenantID]string, tenant, id string) (Holder, error) {
	if err := validTenant(tenant); err != nil {
		return Holder{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.holderOf(index, tenantID{tenant, id}, m.now())
	if s == nil {
		return Holder{}, ErrNotHeld
	}
	return s.h, nil
}

func (m *Memory) ForceRelease(_ context.Context, tenant, sessionID string) (Holder, error) {
	if err := validTenant(tenant); err != nil {
		return Holder{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.session(tenant, sessionID, m.now())
	if s == nil {
		return Holder{}, ErrNotHeld
	}
	m.drop(s)
	return s.h, nil
}

func (m *Memory) CheckFence(_ context.Context, h Holder) error {
	if err := validHolder(h); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	pbKey := tenantID{h.Tenant, h.Playbook}
	s := m.holderOf(m.playbooks, pbKey, now)
	if s == nil || s.h.SessionID != h.SessionID || s.h.Fence != h.Fence {
		return ErrStaleFence
	}
	if f, ok := m.fences[pbKey]; ok && f.n != h.Fence {
		return ErrStaleFence
	}
	return nil
}

func (m *Memory) List(_ context.Context, tenant string) ([]Holder, error) {
	if err := validTenant(tenant); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := []Holder{}
	for k := range m.sessions {
		if k.tenant != tenant {
			continue
		}
		if s := m.session(k.tenant, k.id, now); s != nil {
			out = append(out, s.h)
		}
	}
	sortHolders(out)
	return out, nil
}

func (m *Memory) Ping(context.Context) error { return nil }
