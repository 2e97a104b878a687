// Package llm is the gateway's model endpoint: an OpenAI-compatible
// chat-completions pass-through to the configured provider (OpenAI, Azure
// OpenAI, vLLM, Ollama, LiteLLM all speak it), so that no provider key
// ever reaches a workspace. It counts each tenant's tokens per UTC day and
// refuses past the budget.
package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config says where the model is.
type Config struct {
	BaseURL     string // e.g. https://api.openai.com/v1 (no trailing /chat/completions)
	APIKey      string
	Model       string
	DailyBudget int64 // tokens per tenant per UTC day
	HTTPClient  *http.Client
	Now         func() time.Time
}

// Configured reports whether a model is set.
func (c Config) Configured() bool { return c.BaseURL != "" && c.Model != "" }

// Counter counts tokens per tenant per UTC day.
type Counter interface {
	Add(ctx context.Context, tenant, day string, n int64) (int64, error)
	Get(ctx context.Context, tenant, day string) (int64, error)
}

// Caller is who makes a call, for the budget and the audit entry.
type Caller struct {
	Tenant, UserID, UserName string
}

// Usage is one call's token count.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Gateway proxies chat completions.
type Gateway struct {
	cfg     Config
	counter Counter
	log     *slog.Logger
	// OnCall is told of every finished call (the audit log).
	onCall func(ctx context.Context, c Caller, model string, u Usage)
}

// Errors with an API code.
var (
	ErrNoModel   = errors.New("llm: no model is configured")
	ErrExhausted = errors.New("llm: the tenant's daily token budget is used up")
)

// MaxRequestBytes bounds a chat request (long conversations included).
const MaxRequestBytes = 4 << 20

// New validates cfg.
func New(cfg Config, counter Counter, log *slog.Logger, onCall func(context.Context, Caller, string, Usage)) (*Gateway, error) {
	if counter == nil || log == nil {
		return nil, errors.New("llm: counter and logger are required")
	}
	if cfg.DailyBudget < 0 {
		return nil, errors.New("llm: the daily budget cannot be negative")
	}
	if cfg.HTTPClient == nil {
		// No overall timeout: answers stream for minutes. The transport
		// bounds the wait for the first byte.
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{
			ResponseHeaderTimeout: 120 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			Proxy:                 http.ProxyFromEnvironment,
		}}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if onCall == nil {
		onCall = func(context.Context, Caller, string, Usage) {}
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Gateway{cfg: cfg, counter: counter, log: log, onCall: onCall}, nil
}

// Day is the UTC day budgets count in.
func (g *Gateway) Day() string { return g.cfg.Now().UTC().Format("2006-01-02") }

// UsageReport is GET /api/llm/usage.
type UsageReport struct {
	Day        string `json:"day"`
	Used       int64  `json:"used"`
	Budget     int64  `json:"budget"`
	Model      string `json:"model,omitempty"`
	Configured bool   `json:"configured"`
}

// Usage reports the tenant's use today.
func (g *Gateway) Usage(ctx context.Context, tenant string) (UsageReport, error) {
	used, err := g.counter.Get(ctx, tenant, g.Day())
	return UsageReport{Day: g.Day(), Used: used, Budget: g.cfg.DailyBudget, Model: g.cfg.Model, Configured: g.cfg.Configured()}, err
}

// ProviderError is a failure talking to the provider, with the status to
// answer.
type ProviderError struct {
	Status  int
	Message string
	Err     error
}

func (e *ProviderError) Error() string { return e.Message + ": " + fmt.Sprint(e.Err) }
func (e *ProviderError) Unwrap() error { return e.Err }

// Complete forwards one chat-completions request body and writes the
// provider's answer to w, streaming when the request asks for it. It
// returns before writing anything when the call is refused (no model,
// budget, bad request, provider unreachable); once the answer started,
// errors only end the stream.
func (g *Gateway) Complete(ctx context.Context, c Caller, body []byte, w http.ResponseWriter) error {
	if !g.cfg.Configured() {
		return ErrNoModel
	}
	if used, err := g.counter.Get(ctx, c.Tenant, g.Day()); err != nil {
		return err
	} else if used >= g.cfg.DailyBudget {
		return ErrExhausted
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		return &ProviderError{Status: http.StatusBadRequest, Message: "the request is not JSON", Err: err}
	}
	if _, ok := req["messages"].([]any); !ok {
		return &ProviderError{Status: http.StatusBadRequest, Message: "the request has no messages", Err: errors.New("no messages")}
	}
	// The gateway, not the workspace, decides the model.
	req["model"] = g.cfg.Model
	stream, _ := req["stream"].(bool)
	if stream {
		// Ask for the usage figure in the last chunk, to count tokens.
		req["stream_options"] = map[string]any{"include_usage": true}
	}
	out, _ := json.Marshal(req)
	preq, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.BaseURL+"/chat/completions", bytes.NewReader(out))
	if err != nil {
		return &ProviderError{Status: http.StatusBadGateway, Message: "LLM_BASE_URL is not usable", Err: err}
	}
	preq.Header.Set("Content-Type", "application/json")
	if g.cfg.APIKey != "" {
		preq.Header.Set("Authorization", "Bearer "+g.cfg.APIKey)
		preq.Header.Set("api-key", g.cfg.APIKey) // Azure OpenAI reads this one
	}
	resp, err := g.cfg.HTTPClient.Do(preq)
	if err != nil {
		return &ProviderError{Status: http.StatusBadGateway, Message: "the model provider cannot be reached", Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		status := http.StatusBadGateway
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			// Usually the context is too long for the model.
			status = http.StatusBadRequest
		case http.StatusTooManyRequests:
			status = http.StatusTooManyRequests
		}
		return &ProviderError{Status: status, Message: fmt.Sprintf("the model provider answered %d", resp.StatusCode), Err: errors.New(providerMessage(msg))}
	}

	var u Usage
	if stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		u = g.pipeStream(w, resp.Body)
	} else {
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
		if err != nil {
			return &ProviderError{Status: http.StatusBadGateway, Message: "the model provider's answer broke off", Err: err}
		}
		var parsed struct {
			Usage Usage `json:"usage"`
		}
		if err := json.Unmarshal(raw, &parsed); err != nil {
			return &ProviderError{Status: http.StatusBadGateway, Message: "the model provider's answer is not JSON", Err: err}
		}
		u = parsed.Usage
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(raw)
	}
	if u.PromptTokens == 0 && u.CompletionTokens == 0 {
		// Providers that report no usage are charged an estimate (about
		// four characters a token) rather than nothing.
		u.PromptTokens = int64(len(out) / 4)
	}
	// Count even if the client went away: the provider has charged.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := g.counter.Add(cctx, c.Tenant, g.Day(), u.PromptTokens+u.CompletionTokens); err != nil {
		g.log.Error("count LLM tokens", "tenant", c.Tenant, "err", err)
	}
	g.onCall(cctx, c, g.cfg.Model, u)
	return nil
}

// pipeStream copies server-sent events to w as they arrive, flushing each
// event, and picks the usage figure out of them.
func (g *Gateway) pipeStream(w http.ResponseWriter, body io.Reader) Usage {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var u Usage
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			data = bytes.TrimSpace(data)
			if len(data) > 0 && data[0] == '{' && bytes.Contains(data, []byte(`"usage"`)) {
				var chunk struct {
					Usage *Usage `json:"usage"`
				}
				if json.Unmarshal(data, &chunk) == nil && chunk.Usage != nil {
					u = *chunk.Usage
				}
			}
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return u
		}
		if len(line) == 0 {
			_ = rc.Flush()
		}
	}
	_ = rc.Flush()
	return u
}

// providerMessage keeps a provider's error readable and short, without
// echoing anything that looks like a key.
func providerMessage(raw []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// MemoryCounter counts in this process.
type MemoryCounter struct {
	mu sync.Mutex
	m  map[string]int64
}

// NewMemoryCounter returns an empty counter.
func NewMemoryCounter() *MemoryCounter { return &MemoryCounter{m: map[string]int64{}} }

func (c *MemoryCounter) Add(_ context.Context, tenant, day string, n int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := tenant + "\x00" + day
	// Only today's counts matter; a new day drops the others.
	for key := range c.m {
		if !strings.HasSuffix(key, "\x00"+day) {
			delete(c.m, key)
		}
	}
	c.m[k] += n
	return c.m[k], nil
}

func (c *MemoryCounter) Get(_ context.Context, tenant, day string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[tenant+"\x00"+day], nil
}

// RedisCounter counts in Redis, shared by replicas.
type RedisCounter struct{ client *redis.Client }

// NewRedisCounter counts with client.
func NewRedisCounter(client *redis.Client) *RedisCounter { return &RedisCounter{client: client} }

func redisKey(tenant, day string) string { return "pbs:llm:{" + tenant + "}:" + day }

func (c *RedisCounter) Add(ctx context.Context, tenant, day string, n int64) (int64, error) {
	pipe := c.client.TxPipeline()
	incr := pipe.IncrBy(ctx, redisKey(tenant, day), n)
	pipe.Expire(ctx, redisKey(tenant, day), 48*time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("llm: redis: %w", err)
	}
	return incr.Val(), nil
}

func (c *RedisCounter) Get(ctx context.Context, tenant, day string) (int64, error) {
	n, err := c.client.Get(ctx, redisKey(tenant, day)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("llm: redis: %w", err)
	}
	return n, nil
}
