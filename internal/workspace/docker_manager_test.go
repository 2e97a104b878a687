package workspace_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/kv"
	"github.com/playbookstudio/gateway/internal/workspace"
)

// TestDockerWithManager runs the manager over the Docker runtime:
// concurrent ensures of one user make one container, three users three,
// and a restarted gateway (a new runtime and manager) adopts them.
func TestDockerWithManager(t *testing.T) {
	e := newDockerEnv(t)
	tenant := "docker-test-" + runID
	users := make([]string, 3)
	keys := make([]string, 3)
	for i := range users {
		users[i] = fmt.Sprintf("%s/%d", t.Name(), i)
		keys[i] = e.key(i) // the same key as KeyFor(tenant, users[i]), removed at the end
		if keys[i] != workspace.KeyFor(tenant, users[i]) {
			t.Fatal("key scheme changed")
		}
	}
	store := kv.NewMemory(nil)
	newManager := func() *workspace.Manager {
		m, err := workspace.NewManager(workspace.Config{IdleTimeout: time.Hour, MaxConcurrentSpawns: 4, ReadyTimeout: 60 * time.Second, GatewayURL: "http://127.0.0.1:1"},
			e.runtime(nil), store, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := newManager()
	ctx := ctxT(t, 2*time.Minute)

	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Ensure(ctx, tenant, users[0]); err != nil {
				t.Errorf("ensure: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, u := range users[1:] {
		if _, err := m.Ensure(ctx, tenant, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		if st, err := m.Wait(ctx, tenant, u); err != nil || st.State != workspace.PhaseReady {
			t.Fatalf("%s: %+v %v", u, st, err)
		}
	}
	for i, key := range keys {
		out, err := e.podman.Podman("ps", "-a", "--format", "{{.Names}}", "--filter", "label="+workspace.LabelKey+"="+key)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Fields(out)); n != 1 {
			t.Errorf("user %d: %d containers, want 1: %s", i, n, out)
		}
	}

	// A gateway restart: the manager goes, a new one adopts what runs.
	m.Close()
	m2 := newManager()
	defer m2.Close()
	if err := m2.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if st, err := m2.Status(tenant, u); err != nil || st.State != workspace.PhaseReady {
			t.Errorf("%s not adopted: %+v %v", u, st, err)
		}
	}
	// Reuse: an ensure of an adopted workspace starts nothing new.
	if st, err := m2.Ensure(ctx, tenant, users[0]); err != nil || st.State != workspace.PhaseReady {
		t.Fatalf("ensure after adoption: %+v %v", st, err)
	}
}
