package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/sandbox"
	"github.com/playbookstudio/gateway/internal/workspace"
)

const benchTenant = "bench"

func newManager(rt workspace.Runtime) (*workspace.Manager, error) {
	return workspace.NewManager(workspace.Config{
		IdleTimeout:         time.Hour,
		MaxConcurrentSpawns: 4,
		ReadyTimeout:        90 * time.Second,
		GatewayURL:          "http://127.0.0.1:9",
	}, rt, kv.NewMemory(nil), slog.New(slog.DiscardHandler))
}

func freshUser(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// coldStarts starts n workspaces of fresh users one after another, each
// timed from Ensure to the end of Wait (ready), and removes each after.
func coldStarts(ctx context.Context, m *workspace.Manager, rt workspace.Runtime, n int, label string) ([]time.Duration, error) {
	var took []time.Duration
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return took, err
		}
		user := freshUser("cold-" + label)
		start := time.Now()
		if _, err := m.Ensure(ctx, benchTenant, user); err != nil {
			return took, err
		}
		wctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		st, err := m.Wait(wctx, benchTenant, user)
		cancel()
		d := time.Since(start)
		key := workspace.KeyFor(benchTenant, user)
		if err == nil && st.State != workspace.PhaseReady {
			err = fmt.Errorf("workspace %s: %s %s", key, st.State, st.Error)
		}
		// Stop it (and delete it: nothing of the benchmark stays behind).
		sctx, scancel := context.WithTimeout(context.Background(), 60*time.Second)
		if st.State == workspace.PhaseReady {
			_ = m.Stop(sctx, benchTenant, user)
		}
		_ = rt.Remove(sctx, key)
		scancel()
		if err != nil {
			return took, err
		}
		took = append(took, d)
		progress("  %s cold start %d/%d: %.2fs", label, i+1, n, d.Seconds())
	}
	return took, nil
}

// benchLocalWorkspaces: figure A for the local runtime, and the warm p99.
func benchLocalWorkspaces(ctx context.Context, root, dir, codeServer string, n, warmCalls int, out *output, cl *cleanups) error {
	vsix := filepath.Join(root, ".cache", "playbook-agent.vsix")
	if _, err := os.Stat(vsix); err != nil {
		progress("  the agent extension is not built (%s): local workspaces start without it", vsix)
		vsix = ""
	}
	// The gateway's default, sandboxed (bubblewrap, a uid per workspace),
	// against plain code-server processes, started in turns in one run:
	// the ratio is the sandbox's cost.
	sb, err := sandbox.New(sandbox.Config{})
	if err != nil {
		return fmt.Errorf("the sandbox: %w", err)
	}
	var rt *workspace.Local
	var m *workspace.Manager
	var took, plain []time.Duration
	for _, mode := range []string{"sandboxed", "plain"} {
		wsDir := filepath.Join(dir, "lw-"+mode)
		cl.add(func() { stopLocalWorkspaces(wsDir, codeServer) })
		lc := workspace.LocalConfig{CodeServer: codeServer, Dir: wsDir, ExtensionVSIX: vsix, Path: os.Getenv("PATH")}
		if mode == "sandboxed" {
			lc.Sandbox = sb
		}
		r, err := workspace.NewLocal(lc, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		mm, err := newManager(r)
		if err != nil {
			return err
		}
		defer mm.Close()
		if mode == "sandboxed" {
			rt, m = r, mm
		} else {
			progress("workspaces: local runtime, sandboxed and plain in turns (code-server %s)", codeServer)
			for i := 0; i < n; i++ {
				a, err := coldStarts(ctx, m, rt, 1, "local sandboxed")
				if err != nil {
					return fmt.Errorf("local cold start (sandboxed): %w", err)
				}
				b, err := coldStarts(ctx, mm, r, 1, "local plain")
				if err != nil {
					return fmt.Errorf("local cold start (plain): %w", err)
				}
				took, plain = append(took, a...), append(plain, b...)
			}
		}
	}
	out.line("workspace_cold_local_plain_s", median(plain).Seconds(), "s")
	out.ratioLine("workspace_cold_local_s", median(took).Seconds(), "s", median(plain).Seconds())

	// Warm: Ensure on a workspace that is ready.
	user := freshUser("warm")
	if _, err := m.Ensure(ctx, benchTenant, user); err != nil {
		return err
	}
	if st, err := m.Wait(ctx, benchTenant, user); err != nil || st.State != workspace.PhaseReady {
		return fmt.Errorf("warm workspace: %v %s", err, st.Error)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rt.Remove(sctx, workspace.KeyFor(benchTenant, user))
	}()
	lat := make([]time.Duration, 0, warmCalls)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < warmCalls && time.Now().Before(deadline); i++ {
		start := time.Now()
		st, err := m.Ensure(ctx, benchTenant, user)
		lat = append(lat, time.Since(start))
		if err != nil || st.State != workspace.PhaseReady {
			return fmt.Errorf("warm Ensure: %v %s", err, st.State)
		}
	}
	progress("  warm Ensure: %d calls", len(lat))
	out.line("workspace_warm_p99_ms", ms(percentile(lat, 99)), "ms")
	return nil
}

// benchDockerWorkspaces: figure A for the Docker runtime against Podman,
// with the real workspace image. A missing piece skips it with a reason.
func benchDockerWorkspaces(ctx context.Context, image string, n int, out *output, cl *cleanups) error {
	progress("workspaces: docker runtime (podman, %s)", image)
	pm, err := startPodman(ctx, cl)
	if err != nil {
		progress("SKIP workspace_cold_docker_s: %v", err)
		return nil
	}
	if o, err := pm.run(ctx, "image", "exists", image); err != nil {
		progress("SKIP workspace_cold_docker_s: image %s is not built (make image): %v %s", image, err, strings.TrimSpace(o))
		return nil
	}
	rt, err := workspace.NewDocker(workspace.DockerConfig{
		Host: pm.dockerHost, Image: image,
		Memory: 2 << 30, NanoCPUs: 1e9, PidsLimit: 512,
		Mode: workspace.DockerModePublish, NamePrefix: "pbs-bench-",
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	m, err := newManager(rt)
	if err != nil {
		rt.Close()
		return err
	}
	defer m.Close()
	// Whatever a failed or interrupted run left behind goes too.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		found, _ := rt.List(sctx)
		for _, o := range found {
			_ = rt.Remove(sctx, o.Key)
		}
	}()
	took, err := coldStarts(ctx, m, rt, n, "docker")
	if err != nil {
		return fmt.Errorf("docker cold start: %w", err)
	}
	out.line("workspace_cold_docker_s", median(took).Seconds(), "s")
	return nil
}

// stopLocalWorkspaces stops every code-server (or wsecho) a local runtime
// started under dir: they outlive their gateway by design.
func stopLocalWorkspaces(dir, codeServer string) {
	if _, err := os.Stat(filepath.Join(dir, "ws")); err != nil {
		return
	}
	rt, err := workspace.NewLocal(workspace.LocalConfig{CodeServer: codeServer, Dir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		progress("cleanup %s: %v", dir, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	found, _ := rt.List(ctx)
	for _, o := range found {
		if o.Running {
			_ = rt.Stop(ctx, o.Key)
		}
	}
}

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

// percentile is the nearest-rank percentile (p in 0..100).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
