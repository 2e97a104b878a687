package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/editlock"
	"github.com/playbookstudio/gateway/internal/editsession"
	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/workspace"
	"github.com/playbookstudio/gateway/internal/workspace/workspacetest"
)

// tokenFixture is a session service over a test runtime, whose minted
// workspace tokens the test can read from the workspace's environment.
type tokenFixture struct {
	rt       *workspacetest.Runtime
	ws       *workspace.Manager
	sessions *editsession.Service
}

func newTokenFixture(t *testing.T) *tokenFixture {
	t.Helper()
	f := &tokenFixture{rt: workspacetest.New()}
	store := kv.NewMemory(nil)
	log := slog.New(slog.DiscardHandler)
	var err error
	f.ws, err = workspace.NewManager(workspace.Config{IdleTimeout: time.Hour, MaxConcurrentSpawns: 2, GatewayURL: "http://127.0.0.1:1"}, f.rt, store, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ws.Close() })
	al, _ := audit.NewMemory(log, nil)
	f.sessions, err = editsession.New(editsession.Config{TTL: time.Minute, IDEURL: func(id string) string { return "http://" + id + ".ide.test" }},
		editsession.Deps{Locks: editlock.NewMemory(nil), Workspaces: f.ws, Store: store, Audit: al, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.sessions.Close() })
	return f
}

// open starts who's session on a new playbook and returns it with the
// workspace's token.
func (f *tokenFixture) open(t *testing.T, who editsession.Identity, name string) (*editsession.Started, string) {
	t.Helper()
	st, err := f.sessions.Start(context.Background(), who, editsession.StartRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ws.Wait(context.Background(), who.Tenant, who.ID); err != nil {
		t.Fatal(err)
	}
	spec, ok := f.rt.Spec(workspace.KeyFor(who.Tenant, who.ID))
	if !ok {
		t.Fatal("the workspace does not run")
	}
	return st, spec.Env["PLAYBOOK_GATEWAY_TOKEN"]
}

// TestWorkspaceToken checks the bearer-token middleware and the
// either-or middleware of routes both the portal and the extension use.
func TestWorkspaceToken(t *testing.T) {
	f := newTokenFixture(t)
	alice := editsession.Identity{ID: "alice", Name: "Alice", Tenant: "t1"}
	st, token := f.open(t, alice, "Alpha")

	e := echo.New()
	e.HTTPErrorHandler = errorHandler(newLogger(&logBuffer{}))
	var seen string
	ok := func(c echo.Context) error {
		if tok := workspaceTokenOf(c); tok != nil {
			seen = "token:" + tok.Owner + ":" + workspaceSessionOf(c).Name
		} else if s := sessionOf(c); s != nil {
			seen = "session:" + s.Identity.ID
		} else {
			seen = "nobody"
		}
		return c.NoContent(http.StatusNoContent)
	}
	byToken := workspaceToken(f.ws, f.sessions)
	e.GET("/token", ok, byToken)
	denySession := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { return echo.NewHTTPError(http.StatusUnauthorized) }
	}
	e.GET("/either", ok, sessionOrWorkspaceToken(byToken, []echo.MiddlewareFunc{denySession}))
	e.GET("/sessions/:id", func(c echo.Context) error {
		if err := tokenMaySession(c, c.Param("id")); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}, byToken)

	type call struct {
		path, auth string
		status     int
		seen       string
	}
	check := func(t *testing.T, calls []call) {
		t.Helper()
		for _, tc := range calls {
			seen = ""
			r := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			e.ServeHTTP(w, r)
			if w.Code != tc.status || seen != tc.seen {
				t.Errorf("%s with %q: %d seen %q, want %d %q", tc.path, tc.auth, w.Code, seen, tc.status, tc.seen)
			}
		}
	}
	check(t, []call{
		{"/token", "Bearer " + token, 204, "token:alice:Alpha"},
		{"/token", "Bearer " + token + "x", 401, ""},
		{"/token", "Bearer ", 401, ""},
		{"/token", "Basic abc", 401, ""},
		{"/token", "", 401, ""},
		{"/either", "Bearer " + token, 204, "token:alice:Alpha"},
		{"/either", "Bearer forged", 401, ""},
		{"/either", "", 401, ""}, // the session chain decides
		// Bound to its own session only.
		{"/sessions/" + st.ID, "Bearer " + token, 204, ""},
		{"/sessions/someone-elses", "Bearer " + token, 403, ""},
	})

	// The session ends: the token, though the workspace still runs, is
	// worth nothing.
	if err := f.sessions.End(context.Background(), alice, st.ID); err != nil {
		t.Fatal(err)
	}
	check(t, []call{{"/token", "Bearer " + token, 401, ""}, {"/either", "Bearer " + token, 401, ""}})

	// A new session on the same workspace revives it (same workspace).
	st2, token2 := f.open(t, alice, "Beta")
	if token2 != token {
		t.Fatal("the workspace restarted")
	}
	check(t, []call{{"/token", "Bearer " + token, 204, "token:alice:Beta"}})

	// An administrator's terminate and a sign-out end it too.
	if err := f.sessions.Terminate(context.Background(), editsession.Identity{ID: "root", Name: "Root", Tenant: "t1", Admin: true}, st2.ID); err != nil {
		t.Fatal(err)
	}
	check(t, []call{{"/token", "Bearer " + token, 401, ""}})
	f.open(t, alice, "Gamma")
	check(t, []call{{"/token", "Bearer " + token, 204, "token:alice:Gamma"}})
	if err := f.sessions.EndOfUser(context.Background(), alice, "signed out"); err != nil {
		t.Fatal(err)
	}
	check(t, []call{{"/token", "Bearer " + token, 401, ""}})
}
