package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/runner"
)

const (
	runPlaybook  = "11111111-1111-4111-8111-111111111111"
	idlePlaybook = "22222222-2222-4222-8222-222222222222"
)

type runAlerts struct{}

func (runAlerts) Get(_ context.Context, _, id string) (runner.AlertInfo, error) {
	if id != "alert-1" {
		return runner.AlertInfo{}, fault.New(fault.NotFound, "alert_not_found", "There is no such alert.")
	}
	return runner.AlertInfo{JSON: json.RawMessage(`{"id":"alert-1"}`), IncidentID: "inc-9"}, nil
}
func (runAlerts) Act(context.Context, string, string, runner.AlertAction) error      { return nil }
func (runAlerts) RecordRun(context.Context, string, string, runner.RunSummary) error { return nil }

type runBooks struct{}

func (runBooks) ActiveVersion(_ context.Context, _, id string) (playbook.Version, []playbook.File, error) {
	if id != runPlaybook {
		return playbook.Version{}, nil, playbook.ErrNotActive
	}
	return playbook.Version{Number: 3}, nil, nil
}

func (runBooks) Version(_ context.Context, _, id string, n int) (playbook.Version, []playbook.File, error) {
	if id != runPlaybook || n > 3 {
		return playbook.Version{}, nil, fault.New(fault.NotFound, "version_not_found", "There is no such version.")
	}
	return playbook.Version{Number: n}, []playbook.File{{Path: "playbook.py", Content: []byte("def run(a, c):\n    return {}\n")}}, nil
}

// holdSandbox keeps every run running until it is killed.
type holdSandbox struct{}

func (holdSandbox) Run(ctx context.Context, _ runner.Job) (runner.Exit, error) {
	<-ctx.Done()
	return runner.Exit{Code: -1}, ctx.Err()
}

type noEgress struct{}

func (noEgress) Do(context.Context, egress.Request) (*egress.Response, error) {
	return nil, fault.New(fault.NotFound, "integration_not_found", "none")
}

func TestRunRoutes(t *testing.T) {
	var svc *runner.Service
	e := newTestEnvWith(t, nil, func(d *Deps) {
		var err error
		svc, err = runner.New(runner.Config{DataDir: t.TempDir(), Concurrency: 1, Timeout: time.Minute, Node: "srv"},
			runner.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Sandbox: holdSandbox{}, Egress: noEgress{}, Alerts: runAlerts{}, Playbooks: runBooks{}})
		if err != nil {
			t.Fatal(err)
		}
		d.Runs = svc
	})
	defer svc.Close()
	a, b := e.signIn(t, alice), e.signIn(t, bob)

	w := e.api(t, a, http.MethodPost, "/api/playbooks/"+runPlaybook+"/runs", map[string]any{"alertId": "alert-1"})
	if w.Code != http.StatusAccepted {
		t.Fatalf("start: %d %s", w.Code, w.Body)
	}
	var run runner.Run
	if err := json.Unmarshal(w.Body.Bytes(), &run); err != nil {
		t.Fatal(err)
	}
	if run.Status != runner.StatusQueued || run.PlaybookVersion != 3 || run.IncidentID != "inc-9" || run.Trigger != runner.TriggerManual || run.StartedBy != alice.Name {
		t.Fatalf("run %+v", run)
	}
	// Anyone signed in reads; only automation starts.
	wantError(t, e.api(t, b, http.MethodPost, "/api/playbooks/"+runPlaybook+"/runs", map[string]any{"alertId": "alert-1"}), http.StatusForbidden, "forbidden")
	wantError(t, e.api(t, a, http.MethodPost, "/api/playbooks/"+runPlaybook+"/runs", map[string]any{}), http.StatusBadRequest, "invalid_run")
	wantError(t, e.api(t, a, http.MethodPost, "/api/playbooks/"+runPlaybook+"/runs", map[string]any{"alertId": "nope"}), http.StatusNotFound, "alert_not_found")
	wantError(t, e.api(t, a, http.MethodPost, "/api/playbooks/"+idlePlaybook+"/runs", map[string]any{"alertId": "alert-1"}), http.StatusConflict, "playbook_not_active")
	wantError(t, e.api(t, a, http.MethodPost, "/api/playbooks/"+runPlaybook+"/runs", map[string]any{"alertId": "alert-1", "version": 9}), http.StatusNotFound, "version_not_found")
	w = e.api(t, a, http.MethodPost, "/api/playbooks/"+runPlaybook+"/runs", map[string]any{"alertId": "alert-1", "version": 2})
	if w.Code != http.StatusAccepted {
		t.Fatalf("start version 2: %d %s", w.Code, w.Body)
	}

	w = e.api(t, b, http.MethodGet, "/api/runs/"+run.ID, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("get: %d %s", w.Code, w.Body)
	}
	wantError(t, e.api(t, b, http.MethodGet, "/api/runs/not-a-run", nil), http.StatusNotFound, "run_not_found")
	wantError(t, e.api(t, b, http.MethodGet, "/api/runs?status=bogus", nil), http.StatusBadRequest, "invalid_filter")
	wantError(t, e.api(t, b, http.MethodGet, "/api/runs?limit=0", nil), http.StatusBadRequest, "invalid_filter")
	w = e.api(t, b, http.MethodGet, "/api/runs?alertId=alert-1&playbookId="+runPlaybook+"&limit=10", nil)
	var list struct{ Runs []runner.Run }
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Runs) != 2 {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}

	wantError(t, e.api(t, b, http.MethodPost, "/api/runs/"+run.ID+"/cancel", nil), http.StatusForbidden, "forbidden")
	for _, r := range list.Runs {
		w = e.api(t, a, http.MethodPost, "/api/runs/"+r.ID+"/cancel", nil)
		var got runner.Run
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK || got.Status != runner.StatusCanceled {
			t.Fatalf("cancel: %d %s", w.Code, w.Body)
		}
	}
	wantError(t, e.api(t, a, http.MethodPost, "/api/runs/"+run.ID+"/cancel", nil), http.StatusConflict, "run_ended")
}

func TestRunRoutesWithoutRunner(t *testing.T) {
	e := newTestEnv(t, nil)
	a := e.signIn(t, alice)
	wantError(t, e.api(t, a, http.MethodGet, "/api/runs", nil), http.StatusNotImplemented, "not_implemented")
	wantError(t, e.api(t, a, http.MethodPost, "/api/playbooks/"+runPlaybook+"/runs", map[string]any{"alertId": "x"}), http.StatusNotImplemented, "not_implemented")
}
