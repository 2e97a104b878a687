// Package llm is the gateway's model endpoint: an OpenAI-compatible
// chat-completions pass-through to the configured provider (OpenAI, Azure
// OpenAI, vLLM, Ollama, LiteLLM all speak it), so that no provider key
// ever reaches a workspace. It counts each tenant's tokens per UTC day and
// refuses past the budget: each call reserves what it may cost before it
// is sent and settles to what the provider reports afterwards.
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
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/playbookstudio/gateway/internal/fault"
)

// DefaultMaxTokens is LLM_MAX_TOKENS when Config.MaxTokens is 0.
const DefaultMaxTokens = 8192

// Config says where the model is.
type Config struct {
	BaseURL     string // e.g. https://api.openai.com/v1 (no trailing /chat/completions)
	APIKey      string
	Model       string
	DailyBudget int64 // tokens per tenant per UTC day
	// MaxTokens caps the completion tokens of one call (LLM_MAX_TOKENS;
	// 0: DefaultMaxTokens). A call reserves it, or its own smaller
	// max_tokens, from the budget.
	MaxTokens  int64
	HTTPClient *http.Client
	Now        func() time.Time
}

// Configured reports whether a model is set.
func (c Config) Configured() bool { return c.BaseURL != "" && c.Model != "" }

// Caller is who makes a call, for the budget.
type Caller struct {
	Tenant, UserID, UserName string
}

// Usage is one call's token count.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Total is prompt and completion tokens together.
func (u Usage) Total() int64 { return u.PromptTokens + u.CompletionTokens }

// Gateway proxies chat completions.
type Gateway struct {
	cfg     Config
	counter Counter
	log     *slog.Logger
}

// Errors with an API code. ErrExhausted arrives as the cause of a
// fault.Busy (code token_budget_exhausted) that carries the wait until
// the budget resets; errors.Is finds it.
var (
	ErrNoModel   = errors.New("llm: no model is configured")
	ErrExhausted = errors.New("llm: the tenant's daily token budget is used up")
)

// errClientGone ends a call whose client went away; it wraps
// context.Canceled, which is how callers recognise it.
var errClientGone = fmt.Errorf("llm: the client went away: %w", context.Canceled)

// MaxRequestBytes bounds a chat request (long conversations included).
const MaxRequestBytes = 4 << 20

// New validates cfg.
func New(cfg Config, counter Counter, log *slog.Logger) (*Gateway, error) {
	if counter == nil || log == nil {
		return nil, errors.New("llm: counter and logger are required")
	}
	if cfg.DailyBudget < 0 {
		return nil, errors.New("llm: the daily budget cannot be negative")
	}
	if cfg.MaxTokens < 0 {
		return nil, errors.New("llm: the token cap of a call cannot be negative")
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = DefaultMaxTokens
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
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Gateway{cfg: cfg, counter: counter, log: log}, nil
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

// Usage reports the tenant's use today (reservations of calls under way
// included).
func (g *Gateway) Usage(ctx context.Context, tenant string) (UsageReport, error) {
	used, err := g.counter.Get(ctx, tenant, g.Day())
	return UsageReport{Day: g.Day(), Used: used, Budget: g.cfg.DailyBudget, Model: g.cfg.Model, Configured: g.cfg.Configured()}, err
}

// ProviderError is a failure of the provider or of the way to it. Message
// says in words what happened and is shown to the workspace; Err is the
// cause (it may name the provider's address or the transport) and goes
// to the log only.
type ProviderError struct {
	Status  int
	Message string
	Err     error
}

func (e *ProviderError) Error() string { return e.Message + ": " + fmt.Sprint(e.Err) }
func (e *ProviderError) Unwrap() error { return e.Err }

// request is a checked chat request, rewritten for the provider.
type request struct {
	body   []byte // what is forwarded
	stream bool
	// prompt is the estimate of the prompt's tokens; maxCompletion what
	// the completion may reach. Their sum is reserved.
	prompt, maxCompletion int64
}

// invalid is a refusal of the request itself.
func invalid(message string, cause error) error {
	return fault.Wrap(fault.Invalid, "llm_error", message, cause)
}

// prepare checks a chat request and rewrites it for the provider: the
// gateway's model, max_tokens within the cap, usage in streamed answers.
func (g *Gateway) prepare(body []byte) (*request, error) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		return nil, invalid("The request is not a JSON object.", err)
	}
	var messages []json.RawMessage
	if err := json.Unmarshal(req["messages"], &messages); err != nil || len(messages) == 0 {
		return nil, invalid("The request has no messages.", err)
	}
	if raw, ok := present(req, "n"); ok {
		// One answer a call: n answers cost n completions, which the
		// reservation does not cover.
		if n, err := positiveInt(raw); err != nil || n != 1 {
			return nil, invalid(fmt.Sprintf("The request asks for n = %s answers; this gateway returns one answer a call (leave n out or send n = 1).", short(raw)), err)
		}
	}
	// The cap applies to both spellings: max_completion_tokens is the
	// newer, max_tokens the one every OpenAI-compatible server knows. A
	// larger ask is lowered to the cap (the answer is cut at the cap, as
	// the provider would cut it at its own limit), rather than refused.
	completion := int64(0)
	for _, field := range []string{"max_tokens", "max_completion_tokens"} {
		raw, ok := present(req, field)
		if !ok {
			continue
		}
		n, err := positiveInt(raw)
		if err != nil {
			return nil, invalid(fmt.Sprintf("The request's %s is %s; want a whole number of at least 1.", field, short(raw)), err)
		}
		if n > g.cfg.MaxTokens {
			n = g.cfg.MaxTokens
			req[field] = json.RawMessage(strconv.FormatInt(n, 10))
		}
		completion = max(completion, n)
	}
	if completion == 0 {
		// Without a limit the provider could write up to the model's
		// own, past what is reserved.
		completion = g.cfg.MaxTokens
		req["max_tokens"] = json.RawMessage(strconv.FormatInt(completion, 10))
	}
	stream := false
	if raw, ok := present(req, "stream"); ok {
		if err := json.Unmarshal(raw, &stream); err != nil {
			return nil, invalid("The request's stream is not true or false.", err)
		}
	}
	if stream {
		// Ask for the usage figure in the last chunk, to count tokens.
		req["stream_options"] = json.RawMessage(`{"include_usage":true}`)
	}
	// The gateway, not the workspace, decides the model.
	model, _ := json.Marshal(g.cfg.Model)
	req["model"] = model
	out, err := json.Marshal(req)
	if err != nil {
		return nil, invalid("The request could not be re-encoded.", err)
	}
	// The prompt is estimated from every field the model reads (the
	// messages, tool definitions, response_format schemas, predictions,
	// tool_choice), plus a flat charge per image: an image_url part is a
	// few bytes of link but up to a few thousand tokens of input.
	promptBytes := 0
	for _, f := range []string{"messages", "tools", "functions", "tool_choice", "response_format", "prediction"} {
		promptBytes += len(req[f])
	}
	prompt := estimateTokens(int64(promptBytes)) + imageTokens*int64(bytes.Count(req["messages"], []byte(`"image_url"`)))
	return &request{body: out, stream: stream, prompt: prompt, maxCompletion: completion}, nil
}

// estimateTokens is a deliberately high token count for n bytes of text
// or JSON: one token per 3 bytes, rounded up. Tokenizers average about 4
// bytes a token on English and code, so this over-counts, which is the
// safe side for a reservation (settling releases the difference once the
// provider reports the real figure); it is also what a call is charged
// when the provider reports nothing, so a silent provider cannot be used
// to spend past the budget.
func estimateTokens(n int64) int64 { return (n + 2) / 3 }

// imageTokens is what an image part of a prompt is reserved at: providers
// charge a high-detail image by its 512-pixel tiles, a few hundred tokens
// each, about 1,500 for a typical screenshot.
const imageTokens = 1500

// present is a field's raw value unless it is absent or null.
func present(req map[string]json.RawMessage, field string) (json.RawMessage, bool) {
	raw, ok := req[field]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return nil, false
	}
	return raw, true
}

// positiveInt reads a whole number of at least 1.
func positiveInt(raw json.RawMessage) (int64, error) {
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	if n < 1 {
		return n, fmt.Errorf("%d is below 1", n)
	}
	return n, nil
}

// short quotes a client's value for a message, bounded.
func short(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// exhausted is the refusal of a call that does not fit in what remains
// of the day's budget; it may be retried when the budget resets.
func (g *Gateway) exhausted(used, need int64) error {
	now := g.cfg.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	msg := fmt.Sprintf("Your organisation's AI token budget for today (%d tokens) is used up. It resets at midnight UTC.", g.cfg.DailyBudget)
	if used < g.cfg.DailyBudget {
		msg = fmt.Sprintf("Your organisation's AI token budget for today (%d tokens, %d used) has no room for this request, which may use up to %d. It resets at midnight UTC; a shorter conversation or a lower max_tokens may fit now.", g.cfg.DailyBudget, used, need)
	}
	return &fault.Error{Kind: fault.Busy, Code: "token_budget_exhausted", Message: msg, RetryAfter: midnight.Sub(now), Cause: ErrExhausted}
}

// Complete forwards one chat-completions request body and writes the
// provider's answer to w, streaming when the request asks for it, and
// returns the tokens charged for it. It returns before writing anything
// when the call is refused (no model, budget, bad request, provider
// unreachable); once the answer started, errors only end the stream. A
// caller that went away gets an error wrapping context.Canceled and is
// charged what the provider produced until then.
func (g *Gateway) Complete(ctx context.Context, c Caller, body []byte, w http.ResponseWriter) (Usage, error) {
	if !g.cfg.Configured() {
		return Usage{}, ErrNoModel
	}
	req, err := g.prepare(body)
	if err != nil {
		return Usage{}, err
	}
	day := g.Day()
	reserved := req.prompt + req.maxCompletion
	used, ok, err := g.counter.Reserve(ctx, c.Tenant, day, reserved, g.cfg.DailyBudget)
	if err != nil {
		return Usage{}, err
	}
	if !ok {
		return Usage{}, g.exhausted(used, reserved)
	}
	charged, err := g.call(ctx, req, w)
	// Settle even if the client went away: the provider has charged.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if serr := g.counter.Settle(sctx, c.Tenant, day, charged.Total()-reserved); serr != nil {
		g.log.Error("settle LLM tokens", "tenant", c.Tenant, "reserved", reserved, "charged", charged.Total(), "err", serr)
	}
	return charged, err
}

// whole is what a call is charged when its client left before the
// provider reported usage: everything reserved. The provider may go on
// producing (and billing) after the disconnect, and hidden reasoning
// tokens never show in a stream, so an estimate from what was read would
// make hanging up early a way to spend past the budget.
func (r *request) whole() Usage {
	return Usage{PromptTokens: r.prompt, CompletionTokens: r.maxCompletion}
}

// call sends req and copies the answer to w. It returns the tokens to
// charge: the provider's figure when it gave one, else an estimate of what
// it produced; nothing when it refused or was never reached.
func (g *Gateway) call(ctx context.Context, req *request, w http.ResponseWriter) (Usage, error) {
	// The provider's call ends with the client's request: if the client
	// goes away mid-answer, the provider stops producing tokens nobody
	// reads; without its usage figure the call is charged its whole
	// reservation (whole).
	preq, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.BaseURL+"/chat/completions", bytes.NewReader(req.body))
	if err != nil {
		return Usage{}, &ProviderError{Status: http.StatusBadGateway, Message: "the gateway's model provider address is not usable", Err: err}
	}
	preq.Header.Set("Content-Type", "application/json")
	if g.cfg.APIKey != "" {
		preq.Header.Set("Authorization", "Bearer "+g.cfg.APIKey)
		preq.Header.Set("api-key", g.cfg.APIKey) // Azure OpenAI reads this one
	}
	resp, err := g.cfg.HTTPClient.Do(preq)
	if err != nil {
		if ctx.Err() != nil {
			return req.whole(), fmt.Errorf("%w (%w)", errClientGone, err)
		}
		return Usage{}, transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return Usage{}, statusError(resp.StatusCode, raw)
	}

	if req.stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		reported, produced, err := pipeStream(w, resp.Body)
		if err != nil && ctx.Err() != nil {
			// Reading from the provider failed because the client's
			// request ended.
			err = fmt.Errorf("%w (%w)", errClientGone, err)
		}
		if reported != nil {
			return *reported, err
		}
		if ctx.Err() != nil {
			return req.whole(), err
		}
		return Usage{PromptTokens: req.prompt, CompletionTokens: estimateTokens(produced)}, err
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		if ctx.Err() != nil {
			return req.whole(), fmt.Errorf("%w (%w)", errClientGone, err)
		}
		return Usage{PromptTokens: req.prompt}, &ProviderError{Status: http.StatusBadGateway, Message: "the model provider's answer broke off", Err: err}
	}
	var parsed struct {
		Usage   *Usage `json:"usage"`
		Choices []struct {
			Message json.RawMessage `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &parsed); err != nil {
		// The provider answered 200: it may well have charged.
		return Usage{PromptTokens: req.prompt}, &ProviderError{Status: http.StatusBadGateway, Message: "the model provider's answer is not JSON", Err: err}
	}
	u := Usage{}
	if parsed.Usage != nil && parsed.Usage.Total() > 0 {
		u = *parsed.Usage
	} else {
		var produced int64
		for _, ch := range parsed.Choices {
			produced += producedBytes(ch.Message)
		}
		u = Usage{PromptTokens: req.prompt, CompletionTokens: estimateTokens(produced)}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
	return u, nil
}

// transportError says in words why the provider could not be asked; the
// cause (the provider's address, "dial tcp …") stays in Err for the log.
func transportError(err error) *ProviderError {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &ProviderError{Status: http.StatusGatewayTimeout, Message: "the model provider did not answer in time", Err: err}
	}
	return &ProviderError{Status: http.StatusBadGateway, Message: "the model provider cannot be reached", Err: err}
}

// statusError says in words what a provider's refusal means; the
// provider's own text goes to the log only.
func statusError(code int, raw []byte) *ProviderError {
	e := &ProviderError{Status: http.StatusBadGateway, Err: fmt.Errorf("provider answered %d: %s", code, providerMessage(raw))}
	switch {
	case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge:
		// Usually the context is too long for the model.
		e.Status = http.StatusBadRequest
		e.Message = fmt.Sprintf("the model provider refused the request (%d); the conversation may be too long for the model", code)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		e.Message = fmt.Sprintf("the model provider refused the gateway's credentials (%d); an administrator should check LLM_API_KEY", code)
	case code == http.StatusNotFound:
		e.Message = "the model provider does not know the model or the endpoint (404); an administrator should check LLM_MODEL and LLM_BASE_URL"
	case code == http.StatusTooManyRequests:
		e.Status = http.StatusTooManyRequests
		e.Message = "the model provider asks the gateway to slow down (429); try again in a minute"
	case code >= 500:
		e.Message = fmt.Sprintf("the model provider failed (%d)", code)
	default:
		e.Message = fmt.Sprintf("the model provider refused the request (%d)", code)
	}
	return e
}

// pipeStream copies server-sent events to w as they arrive, flushing each
// event. It returns the usage figure if the provider sent one, and the
// bytes of text the model produced (for an estimate when it did not). It
// stops when the provider ends, the stream breaks, or w fails (the client
// went away), and then reports the error.
func pipeStream(w http.ResponseWriter, body io.Reader) (*Usage, int64, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var (
		reported *Usage
		produced int64
	)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			data = bytes.TrimSpace(data)
			if len(data) > 0 && data[0] == '{' {
				var chunk struct {
					Usage   *Usage `json:"usage"`
					Choices []struct {
						Delta json.RawMessage `json:"delta"`
					} `json:"choices"`
				}
				if json.Unmarshal(data, &chunk) == nil {
					if chunk.Usage != nil && chunk.Usage.Total() > 0 {
						reported = chunk.Usage
					}
					for _, ch := range chunk.Choices {
						produced += producedBytes(ch.Delta)
					}
				}
			}
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return reported, produced, fmt.Errorf("%w (%w)", errClientGone, err)
		}
		if len(line) == 0 {
			if err := rc.Flush(); err != nil {
				return reported, produced, fmt.Errorf("%w (%w)", errClientGone, err)
			}
		}
	}
	_ = rc.Flush()
	if err := sc.Err(); err != nil {
		return reported, produced, fmt.Errorf("llm: the provider's stream broke off: %w", err)
	}
	return reported, produced, nil
}

// producedBytes is the length of the text a model wrote in one message or
// streamed delta: its content, reasoning and tool calls.
func producedBytes(raw json.RawMessage) int64 {
	if len(raw) == 0 {
		return 0
	}
	var m struct {
		Content          json.RawMessage `json:"content"`
		ReasoningContent string          `json:"reasoning_content"`
		ToolCalls        []struct {
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return int64(len(raw))
	}
	n := int64(len(m.ReasoningContent))
	var text string
	if json.Unmarshal(m.Content, &text) == nil {
		n += int64(len(text))
	} else if s := string(m.Content); s != "null" {
		n += int64(len(s))
	}
	for _, tc := range m.ToolCalls {
		n += int64(len(tc.Function.Name) + len(tc.Function.Arguments))
	}
	return n
}

// providerMessage keeps a provider's error readable and short, without
// echoing anything that looks like a key. It is for the log.
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
