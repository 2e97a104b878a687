package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/playbookstudio/gateway/internal/llm"
	"github.com/playbookstudio/gateway/internal/testsvc"
)

// provider is a scripted OpenAI-compatible server.
type provider struct {
	mu       sync.Mutex
	lastBody map[string]any
	lastAuth string
	mode     string // "json", "stream", "error400", "malformed", "nousage"
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	p.mu.Lock()
	p.lastBody, p.lastAuth = body, r.Header.Get("Authorization")
	mode := p.mode
	p.mu.Unlock()
	switch mode {
	case "error400":
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"This model's maximum context length is 8192 tokens."}}`)
	case "malformed":
		io.WriteString(w, `{"choices": [`)
	case "nousage":
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"hi"}}]}`)
	case "stream":
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, word := range []string{"Plan", " ready"} {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", word)
			f.Flush()
			time.Sleep(50 * time.Millisecond)
		}
		io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":12}}\n\ndata: [DONE]\n\n")
	default:
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"hello"}}],"usage":{"prompt_tokens":100,"completion_tokens":20}}`)
	}
}

type calls struct {
	mu sync.Mutex
	n  []llm.Usage
}

func newGateway(t *testing.T, p *provider, budget int64, counter llm.Counter) (*llm.Gateway, *calls) {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	c := &calls{}
	g, err := llm.New(llm.Config{BaseURL: srv.URL + "/v1/", APIKey: "sk-secret", Model: "gpt-test", DailyBudget: budget},
		counter, slog.New(slog.DiscardHandler), func(_ context.Context, _ llm.Caller, model string, u llm.Usage) {
			c.mu.Lock()
			c.n = append(c.n, u)
			c.mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	return g, c
}

var alice = llm.Caller{Tenant: "t1", UserID: "alice"}

func TestCompleteJSONCountsAndOverridesModel(t *testing.T) {
	p := &provider{}
	g, c := newGateway(t, p, 1000, llm.NewMemoryCounter())
	w := httptest.NewRecorder()
	err := g.Complete(context.Background(), alice, []byte(`{"model":"something-expensive","messages":[{"role":"user","content":"hi"}]}`), w)
	if err != nil || w.Code != 200 || !strings.Contains(w.Body.String(), "hello") {
		t.Fatalf("Complete = %v, %d %s", err, w.Code, w.Body)
	}
	if p.lastBody["model"] != "gpt-test" || p.lastAuth != "Bearer sk-secret" {
		t.Fatalf("provider saw model %v auth %q", p.lastBody["model"], p.lastAuth)
	}
	if strings.Contains(w.Body.String(), "sk-secret") || w.Header().Get("Authorization") != "" {
		t.Fatal("the provider key reached the client")
	}
	u, _ := g.Usage(context.Background(), "t1")
	if u.Used != 120 || u.Budget != 1000 || !u.Configured || len(c.n) != 1 {
		t.Fatalf("usage %+v calls %v", u, c.n)
	}
}

func TestCompleteStreamsAsItArrives(t *testing.T) {
	p := &provider{mode: "stream"}
	g, _ := newGateway(t, p, 1000, llm.NewMemoryCounter())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := g.Complete(r.Context(), alice, body, w); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"plan"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	// The first chunk arrives before the provider finished.
	start := time.Now()
	buf := make([]byte, 256)
	n, _ := resp.Body.Read(buf)
	if !strings.Contains(string(buf[:n]), "Plan") || time.Since(start) > 90*time.Millisecond {
		t.Fatalf("first read %q after %s: not streamed", buf[:n], time.Since(start))
	}
	rest, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("stream did not end with [DONE]: %q", rest)
	}
	so, _ := p.lastBody["stream_options"].(map[string]any)
	if so["include_usage"] != true {
		t.Fatalf("stream_options %v", p.lastBody["stream_options"])
	}
	if u, _ := g.Usage(context.Background(), "t1"); u.Used != 42 {
		t.Fatalf("streamed usage counted %d, want 42", u.Used)
	}
}

func TestBudgetExhausted(t *testing.T) {
	g, _ := newGateway(t, &provider{}, 150, llm.NewMemoryCounter())
	body := []byte(`{"messages":[{"role":"user","content":"hi"}]}`)
	if err := g.Complete(context.Background(), alice, body, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if err := g.Complete(context.Background(), alice, body, httptest.NewRecorder()); err != nil {
		t.Fatal(err) // 120 < 150: allowed, ends at 240
	}
	w := httptest.NewRecorder()
	if err := g.Complete(context.Background(), alice, body, w); !errors.Is(err, llm.ErrExhausted) || w.Body.Len() != 0 {
		t.Fatalf("over budget: %v, wrote %q", err, w.Body)
	}
	// Another tenant has its own budget.
	if err := g.Complete(context.Background(), llm.Caller{Tenant: "t2"}, body, httptest.NewRecorder()); err != nil {
		t.Fatalf("other tenant: %v", err)
	}
}

func TestFaults(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":"hi"}]}`)
	cases := map[string]struct {
		mode   string
		body   []byte
		status int
	}{
		"context too long": {"error400", body, 400},
		"malformed answer": {"malformed", body, 502},
		"not json":         {"json", []byte(`{`), 400},
		"no messages":      {"json", []byte(`{"model":"x"}`), 400},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g, _ := newGateway(t, &provider{mode: tc.mode}, 1000, llm.NewMemoryCounter())
			err := g.Complete(context.Background(), alice, tc.body, httptest.NewRecorder())
			var pe *llm.ProviderError
			if !errors.As(err, &pe) || pe.Status != tc.status {
				t.Fatalf("err %v, want status %d", err, tc.status)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		g, err := llm.New(llm.Config{BaseURL: "http://127.0.0.1:1/v1", Model: "m", DailyBudget: 10}, llm.NewMemoryCounter(), slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		err = g.Complete(context.Background(), alice, body, httptest.NewRecorder())
		var pe *llm.ProviderError
		if !errors.As(err, &pe) || pe.Status != 502 {
			t.Fatalf("unreachable: %v", err)
		}
	})
	t.Run("no model", func(t *testing.T) {
		g, _ := llm.New(llm.Config{DailyBudget: 10}, llm.NewMemoryCounter(), slog.New(slog.DiscardHandler), nil)
		if err := g.Complete(context.Background(), alice, body, httptest.NewRecorder()); !errors.Is(err, llm.ErrNoModel) {
			t.Fatalf("no model: %v", err)
		}
		if u, _ := g.Usage(context.Background(), "t1"); u.Configured {
			t.Fatal("reported as configured")
		}
	})
	t.Run("usage estimated when the provider reports none", func(t *testing.T) {
		g, _ := newGateway(t, &provider{mode: "nousage"}, 1000, llm.NewMemoryCounter())
		g.Complete(context.Background(), alice, body, httptest.NewRecorder())
		if u, _ := g.Usage(context.Background(), "t1"); u.Used == 0 {
			t.Fatal("a call without usage was not counted")
		}
	})
}

func TestRedisCounter(t *testing.T) {
	srv := testsvc.StartRedis(t)
	opts, _ := redis.ParseURL(srv.URL)
	client := redis.NewClient(opts)
	defer client.Close()
	c := llm.NewRedisCounter(client)
	ctx := context.Background()
	if n, err := c.Get(ctx, "t1", "2026-11-25"); err != nil || n != 0 {
		t.Fatalf("empty: %d %v", n, err)
	}
	c.Add(ctx, "t1", "2026-11-25", 5)
	if n, _ := c.Add(ctx, "t1", "2026-11-25", 7); n != 12 {
		t.Fatalf("total %d", n)
	}
	if n, _ := c.Get(ctx, "t1", "2026-11-26"); n != 0 {
		t.Fatal("days mixed")
	}
	if ttl := client.TTL(ctx, "pbs:llm:{t1}:2026-11-25").Val(); ttl <= 0 || ttl > 48*time.Hour {
		t.Fatalf("ttl %s", ttl)
	}
}
