// Package editlock enforces the two editing rules of Playbook Studio: a user
// has at most one edit session at a time, and a playbook has at most one
// editor. Each acquisition hands out a fencing token so that a session that
// lost its lock (expiry, takeover, an admin) cannot save over the work of the
// session that holds it now.
//
// Locks are leases: Acquire gives a TTL and the holder must Renew before it
// runs out. There are two implementations of Locker with the same behaviour:
// Redis (shared by gateway replicas; every multi-key step is one Lua script)
// and Memory (one gateway, no background goroutines).
package editlock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Holder describes who holds a lock: one edit session of one user on one
// playbook.
type Holder struct {
	SessionID string `json:"sessionId"`
	Tenant    string `json:"tenant"`
	UserID    string `json:"userId"`
	// UserName is shown to others as "being edited by <name>".
	UserName string `json:"userName"`
	// Playbook is the lock key of the playbook: its id, or "new:"+lower(name)
	// for one that is not saved yet.
	Playbook string `json:"playbook"`
	// Fence is the fencing token issued when the lock was acquired. Tokens
	// of one tenant's playbook only grow; see Locker.CheckFence.
	Fence      int64     `json:"fence"`
	AcquiredAt time.Time `json:"acquiredAt"`
}

// Request asks for a lock. Holder.Fence and Holder.AcquiredAt are ignored:
// the Locker sets them.
type Request struct {
	Holder Holder
	// TTL is the lease; at least a millisecond.
	TTL time.Duration
	// Takeover releases the user's own other session (if any) instead of
	// failing with *UserBusyError. It never touches another user's lock.
	Takeover bool
}

// Result is what Acquire got.
type Result struct {
	// Holder is the caller's lock, with its fencing token.
	Holder Holder
	// TakenOver is the user's other session that Takeover released, or nil.
	TakenOver *Holder
}

var (
	// ErrNotHeld: the lock asked about is free.
	ErrNotHeld = errors.New("editlock: not held")
	// ErrLost: the session no longer holds its lock (it expired, was taken
	// over or was force-released).
	ErrLost = errors.New("editlock: lock lost")
	// ErrStaleFence: the fencing token is not the one of the playbook's
	// current holder; the caller must not write.
	ErrStaleFence = errors.New("editlock: stale fencing token")
	// ErrSessionInUse: a live session with this id exists for another user
	// or playbook. Session ids must be unique per edit session.
	ErrSessionInUse = errors.New("editlock: session id is in use for another user or playbook")
)

// UserBusyError says the user already has another edit session.
type UserBusyError struct{ Holder Holder }

func (e *UserBusyError) Error() string {
	return fmt.Sprintf("editlock: user %s already has an edit session (%s) on %q",
		e.Holder.UserID, e.Holder.SessionID, e.Holder.Playbook)
}

// PlaybookLockedError says another session holds the playbook.
type PlaybookLockedError struct{ Holder Holder }

func (e *PlaybookLockedError) Error() string {
	return fmt.Sprintf("editlock: playbook %q is being edited by %s", e.Holder.Playbook, e.Holder.UserName)
}

// Locker hands out and checks edit locks. Every method that talks to a
// backend which cannot be reached returns a wrapped error that is none of
// the sentinel errors above, so callers can answer 503.
//
// All methods are safe for concurrent use.
type Locker interface {
	// Acquire takes the user's lock and the playbook's lock together,
	// atomically, and returns the holder with a new fencing token (one
	// counter per tenant and playbook; it only grows, also across lock
	// expiry).
	//
	// It fails, changing nothing, with
	//   - *PlaybookLockedError when another session holds the playbook: any
	//     other user's, or the same user's other session unless Takeover;
	//   - *UserBusyError when the user holds another session, unless Takeover;
	//   - ErrSessionInUse when the session id is live for another user or
	//     playbook.
	// With Takeover the user's own other session is released (its user and
	// playbook locks) in the same atomic step and returned in
	// Result.TakenOver. Re-acquiring with the session id that holds the
	// lock is idempotent: it returns the existing holder and fence and
	// extends the lease to r.TTL.
	Acquire(ctx context.Context, r Request) (Result, error)

	// Renew extends the session's locks to ttl if and only if both still
	// belong to h.SessionID (compare-and-expire); ErrLost otherwise.
	Renew(ctx context.Context, h Holder, ttl time.Duration) error

	// Release deletes the session's locks, only those that still belong to
	// h.SessionID (compare-and-delete): a newer holder's lock is never
	// touched. It returns nil when the session held its locks and ErrLost
	// when it no longer did (callers may log it; either way the session
	// holds nothing afterwards).
	Release(ctx context.Context, h Holder) error

	// UserHolder returns the session the user is editing in, or ErrNotHeld.
	UserHolder(ctx context.Context, tenant, userID string) (Holder, error)

	// PlaybookHolder returns the session editing the playbook, or
	// ErrNotHeld.
	PlaybookHolder(ctx context.Context, tenant, playbook string) (Holder, error)

	// ForceRelease (admin) releases the session's locks whoever holds
	// them and returns the holder it released, or ErrNotHeld.
	ForceRelease(ctx context.Context, tenant, sessionID string) (Holder, error)

	// CheckFence returns nil if and only if the playbook lock is held right
	// now by h.SessionID with exactly the fence h.Fence, and ErrStaleFence
	// otherwise (lock expired, taken by someone else, or an older fence).
	// Call it right before a write; Redis errors are not ErrStaleFence.
	CheckFence(ctx context.Context, h Holder) error

	// List returns the holders of all live sessions of a tenant, oldest
	// AcquiredAt first (for the admin view).
	List(ctx context.Context, tenant string) ([]Holder, error)

	// Ping reports whether the backend answers (for /readyz).
	Ping(ctx context.Context) error
}

// fenceKeep is how long an idle playbook's fence counter is kept. A counter
// that is gone (expired, or Redis lost its data) is seeded again from the
// clock in milliseconds, which is larger than any token issued before as
// long as a playbook is locked fewer than 1000 times a second on average.
const fenceKeep = 7 * 24 * time.Hour

// validTenant rejects tenants that would break the Redis hash tag {tenant}.
func validTenant(tenant string) error {
	if tenant == "" || strings.ContainsAny(tenant, "{}") {
		return fmt.Errorf("editlock: invalid tenant %q", tenant)
	}
	return nil
}

func validHolder(h Holder) error {
	if err := validTenant(h.Tenant); err != nil {
		return err
	}
	switch {
	case h.SessionID == "":
		return errors.New("editlock: empty session id")
	case h.UserID == "":
		return errors.New("editlock: empty user id")
	case h.Playbook == "":
		return errors.New("editlock: empty playbook")
	}
	return nil
}

func validTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("editlock: ttl %v is shorter than a millisecond", ttl)
	}
	return nil
}

// stamp is the AcquiredAt of a new lock: wall clock only, in UTC, so that
// both implementations return the same value after a JSON round trip.
func stamp(t time.Time) time.Time { return t.Round(0).UTC() }
