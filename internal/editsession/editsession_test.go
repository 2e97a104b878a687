package editsession_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/workspace"
	"github.com/playbookstudio/gateway/internal/workspace/workspacetest"
)

var ctx = context.Background()

func TestNewValidates(t *testing.T) {
	rt := workspacetest.New()
	mgr, err := workspace.NewManager(workspace.Config{IdleTimeout: time.Minute, MaxConcurrentSpawns: 1}, rt, kv.NewMemory(nil), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	al, _ := audit.NewMemory(discard(), nil)
	good := editsession.Config{TTL: time.Minute, IDEURL: hosts.URL}
	locks, store := editlock.NewMemory(nil), kv.NewMemory(nil)
	for name, tc := range map[string]struct {
		cfg   editsession.Config
		locks editlock.Locker
		ws    *workspace.Manager
		store kv.Store
		al    audit.Log
		ok    bool
	}{
		"complete":        {cfg: good, locks: locks, ws: mgr, store: store, al: al, ok: true},
		"no locks":        {cfg: good, ws: mgr, store: store, al: al},
		"no workspaces":   {cfg: good, locks: locks, store: store, al: al},
		"no store":        {cfg: good, locks: locks, ws: mgr, al: al},
		"no audit":        {cfg: good, locks: locks, ws: mgr, store: store},
		"no IDE URL":      {cfg: editsession.Config{TTL: time.Minute}, locks: locks, ws: mgr, store: store, al: al},
		"TTL under 1s":    {cfg: editsession.Config{TTL: 999 * time.Millisecond, IDEURL: hosts.URL}, locks: locks, ws: mgr, store: store, al: al},
		"TTL zero":        {cfg: editsession.Config{IDEURL: hosts.URL}, locks: locks, ws: mgr, store: store, al: al},
		"TTL of a second": {cfg: editsession.Config{TTL: time.Second, IDEURL: hosts.URL}, locks: locks, ws: mgr, store: store, al: al, ok: true},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := editsession.New(tc.cfg, editsession.Deps{Locks: tc.locks, Workspaces: tc.ws, Store: tc.store, Audit: tc.al, Log: discard()})
			if tc.ok != (err == nil) {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			if s != nil {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if _, err := editsession.New(good, editsession.Deps{Locks: locks, Workspaces: mgr, Store: store, Audit: al}); err == nil {
		t.Fatal("New without a logger succeeded")
	}
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"x", true},
		{"Quarterly report", true},
		{strings.Repeat("a", 100), true},
		{strings.Repeat("é", 100), true}, // 100 runes, 200 bytes
		{strings.Repeat("日", 100), true}, // 100 runes, 300 bytes
		{strings.Repeat("🎲", 100), true}, // 100 runes, 400 bytes
		{strings.Repeat("a", 101), false},
		{strings.Repeat("é", 101), false},
		{"", false},
		{" ", false},
		{"     ", false},
		{"\u00a0\u2003", false}, // Unicode spaces only
		{"a\tb", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\x00b", false},
		{"a\x7fb", false},   // DEL
		{"a\u0085b", false}, // C1 control
		{"ab\xffcd", false}, // invalid UTF-8
		{"\xe6\x97", false}, // truncated multi-byte sequence
		{"  spaces around  ", true},
		{"Ünïcödé – ok", true},
	} {
		err := editsession.ValidateName(tc.name)
		if tc.ok != (err == nil) {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestFolderFor(t *testing.T) {
	folder := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*--[0-9a-f]{12}$`)
	const id = "3F2A9C1B-04DE-4a5b-8c6d-7e8f9a0b1c2d"
	for _, tc := range []struct{ name, want string }{
		{"Quarterly Report", "quarterly-report--3f2a9c1b04de"},
		{"  --Hello, World!!  ", "hello-world--3f2a9c1b04de"},
		{"v2.0 (draft)", "v2-0-draft--3f2a9c1b04de"},
		{"ALL CAPS", "all-caps--3f2a9c1b04de"},
		{strings.Repeat("ab ", 40), ""}, // checked below: a slug of at most 60, no trailing dash
		{"日本語", "playbook--3f2a9c1b04de"},
		{"!!!", "playbook--3f2a9c1b04de"},
	} {
		got := editsession.FolderFor(tc.name, id)
		if tc.want != "" && got != tc.want {
			t.Errorf("FolderFor(%q) = %q, want %q", tc.name, got, tc.want)
		}
		if !folder.MatchString(got) || len(got) > 60+2+12 {
			t.Errorf("FolderFor(%q) = %q: not slug--id of at most 74 characters", tc.name, got)
		}
		if again := editsession.FolderFor(tc.name, id); again != got {
			t.Errorf("FolderFor(%q) is not stable: %q then %q", tc.name, got, again)
		}
	}
	// Issue 12: distinct playbooks whose names slug alike get distinct
	// folders, and none is a folder of before (the plain slug).
	seen := map[string]string{}
	for i, name := range []string{"Phishing Triage", "phishing-triage", "Phishing_Triage!", "A B", "a-b"} {
		id := uuid.NewString()
		got := editsession.FolderFor(name, id)
		if other, dup := seen[got]; dup {
			t.Errorf("%q and %q share the folder %q", name, other, got)
		}
		seen[got] = name
		if legacy := strings.TrimSuffix(got, "--"+strings.ReplaceAll(id, "-", "")[:12]); legacy == got || strings.Contains(legacy, "--") {
			t.Errorf("%d: folder %q is not slug--id", i, got)
		}
	}
}

func TestStartNewPlaybook(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		f := newFixture(t, o)
		before := f.clock.Now()
		st := f.startNamed(t, alice, "Quarterly Report")

		if _, err := uuid.Parse(st.ID); err != nil {
			t.Fatalf("id %q is not a UUID", st.ID)
		}
		ticketOf(t, st)
		if st.FencingToken <= 0 {
			t.Errorf("fencingToken = %d, want > 0", st.FencingToken)
		}
		if st.PlaybookID != nil {
			t.Errorf("playbookId = %q, want null for a new playbook", *st.PlaybookID)
		}
		if st.Name != "Quarterly Report" || st.Folder != editsession.FolderFor("Quarterly Report", st.ReservedID) ||
			!strings.HasPrefix(st.Folder, "quarterly-report--") {
			t.Errorf("name, folder = %q, %q", st.Name, st.Folder)
		}
		// The workspace was ensured: its start is under way right now.
		if st.State != string(workspace.PhaseCreating) {
			t.Errorf("state = %q, want %q (the workspace's phase)", st.State, workspace.PhaseCreating)
		}
		key := workspace.KeyFor(tenant, alice.ID)
		if st.WorkspaceKey != key || st.UserID != alice.ID || st.UserName != alice.Name || st.Tenant != tenant {
			t.Errorf("session owner fields = %+v", st.Session)
		}
		if st.TakenOver != nil {
			t.Errorf("takenOver = %+v, want nil", st.TakenOver)
		}
		if st.StartedAt.Before(before.Add(-time.Second)) || st.StartedAt.Location() != time.UTC {
			t.Errorf("startedAt = %v", st.StartedAt)
		}
		f.waitReady(t, alice)
		if starts, _ := f.rt.Counts(key); starts != 1 {
			t.Errorf("workspace started %d times, want 1", starts)
		}
		// The session made the playbook's folder, which the IDE opens.
		if !f.rt.HasFolder(key, st.Folder) {
			t.Errorf("the folder %q was not created in the workspace", st.Folder)
		}
		ev := f.event(t, "session.start", st.ID)
		if ev.Detail["playbook"] != "Quarterly Report" || !strings.Contains(ev.Actor, alice.ID) {
			t.Errorf("audit event = %+v", ev)
		}
		f.mustLive(t, st.ID)
		if g := f.gauge.Value(); g != 1 {
			t.Errorf("live gauge = %v, want 1", g)
		}

		// The API's JSON shape.
		raw, _ := json.Marshal(st)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "playbookId", "name", "ideUrl", "fencingToken", "startedAt", "state"} {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON %s lacks %q", raw, k)
			}
		}
		for _, k := range []string{"takenOver", "Tenant", "UserID", "WorkspaceKey", "tenant", "userId"} {
			if _, ok := m[k]; ok {
				t.Errorf("JSON %s holds %q", raw, k)
			}
		}
		if m["playbookId"] != nil {
			t.Errorf("JSON playbookId = %v, want null", m["playbookId"])
		}

		// Once the workspace is ready, a new session reports it so.
		if err := f.svc.End(ctx, alice, st.ID); err != nil {
			t.Fatal(err)
		}
		st2 := f.startNamed(t, alice, "Quarterly Report")
		if st2.State != string(workspace.PhaseReady) {
			t.Errorf("second session state = %q, want ready", st2.State)
		}
		if st2.ID == st.ID || st2.IDEURL == st.IDEURL {
			t.Errorf("second session reuses id or URL: %s", st2.IDEURL)
		}
		if st2.FencingToken <= st.FencingToken {
			t.Errorf("fencing token went from %d to %d, want it to grow", st.FencingToken, st2.FencingToken)
		}
		if starts, _ := f.rt.Counts(key); starts != 1 {
			t.Errorf("workspace started %d times, want 1 (reused)", starts)
		}
	})
}

func TestStartValidation(t *testing.T) {
	f := newFixture(t, opts{})
	someID := uuid.NewString()
	for i, tc := range []struct {
		name string
		req  editsession.StartRequest
		kind fault.Kind // 0: accepted
		code string     //
		want string     // the accepted session's name
	}{
		{name: "both playbookId and name", req: editsession.StartRequest{PlaybookID: someID, Name: "x"}, kind: fault.Invalid, code: "bad_request"},
		{name: "both, name only spaces", req: editsession.StartRequest{PlaybookID: someID, Name: "   "}, kind: fault.Invalid, code: "bad_request"},
		{name: "neither", req: editsession.StartRequest{}, kind: fault.Invalid, code: "bad_request"},
		{name: "takeover alone", req: editsession.StartRequest{Takeover: true}, kind: fault.Invalid, code: "bad_request"},
		{name: "101 characters", req: editsession.StartRequest{Name: strings.Repeat("a", 101)}, kind: fault.Invalid, code: "invalid_name"},
		{name: "101 multi-byte characters", req: editsession.StartRequest{Name: strings.Repeat("é", 101)}, kind: fault.Invalid, code: "invalid_name"},
		{name: "tab", req: editsession.StartRequest{Name: "a\tb"}, kind: fault.Invalid, code: "invalid_name"},
		{name: "newline", req: editsession.StartRequest{Name: "a\nb"}, kind: fault.Invalid, code: "invalid_name"},
		{name: "trailing newline", req: editsession.StartRequest{Name: "abc\n"}, kind: fault.Invalid, code: "invalid_name"},
		{name: "leading tab", req: editsession.StartRequest{Name: "\tabc"}, kind: fault.Invalid, code: "invalid_name"},
		{name: "NUL", req: editsession.StartRequest{Name: "a\x00b"}, kind: fault.Invalid, code: "invalid_name"},
		{name: "only spaces", req: editsession.StartRequest{Name: "    "}, kind: fault.Invalid, code: "invalid_name"},
		{name: "one space", req: editsession.StartRequest{Name: " "}, kind: fault.Invalid, code: "invalid_name"},
		{name: "invalid UTF-8", req: editsession.StartRequest{Name: "ab\xffcd"}, kind: fault.Invalid, code: "invalid_name"},
		{name: "playbookId not a UUID", req: editsession.StartRequest{PlaybookID: "not-a-uuid"}, kind: fault.NotFound, code: "not_found"},
		{name: "playbookId without a catalog", req: editsession.StartRequest{PlaybookID: someID}, kind: fault.NotFound, code: "not_found"},
		{name: "exactly 100 characters", req: editsession.StartRequest{Name: strings.Repeat("a", 100)}, want: strings.Repeat("a", 100)},
		{name: "exactly 100 multi-byte characters", req: editsession.StartRequest{Name: strings.Repeat("é", 50) + strings.Repeat("日", 50)}, want: strings.Repeat("é", 50) + strings.Repeat("日", 50)},
		{name: "one character", req: editsession.StartRequest{Name: "x"}, want: "x"},
		{name: "surrounding spaces trimmed", req: editsession.StartRequest{Name: "  Trimmed name  "}, want: "Trimmed name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			who := editsession.Identity{ID: fmt.Sprintf("u-%d", i), Name: fmt.Sprintf("User %d", i), Tenant: tenant}
			st, err := f.svc.Start(ctx, who, tc.req)
			if tc.kind != 0 {
				r := refusal(t, err, tc.kind, tc.code)
				if c, _ := utf8.DecodeRuneInString(r.Message); strings.ToUpper(string(c)) != string(c) {
					t.Errorf("message %q does not start with a capital", r.Message)
				}
				if st != nil {
					t.Errorf("Start returned a session with a refusal")
				}
				if _, err := f.svc.Current(ctx, who); !errors.Is(err, editsession.ErrNotFound) {
					t.Errorf("a refused start left a session: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if st.Name != tc.want || utf8.RuneCountInString(st.Name) != utf8.RuneCountInString(tc.want) {
				t.Errorf("name = %q, want %q", st.Name, tc.want)
			}
			if _, err := uuid.Parse(st.ReservedID); err != nil || st.Folder != editsession.FolderFor(tc.want, st.ReservedID) {
				t.Errorf("folder = %q, want %q", st.Folder, editsession.FolderFor(tc.want, st.ReservedID))
			}
		})
	}
	list, err := f.svc.List(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 {
		t.Errorf("%d live sessions after the table, want the 4 accepted", len(list))
	}
	if n := len(f.events(t, tenant, "session.start")); n != 4 {
		t.Errorf("%d session.start events, want 4", n)
	}
}

func TestStartWithCatalog(t *testing.T) {
	pbID, unknownID := uuid.NewString(), uuid.NewString()
	boom := errors.New("catalog is down")
	taken := fault.New(fault.Conflict, "playbook_name_taken", "A playbook is called that already.")
	limit := fault.New(fault.Conflict, "playbook_limit", "The tenant has 100 playbooks.")
	for _, tc := range []struct {
		name       string
		req        editsession.StartRequest
		nameErr    error
		newNameErr error
		wantErr    error // errors.Is
		wantRef    *fault.Error
		kind       fault.Kind
		code       string
		wantName   string
		wantPB     bool
		wantCall   string
	}{
		{name: "existing playbook", req: editsession.StartRequest{PlaybookID: pbID}, wantName: "Quarterly Report", wantPB: true, wantCall: "name acme/" + pbID},
		{name: "unknown playbook", req: editsession.StartRequest{PlaybookID: unknownID}, kind: fault.NotFound, code: "not_found", wantCall: "name acme/" + unknownID},
		{name: "catalog failure on a name", req: editsession.StartRequest{PlaybookID: pbID}, nameErr: boom, wantErr: boom},
		{name: "new name free", req: editsession.StartRequest{Name: " Fresh "}, wantName: "Fresh", wantCall: "new acme/Fresh"},
		{name: "new name taken", req: editsession.StartRequest{Name: "Dup"}, newNameErr: taken, wantRef: taken},
		{name: "playbook limit", req: editsession.StartRequest{Name: "One more"}, newNameErr: limit, wantRef: limit},
		{name: "catalog failure on a new name", req: editsession.StartRequest{Name: "X"}, newNameErr: boom, wantErr: boom},
		{name: "invalid name never reaches the catalog", req: editsession.StartRequest{Name: "a\tb"}, kind: fault.Invalid, code: "invalid_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat := &catalog{names: map[string]string{tenant + "/" + pbID: "Quarterly Report", "other/" + unknownID: "Not yours"},
				nameErr: tc.nameErr, newNameErr: tc.newNameErr}
			f := newFixture(t, opts{catalog: cat})
			st, err := f.svc.Start(ctx, alice, tc.req)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case tc.wantRef != nil:
				var r *fault.Error
				if !errors.As(err, &r) || r != tc.wantRef {
					t.Fatalf("err = %v, want the catalog's refusal passed through", err)
				}
			case tc.kind != 0:
				refusal(t, err, tc.kind, tc.code)
			default:
				if err != nil {
					t.Fatal(err)
				}
				folderID := st.ReservedID
				if st.PlaybookID != nil {
					folderID = *st.PlaybookID
				}
				if st.Name != tc.wantName || st.Folder != editsession.FolderFor(tc.wantName, folderID) {
					t.Errorf("name, folder = %q, %q; want %q", st.Name, st.Folder, tc.wantName)
				}
				if tc.wantPB != (st.PlaybookID != nil) || (tc.wantPB && *st.PlaybookID != pbID) {
					t.Errorf("playbookId = %v, want %v", st.PlaybookID, tc.wantPB)
				}
			}
			if err != nil {
				if _, cerr := f.svc.Current(ctx, alice); !errors.Is(cerr, editsession.ErrNotFound) {
					t.Errorf("failed start left a session: %v", cerr)
				}
			}
			calls := cat.Calls()
			if tc.wantCall != "" && (len(calls) != 1 || calls[0] != tc.wantCall) {
				t.Errorf("catalog calls = %q, want [%q]", calls, tc.wantCall)
			}
			if tc.code == "invalid_name" && len(calls) != 0 {
				t.Errorf("catalog calls = %q, want none", calls)
			}
		})
	}
}

func TestSecondStartSameUser(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		for _, second := range []string{"Beta", "Alpha", "ALPHA"} {
			t.Run(second, func(t *testing.T) {
				o := o
				f := newFixture(t, o)
				first := f.startNamed(t, alice, "Alpha")
				_, err := f.svc.Start(ctx, alice, editsession.StartRequest{Name: second})
				r := refusal(t, err, fault.Conflict, "user_has_session")
				if otherOf(r) == nil || otherOf(r).ID != first.ID || otherOf(r).Name != "Alpha" || otherOf(r).FencingToken != first.FencingToken {
					t.Fatalf("Other = %+v, want the first session", otherOf(r))
				}
				contains(t, "message", r.Message, "Alpha")
				f.mustLive(t, first.ID)
				cur, err := f.svc.Current(ctx, alice)
				if err != nil || cur.ID != first.ID {
					t.Fatalf("Current = %+v, %v; want the first session", cur, err)
				}
				if f.ends.count() != 0 {
					t.Errorf("a refused start ended sessions: %+v", f.ends.ends)
				}
			})
		}
	})
}

func TestTakeover(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		for _, second := range []string{"Beta", "Alpha"} {
			t.Run(second, func(t *testing.T) {
				f := newFixture(t, o)
				first := f.startNamed(t, alice, "Alpha")
				st := f.start(t, alice, editsession.StartRequest{Name: second, Takeover: true})

				if st.TakenOver == nil || st.TakenOver.ID != first.ID || st.TakenOver.Name != "Alpha" {
					t.Fatalf("takenOver = %+v, want the first session", st.TakenOver)
				}
				reasons := f.ends.of(first.ID)
				if len(reasons) != 1 {
					t.Fatalf("OnEnd for the first session: %q, want one call", reasons)
				}
				contains(t, "OnEnd reason", reasons[0], "taken over")
				contains(t, "EndedReason", f.svc.EndedReason(first.ID), "taken over")
				f.mustNotLive(t, first.ID)
				f.mustLive(t, st.ID)
				if f.svc.EndedReason(st.ID) != "" {
					t.Errorf("the new session has an end reason")
				}
				ev := f.event(t, "session.takeover", first.ID)
				if ev.Detail["by"] != st.ID {
					t.Errorf("takeover event = %+v", ev)
				}
				if cur, err := f.svc.Current(ctx, alice); err != nil || cur.ID != st.ID {
					t.Errorf("Current = %+v, %v; want the new session", cur, err)
				}
				if err := f.svc.CheckFence(ctx, &first.Session); !errors.Is(err, editlock.ErrStaleFence) {
					t.Errorf("CheckFence(first) = %v, want ErrStaleFence", err)
				}
				if err := f.svc.CheckFence(ctx, &st.Session); err != nil {
					t.Errorf("CheckFence(new) = %v", err)
				}
				if list, _ := f.svc.List(ctx, tenant); len(list) != 1 || list[0].ID != st.ID {
					t.Errorf("List = %+v, want only the new session", list)
				}
				if g := f.gauge.Value(); g != 1 {
					t.Errorf("live gauge = %v, want 1", g)
				}
				if _, err := f.svc.Get(ctx, alice, first.ID); !errors.Is(err, editsession.ErrNotFound) {
					t.Errorf("Get(first) = %v, want ErrNotFound", err)
				}
				if second == "Beta" {
					// The first playbook is free again.
					f.startNamed(t, bob, "Alpha")
				}
			})
		}
		t.Run("nothing to take over", func(t *testing.T) {
			f := newFixture(t, o)
			st := f.start(t, alice, editsession.StartRequest{Name: "Alpha", Takeover: true})
			if st.TakenOver != nil || f.ends.count() != 0 {
				t.Fatalf("takenOver = %+v, ends = %+v", st.TakenOver, f.ends.ends)
			}
		})
	})
}

func TestPlaybookLockedByAnotherUser(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		pbID := uuid.NewString()
		o.catalog = &catalog{names: map[string]string{tenant + "/" + pbID: "Stored"}}
		f := newFixture(t, o)
		a := f.startNamed(t, alice, "Alpha")
		ap := f.start(t, editsession.Identity{ID: "u-carol", Name: "Carol", Tenant: tenant}, editsession.StartRequest{PlaybookID: pbID})

		for _, tc := range []struct {
			name   string
			req    editsession.StartRequest
			holder string
		}{
			{"same name", editsession.StartRequest{Name: "Alpha"}, alice.Name},
			{"same name, other case", editsession.StartRequest{Name: "aLPHA"}, alice.Name},
			{"same name with takeover", editsession.StartRequest{Name: "Alpha", Takeover: true}, alice.Name},
			{"same playbook id", editsession.StartRequest{PlaybookID: pbID}, "Carol"},
			{"same playbook id with takeover", editsession.StartRequest{PlaybookID: pbID, Takeover: true}, "Carol"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.svc.Start(ctx, bob, tc.req)
				r := refusal(t, err, fault.Conflict, "playbook_locked")
				contains(t, "message", r.Message, tc.holder)
				if _, err := f.svc.Current(ctx, bob); !errors.Is(err, editsession.ErrNotFound) {
					t.Errorf("bob has a session after a refusal: %v", err)
				}
			})
		}
		f.mustLive(t, a.ID)
		f.mustLive(t, ap.ID)
		if f.ends.count() != 0 {
			t.Errorf("refusals ended sessions: %+v", f.ends.ends)
		}
		b := f.startNamed(t, bob, "Beta")
		if list, _ := f.svc.List(ctx, tenant); len(list) != 3 {
			t.Errorf("List = %+v, want 3 sessions", list)
		}
		if b.FencingToken <= 0 {
			t.Errorf("bob's fence = %d", b.FencingToken)
		}
		// Tenants do not share locks.
		f.startNamed(t, eve, "Alpha")
	})
}

func TestTickets(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		f := newFixture(t, o)
		st := f.startNamed(t, alice, "Alpha")
		ticket := ticketOf(t, st)
		info, err := f.svc.RedeemTicket(ctx, ticket)
		if err != nil {
			t.Fatal(err)
		}
		if info != (editsession.TicketInfo{SessionID: st.ID, UserID: alice.ID, Tenant: tenant}) {
			t.Errorf("ticket info = %+v", info)
		}
		if _, err := f.svc.RedeemTicket(ctx, ticket); !errors.Is(err, editsession.ErrBadTicket) {
			t.Errorf("second redeem = %v, want ErrBadTicket", err)
		}
		other := ticketOf(t, f.startNamed(t, bob, "Beta"))
		for name, bad := range map[string]string{
			"empty":           "",
			"unknown":         "nope",
			"over-long":       strings.Repeat("a", 101),
			"over-long valid": other + strings.Repeat("a", 101-len(other)),
			"one char more":   other + "A",
			"prefix":          other[:len(other)-1],
		} {
			if _, err := f.svc.RedeemTicket(ctx, bad); !errors.Is(err, editsession.ErrBadTicket) {
				t.Errorf("%s: RedeemTicket = %v, want ErrBadTicket", name, err)
			}
		}
		// Failed attempts do not burn a ticket.
		if info, err := f.svc.RedeemTicket(ctx, other); err != nil || info.UserID != bob.ID {
			t.Errorf("bob's ticket = %+v, %v", info, err)
		}
	})
}

func TestTicketExpiry(t *testing.T) {
	f := newFixture(t, opts{ticketTTL: 10 * time.Second})
	a := ticketOf(t, f.startNamed(t, alice, "Alpha"))
	b := ticketOf(t, f.startNamed(t, bob, "Beta"))
	f.clock.Advance(9 * time.Second)
	if _, err := f.svc.RedeemTicket(ctx, a); err != nil {
		t.Fatalf("ticket within its TTL: %v", err)
	}
	f.clock.Advance(2 * time.Second)
	if _, err := f.svc.RedeemTicket(ctx, b); !errors.Is(err, editsession.ErrBadTicket) {
		t.Fatalf("expired ticket: %v, want ErrBadTicket", err)
	}
	// The default is 60 s.
	g := newFixture(t, opts{})
	c := ticketOf(t, g.startNamed(t, alice, "Alpha"))
	g.clock.Advance(61 * time.Second)
	if _, err := g.svc.RedeemTicket(ctx, c); !errors.Is(err, editsession.ErrBadTicket) {
		t.Fatalf("ticket after 61 s: %v, want ErrBadTicket", err)
	}
}

func TestCurrentGetHeartbeat(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		f := newFixture(t, o)
		if _, err := f.svc.Current(ctx, alice); !errors.Is(err, editsession.ErrNotFound) {
			t.Fatalf("Current before any = %v", err)
		}
		st := f.startNamed(t, alice, "Alpha")
		cur, err := f.svc.Current(ctx, alice)
		if err != nil || cur.ID != st.ID || cur.Name != "Alpha" || cur.Folder != st.Folder || !strings.HasPrefix(cur.Folder, "alpha--") || cur.FencingToken != st.FencingToken {
			t.Fatalf("Current = %+v, %v", cur, err)
		}
		for _, who := range []editsession.Identity{bob, eve} {
			if _, err := f.svc.Current(ctx, who); !errors.Is(err, editsession.ErrNotFound) {
				t.Errorf("Current(%s) = %v, want ErrNotFound", who.Name, err)
			}
		}
		got, err := f.svc.Get(ctx, alice, st.ID)
		if err != nil || got.ID != st.ID || got.Name != "Alpha" {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		for _, tc := range []struct {
			name string
			who  editsession.Identity
			id   string
		}{
			{"other user", bob, st.ID},
			{"same user id, other tenant", eve, st.ID},
			{"admin is not the owner", admin, st.ID},
			{"unknown id", alice, uuid.NewString()},
			{"empty id", alice, ""},
		} {
			if _, err := f.svc.Get(ctx, tc.who, tc.id); !errors.Is(err, editsession.ErrNotFound) {
				t.Errorf("Get %s = %v, want ErrNotFound", tc.name, err)
			}
			if _, err := f.svc.Heartbeat(ctx, tc.who, tc.id); !errors.Is(err, editsession.ErrNotFound) {
				t.Errorf("Heartbeat %s = %v, want ErrNotFound", tc.name, err)
			}
		}
		f.waitReady(t, alice)
		f.clock.Advance(30 * time.Millisecond)
		hb, err := f.svc.Heartbeat(ctx, alice, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		if hb.ID != st.ID || hb.State != string(workspace.PhaseReady) || !hb.LastActivityAt.After(st.LastActivityAt) {
			t.Errorf("Heartbeat = %+v (started %v)", hb, st.LastActivityAt)
		}
		if !o.redis && !hb.LastActivityAt.Equal(t0.Add(30*time.Millisecond)) {
			t.Errorf("lastActivityAt = %v, want the clock's now", hb.LastActivityAt)
		}
	})
}

func TestEnd(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		f := newFixture(t, o)
		st := f.startNamed(t, alice, "Alpha")
		for _, who := range []editsession.Identity{bob, eve, admin} {
			if err := f.svc.End(ctx, who, st.ID); !errors.Is(err, editsession.ErrNotFound) {
				t.Fatalf("End by %s = %v, want ErrNotFound", who.Name, err)
			}
		}
		f.mustLive(t, st.ID)
		if err := f.svc.End(ctx, alice, st.ID); err != nil {
			t.Fatal(err)
		}
		f.mustNotLive(t, st.ID)
		if r := f.ends.of(st.ID); len(r) != 1 || r[0] != "closed" {
			t.Errorf("OnEnd = %q, want [closed]", r)
		}
		if f.svc.EndedReason(st.ID) != "closed" {
			t.Errorf("EndedReason = %q", f.svc.EndedReason(st.ID))
		}
		f.event(t, "session.end", st.ID)
		if g := f.gauge.Value(); g != 0 {
			t.Errorf("live gauge = %v, want 0", g)
		}
		if _, err := f.svc.Current(ctx, alice); !errors.Is(err, editsession.ErrNotFound) {
			t.Errorf("Current after End = %v", err)
		}
		if err := f.svc.End(ctx, alice, st.ID); !errors.Is(err, editsession.ErrNotFound) {
			t.Errorf("End twice = %v, want ErrNotFound", err)
		}
		if err := f.svc.CheckFence(ctx, &st.Session); !errors.Is(err, editlock.ErrStaleFence) {
			t.Errorf("CheckFence after End = %v, want ErrStaleFence", err)
		}
		// Both locks are free: bob takes the playbook, alice opens another.
		f.startNamed(t, bob, "Alpha")
		f.startNamed(t, alice, "Gamma")
	})
}

func TestTerminate(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		f := newFixture(t, o)
		st := f.startNamed(t, alice, "Alpha")
		for _, tc := range []struct {
			name  string
			admin editsession.Identity
			id    string
		}{
			{"unknown id", admin, uuid.NewString()},
			{"admin of another tenant", editsession.Identity{ID: "u-x", Name: "X", Tenant: "other", Admin: true}, st.ID},
		} {
			if err := f.svc.Terminate(ctx, tc.admin, tc.id); !errors.Is(err, editsession.ErrNotFound) {
				t.Errorf("Terminate %s = %v, want ErrNotFound", tc.name, err)
			}
		}
		f.mustLive(t, st.ID)
		if err := f.svc.Terminate(ctx, admin, st.ID); err != nil {
			t.Fatal(err)
		}
		f.mustNotLive(t, st.ID)
		r := f.ends.of(st.ID)
		if len(r) != 1 {
			t.Fatalf("OnEnd = %q, want one call", r)
		}
		contains(t, "OnEnd reason", r[0], admin.Name)
		contains(t, "EndedReason", f.svc.EndedReason(st.ID), "administrator")
		ev := f.event(t, "session.terminate", st.ID)
		if !strings.Contains(ev.Actor, admin.ID) || ev.Detail["userId"] != alice.ID || ev.Detail["user"] != alice.Name {
			t.Errorf("terminate event = %+v", ev)
		}
		if err := f.svc.Terminate(ctx, admin, st.ID); !errors.Is(err, editsession.ErrNotFound) {
			t.Errorf("Terminate twice = %v, want ErrNotFound", err)
		}
		if g := f.gauge.Value(); g != 0 {
			t.Errorf("live gauge = %v, want 0", g)
		}
		f.startNamed(t, bob, "Alpha")
		f.startNamed(t, alice, "Beta")
	})
}

func TestList(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		pbID := uuid.NewString()
		o.catalog = &catalog{names: map[string]string{tenant + "/" + pbID: "Stored one"}}
		f := newFixture(t, o)
		if l, err := f.svc.List(ctx, tenant); err != nil || len(l) != 0 {
			t.Fatalf("List empty = %+v, %v", l, err)
		}
		a := f.startNamed(t, alice, "Alpha")
		f.clock.Advance(20 * time.Millisecond)
		b := f.start(t, bob, editsession.StartRequest{PlaybookID: pbID})
		f.startNamed(t, eve, "Other tenant")
		f.waitReady(t, alice)
		l, err := f.svc.List(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != 2 || l[0].ID != a.ID || l[1].ID != b.ID {
			t.Fatalf("List = %+v, want alice's then bob's", l)
		}
		if l[0].Name != "Alpha" || l[0].UserName != alice.Name || l[0].PlaybookID != nil || l[0].State != string(workspace.PhaseReady) {
			t.Errorf("alice's entry = %+v", l[0])
		}
		if l[1].Name != "Stored one" || l[1].UserName != bob.Name || l[1].PlaybookID == nil || *l[1].PlaybookID != pbID {
			t.Errorf("bob's entry = %+v", l[1])
		}
		if !l[0].StartedAt.Before(l[1].StartedAt) {
			t.Errorf("startedAt %v, %v: want oldest first", l[0].StartedAt, l[1].StartedAt)
		}
		if err := f.svc.End(ctx, alice, a.ID); err != nil {
			t.Fatal(err)
		}
		if l, _ := f.svc.List(ctx, tenant); len(l) != 1 || l[0].ID != b.ID {
			t.Errorf("List after End = %+v", l)
		}
	})
}

// renewRound advances the clock by half a TTL, runs act, then one renewal
// round.
func (f *fixture) renewRound(act func()) {
	f.clock.Advance(f.ttl / 2)
	if act != nil {
		act()
	}
	f.svc.RenewAll(ctx)
}

func TestRenewKeepsActiveSessionsAlive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture, id string)
		each  func(f *fixture, id string)
	}{
		{name: "proxied traffic", each: func(f *fixture, id string) { f.svc.Touch(id) }},
		{name: "portal heartbeats", each: func(f *fixture, id string) {
			if _, err := f.svc.Heartbeat(ctx, alice, id); err != nil {
				panic(err)
			}
		}},
		{name: "an open IDE connection", setup: func(f *fixture, id string) { f.svc.ConnOpened(id) }},
		{name: "two connections, one closed", setup: func(f *fixture, id string) {
			f.svc.ConnOpened(id)
			f.svc.ConnOpened(id)
			f.svc.ConnClosed(id)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, opts{})
			st := f.startNamed(t, alice, "Alpha")
			if tc.setup != nil {
				tc.setup(f, st.ID)
			}
			for round := 0; round < 8; round++ { // 4 TTLs
				f.renewRound(func() {
					if tc.each != nil {
						tc.each(f, st.ID)
					}
				})
				f.mustLive(t, st.ID)
			}
			if err := f.svc.CheckFence(ctx, &st.Session); err != nil {
				t.Fatalf("CheckFence after 4 TTLs: %v", err)
			}
			_, err := f.svc.Start(ctx, bob, editsession.StartRequest{Name: "Alpha"})
			refusal(t, err, fault.Conflict, "playbook_locked")
			if f.ends.count() != 0 || f.gauge.Value() != 1 {
				t.Fatalf("ends = %+v, gauge = %v", f.ends.ends, f.gauge.Value())
			}
		})
	}
}

func TestRenewEndsIdleSessions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		before     func(f *fixture, id string) // active phase, 4 rounds
		then       func(f *fixture, id string) // once, when activity stops
		idleRounds int                         // rounds of TTL/2 until the end
	}{
		{name: "no activity at all", idleRounds: 3},
		{name: "activity stops", before: func(f *fixture, id string) { f.svc.Touch(id) }, idleRounds: 3},
		{name: "the IDE closes", before: func(f *fixture, id string) {},
			then: func(f *fixture, id string) { f.svc.ConnClosed(id) }, idleRounds: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, opts{})
			st := f.startNamed(t, alice, "Alpha")
			if tc.then != nil {
				f.svc.ConnOpened(st.ID)
			}
			if tc.before != nil {
				for range 4 {
					f.renewRound(func() { tc.before(f, st.ID) })
					f.mustLive(t, st.ID)
				}
			}
			if tc.then != nil {
				tc.then(f, st.ID)
			}
			// Idle for exactly the TTL is still alive; more is not.
			for range tc.idleRounds - 1 {
				f.renewRound(nil)
				f.mustLive(t, st.ID)
			}
			f.renewRound(nil)
			f.mustNotLive(t, st.ID)

			r := f.ends.of(st.ID)
			if len(r) != 1 {
				t.Fatalf("OnEnd = %q, want one call", r)
			}
			contains(t, "OnEnd reason", r[0], "no activity")
			if f.svc.EndedReason(st.ID) != r[0] {
				t.Errorf("EndedReason = %q, want %q", f.svc.EndedReason(st.ID), r[0])
			}
			ev := f.event(t, "session.end", st.ID)
			if ev.Actor != "system" || ev.Detail["reason"] != "idle" {
				t.Errorf("audit = %+v", ev)
			}
			if f.gauge.Value() != 0 {
				t.Errorf("live gauge = %v, want 0", f.gauge.Value())
			}
			if err := f.svc.CheckFence(ctx, &st.Session); !errors.Is(err, editlock.ErrStaleFence) {
				t.Errorf("CheckFence = %v, want ErrStaleFence", err)
			}
			// Locks released: bob can open it, alice can start again.
			f.startNamed(t, bob, "Alpha")
			f.startNamed(t, alice, "Beta")
			// Activity on an ended session changes nothing.
			f.svc.Touch(st.ID)
			f.svc.ConnOpened(st.ID)
			f.svc.ConnClosed(st.ID)
			f.mustNotLive(t, st.ID)
		})
	}
}

func TestRenewEndsSessionWhoseLockWasLost(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		f := newFixture(t, o)
		st := f.startNamed(t, alice, "Alpha")
		keep := f.startNamed(t, bob, "Beta")
		// Another gateway's administrator (or an expiry) took the lock.
		if _, err := f.locks.ForceRelease(ctx, tenant, st.ID); err != nil {
			t.Fatal(err)
		}
		f.svc.Touch(st.ID)
		f.svc.RenewAll(ctx)
		f.mustNotLive(t, st.ID)
		f.mustLive(t, keep.ID)
		r := f.ends.of(st.ID)
		if len(r) != 1 {
			t.Fatalf("OnEnd = %q", r)
		}
		contains(t, "reason", r[0], "lock")
		if ev := f.event(t, "session.end", st.ID); ev.Detail["reason"] != "lock lost" {
			t.Errorf("audit = %+v", ev)
		}
		if f.gauge.Value() != 1 {
			t.Errorf("gauge = %v, want 1", f.gauge.Value())
		}
	})
}

func TestCheckFence(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		pbID := uuid.NewString()
		for _, tc := range []struct {
			name string
			req  editsession.StartRequest
		}{
			{"new playbook", editsession.StartRequest{Name: "Alpha Draft"}},
			{"existing playbook", editsession.StartRequest{PlaybookID: pbID}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				o.catalog = &catalog{names: map[string]string{tenant + "/" + pbID: "Stored"}}
				f := newFixture(t, o)
				old := f.start(t, alice, tc.req)
				live := f.mustLive(t, old.ID)
				for name, s := range map[string]*editsession.Session{"started": &old.Session, "live": live} {
					if err := f.svc.CheckFence(ctx, s); err != nil {
						t.Fatalf("CheckFence(%s) = %v", name, err)
					}
				}
				forged := old.Session
				forged.FencingToken--
				if err := f.svc.CheckFence(ctx, &forged); !errors.Is(err, editlock.ErrStaleFence) {
					t.Fatalf("CheckFence(older fence) = %v, want ErrStaleFence", err)
				}

				if err := f.svc.Terminate(ctx, admin, old.ID); err != nil {
					t.Fatal(err)
				}
				if err := f.svc.CheckFence(ctx, &old.Session); !errors.Is(err, editlock.ErrStaleFence) {
					t.Fatalf("CheckFence after Terminate = %v, want ErrStaleFence", err)
				}
				req := tc.req
				if req.Name != "" {
					req.Name = strings.ToUpper(req.Name) // the same playbook
				}
				nw := f.start(t, bob, req)
				if nw.FencingToken <= old.FencingToken {
					t.Errorf("new fence %d, old %d: want it to grow", nw.FencingToken, old.FencingToken)
				}
				for name, s := range map[string]*editsession.Session{"old": &old.Session, "old live copy": live} {
					if err := f.svc.CheckFence(ctx, s); !errors.Is(err, editlock.ErrStaleFence) {
						t.Errorf("CheckFence(%s) = %v, want ErrStaleFence", name, err)
					}
				}
				if err := f.svc.CheckFence(ctx, &nw.Session); err != nil {
					t.Errorf("CheckFence(new) = %v", err)
				}
			})
		}
	})
}

func TestLiveGauge(t *testing.T) {
	f := newFixture(t, opts{})
	step := func(what string, want float64) {
		t.Helper()
		if g := f.gauge.Value(); g != want {
			t.Fatalf("after %s: live gauge = %v, want %v", what, g, want)
		}
	}
	f.startNamed(t, alice, "A")
	step("alice starts", 1)
	b := f.startNamed(t, bob, "B")
	step("bob starts", 2)
	_, _ = f.svc.Start(ctx, bob, editsession.StartRequest{Name: "A"})
	step("a refused start", 2)
	a2 := f.start(t, alice, editsession.StartRequest{Name: "C", Takeover: true})
	step("alice takes over", 2)
	if err := f.svc.End(ctx, alice, a2.ID); err != nil {
		t.Fatal(err)
	}
	step("alice ends", 1)
	if err := f.svc.Terminate(ctx, admin, b.ID); err != nil {
		t.Fatal(err)
	}
	step("bob is terminated", 0)
	f.startNamed(t, alice, "D")
	step("alice starts again", 1)
	f.clock.Advance(f.ttl + time.Second)
	f.svc.RenewAll(ctx)
	step("alice goes idle", 0)
}

func TestWorkspaceNotCulledWhileSessionLive(t *testing.T) {
	f := newFixture(t, opts{})
	key := workspace.KeyFor(tenant, alice.ID)
	st := f.startNamed(t, alice, "Alpha")
	f.waitReady(t, alice)
	f.svc.ConnOpened(st.ID) // the IDE is open; nothing else happens
	for elapsed := time.Duration(0); elapsed <= 31*time.Minute; elapsed += f.ttl / 2 {
		f.renewRound(nil)
	}
	f.mustLive(t, st.ID)
	f.mgr.CullIdle(ctx)
	if ws, _ := f.mgr.Status(tenant, alice.ID); ws.State != workspace.PhaseReady {
		t.Fatalf("workspace with a live session: %s, want ready", ws.State)
	}
	if _, stops := f.rt.Counts(key); stops != 0 {
		t.Fatalf("workspace stopped %d times while its session lived", stops)
	}
	// Bob's workspace, without a session, is culled by the same pass.
	bs := f.startNamed(t, bob, "Beta")
	f.waitReady(t, bob)
	if err := f.svc.End(ctx, bob, bs.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.End(ctx, alice, st.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(31 * time.Minute)
	f.mgr.CullIdle(ctx)
	for _, who := range []editsession.Identity{alice, bob} {
		if ws, _ := f.mgr.Status(tenant, who.ID); ws.State != workspace.PhaseStopped {
			t.Errorf("%s's workspace after the session ended: %s, want stopped", who.Name, ws.State)
		}
	}
	// A new session starts the workspace again.
	st2 := f.startNamed(t, alice, "Alpha")
	if st2.State != string(workspace.PhaseCreating) {
		t.Errorf("state = %q, want creating", st2.State)
	}
	f.waitReady(t, alice)
	if starts, _ := f.rt.Counts(key); starts != 2 {
		t.Errorf("workspace started %d times, want 2", starts)
	}
}

func TestStartReleasesLocksWhenTheWorkspaceCannotStart(t *testing.T) {
	rt := workspacetest.New()
	rt.Gate = make(chan struct{})
	f := newFixture(t, opts{rt: rt, spawns: 1})
	a := f.startNamed(t, alice, "Alpha") // holds the only spawn slot
	_, err := f.svc.Start(ctx, bob, editsession.StartRequest{Name: "Beta"})
	if fault.CodeOf(err) != "too_many_spawns" || fault.KindOf(err) != fault.Busy {
		close(rt.Gate)
		t.Fatalf("Start with no spawn slot = %v, want a Busy too_many_spawns", err)
	}
	if _, err := f.svc.Current(ctx, bob); !errors.Is(err, editsession.ErrNotFound) {
		t.Errorf("bob holds a lock after the failed start: %v", err)
	}
	if l, _ := f.svc.List(ctx, tenant); len(l) != 1 || l[0].ID != a.ID {
		t.Errorf("List = %+v, want only alice's", l)
	}
	if f.gauge.Value() != 1 {
		t.Errorf("gauge = %v, want 1", f.gauge.Value())
	}
	close(rt.Gate)
	f.waitReady(t, alice)
	// The slot frees right after alice's start; bob then gets "Beta".
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := f.svc.Start(ctx, bob, editsession.StartRequest{Name: "Beta"})
		if err == nil {
			break
		}
		if fault.KindOf(err) != fault.Busy || time.Now().After(deadline) {
			t.Fatalf("Start after the slot freed: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRenewLoopRunsInTheBackground(t *testing.T) {
	f := newFixture(t, opts{renewEvery: 5 * time.Millisecond})
	st := f.startNamed(t, alice, "Alpha")
	f.clock.Advance(f.ttl + time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := f.svc.Live(st.ID); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the renewal loop did not end the idle session")
		}
		time.Sleep(5 * time.Millisecond)
	}
	contains(t, "reason", f.svc.EndedReason(st.ID), "no activity")
	if err := f.svc.Close(); err != nil { // Close twice (cleanup) is fine
		t.Fatal(err)
	}
}

func TestConcurrentStarts(t *testing.T) {
	eachBackend(t, func(t *testing.T, o opts) {
		f := newFixture(t, o)
		const n = 12
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*editsession.Started
		codes := map[string]int{}
		for i := range n {
			wg.Go(func() {
				who := editsession.Identity{ID: fmt.Sprintf("u-%d", i), Name: fmt.Sprintf("User %d", i), Tenant: tenant}
				st, err := f.svc.Start(ctx, who, editsession.StartRequest{Name: "Shared"})
				mu.Lock()
				defer mu.Unlock()
				var r *fault.Error
				switch {
				case err == nil:
					won = append(won, st)
				case errors.As(err, &r):
					codes[r.Code]++
				default:
					codes[err.Error()]++
				}
			})
		}
		wg.Wait()
		if len(won) != 1 || codes["playbook_locked"] != n-1 {
			t.Fatalf("%d winners, refusals %v; want 1 and %d playbook_locked", len(won), codes, n-1)
		}
		id := won[0].ID
		// Activity, renewal and reads at once (for the race detector).
		for range 4 {
			wg.Go(func() {
				for range 50 {
					f.svc.Touch(id)
					f.svc.ConnOpened(id)
					f.svc.Live(id)
					f.svc.ConnClosed(id)
				}
			})
		}
		wg.Go(func() {
			for range 5 {
				f.svc.RenewAll(ctx)
				if _, err := f.svc.List(ctx, tenant); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Wait()
		f.mustLive(t, id)
		if f.gauge.Value() != 1 {
			t.Errorf("gauge = %v, want 1", f.gauge.Value())
		}
	})
}
