package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/testsvc"
)

func conformance(t *testing.T, l audit.Log, logs *bytes.Buffer) {
	ctx := context.Background()
	for i := 0; i < audit.MaxRecent+5; i++ {
		if err := l.Record(ctx, audit.Event{Tenant: "t1", Actor: "alice", Action: "session.start", Target: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Record(ctx, audit.Event{Tenant: "t2", Actor: "bob", Action: "sign_in"})
	got, err := l.Recent(ctx, "t1", 3)
	if err != nil || len(got) != 3 || got[0].Target != fmt.Sprint(audit.MaxRecent+4) || got[2].Target != fmt.Sprint(audit.MaxRecent+2) {
		t.Fatalf("Recent = %+v, %v", got, err)
	}
	if got[0].At.IsZero() {
		t.Fatal("event not stamped")
	}
	all, _ := l.Recent(ctx, "t1", audit.MaxRecent)
	if len(all) != audit.MaxRecent {
		t.Fatalf("tail holds %d, want %d", len(all), audit.MaxRecent)
	}
	other, _ := l.Recent(ctx, "t2", 10)
	if len(other) != 1 || other[0].Actor != "bob" {
		t.Fatalf("tenants mixed: %+v", other)
	}
	if !strings.Contains(logs.String(), `"msg":"audit"`) {
		t.Fatal("events not written to the structured log")
	}
}

func TestMemory(t *testing.T) {
	var buf bytes.Buffer
	l, err := audit.NewMemory(slog.New(slog.NewJSONHandler(&buf, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, l, &buf)
}

func TestRedis(t *testing.T) {
	srv := testsvc.StartRedis(t)
	opts, _ := redis.ParseURL(srv.URL)
	client := redis.NewClient(opts)
	defer client.Close()
	var buf bytes.Buffer
	l, err := audit.NewRedis(client, slog.New(slog.NewJSONHandler(&buf, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, l, &buf)
}
