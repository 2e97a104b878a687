package llm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/llm"
	"github.com/playbookstudio/gateway/internal/testsvc"
)

// provider is a scripted OpenAI-compatible server.
type provider struct {
	mu       sync.Mutex
	lastBody map[string]any
	lastAuth string
	calls    int
	mode     string // "json", "stream", "streamhold", "hold", "error400", "error500", "malformed", "nousage", "overuse"
	// hold: each call says it arrived, then waits for release.
	arrived chan struct{}
	release chan struct{}
	// stream: after the first chunk, waits for next (if set).
	next chan struct{}
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
	p.calls++
	mode := p.mode
	p.mu.Unlock()
	switch mode {
	case "error400":
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"This model's maximum context length is 8192 tokens."}}`)
	case "error500":
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"message":"upstream http://10.1.2.3:8000 dial tcp: connection refused"}}`)
	case "malformed":
		io.WriteString(w, `{"choices": [`)
	case "nousage":
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"hi"}}]}`)
	case "overuse":
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":100,"completion_tokens":5000}}`)
	case "hold":
		p.arrived <- struct{}{}
		<-p.release
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"hello"}}],"usage":{"prompt_tokens":100,"completion_tokens":400}}`)
	case "stream":
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i, word := range []string{"Plan", " ready"} {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", word)
			f.Flush()
			if i == 0 && p.next != nil {
				<-p.next
			}
		}
		io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":12}}\n\ndata: [DONE]\n\n")
	case "streamhold":
		// Three pieces, then nothing until the call is cancelled: the
		// usage chunk never comes.
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, word := range []string{"Plan", " ready", " now"} {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", word)
			f.Flush()
		}
		select {
		case <-r.Context().Done():
		case <-p.release:
		}
	default:
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"hello"}}],"usage":{"prompt_tokens":100,"completion_tokens":20}}`)
	}
}

func (p *provider) seen() (map[string]any, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastBody, p.calls
}

// newGateway serves p and points a gateway at it; cfg's budget and cap
// are kept, its address and model set.
func newGateway(t *testing.T, p *provider, cfg llm.Config, counter llm.Counter) *llm.Gateway {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	cfg.BaseURL, cfg.APIKey, cfg.Model = srv.URL+"/v1/", "sk-secret", "gpt-test"
	g, err := llm.New(cfg, counter, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var alice = llm.Caller{Tenant: "t1", UserID: "alice"}

// chat is a request body whose messages are msgs bytes long, with extra
// fields spliced in (e.g. `"max_tokens":5,`).
func chat(extra string, msgs int) (body []byte, promptEstimate int64) {
	const head, tail = `[{"role":"user","content":"`, `"}]`
	messages := head + strings.Repeat("x", msgs-len(head)-len(tail)) + tail
	return []byte(`{` + extra + `"messages":` + messages + `}`), (int64(msgs) + 2) / 3
}

func usedBy(t *testing.T, g *llm.Gateway, tenant string) int64 {
	t.Helper()
	u, err := g.Usage(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	return u.Used
}

func TestCompleteJSONCountsAndOverridesModel(t *testing.T) {
	p := &provider{}
	g := newGateway(t, p, llm.Config{DailyBudget: 10000, MaxTokens: 1000}, llm.NewMemoryCounter())
	w := httptest.NewRecorder()
	u, err := g.Complete(context.Background(), alice, []byte(`{"model":"something-expensive","messages":[{"role":"user","content":"hi"}]}`), w)
	if err != nil || w.Code != 200 || !strings.Contains(w.Body.String(), "hello") {
		t.Fatalf("Complete = %v, %d %s", err, w.Code, w.Body)
	}
	body, _ := p.seen()
	if body["model"] != "gpt-test" || p.lastAuth != "Bearer sk-secret" {
		t.Fatalf("provider saw model %v auth %q", body["model"], p.lastAuth)
	}
	if strings.Contains(w.Body.String(), "sk-secret") || w.Header().Get("Authorization") != "" {
		t.Fatal("the provider key reached the client")
	}
	// The reservation is settled to the provider's figure.
	r, _ := g.Usage(context.Background(), "t1")
	if r.Used != 120 || r.Budget != 10000 || !r.Configured || u != (llm.Usage{PromptTokens: 100, CompletionTokens: 20}) {
		t.Fatalf("usage %+v, charged %+v", r, u)
	}
}

func TestCompleteStreamsAsItArrives(t *testing.T) {
	p := &provider{mode: "stream", next: make(chan struct{})}
	g := newGateway(t, p, llm.Config{DailyBudget: 10000, MaxTokens: 1000}, llm.NewMemoryCounter())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := g.Complete(r.Context(), alice, body, w); err != nil {
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
	// The first chunk arrives while the provider still holds the rest.
	buf := make([]byte, 256)
	n, _ := resp.Body.Read(buf)
	if !strings.Contains(string(buf[:n]), "Plan") {
		t.Fatalf("first read %q: not streamed", buf[:n])
	}
	close(p.next)
	rest, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("stream did not end with [DONE]: %q", rest)
	}
	body, _ := p.seen()
	so, _ := body["stream_options"].(map[string]any)
	if so["include_usage"] != true {
		t.Fatalf("stream_options %v", body["stream_options"])
	}
	if used := usedBy(t, g, "t1"); used != 42 {
		t.Fatalf("streamed usage counted %d, want 42", used)
	}
}

// TestStreamingClientThatLeavesIsCharged: a client that disconnects
// mid-stream before the provider's usage figure is charged the whole
// reservation, not an estimate of what it read; and the provider's call
// is ended.
func TestStreamingClientThatLeavesIsCharged(t *testing.T) {
	p := &provider{mode: "streamhold", release: make(chan struct{})}
	t.Cleanup(func() { close(p.release) })
	g := newGateway(t, p, llm.Config{DailyBudget: 10000, MaxTokens: 1000}, llm.NewMemoryCounter())
	type outcome struct {
		u   llm.Usage
		err error
	}
	done := make(chan outcome, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u, err := g.Complete(r.Context(), alice, body, w)
		done <- outcome{u, err}
	}))
	defer srv.Close()
	body, prompt := chat(`"stream":true,`, 300)
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.Contains(sc.Text(), " now") {
	}
	resp.Body.Close() // the client goes away mid-answer

	var o outcome
	select {
	case o = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Complete did not end after the client left")
	}
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("Complete = %v, want the client's cancellation", o.err)
	}
	// Without the provider's usage figure, leaving early costs what was
	// reserved: the provider may go on producing, and hidden reasoning
	// never shows in the stream, so an estimate from what was read would
	// make hanging up a way past the budget.
	want := llm.Usage{PromptTokens: prompt, CompletionTokens: 1000}
	if o.u != want {
		t.Fatalf("charged %+v, want %+v", o.u, want)
	}
	if used := usedBy(t, g, "t1"); used != want.Total() {
		t.Fatalf("counted %d, want %d (the whole reservation)", used, want.Total())
	}
}

// counters returns both implementations, the Redis one on a real
// redis-server.
func counters(t *testing.T) map[string]func() llm.Counter {
	srv := testsvc.StartRedis(t)
	opts, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	return map[string]func() llm.Counter{
		"memory": func() llm.Counter { return llm.NewMemoryCounter() },
		"redis": func() llm.Counter {
			if err := client.FlushDB(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			return llm.NewRedisCounter(client)
		},
	}
}

// TestConcurrentCallsCannotOverspend: 50 calls at once against a budget
// of 1,000 tokens, each reserving about 600 (100 of prompt, 500 of
// max_tokens): one fits, two do not. The provider holds every call it
// receives until each of the 50 has either reached it or been refused,
// so a check-then-count budget would let all 50 through.
func TestConcurrentCallsCannotOverspend(t *testing.T) {
	for name, counter := range counters(t) {
		t.Run(name, func(t *testing.T) {
			p := &provider{mode: "hold", arrived: make(chan struct{}, 50), release: make(chan struct{})}
			g := newGateway(t, p, llm.Config{DailyBudget: 1000, MaxTokens: 1000}, counter())
			body, prompt := chat(`"max_tokens":500,`, 300)
			if r := prompt + 500; r > 1000 || 2*r <= 1000 {
				t.Fatalf("a call reserves %d: want one to fit in 1000 and two not", r)
			}
			results := make(chan error, 50)
			for range 50 {
				go func() {
					_, err := g.Complete(context.Background(), alice, body, httptest.NewRecorder())
					results <- err
				}()
			}
			arrived, refused := 0, 0
			for arrived+refused < 50 {
				select {
				case err := <-results:
					if !errors.Is(err, llm.ErrExhausted) {
						t.Fatalf("a call ended before any was answered: %v", err)
					}
					refused++
				case <-p.arrived:
					arrived++
				case <-time.After(30 * time.Second):
					t.Fatalf("stuck: %d arrived, %d refused", arrived, refused)
				}
			}
			close(p.release)
			for range arrived {
				if err := <-results; err != nil {
					t.Errorf("an admitted call failed: %v", err)
				}
			}
			if arrived != 1 {
				t.Fatalf("%d calls reached the provider, want 1 (%d refused)", arrived, refused)
			}
			if used := usedBy(t, g, "t1"); used != 500 {
				t.Fatalf("used %d after settling, want the provider's 500", used)
			}
		})
	}
}

func TestBudgetExhausted(t *testing.T) {
	now := time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)
	g := newGateway(t, &provider{}, llm.Config{DailyBudget: 500, MaxTokens: 100, Now: func() time.Time { return now }}, llm.NewMemoryCounter())
	body := []byte(`{"messages":[{"role":"user","content":"hi"}]}`)
	for range 4 { // 120 each: 480
		if _, err := g.Complete(context.Background(), alice, body, httptest.NewRecorder()); err != nil {
			t.Fatal(err)
		}
	}
	w := httptest.NewRecorder()
	_, err := g.Complete(context.Background(), alice, body, w)
	f, ok := fault.As(err)
	if !errors.Is(err, llm.ErrExhausted) || !ok || f.Kind != fault.Busy || f.Code != "token_budget_exhausted" || w.Body.Len() != 0 {
		t.Fatalf("over budget: %v, wrote %q", err, w.Body)
	}
	if f.RetryAfter != time.Hour {
		t.Fatalf("retry after %s, want the hour until midnight UTC", f.RetryAfter)
	}
	if !strings.Contains(f.Message, "500 tokens") {
		t.Fatalf("message %q does not name the budget", f.Message)
	}
	// Another tenant has its own budget.
	if _, err := g.Complete(context.Background(), llm.Caller{Tenant: "t2"}, body, httptest.NewRecorder()); err != nil {
		t.Fatalf("other tenant: %v", err)
	}
}

// recorder notes each reservation.
type recorder struct {
	llm.Counter
	mu       sync.Mutex
	reserved []int64
}

func (r *recorder) Reserve(ctx context.Context, tenant, day string, n, budget int64) (int64, bool, error) {
	r.mu.Lock()
	r.reserved = append(r.reserved, n)
	r.mu.Unlock()
	return r.Counter.Reserve(ctx, tenant, day, n, budget)
}

// TestMaxTokensClamped: a larger max_tokens is lowered to LLM_MAX_TOKENS
// in what the provider receives and in what is reserved; a call without
// one gets the cap; a bad value is refused.
func TestMaxTokensClamped(t *testing.T) {
	const maxTok = 1000
	cases := []struct {
		name, extra string
		forwarded   map[string]any // fields the provider must see (nil: absent)
		completion  int64          // reserved besides the prompt
	}{
		{"none given", ``, map[string]any{"max_tokens": float64(maxTok), "max_completion_tokens": nil}, maxTok},
		{"below the cap", `"max_tokens":50,`, map[string]any{"max_tokens": float64(50)}, 50},
		{"above the cap", `"max_tokens":100000,`, map[string]any{"max_tokens": float64(maxTok)}, maxTok},
		{"newer spelling above", `"max_completion_tokens":20000,`, map[string]any{"max_completion_tokens": float64(maxTok), "max_tokens": nil}, maxTok},
		{"both", `"max_tokens":10,"max_completion_tokens":70,`, map[string]any{"max_tokens": float64(10), "max_completion_tokens": float64(70)}, 70},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &provider{}
			body, prompt := chat(tc.extra, 60)
			rec := &recorder{Counter: llm.NewMemoryCounter()}
			// The budget holds exactly one capped call: an unclamped
			// reservation would be refused.
			g := newGateway(t, p, llm.Config{DailyBudget: prompt + maxTok, MaxTokens: maxTok}, rec)
			if _, err := g.Complete(context.Background(), alice, body, httptest.NewRecorder()); err != nil {
				t.Fatal(err)
			}
			seen, _ := p.seen()
			for k, v := range tc.forwarded {
				if seen[k] != v {
					t.Errorf("provider saw %s = %v, want %v", k, seen[k], v)
				}
			}
			if len(rec.reserved) != 1 || rec.reserved[0] != prompt+tc.completion {
				t.Errorf("reserved %v, want %d", rec.reserved, prompt+tc.completion)
			}
		})
	}
	for _, bad := range []string{`"max_tokens":0,`, `"max_tokens":-5,`, `"max_tokens":1.5,`, `"max_completion_tokens":"many",`} {
		t.Run("refused "+bad, func(t *testing.T) {
			p := &provider{}
			g := newGateway(t, p, llm.Config{DailyBudget: 10000, MaxTokens: maxTok}, llm.NewMemoryCounter())
			body, _ := chat(bad, 60)
			_, err := g.Complete(context.Background(), alice, body, httptest.NewRecorder())
			field := strings.Trim(strings.SplitN(bad, ":", 2)[0], `"`)
			if f, ok := fault.As(err); !ok || f.Kind != fault.Invalid || !strings.Contains(f.Message, field) {
				t.Fatalf("err %v, want an invalid request naming %s", err, field)
			}
			if _, calls := p.seen(); calls != 0 {
				t.Fatal("the provider was called")
			}
		})
	}
}

// TestSeveralAnswersRefused: n > 1 would produce n completions against
// one reservation.
func TestSeveralAnswersRefused(t *testing.T) {
	for _, tc := range []struct {
		extra string
		ok    bool
	}{{`"n":2,`, false}, {`"n":50,`, false}, {`"n":0,`, false}, {`"n":"x",`, false}, {`"n":1,`, true}, {`"n":null,`, true}} {
		t.Run(tc.extra, func(t *testing.T) {
			p := &provider{}
			g := newGateway(t, p, llm.Config{DailyBudget: 10000, MaxTokens: 1000}, llm.NewMemoryCounter())
			body, _ := chat(tc.extra, 60)
			w := httptest.NewRecorder()
			_, err := g.Complete(context.Background(), alice, body, w)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			f, ok := fault.As(err)
			if !ok || f.Kind != fault.Invalid || !strings.Contains(f.Message, "n = ") {
				t.Fatalf("err %v, want an invalid request naming n", err)
			}
			if _, calls := p.seen(); calls != 0 || w.Body.Len() != 0 || usedBy(t, g, "t1") != 0 {
				t.Fatalf("refused call reached the provider (%d) or was counted", calls)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":"hi"}]}`)
	cfg := llm.Config{DailyBudget: 10000, MaxTokens: 1000}
	t.Run("provider refusals", func(t *testing.T) {
		for name, tc := range map[string]struct {
			mode   string
			status int
			used   int64
		}{
			"context too long": {"error400", 400, 0},
			"provider failure": {"error500", 502, 0},
			"malformed answer": {"malformed", 502, 11}, // answered 200: the prompt is charged
		} {
			t.Run(name, func(t *testing.T) {
				g := newGateway(t, &provider{mode: tc.mode}, cfg, llm.NewMemoryCounter())
				_, err := g.Complete(context.Background(), alice, body, httptest.NewRecorder())
				var pe *llm.ProviderError
				if !errors.As(err, &pe) || pe.Status != tc.status {
					t.Fatalf("err %v, want status %d", err, tc.status)
				}
				if strings.Contains(pe.Message, "10.1.2.3") || strings.Contains(pe.Message, "dial") {
					t.Fatalf("the public message %q carries the provider's text", pe.Message)
				}
				if used := usedBy(t, g, "t1"); used != tc.used {
					t.Fatalf("used %d, want %d: the reservation was not released", used, tc.used)
				}
			})
		}
	})
	for name, b := range map[string]string{"not json": `{`, "no messages": `{"model":"x"}`, "messages not a list": `{"messages":"hi"}`, "stream not a bool": `{"stream":"yes","messages":[{}]}`} {
		t.Run(name, func(t *testing.T) {
			g := newGateway(t, &provider{}, cfg, llm.NewMemoryCounter())
			_, err := g.Complete(context.Background(), alice, []byte(b), httptest.NewRecorder())
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("err %v, want invalid", err)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		port := strconv.Itoa(testsvc.FreePort(t))
		g, err := llm.New(llm.Config{BaseURL: "http://127.0.0.1:" + port + "/v1", Model: "m", DailyBudget: 10000, MaxTokens: 100}, llm.NewMemoryCounter(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		_, err = g.Complete(context.Background(), alice, body, httptest.NewRecorder())
		var pe *llm.ProviderError
		if !errors.As(err, &pe) || pe.Status != 502 {
			t.Fatalf("unreachable: %v", err)
		}
		for _, leak := range []string{"127.0.0.1", port, "dial", "tcp"} {
			if strings.Contains(pe.Message, leak) {
				t.Fatalf("public message %q carries %q", pe.Message, leak)
			}
		}
		if u, _ := g.Usage(context.Background(), "t1"); u.Used != 0 {
			t.Fatalf("an unsent call is counted: %d", u.Used)
		}
	})
	t.Run("no model", func(t *testing.T) {
		g, _ := llm.New(llm.Config{DailyBudget: 10}, llm.NewMemoryCounter(), slog.New(slog.DiscardHandler))
		if _, err := g.Complete(context.Background(), alice, body, httptest.NewRecorder()); !errors.Is(err, llm.ErrNoModel) {
			t.Fatalf("no model: %v", err)
		}
		if u, _ := g.Usage(context.Background(), "t1"); u.Configured {
			t.Fatal("reported as configured")
		}
	})
	t.Run("usage estimated when the provider reports none", func(t *testing.T) {
		g := newGateway(t, &provider{mode: "nousage"}, cfg, llm.NewMemoryCounter())
		u, err := g.Complete(context.Background(), alice, body, httptest.NewRecorder())
		// 32 bytes of messages (11 tokens) and "hi" (1).
		if err != nil || u != (llm.Usage{PromptTokens: 11, CompletionTokens: 1}) || usedBy(t, g, "t1") != 12 {
			t.Fatalf("charged %+v (%v), counted %d", u, err, usedBy(t, g, "t1"))
		}
	})
	t.Run("usage past the reservation is charged", func(t *testing.T) {
		g := newGateway(t, &provider{mode: "overuse"}, cfg, llm.NewMemoryCounter())
		if _, err := g.Complete(context.Background(), alice, body, httptest.NewRecorder()); err != nil {
			t.Fatal(err)
		}
		if used := usedBy(t, g, "t1"); used != 5100 {
			t.Fatalf("used %d, want the provider's 5100", used)
		}
	})
	t.Run("config", func(t *testing.T) {
		if _, err := llm.New(llm.Config{MaxTokens: -1}, llm.NewMemoryCounter(), slog.New(slog.DiscardHandler)); err == nil {
			t.Fatal("a negative cap was accepted")
		}
	})
}

// TestCounters checks both implementations of the same contract.
func TestCounters(t *testing.T) {
	ctx := context.Background()
	for name, counter := range counters(t) {
		t.Run(name, func(t *testing.T) {
			c := counter()
			const day = "2026-11-25"
			if n, err := c.Get(ctx, "t1", day); err != nil || n != 0 {
				t.Fatalf("empty: %d %v", n, err)
			}
			if total, ok, err := c.Reserve(ctx, "t1", day, 600, 1000); err != nil || !ok || total != 600 {
				t.Fatalf("first reservation: %d %v %v", total, ok, err)
			}
			if total, ok, err := c.Reserve(ctx, "t1", day, 401, 1000); err != nil || ok || total != 600 {
				t.Fatalf("reservation past the budget: %d %v %v", total, ok, err)
			}
			if total, ok, _ := c.Reserve(ctx, "t1", day, 400, 1000); !ok || total != 1000 {
				t.Fatalf("reservation up to the budget: %d %v", total, ok)
			}
			// Settling may go past the budget (the provider charged) and
			// releases down to zero, never below.
			if err := c.Settle(ctx, "t1", day, 250); err != nil {
				t.Fatal(err)
			}
			if n, _ := c.Get(ctx, "t1", day); n != 1250 {
				t.Fatalf("after charging more: %d", n)
			}
			if err := c.Settle(ctx, "t1", day, -5000); err != nil {
				t.Fatal(err)
			}
			if n, _ := c.Get(ctx, "t1", day); n != 0 {
				t.Fatalf("after releasing more than counted: %d", n)
			}
			if n, _ := c.Get(ctx, "t2", day); n != 0 {
				t.Fatal("tenants mixed")
			}
			if _, ok, _ := c.Reserve(ctx, "t1", "2026-11-26", 1000, 1000); !ok {
				t.Fatal("a new day does not start from zero")
			}
			if _, _, err := c.Reserve(ctx, "t1", day, -1, 1000); err == nil {
				t.Fatal("a negative reservation was accepted")
			}
		})
	}
	t.Run("redis expiry", func(t *testing.T) {
		srv := testsvc.StartRedis(t)
		opts, _ := redis.ParseURL(srv.URL)
		client := redis.NewClient(opts)
		defer client.Close()
		c := llm.NewRedisCounter(client)
		c.Reserve(ctx, "t1", "2026-11-25", 5, 10)
		c.Settle(ctx, "t1", "2026-11-25", 3)
		if ttl := client.TTL(ctx, "pbs:llm:{t1}:2026-11-25").Val(); ttl <= 0 || ttl > 48*time.Hour {
			t.Fatalf("ttl %s", ttl)
		}
	})
}

// TestImagesAndSchemasReserved: what the model reads besides the messages
// (a response_format schema) and image parts (a short link, many tokens)
// count in the reservation.
func TestImagesAndSchemasReserved(t *testing.T) {
	reserve := func(body string) int64 {
		t.Helper()
		rec := &recorder{Counter: llm.NewMemoryCounter()}
		g := newGateway(t, &provider{}, llm.Config{DailyBudget: 100000, MaxTokens: 100}, rec)
		if _, err := g.Complete(context.Background(), alice, []byte(body), httptest.NewRecorder()); err != nil {
			t.Fatal(err)
		}
		return rec.reserved[0]
	}
	plain := reserve(`{"messages":[{"role":"user","content":[{"type":"text","text":"look"}]}]}`)
	image := reserve(`{"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://x.test/a.png"}}]}]}`)
	schema := reserve(`{"messages":[{"role":"user","content":[{"type":"text","text":"look"}]}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"` + strings.Repeat("a", 3000) + `":{"type":"string"}}}}}}`)
	if image-plain < 1500 {
		t.Errorf("an image part adds %d tokens to the reservation, want at least 1500", image-plain)
	}
	if schema-plain < 1000 {
		t.Errorf("a 3 KB response_format schema adds %d tokens, want at least 1000", schema-plain)
	}
}
