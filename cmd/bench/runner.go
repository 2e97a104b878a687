package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"time"

	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/playbook"
	"github.com/playbookstudio/gateway/internal/runner"
	"github.com/playbookstudio/gateway/internal/sandbox"
)

// benchRunner: sandbox_overhead_ms (a sandboxed `python3 -I -S -c pass`
// minus the bare one, medians, the two taking turns), run_start_p50_ms
// (run queued → run() entered, an empty playbook, one run at a time) and
// runs_per_min_c2 (empty playbooks, RUN_CONCURRENCY=2, a batch queued at
// once).
func benchRunner(ctx context.Context, rounds, starts, batch int, out *output) error {
	sb, err := sandbox.New(sandbox.Config{})
	if err != nil {
		progress("runner: skipped: %v", err)
		out.line("sandbox_overhead_ms", math.NaN(), "ms")
		out.line("run_start_p50_ms", math.NaN(), "ms")
		out.line("runs_per_min_c2", math.NaN(), "runs/min")
		return nil
	}
	const python = "/usr/bin/python3"
	progress("runner: %d sandboxed and bare `python3 -I -S -c pass`, taking turns", rounds)
	var bare, boxed []time.Duration
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		if err := exec.CommandContext(ctx, python, "-I", "-S", "-c", "pass").Run(); err != nil {
			return fmt.Errorf("bare python: %w", err)
		}
		bare = append(bare, time.Since(t0))
		t0 = time.Now()
		p, err := sb.Start(sandbox.Spec{Argv: []string{python, "-I", "-S", "-c", "pass"}, Env: []string{"PATH=/usr/bin:/bin"},
			UID: 2_900_000, GID: 2_900_000, MaxProcs: 64, TmpSize: 64 << 20, Hostname: "run"})
		if err != nil {
			return err
		}
		if err := p.Wait(); err != nil {
			return fmt.Errorf("sandboxed python: %w", err)
		}
		boxed = append(boxed, time.Since(t0))
	}
	out.line("sandbox_overhead_ms", ms(median(boxed)-median(bare)), "ms")

	bw, err := runner.NewBwrap(sb, runner.BwrapConfig{Memory: 512 << 20, CPUTime: time.Minute, FileSize: 16 << 20, MaxProcs: 64, TmpSize: 64 << 20})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pbsb-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	svc, err := runner.New(runner.Config{DataDir: dir, Concurrency: 2, Timeout: time.Minute, Node: "bench"},
		runner.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Sandbox: bw, Egress: benchNoEgress{}, Alerts: benchAlerts{}, Playbooks: benchBooks{}})
	if err != nil {
		return err
	}
	defer svc.Close()
	req := runner.Request{Tenant: "bench", AlertID: "a1", PlaybookID: "empty", StartedBy: "bench"}
	wait := func(id string) (runner.Run, error) {
		for {
			r, err := svc.Get(ctx, "bench", id)
			if err != nil {
				return r, err
			}
			if r.Status.Ended() {
				if r.Status != runner.StatusSucceeded {
					return r, fmt.Errorf("bench run %s: %s", r.Status, r.Error)
				}
				return r, nil
			}
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	progress("runner: %d empty runs one at a time (queued → run() entered)", starts)
	var lat []time.Duration
	for i := 0; i < starts; i++ {
		r, err := svc.Enqueue(ctx, req)
		if err != nil {
			return err
		}
		got, err := wait(r.ID)
		if err != nil {
			return err
		}
		if got.EnteredAt == nil {
			return errors.New("bench run: run() was never entered")
		}
		lat = append(lat, got.EnteredAt.Sub(got.QueuedAt))
	}
	out.line("run_start_p50_ms", ms(median(lat)), "ms")

	progress("runner: %d empty runs queued at once, RUN_CONCURRENCY=2", batch)
	t0 := time.Now()
	var ids []string
	for i := 0; i < batch; i++ {
		r, err := svc.Enqueue(ctx, req)
		if err != nil {
			return err
		}
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		if _, err := wait(id); err != nil {
			return err
		}
	}
	out.line("runs_per_min_c2", float64(batch)/time.Since(t0).Minutes(), "runs/min")
	return nil
}

type benchAlerts struct{}

func (benchAlerts) Get(context.Context, string, string) (runner.AlertInfo, error) {
	return runner.AlertInfo{JSON: json.RawMessage(`{"id":"a1","title":"bench"}`), IncidentID: "i1"}, nil
}
func (benchAlerts) Act(context.Context, string, string, runner.AlertAction) error      { return nil }
func (benchAlerts) RecordRun(context.Context, string, string, runner.RunSummary) error { return nil }

type benchBooks struct{}

var emptyPlaybook = []playbook.File{{Path: "playbook.py", Content: []byte("def run(alert, ctx):\n    return {}\n")}}

func (benchBooks) ActiveVersion(context.Context, string, string) (playbook.Version, []playbook.File, error) {
	return playbook.Version{Number: 1}, emptyPlaybook, nil
}

func (benchBooks) Version(_ context.Context, _, _ string, n int) (playbook.Version, []playbook.File, error) {
	return playbook.Version{Number: n}, emptyPlaybook, nil
}

type benchNoEgress struct{}

func (benchNoEgress) Do(context.Context, egress.Request) (*egress.Response, error) {
	return nil, fault.New(fault.NotFound, "integration_not_found", "the bench has no profiles")
}
