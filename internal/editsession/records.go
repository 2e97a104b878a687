package editsession

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// Records connects sessions to the playbook records: saving collects the
// session's folder into a new version, and opening an existing playbook
// seeds its folder with the current version.
type Records struct {
	Store         playbook.Store
	Validator     *playbook.Validator
	Limits        playbook.Limits
	PlaybookLimit int
}

func (r *Records) validate() error {
	if r.Store == nil || r.Validator == nil || r.PlaybookLimit <= 0 {
		return errors.New("editsession: records need a store, a validator and a positive playbook limit")
	}
	return nil
}

// recordsCatalog answers the session service's questions from the store.
type recordsCatalog struct{ r *Records }

func (c recordsCatalog) PlaybookName(ctx context.Context, tenant, id string) (string, error) {
	p, err := c.r.Store.Get(ctx, tenant, id)
	if errors.Is(err, playbook.ErrNotFound) {
		return "", ErrPlaybookNotFound
	}
	return p.Name, err
}

func (c recordsCatalog) CheckNewName(ctx context.Context, tenant, name string) error {
	if _, err := c.r.Store.GetByName(ctx, tenant, name); err == nil {
		return nameTaken(name)
	} else if !errors.Is(err, playbook.ErrNotFound) {
		return err
	}
	n, err := c.r.Store.Count(ctx, tenant)
	if err != nil {
		return err
	}
	if n >= c.r.PlaybookLimit {
		return limitReached(c.r.PlaybookLimit)
	}
	return nil
}

func nameTaken(name string) error {
	return fault.New(fault.Conflict, "playbook_name_taken",
		fmt.Sprintf("A playbook called %q exists already. Open it from the list, or choose another name.", name))
}

func limitReached(limit int) error {
	return fault.New(fault.Conflict, "playbook_limit",
		fmt.Sprintf("Your organisation has reached its limit of %d playbooks. Delete one you no longer need first.", limit))
}

var errNoRecords = fault.New(fault.NotImplemented, "not_implemented", "Saving and validating playbooks is not available on this gateway.")

// Saved is the result of a save.
type Saved struct {
	Playbook playbook.Playbook `json:"playbook"`
	Version  playbook.Version  `json:"version"`
	// Skipped names what the folder held but the save left out.
	Skipped []playbook.Problem `json:"skipped,omitempty"`
}

// Save collects the session's folder, validates it and stores it as a new
// version (creating the playbook, disabled, on its first save). who is the
// session's owner, from the portal or from the workspace's token.
func (s *Service) Save(ctx context.Context, who Identity, id string) (*Saved, error) {
	if s.records == nil {
		return nil, errNoRecords
	}
	l, err := s.saver(ctx, who, id)
	if err != nil {
		return nil, err
	}
	bundle, report, err := s.check(ctx, l)
	if err != nil {
		return nil, err
	}
	if !report.Passed() {
		return nil, fault.New(fault.Rejected, "validation_failed",
			fmt.Sprintf("The playbook did not pass validation (%d problem(s)); nothing was saved, your files are unchanged.", len(report.Errors))).
			With("problems", report.Errors)
	}
	readme, mermaid := playbook.Documentation(bundle)
	p, v, err := s.storeVersion(ctx, who, l, playbook.NewVersion{
		SavedBy: l.holder.UserName, Fence: l.holder.Fence, Files: bundle.Files, Report: report,
		Description: playbook.ManifestDescription(bundle), Documentation: readme, FlowDiagram: mermaid,
	})
	if err != nil {
		return nil, err
	}
	// No activity is recorded here: a save may come from the workspace
	// (an agent in a loop), which must not keep a session alive.
	s.record(ctx, Identity{ID: who.ID, Name: l.holder.UserName, Tenant: who.Tenant}, "playbook.save", p.ID, map[string]string{"name": p.Name, "version": strconv.Itoa(v.Number), "session": id})
	return &Saved{Playbook: p, Version: v, Skipped: bundle.Skipped}, nil
}

// saver is who's live session id, still holding its playbook with its
// fencing token: the only session that may save.
func (s *Service) saver(ctx context.Context, who Identity, id string) (*live, error) {
	s.mu.Lock()
	l := s.live[id]
	s.mu.Unlock()
	if l == nil || l.holder.UserID != who.ID || l.holder.Tenant != who.Tenant {
		if l == nil && s.EndedReason(id) == "" {
			if _, err := s.Get(ctx, who, id); errors.Is(err, ErrNotFound) {
				return nil, ErrNotFound
			}
		}
		return nil, errStaleSession
	}
	sess := s.sessionOf(l, workspace.PhaseReady)
	if err := s.CheckFence(ctx, &sess); err != nil {
		if fault.KindOf(err) == fault.Unavailable {
			return nil, err
		}
		return nil, errStaleSession
	}
	return l, nil
}

// storeVersion stores nv as the first version of a new playbook or the
// next of the session's playbook, one save at a time.
func (s *Service) storeVersion(ctx context.Context, who Identity, l *live, nv playbook.NewVersion) (playbook.Playbook, playbook.Version, error) {
	r := s.records
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	pid := l.rec.PlaybookID
	s.mu.Unlock()
	if pid != nil {
		// Fencing in the store too: a version saved by a newer session of
		// this playbook means this one is stale, whatever the lock says.
		if vs, err := r.Store.Versions(ctx, who.Tenant, *pid); err == nil && len(vs) > 0 && vs[0].Fence > l.holder.Fence {
			return playbook.Playbook{}, playbook.Version{}, errStaleSession
		}
		return r.Store.AddVersion(ctx, who.Tenant, *pid, nv)
	}
	// The playbook takes the id reserved at the session's start, which its
	// folder is named after.
	nv.ID = l.rec.ReservedID
	p, v, err := r.Store.Create(ctx, who.Tenant, l.rec.Name, r.PlaybookLimit, nv)
	switch {
	case errors.Is(err, playbook.ErrNameTaken):
		return p, v, nameTaken(l.rec.Name)
	case errors.Is(err, playbook.ErrLimit):
		return p, v, limitReached(r.PlaybookLimit)
	case err != nil:
		return p, v, err
	}
	// From now on the session edits that playbook.
	idCopy := p.ID
	s.mu.Lock()
	l.rec.PlaybookID = &idCopy
	l.rec.ReservedID = ""
	raw, _ := json.Marshal(l.rec)
	s.mu.Unlock()
	_ = s.store.Set(ctx, recordPrefix+l.holder.SessionID, raw, s.cfg.TTL)
	return p, v, nil
}

// check collects the session's folder and validates it, without saving.
// A folder that cannot be collected at all is a Rejected fault. The
// folder is collected once the validator has a checker free for it, so
// that saves waiting for one hold no files; when none frees up in time,
// the validator's too_busy refusal is passed on as it is.
func (s *Service) check(ctx context.Context, l *live) (*playbook.Bundle, playbook.Report, error) {
	return s.records.Validator.CollectAndValidate(ctx, func() (*playbook.Bundle, error) {
		rc, err := s.ws.CopyOut(ctx, l.rec.WorkspaceKey, l.rec.Folder)
		if errors.Is(err, workspace.ErrNotFound) {
			return nil, fault.New(fault.Rejected, "validation_failed",
				"The playbook folder is empty: write playbook.py and README.md first.").
				With("problems", []playbook.Problem{{Path: "playbook.py", Message: "playbook.py is missing"}})
		}
		if err != nil {
			return nil, filesUnreadable(err)
		}
		bundle, err := playbook.Collect(rc, s.records.Limits)
		rc.Close()
		var ce *playbook.CollectError
		if errors.As(err, &ce) {
			return nil, fault.New(fault.Rejected, "validation_failed",
				fmt.Sprintf("The playbook folder cannot be saved as it is (%d problem(s)); nothing was saved, your files are unchanged.", len(ce.Problems))).
				With("problems", ce.Problems)
		}
		if err != nil {
			return nil, filesUnreadable(err)
		}
		return bundle, nil
	})
}

func filesUnreadable(cause error) error {
	return fault.Wrap(fault.Unavailable, "workspace_unavailable", "The workspace's files cannot be read right now. Try again in a moment.", cause)
}

// Validate runs Save's checks on the session's folder and reports what
// they find, saving nothing (the agent's validate tool).
func (s *Service) Validate(ctx context.Context, who Identity, id string) (playbook.Report, error) {
	if s.records == nil {
		return playbook.Report{}, errNoRecords
	}
	s.mu.Lock()
	l := s.live[id]
	s.mu.Unlock()
	if l == nil || l.holder.UserID != who.ID || l.holder.Tenant != who.Tenant {
		return playbook.Report{}, ErrNotFound
	}
	_, report, err := s.check(ctx, l)
	if f, ok := fault.As(err); ok && f.Code == "validation_failed" {
		// For validation, a folder that cannot be collected is a finding.
		problems, _ := f.Details["problems"].([]playbook.Problem)
		return playbook.Report{Errors: problems}, nil
	}
	return report, err
}

var errStaleSession = fault.New(fault.Conflict, "stale_session",
	"This editor lost its edit session (it was taken over, ended or expired), so it cannot save. Your files are still in your workspace: reopen the playbook from the portal and save again.")

// prepare makes the session's folder ready once the workspace is: it
// creates the folder and, for a saved playbook, writes its current version
// into it unless the folder already holds other work, which is kept (the
// session's notice says so).
func (s *Service) prepare(ctx context.Context, l *live, who Identity) {
	defer l.prepared.Store(true)
	st, err := s.ws.Wait(ctx, who.Tenant, who.ID)
	if err != nil || st.State != workspace.PhaseReady {
		return
	}
	key := l.rec.WorkspaceKey
	// An empty archive only creates the folder (the workbench opens it).
	if err := s.ws.CopyIn(ctx, key, l.rec.Folder, tarOf(nil)); err != nil {
		s.log.Error("create the playbook folder", "session", l.holder.SessionID, "err", err)
		s.setNotice(l, "The playbook folder could not be created in your workspace.")
		return
	}
	if s.records == nil || l.rec.PlaybookID == nil {
		return
	}
	s.seed(ctx, l, who)
}

// seed writes the playbook's current version into its folder.
func (s *Service) seed(ctx context.Context, l *live, who Identity) {
	r := s.records
	p, err := r.Store.Get(ctx, who.Tenant, *l.rec.PlaybookID)
	if err != nil {
		s.setNotice(l, "The saved version could not be loaded into your workspace: "+err.Error())
		return
	}
	_, files, err := r.Store.Version(ctx, who.Tenant, p.ID, p.CurrentVersion)
	if err != nil {
		s.setNotice(l, "The saved version could not be loaded into your workspace: "+err.Error())
		return
	}
	key := l.rec.WorkspaceKey
	if rc, err := s.ws.CopyOut(ctx, key, l.rec.Folder); err == nil {
		// Generous limits: this only compares; any folder it cannot read
		// whole counts as unsaved work and is left alone.
		existing, cerr := playbook.Collect(rc, playbook.Limits{MaxFiles: 2000, MaxTotal: 64 << 20, MaxFile: 16 << 20, MaxEntries: 10000})
		rc.Close()
		if cerr != nil || (len(existing.Files) > 0 && !sameFiles(existing.Files, files)) {
			s.setNotice(l, fmt.Sprintf("Your workspace already held unsaved changes to %q; they were kept. Save to make them version %d, or discard them in the editor.", p.Name, p.CurrentVersion+1))
			return
		}
		if len(existing.Files) > 0 {
			return // already the current version
		}
	}
	if err := s.ws.CopyIn(ctx, key, l.rec.Folder, tarOf(files)); err != nil {
		s.log.Error("seed the playbook folder", "session", l.holder.SessionID, "err", err)
		s.setNotice(l, "The saved version could not be written into your workspace.")
	}
}

func (s *Service) setNotice(l *live, msg string) { l.notice.Store(&msg) }

func sameFiles(a []playbook.File, b []playbook.File) bool {
	if len(a) != len(b) {
		return false
	}
	digest := func(fs []playbook.File) []string {
		out := make([]string, len(fs))
		for i, f := range fs {
			sum := sha256.Sum256(f.Content)
			out[i] = f.Path + "\x00" + string(sum[:])
		}
		sort.Strings(out)
		return out
	}
	da, db := digest(a), digest(b)
	for i := range da {
		if da[i] != db[i] {
			return false
		}
	}
	return true
}

func tarOf(files []playbook.File) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		_ = tw.WriteHeader(&tar.Header{Name: f.Path, Mode: 0o644, Size: int64(len(f.Content)), Typeflag: tar.TypeReg, ModTime: time.Now()})
		_, _ = tw.Write(f.Content)
	}
	_ = tw.Close()
	return &buf
}

// RecordAudit writes the audit entry of a playbook change made outside a
// session (activation, deletion).
func (s *Service) RecordAudit(ctx context.Context, who Identity, action, target string, detail map[string]string) {
	s.record(ctx, who, action, target, detail)
}

// Editing returns the live session editing the named playbook, if any.
func (s *Service) Editing(ctx context.Context, tenant, name string) (*Session, error) {
	h, err := s.locks.PlaybookHolder(ctx, tenant, LockKey(name))
	if err != nil {
		if errors.Is(err, editlock.ErrNotHeld) {
			return nil, nil
		}
		return nil, unavailable(err)
	}
	return s.describe(ctx, h), nil
}
