package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/playbookstudio/gateway/internal/alert"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/runner"
	"github.com/playbookstudio/gateway/internal/sandbox"
)

// newRunner builds the playbook runner over bubblewrap. Without the
// sandbox's tools the gateway still serves everything else: it logs why
// and the run routes answer 501 (nil runner).
func newRunner(cfg *config.Config, log *slog.Logger, alerts *alert.Service, records playbook.Store,
	calls egress.Doer, profiles integration.Profiles) (*runner.Service, error) {
	sb, err := sandbox.New(sandbox.Config{})
	if err != nil {
		log.Warn("playbook runs are off: the sandbox's tools are missing (scripts/setup.sh installs them)", "err", err)
		return nil, nil
	}
	bw, err := runner.NewBwrap(sb, runner.BwrapConfig{Python: cfg.RunPython, UIDBase: cfg.RunUIDBase, Memory: cfg.RunMemory,
		// A run spinning past RUN_TIMEOUT after its runner died still ends.
		CPUTime: cfg.RunTimeout + time.Minute, FileSize: cfg.RunFileSize, MaxProcs: cfg.RunMaxProcs, TmpSize: cfg.RunTmpSize})
	if err != nil {
		return nil, err
	}
	return runner.New(runner.Config{DataDir: cfg.DataDir, Concurrency: cfg.RunConcurrency, Timeout: cfg.RunTimeout},
		runner.Deps{Log: log, Sandbox: bw, Egress: calls, Alerts: runnerAlerts{alerts, records}, Playbooks: records,
			Profiles: runnerProfiles{profiles}})
}

// runnerAlerts is the alert service as the runner sees it; the playbook
// records name the playbook in the alert's activity ("run playbook
// Phishing triage v3").
type runnerAlerts struct {
	s         *alert.Service
	playbooks playbook.Store
}

func (r runnerAlerts) Get(ctx context.Context, tenant, id string) (runner.AlertInfo, error) {
	a, err := r.s.Get(ctx, tenant, id)
	if err != nil {
		return runner.AlertInfo{}, err
	}
	return runner.AlertInfo{JSON: a.JSON, IncidentID: a.IncidentID}, nil
}

func (r runnerAlerts) Act(ctx context.Context, tenant, id string, a runner.AlertAction) error {
	by := alert.Actor{Tenant: tenant, Name: a.Actor}
	switch a.Type {
	case "comment":
		return r.s.Comment(ctx, tenant, id, by, a.Value)
	case "assign":
		_, err := r.s.Update(ctx, tenant, id, by, alert.Update{AssignedTo: alert.Set(a.Value)})
		return err
	default: // "status"
		_, err := r.s.Update(ctx, tenant, id, by, alert.Update{Status: alert.Set(a.Value)})
		return err
	}
}

func (r runnerAlerts) RecordRun(ctx context.Context, tenant, id string, s runner.RunSummary) error {
	row := alert.RunActivity{RunID: s.RunID, At: s.At, Actor: "playbook run", RuleID: s.RuleID,
		PlaybookID: s.PlaybookID, PlaybookVersion: s.PlaybookVersion, Status: string(s.Status)}
	if p, err := r.playbooks.Get(ctx, tenant, s.PlaybookID); err == nil {
		row.PlaybookName = p.Name
	}
	if s.DurationMS > 0 {
		d := s.DurationMS
		row.DurationMS = &d
	}
	return r.s.RecordRun(ctx, tenant, id, row)
}

// runnerProfiles gives ctx.integration(name) its base URL (never a
// secret: Get returns none).
type runnerProfiles struct{ p integration.Profiles }

func (r runnerProfiles) BaseURL(ctx context.Context, tenant, name string) (string, error) {
	list, err := r.p.List(ctx, tenant)
	if err != nil {
		return "", err
	}
	for _, p := range list {
		if strings.EqualFold(p.Name, name) {
			return p.BaseURL, nil
		}
	}
	return "", fault.New(fault.NotFound, "integration_not_found", fmt.Sprintf("There is no integration profile named %q.", name))
}
