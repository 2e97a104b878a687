package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestClaimIsFairBetweenTenants: a tenant with a long backlog does not
// hold back another tenant's run, and each tenant's runs start in order.
func TestClaimIsFairBetweenTenants(t *testing.T) {
	ctx := context.Background()
	st, err := openStore(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	add := func(tenant string, n int, from time.Time) {
		for i := 0; i < n; i++ {
			r := Run{ID: fmt.Sprintf("%s-%03d", tenant, i), Tenant: tenant, Trigger: TriggerRule, AlertID: "a", PlaybookID: "p",
				PlaybookVersion: 1, Status: StatusQueued, QueuedAt: from.Add(time.Duration(i) * time.Second), StartedBy: "rule"}
			if err := st.insert(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	// "busy" queued 50 runs first; "quiet" queued 2 afterwards.
	add("busy", 50, t0)
	add("quiet", 2, t0.Add(time.Hour))
	var got []string
	for i := 0; i < 6; i++ {
		r, ok, err := st.claim(ctx, "node-1", t0.Add(2*time.Hour))
		if err != nil || !ok {
			t.Fatalf("claim %d: %v %v", i, ok, err)
		}
		got = append(got, r.ID)
	}
	// With nothing running, the oldest head goes first (busy); then quiet
	// has fewer running, and so on, alternating while both have runs.
	want := []string{"busy-000", "quiet-000", "busy-001", "quiet-001", "busy-002", "busy-003"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claim order %v, want %v", got, want)
	}
	// A finished run no longer counts as running.
	r, err := st.get(ctx, "quiet", "quiet-000")
	if err != nil {
		t.Fatal(err)
	}
	r.Status = StatusSucceeded
	if ok, err := st.finish(ctx, r, "node-1"); err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	add("quiet2", 1, t0.Add(3*time.Hour))
	n, ok, err := st.claim(ctx, "node-1", t0.Add(4*time.Hour))
	if err != nil || !ok || n.ID != "quiet2-000" {
		t.Fatalf("after finish: claimed %q %v %v, want quiet2-000 (no runs running)", n.ID, ok, err)
	}
}
