package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/testsvc"
)

// TestListeners: /metrics answers on METRICS_ADDR only, never on the
// public port; the public port takes the Cookie header of a browser whose
// parent-domain cookies were flooded by an IDE host (180 of 4 KiB), so the
// portal never answers 431 to its own users; METRICS_ADDR in use stops the
// start with an error naming it.
func TestListeners(t *testing.T) {
	port, mport := testsvc.FreePort(t), testsvc.FreePort(t)
	env := baseEnv(t, port, "http://127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)))
	env["METRICS_ADDR"] = "127.0.0.1:" + strconv.Itoa(mport)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("run did not return")
		}
	}()
	base := env["PUBLIC_URL"]
	if err := testsvc.WaitHTTP(ctx, base+"/healthz", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	get := func(url string, cookie string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://"+env["METRICS_ADDR"]+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics on METRICS_ADDR: %d", code)
	}
	if code, body := get(base+"/metrics", ""); code != http.StatusNotFound || strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics on the public port: %d", code)
	}
	var flood []string
	for i := range 180 {
		flood = append(flood, fmt.Sprintf("toss%03d=%s", i, strings.Repeat("x", 4000)))
	}
	if code, _ := get(base+"/api/me", strings.Join(flood, "; ")); code != http.StatusUnauthorized {
		t.Errorf("/api/me with 720 KiB of planted cookies: %d, want 401 (read, not refused as too large)", code)
	}
	http.DefaultClient.CloseIdleConnections()

	// A second gateway on the same METRICS_ADDR refuses to start.
	env2 := baseEnv(t, testsvc.FreePort(t), "http://127.0.0.1:1")
	env2["METRICS_ADDR"] = env["METRICS_ADDR"]
	err := run(context.Background(), nil, func(k string) string { return env2[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "METRICS_ADDR") {
		t.Errorf("run with METRICS_ADDR in use = %v, want an error naming it", err)
	}
}
