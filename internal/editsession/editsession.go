// Package editsession owns edit sessions, where edit locks, workspaces and
// playbook records meet: starting a session takes the user's and the
// playbook's locks, ensures the user's workspace, makes the playbook's
// folder there (seeded with the saved version), and mints the single-use
// ticket that opens the IDE; saving collects and validates the folder into
// a new version. A session lives while it has activity (proxied traffic,
// an open IDE, portal heartbeats) and ends when closed, taken over,
// terminated by an administrator, or left without activity for its TTL.
package editsession

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// Session is an edit session as the API shows it.
type Session struct {
	ID             string    `json:"id"`
	PlaybookID     *string   `json:"playbookId"`
	Name           string    `json:"name"`
	Folder         string    `json:"folder"`
	FencingToken   int64     `json:"fencingToken"`
	StartedAt      time.Time `json:"startedAt"`
	LastActivityAt time.Time `json:"lastActivityAt"`
	State          string    `json:"state"` // the workspace's phase
	// Notice tells the user something about opening the session (unsaved
	// work in the folder was kept).
	Notice       string `json:"notice,omitempty"`
	Tenant       string `json:"-"`
	UserID       string `json:"-"`
	UserName     string `json:"-"`
	WorkspaceKey string `json:"-"`
	// ReservedID is the id a new playbook takes at its first save (see
	// record.ReservedID); empty for a saved playbook's session.
	ReservedID string `json:"-"`
}

// Identity is the user asking, as the session package needs it.
type Identity struct {
	ID, Name, Tenant string
	Admin            bool
}

// Catalog is what sessions need from the playbook records: whether an
// existing playbook may be opened and how it is called, and whether a new
// name is free. The playbook records fill it; without them, only new
// playbooks can be opened.
type Catalog interface {
	// PlaybookName returns the name of an existing playbook of the tenant,
	// or ErrPlaybookNotFound.
	PlaybookName(ctx context.Context, tenant, id string) (string, error)
	// CheckNewName returns *Refusal (playbook_name_taken, playbook_limit)
	// when a new playbook of that name cannot be created.
	CheckNewName(ctx context.Context, tenant, name string) error
}

// Errors with a fixed meaning. Refusals are *fault.Error values (a kind,
// a code from the API contract, a sentence); package server maps kinds to
// statuses.
var (
	ErrNotFound = fault.New(fault.NotFound, "no_session", "There is no such live edit session.")
	// ErrPlaybookNotFound is what a Catalog answers for an unknown id.
	ErrPlaybookNotFound = errors.New("editsession: no such playbook")
	ErrBadTicket        = fault.New(fault.Forbidden, "bad_ticket", "This IDE link is invalid, used or expired. Open the playbook again from the portal.")
)

// unavailable is a failure of the lock or session store (Redis): the user
// can retry once it is back.
func unavailable(cause error) *fault.Error {
	return fault.Wrap(fault.Unavailable, "unavailable", "Edit sessions are unavailable right now (the lock service does not answer). Try again in a moment.", cause)
}

// Config tunes the service.
type Config struct {
	TTL        time.Duration       // EDIT_SESSION_TTL
	IDEURL     func(string) string // the IDE origin of a session id
	TicketTTL  time.Duration       // default 60 s
	Now        func() time.Time
	LiveGauge  interface{ Set(float64) }
	RenewEvery time.Duration // default TTL/3
}

// Deps are what the service works with. Records and Catalog are
// optional: without records, Save and Validate are not implemented and
// only new playbooks can be opened.
type Deps struct {
	Locks      editlock.Locker
	Workspaces *workspace.Manager
	Store      kv.Store // session records and IDE tickets
	Audit      audit.Log
	Log        *slog.Logger
	Records    *Records
	// Catalog answers "may this playbook be opened"; by default the
	// records do.
	Catalog Catalog
}

// Service runs edit sessions.
type Service struct {
	cfg     Config
	locks   editlock.Locker
	ws      *workspace.Manager
	store   kv.Store
	audit   audit.Log
	log     *slog.Logger
	catalog Catalog    // nil: only new playbooks
	records *Records   // nil: no saving
	saveMu  sync.Mutex // one save at a time: versions are numbered in order

	mu    sync.Mutex
	live  map[string]*live // sessions this gateway serves
	ended map[string]ended // recently ended, to tell the user why
	subs  []func(id, reason string)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type live struct {
	holder       editlock.Holder
	rec          record
	lastActivity atomic.Int64 // unix nanoseconds
	openConns    atomic.Int32 // open IDE connections (WebSockets)
	lastRenewed  atomic.Int64 // unix nanoseconds of the last successful renewal
	prepared     atomic.Bool  // the folder exists and holds the saved version (or kept work)
	notice       atomic.Pointer[string]
	unhold       func() // lets the workspace be culled again
}

type ended struct {
	reason         string
	at             time.Time
	tenant, userID string // the owner's, when the session was live here
}

// record is what a session keeps besides its lock.
type record struct {
	PlaybookID *string `json:"playbookId"`
	// ReservedID is, for a playbook not saved yet, the record id its first
	// save will give it: the folder is named after it from the start, so
	// it never moves and no other playbook's session opens it.
	ReservedID   string `json:"reservedId,omitempty"`
	Name         string `json:"name"`
	Folder       string `json:"folder"`
	WorkspaceKey string `json:"workspaceKey"`
}

// TicketInfo is what an IDE ticket stands for.
type TicketInfo struct {
	SessionID string `json:"sessionId"`
	UserID    string `json:"userId"`
	Tenant    string `json:"tenant"`
}

const (
	recordPrefix = "edit-session:"
	ticketPrefix = "ide-ticket:"
	endedKeep    = 15 * time.Minute
)

// New validates its dependencies; Close stops the renewal loop.
func New(cfg Config, d Deps) (*Service, error) {
	if d.Locks == nil || d.Workspaces == nil || d.Store == nil || d.Audit == nil || d.Log == nil || cfg.IDEURL == nil {
		return nil, errors.New("editsession: locks, workspaces, store, audit log, logger and IDE URL are required")
	}
	if cfg.TTL < time.Second {
		return nil, errors.New("editsession: EDIT_SESSION_TTL must be at least a second")
	}
	if cfg.TicketTTL <= 0 {
		cfg.TicketTTL = 60 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RenewEvery <= 0 {
		cfg.RenewEvery = cfg.TTL / 3
	}
	if d.Records != nil {
		if err := d.Records.validate(); err != nil {
			return nil, err
		}
		if d.Catalog == nil {
			d.Catalog = recordsCatalog{d.Records}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, locks: d.Locks, ws: d.Workspaces, store: d.Store, audit: d.Audit, log: d.Log,
		catalog: d.Catalog, records: d.Records,
		live: map[string]*live{}, ended: map[string]ended{}, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.renewLoop()
	return s, nil
}

// OnEnd registers f to be told when a session this gateway serves ends
// (the IDE proxy cuts its connections).
func (s *Service) OnEnd(f func(id, reason string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, f)
}

// StartRequest is POST /api/edit-sessions.
type StartRequest struct {
	PlaybookID string `json:"playbookId"`
	Name       string `json:"name"`
	Takeover   bool   `json:"takeover"`
}

// Started is a new session with the URL that opens its IDE.
type Started struct {
	Session
	IDEURL    string   `json:"ideUrl"`
	TakenOver *Session `json:"takenOver,omitempty"`
}

// MaxNameLen is the longest playbook name.
const MaxNameLen = 100

// ValidateName checks a playbook name: 1–100 characters, no control
// characters, not only spaces. A bad name is an Invalid fault
// (invalid_name) whose message says what is wrong.
func ValidateName(name string) error {
	bad := func(msg string) error { return fault.New(fault.Invalid, "invalid_name", msg) }
	if !utf8.ValidString(name) {
		return bad("The name is not valid UTF-8.")
	}
	n := utf8.RuneCountInString(name)
	if strings.TrimSpace(name) == "" || n > MaxNameLen {
		return bad(fmt.Sprintf("A playbook name has 1 to %d characters; this one has %d.", MaxNameLen, n))
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return bad("A playbook name cannot hold control characters (tabs, line breaks).")
		}
	}
	return nil
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// FolderFor is the folder in the workspace of the playbook with record id
// id (for one not saved yet, the id reserved for it): a readable slug of
// its name, "--", and the first 12 hex digits of the id. The id makes it
// the playbook's own: names that slug alike ("Phishing Triage",
// "phishing-triage") get different folders, and a rename keeps it. A slug
// never holds "--", so a folder of before (the plain slug) is never taken
// for a playbook's.
func FolderFor(name, id string) string {
	s := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 60 {
		s = strings.TrimRight(s[:60], "-")
	}
	if s == "" {
		s = "playbook"
	}
	short := strings.ToLower(strings.ReplaceAll(id, "-", ""))
	if len(short) > 12 {
		short = short[:12]
	}
	return s + "--" + short
}

// Start opens an edit session for who: it finds the playbook (or checks
// the new name), takes the locks, makes sure the workspace runs, and mints
// the ticket that opens the IDE.
func (s *Service) Start(ctx context.Context, who Identity, req StartRequest) (*Started, error) {
	rec, err := s.target(ctx, who, req)
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	res, takenOver, err := s.lock(ctx, who, id, rec, req.Takeover)
	if err != nil {
		return nil, err
	}
	if takenOver != nil && rec.PlaybookID == nil && takenOver.PlaybookID == nil && takenOver.ReservedID != "" &&
		LockKey(takenOver.Name) == LockKey(rec.Name) {
		// Taking over one's own session on the same new playbook carries
		// on in its folder, with the id reserved for it.
		rec.ReservedID, rec.Folder = takenOver.ReservedID, takenOver.Folder
	}
	l, st, err := s.open(ctx, who, id, rec, res.Holder)
	if err != nil {
		return nil, err
	}
	ticket, err := s.mintTicket(ctx, TicketInfo{SessionID: id, UserID: who.ID, Tenant: who.Tenant})
	if err != nil {
		s.closeLive(id, "could not issue the IDE ticket")
		return nil, unavailable(err)
	}
	s.record(ctx, who, "session.start", id, map[string]string{"playbook": rec.Name, "workspace": string(st.State)})
	return &Started{Session: s.sessionOf(l, st.State), IDEURL: s.cfg.IDEURL(id) + "/_gw/enter?ticket=" + ticket, TakenOver: takenOver}, nil
}

// target is the playbook a start asks for: an existing one by id, or a new
// one by name.
func (s *Service) target(ctx context.Context, who Identity, req StartRequest) (record, error) {
	// A name was given when the field is not empty, even if it is only
	// spaces: that is an invalid name, not a missing one. It is validated
	// as sent (control characters at its ends are refused, not trimmed
	// away) and kept without its surrounding spaces.
	rawName := req.Name
	name := strings.TrimSpace(req.Name)
	noPlaybook := fault.New(fault.NotFound, "not_found", "There is no such playbook.")
	var rec record
	switch {
	case req.PlaybookID != "" && rawName != "":
		return rec, fault.New(fault.Invalid, "bad_request", "Give either playbookId (to edit a playbook) or name (to create one), not both.")
	case req.PlaybookID != "":
		if _, err := uuid.Parse(req.PlaybookID); err != nil || s.catalog == nil {
			return rec, noPlaybook
		}
		found, err := s.catalog.PlaybookName(ctx, who.Tenant, req.PlaybookID)
		if errors.Is(err, ErrPlaybookNotFound) {
			return rec, noPlaybook
		}
		if err != nil {
			return rec, err
		}
		id := req.PlaybookID
		rec = record{PlaybookID: &id, Name: found, Folder: FolderFor(found, id)}
	case rawName != "":
		if err := ValidateName(rawName); err != nil {
			return rec, err
		}
		if s.catalog != nil {
			if err := s.catalog.CheckNewName(ctx, who.Tenant, name); err != nil {
				return rec, err
			}
		}
		reserved := uuid.NewString()
		rec = record{Name: name, ReservedID: reserved, Folder: FolderFor(name, reserved)}
	default:
		return rec, fault.New(fault.Invalid, "bad_request", "Give playbookId (to edit a playbook) or name (to create one).")
	}
	rec.WorkspaceKey = workspace.KeyFor(who.Tenant, who.ID)
	return rec, nil
}

// lock takes the user's and the playbook's locks for session id, ending
// the user's own other session when takeover is asked.
func (s *Service) lock(ctx context.Context, who Identity, id string, rec record, takeover bool) (editlock.Result, *Session, error) {
	res, err := s.locks.Acquire(ctx, editlock.Request{
		Holder:   editlock.Holder{SessionID: id, Tenant: who.Tenant, UserID: who.ID, UserName: who.Name, Playbook: LockKey(rec.Name)},
		TTL:      s.cfg.TTL,
		Takeover: takeover,
	})
	var busy *editlock.UserBusyError
	var locked *editlock.PlaybookLockedError
	if errors.As(err, &locked) && locked.Holder.UserID == who.ID {
		// The user's own other session holds this playbook: that is "you
		// are already editing", which takeover resolves.
		busy = &editlock.UserBusyError{Holder: locked.Holder}
		err = busy
	}
	switch {
	case errors.As(err, &busy):
		other := s.describe(ctx, busy.Holder)
		return res, nil, fault.New(fault.Conflict, "user_has_session",
			fmt.Sprintf("You are already editing %q. Close it or take over from here.", other.Name)).With("session", other)
	case errors.As(err, &locked):
		return res, nil, fault.New(fault.Conflict, "playbook_locked",
			fmt.Sprintf("%q is being edited by %s.", rec.Name, locked.Holder.UserName))
	case err != nil:
		return res, nil, unavailable(err)
	}
	if res.TakenOver == nil {
		return res, nil, nil
	}
	takenOver := s.describe(ctx, *res.TakenOver)
	s.end(res.TakenOver.SessionID, "taken over by your session on another tab or device")
	_ = s.store.Delete(ctx, recordPrefix+res.TakenOver.SessionID)
	s.record(ctx, who, "session.takeover", res.TakenOver.SessionID, map[string]string{"by": id, "playbook": takenOver.Name})
	return res, takenOver, nil
}

// open makes sure the user's workspace runs, records the session and
// starts preparing its folder. On failure the locks are released.
func (s *Service) open(ctx context.Context, who Identity, id string, rec record, h editlock.Holder) (*live, workspace.Status, error) {
	st, err := s.ws.Ensure(ctx, who.Tenant, who.ID)
	if err != nil {
		_ = s.locks.Release(context.Background(), h)
		return nil, st, err
	}
	s.ws.NameOwner(who.Tenant, who.ID, who.Name)
	raw, _ := json.Marshal(rec)
	if err := s.store.Set(ctx, recordPrefix+id, raw, s.cfg.TTL); err != nil {
		_ = s.locks.Release(context.Background(), h)
		return nil, st, unavailable(err)
	}
	l := &live{holder: h, rec: rec, unhold: s.ws.Hold(rec.WorkspaceKey)}
	l.lastActivity.Store(s.cfg.Now().UnixNano())
	l.lastRenewed.Store(s.cfg.Now().UnixNano())
	s.mu.Lock()
	s.live[id] = l
	s.setGaugeLocked()
	s.mu.Unlock()
	if st.State == workspace.PhaseReady {
		// A warm workspace: the folder is ready by the time we answer, so
		// the portal can open the IDE at once.
		s.prepare(ctx, l, who)
		return l, st, nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
		defer cancel()
		s.prepare(ctx, l, who)
	}()
	return l, st, nil
}

func (s *Service) sessionOf(l *live, state workspace.Phase) Session {
	h := l.holder
	if state == workspace.PhaseReady && !l.prepared.Load() {
		// Ready for the user once the folder is there, with the saved
		// version in it.
		state = workspace.PhaseStarting
	}
	notice := ""
	if n := l.notice.Load(); n != nil {
		notice = *n
	}
	return Session{Notice: notice,
		ID: h.SessionID, PlaybookID: l.rec.PlaybookID, Name: l.rec.Name, Folder: l.rec.Folder,
		FencingToken: h.Fence, StartedAt: h.AcquiredAt.UTC(), LastActivityAt: time.Unix(0, l.lastActivity.Load()).UTC(),
		State: string(state), Tenant: h.Tenant, UserID: h.UserID, UserName: h.UserName, WorkspaceKey: l.rec.WorkspaceKey,
		ReservedID: l.rec.ReservedID,
	}
}

// describe builds a Session for a lock holder, from this gateway's memory
// or from the stored record.
func (s *Service) describe(ctx context.Context, h editlock.Holder) *Session {
	s.mu.Lock()
	l := s.live[h.SessionID]
	s.mu.Unlock()
	if l != nil {
		sess := s.sessionOf(l, s.phase(h.Tenant, h.UserID))
		return &sess
	}
	var rec record
	if raw, err := s.store.Get(ctx, recordPrefix+h.SessionID); err == nil {
		_ = json.Unmarshal(raw, &rec)
	}
	if rec.Name == "" {
		rec.Name = strings.TrimPrefix(h.Playbook, lockPrefix)
	}
	tmp := &live{holder: h, rec: rec}
	tmp.lastActivity.Store(h.AcquiredAt.UnixNano())
	tmp.prepared.Store(true) // another gateway serves it and prepares it
	sess := s.sessionOf(tmp, s.phase(h.Tenant, h.UserID))
	return &sess
}

func (s *Service) phase(tenant, user string) workspace.Phase {
	st, err := s.ws.Status(tenant, user)
	if err != nil {
		return workspace.PhaseStopped
	}
	return st.State
}

func (s *Service) mintTicket(ctx context.Context, info TicketInfo) (string, error) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	raw, _ := json.Marshal(info)
	return t, s.store.Set(ctx, ticketPrefix+hashOf(t), raw, s.cfg.TicketTTL)
}

// RedeemTicket trades a ticket for what it stands for, once.
func (s *Service) RedeemTicket(ctx context.Context, ticket string) (TicketInfo, error) {
	if ticket == "" || len(ticket) > 100 {
		return TicketInfo{}, ErrBadTicket
	}
	raw, err := s.store.Take(ctx, ticketPrefix+hashOf(ticket))
	if errors.Is(err, kv.ErrNotFound) {
		return TicketInfo{}, ErrBadTicket
	}
	if err != nil {
		return TicketInfo{}, unavailable(err)
	}
	var info TicketInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return TicketInfo{}, ErrBadTicket
	}
	return info, nil
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Current is the user's live session, or ErrNotFound.
func (s *Service) Current(ctx context.Context, who Identity) (*Session, error) {
	h, err := s.locks.UserHolder(ctx, who.Tenant, who.ID)
	if errors.Is(err, editlock.ErrNotHeld) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return s.describe(ctx, h), nil
}

// ForWorkspace is the live session a workspace's token may act for: its
// owner's current edit session, served by that very workspace. Without
// one the token is worth nothing (ErrNotFound): it lives and dies with the
// session, not with the workspace.
func (s *Service) ForWorkspace(ctx context.Context, tenant, owner, workspaceKey string) (*Session, error) {
	sess, err := s.Current(ctx, Identity{ID: owner, Tenant: tenant})
	if err != nil {
		return nil, err
	}
	if sess.WorkspaceKey != workspaceKey {
		return nil, ErrNotFound
	}
	return sess, nil
}

// EndOfUser ends who's live edit session, if any, for reason (signing out
// of the portal ends editing, and with it what the workspace token may do).
func (s *Service) EndOfUser(ctx context.Context, who Identity, reason string) error {
	h, err := s.locks.UserHolder(ctx, who.Tenant, who.ID)
	if errors.Is(err, editlock.ErrNotHeld) {
		return nil
	}
	if err != nil {
		return unavailable(err)
	}
	if err := s.locks.Release(ctx, h); err != nil && !errors.Is(err, editlock.ErrLost) {
		return unavailable(err)
	}
	_ = s.store.Delete(ctx, recordPrefix+h.SessionID)
	s.end(h.SessionID, reason)
	s.record(ctx, who, "session.end", h.SessionID, map[string]string{"reason": reason})
	return nil
}

// EndedReason tells why a session of this gateway ended recently ("" if
// it did not, or not here). For callers that already know the owner asks
// (the IDE proxy: its cookie is bound to the session); the API uses
// EndedReasonFor.
func (s *Service) EndedReason(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended[id].reason
}

// EndedReasonFor is EndedReason for the session's owner and the
// administrators of its tenant only: a reason names who ended it and why
// ("taken over", "ended by an administrator (Carol)"), which is nobody
// else's business; anyone else learns nothing, not even that it existed.
func (s *Service) EndedReasonFor(id string, who Identity) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ended[id]
	if e.tenant == "" || e.tenant != who.Tenant || (e.userID != who.ID && !who.Admin) {
		return ""
	}
	return e.reason
}

// Live returns a session this gateway serves, for the IDE proxy's check
// on every request (memory only: no round trip to Redis).
func (s *Service) Live(id string) (*Session, bool) {
	s.mu.Lock()
	l := s.live[id]
	s.mu.Unlock()
	if l == nil {
		return nil, false
	}
	sess := s.sessionOf(l, workspace.PhaseReady)
	return &sess, true
}

// Touch records activity on a session (throttling is the caller's).
func (s *Service) Touch(id string) {
	s.mu.Lock()
	l := s.live[id]
	s.mu.Unlock()
	if l != nil {
		l.lastActivity.Store(s.cfg.Now().UnixNano())
	}
}

// ConnOpened and ConnClosed count the IDE's open connections: a session
// with an open IDE is alive even when nobody types.
func (s *Service) ConnOpened(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.live[id]; l != nil {
		l.openConns.Add(1)
	}
}

func (s *Service) ConnClosed(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.live[id]; l != nil {
		if l.openConns.Add(-1) < 0 {
			l.openConns.Store(0)
		}
		l.lastActivity.Store(s.cfg.Now().UnixNano())
	}
}

// Heartbeat is the portal's sign of life for a session of who's.
func (s *Service) Heartbeat(ctx context.Context, who Identity, id string) (*Session, error) {
	s.mu.Lock()
	l := s.live[id]
	s.mu.Unlock()
	if l == nil || l.holder.UserID != who.ID || l.holder.Tenant != who.Tenant {
		return nil, ErrNotFound
	}
	l.lastActivity.Store(s.cfg.Now().UnixNano())
	sess := s.sessionOf(l, s.phase(who.Tenant, who.ID))
	return &sess, nil
}

// Get is who's session id, live.
func (s *Service) Get(ctx context.Context, who Identity, id string) (*Session, error) {
	h, err := s.holderOf(ctx, who.Tenant, id)
	if err != nil {
		return nil, err
	}
	if h.UserID != who.ID || h.Tenant != who.Tenant {
		return nil, ErrNotFound
	}
	return s.describe(ctx, h), nil
}

// End closes who's session id and releases its locks.
func (s *Service) End(ctx context.Context, who Identity, id string) error {
	h, err := s.holderOf(ctx, who.Tenant, id)
	if err != nil {
		return err
	}
	if h.UserID != who.ID || h.Tenant != who.Tenant {
		return ErrNotFound
	}
	if err := s.locks.Release(ctx, h); err != nil && !errors.Is(err, editlock.ErrLost) {
		return unavailable(err)
	}
	_ = s.store.Delete(ctx, recordPrefix+id)
	s.end(id, "closed")
	s.record(ctx, who, "session.end", id, map[string]string{"reason": "closed"})
	return nil
}

// Terminate is an administrator ending someone's session at once.
func (s *Service) Terminate(ctx context.Context, admin Identity, id string) error {
	h, err := s.locks.ForceRelease(ctx, admin.Tenant, id)
	if errors.Is(err, editlock.ErrNotHeld) {
		return ErrNotFound
	}
	if err != nil {
		return unavailable(err)
	}
	_ = s.store.Delete(ctx, recordPrefix+id)
	s.end(id, "ended by an administrator ("+admin.Name+")")
	s.record(ctx, admin, "session.terminate", id, map[string]string{"user": h.UserName, "userId": h.UserID})
	return nil
}

func (s *Service) holderOf(ctx context.Context, tenant, id string) (editlock.Holder, error) {
	s.mu.Lock()
	l := s.live[id]
	s.mu.Unlock()
	if l != nil {
		return l.holder, nil
	}
	hs, err := s.locks.List(ctx, tenant)
	if err != nil {
		return editlock.Holder{}, unavailable(err)
	}
	for _, h := range hs {
		if h.SessionID == id {
			return h, nil
		}
	}
	return editlock.Holder{}, ErrNotFound
}

// List is the administrators' view of a tenant's live sessions.
func (s *Service) List(ctx context.Context, tenant string) ([]Session, error) {
	hs, err := s.locks.List(ctx, tenant)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]Session, 0, len(hs))
	for _, h := range hs {
		out = append(out, *s.describe(ctx, h))
	}
	return out, nil
}

// CheckFence is nil while the session still holds its playbook with the
// fencing token it was given; saves call it before writing.
func (s *Service) CheckFence(ctx context.Context, sess *Session) error {
	err := s.locks.CheckFence(ctx, editlock.Holder{SessionID: sess.ID, Tenant: sess.Tenant, UserID: sess.UserID,
		Playbook: s.lockKey(sess), Fence: sess.FencingToken})
	if err != nil && !errors.Is(err, editlock.ErrStaleFence) {
		return unavailable(err)
	}
	return err
}

func (s *Service) lockKey(sess *Session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.live[sess.ID]; l != nil {
		return l.holder.Playbook
	}
	return LockKey(sess.Name)
}

const lockPrefix = "name:"

// LockKey is a playbook's edit lock: its name, case-folded. Names are
// unique per tenant and never change, so one key covers a playbook from
// before its first save (no id yet) to its last: a new playbook being
// written cannot be opened by someone else once it is saved.
func LockKey(name string) string { return lockPrefix + strings.ToLower(name) }

// end forgets a session, remembers why, and tells the subscribers (the
// proxy cuts the IDE's connections).
func (s *Service) end(id, reason string) {
	s.mu.Lock()
	l, wasLive := s.live[id]
	delete(s.live, id)
	if wasLive && l.unhold != nil {
		l.unhold()
	}
	now := s.cfg.Now()
	e := ended{reason: reason, at: now}
	if wasLive {
		e.tenant, e.userID = l.holder.Tenant, l.holder.UserID
	}
	s.ended[id] = e
	for k, e := range s.ended {
		if now.Sub(e.at) > endedKeep {
			delete(s.ended, k)
		}
	}
	s.setGaugeLocked()
	subs := append([]func(string, string){}, s.subs...)
	s.mu.Unlock()
	for _, f := range subs {
		f(id, reason)
	}
	if wasLive {
		s.log.Info("edit session ended", "session", id, "reason", reason)
	}
}

// closeLive releases a session of this gateway for an internal reason.
func (s *Service) closeLive(id, reason string) {
	s.mu.Lock()
	l := s.live[id]
	s.mu.Unlock()
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.locks.Release(ctx, l.holder)
	_ = s.store.Delete(ctx, recordPrefix+id)
	s.end(id, reason)
}

func (s *Service) setGaugeLocked() {
	if s.cfg.LiveGauge != nil {
		s.cfg.LiveGauge.Set(float64(len(s.live)))
	}
}

// renewLoop keeps the locks of active sessions and ends the others: no
// activity for the TTL, a lock that was lost, or a lock store that stopped
// answering (the session cannot be proven to be the only editor anymore).
func (s *Service) renewLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.RenewAll(s.ctx)
		}
	}
}

// RenewAll runs one round of the renewal loop (tests call it directly).
func (s *Service) RenewAll(ctx context.Context) {
	s.mu.Lock()
	ls := make([]*live, 0, len(s.live))
	for _, l := range s.live {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	now := s.cfg.Now()
	for _, l := range ls {
		id := l.holder.SessionID
		if l.openConns.Load() == 0 && now.Sub(time.Unix(0, l.lastActivity.Load())) > s.cfg.TTL {
			s.closeLive(id, fmt.Sprintf("no activity for %s", s.cfg.TTL))
			s.audit.Record(ctx, audit.Event{Tenant: l.holder.Tenant, Actor: "system", Action: "session.end", Target: id, Detail: map[string]string{"reason": "idle"}})
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := s.locks.Renew(rctx, l.holder, s.cfg.TTL)
		if err == nil {
			raw, _ := json.Marshal(l.rec)
			err = s.store.Set(rctx, recordPrefix+id, raw, s.cfg.TTL)
		}
		cancel()
		switch {
		case err == nil:
			l.lastRenewed.Store(now.UnixNano())
		case errors.Is(err, editlock.ErrLost):
			s.end(id, "the edit lock was taken over or ended elsewhere")
			s.audit.Record(ctx, audit.Event{Tenant: l.holder.Tenant, Actor: "system", Action: "session.end", Target: id, Detail: map[string]string{"reason": "lock lost"}})
		default:
			s.log.Error("edit lock renewal failed", "session", id, "err", err)
			// A blip is survived while the lease still holds past the next
			// round; after that the session can no longer be proven to be
			// the only editor, and it ends.
			if now.Sub(time.Unix(0, l.lastRenewed.Load()))+s.cfg.RenewEvery < s.cfg.TTL {
				continue
			}
			s.end(id, "the edit lock service stopped answering; your files are safe in your workspace, reopen the playbook when it is back")
			s.audit.Record(ctx, audit.Event{Tenant: l.holder.Tenant, Actor: "system", Action: "session.end", Target: id, Detail: map[string]string{"reason": "lock store unavailable"}})
		}
	}
}

func (s *Service) record(ctx context.Context, who Identity, action, target string, detail map[string]string) {
	if err := s.audit.Record(ctx, audit.Event{Tenant: who.Tenant, Actor: who.Name + " (" + who.ID + ")", Action: action, Target: target, Detail: detail}); err != nil {
		s.log.Error("audit", "action", action, "err", err)
	}
}

// Close stops the renewal loop. Sessions are not released: their locks
// expire unless another gateway renews them.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}
