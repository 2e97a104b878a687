package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
)

// Config is the egress's share of the gateway's settings.
type Config struct {
	// AllowCIDRs (EGRESS_ALLOW_CIDRS) are the non-public networks calls may
	// reach anyway (an on-premises ticketing system, a test server).
	AllowCIDRs []*net.IPNet
	// Timeout (EGRESS_TIMEOUT) bounds one call, answer included, and its
	// token request. Zero: 30s.
	Timeout time.Duration
	// MaxResponseBytes (EGRESS_MAX_RESPONSE_BYTES) is the most of an answer
	// body kept; the rest is dropped and Response.Truncated set. Zero: 5 MiB.
	MaxResponseBytes int64
	// MaxRequestBytes is the largest body a call may send. Zero: the same
	// as MaxResponseBytes.
	MaxRequestBytes int64

	// dialHook, for tests, sees every address the dialer is about to
	// connect to, before the policy decides.
	dialHook func(address string)
}

// Egress is the Doer of the gateway.
type Egress struct {
	cfg      Config
	profiles Opener
	log      *slog.Logger
	client   *http.Client
	tokens   *tokenCache
	now      func() time.Time
}

var _ Doer = (*Egress)(nil)

// New checks cfg and builds the one HTTP client every call (and every
// OAuth2 token request) goes through, so the address policy cannot be
// side-stepped.
func New(cfg Config, profiles Opener, log *slog.Logger) (*Egress, error) {
	if profiles == nil {
		return nil, errors.New("egress: a profile opener is required")
	}
	if log == nil {
		return nil, errors.New("egress: a logger is required")
	}
	if cfg.Timeout < 0 || cfg.MaxResponseBytes < 0 || cfg.MaxRequestBytes < 0 {
		return nil, errors.New("egress: Timeout, MaxResponseBytes and MaxRequestBytes must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = 5 << 20
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = cfg.MaxResponseBytes
	}
	pol, err := newPolicy(cfg.AllowCIDRs)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: min(cfg.Timeout, 10*time.Second), KeepAlive: 30 * time.Second, Control: pol.control(cfg.dialHook)}
	tr := &http.Transport{
		// Never a proxy from the environment: the policy is about where
		// the gateway connects, and a proxy would connect for it.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// Redirects go back to the playbook as they are: following one
		// could leave the base URL (or carry the credentials elsewhere).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Egress{cfg: cfg, profiles: profiles, log: log, client: client, tokens: newTokenCache(), now: time.Now}, nil
}

// Close drops idle connections.
func (e *Egress) Close() { e.client.CloseIdleConnections() }

var methods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// Do makes one call through the tenant's profile.
func (e *Egress) Do(ctx context.Context, r Request) (*Response, error) {
	start := time.Now()
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = http.MethodGet
	}
	if !methods[method] {
		return nil, fault.New(fault.Invalid, "invalid_method", fmt.Sprintf("method %q is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", r.Method))
	}
	if int64(len(r.Body)) > e.cfg.MaxRequestBytes {
		return nil, fault.New(fault.TooLarge, "egress_body_too_large", fmt.Sprintf("the request body is %d bytes; integration calls send at most %d (EGRESS_MAX_RESPONSE_BYTES)", len(r.Body), e.cfg.MaxRequestBytes))
	}
	p, err := e.profiles.Open(ctx, r.Tenant, r.Profile)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(p.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.User != nil {
		return nil, fault.New(fault.Invalid, "invalid_integration", fmt.Sprintf("profile %q has a baseUrl that is not an absolute http(s) URL", p.Name))
	}
	u, err := joinURL(base, r.Path, r.Query)
	if err != nil {
		return nil, err
	}
	a, err := newAuth(p, e)
	if err != nil {
		return nil, err
	}
	red := a.redactor()

	var resp *http.Response
	for attempt := 0; ; attempt++ {
		req, err := e.request(ctx, method, u, r.Header, r.Body)
		if err != nil {
			return nil, err
		}
		tokenResp, err := a.apply(ctx, req, r.Body, attempt > 0)
		if err != nil {
			return nil, e.transportErr(ctx, err, red, u.Host)
		}
		if tokenResp != nil { // the token endpoint said no: that is the answer
			tokenResp.Duration = time.Since(start)
			e.logCall(r, method, u, red, tokenResp)
			return tokenResp, nil
		}
		resp, err = e.client.Do(req)
		if err != nil {
			return nil, e.transportErr(ctx, err, red, u.Host)
		}
		// An OAuth2 token may be revoked or expire early: one fresh token
		// and one retry (the body is bytes, so it can be sent again).
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && a.retryOn401() {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
			continue
		}
		break
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, e.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, e.transportErr(ctx, err, red, u.Host)
	}
	out := &Response{Status: resp.StatusCode, Header: red.header(resp.Header)}
	if int64(len(body)) > e.cfg.MaxResponseBytes {
		body = red.cutTail(body[:e.cfg.MaxResponseBytes])
		out.Truncated = true
	}
	out.Body = red.bytes(body)
	out.Duration = time.Since(start)
	e.logCall(r, method, u, red, out)
	return out, nil
}

func (e *Egress) request(ctx context.Context, method string, u *url.URL, h http.Header, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	uc := *u
	req, err := http.NewRequestWithContext(ctx, method, uc.String(), rd)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, "invalid_path", "the path does not make a valid URL", err)
	}
	req.URL = &uc // keep RawPath exactly as joined
	for k, vs := range h {
		if strings.EqualFold(k, "Host") {
			continue // the host is the profile's, never the caller's
		}
		if strings.EqualFold(k, "Range") || strings.EqualFold(k, "If-Range") {
			// A byte range of an answer that echoes a credential would
			// hand it out in pieces too small to redact.
			continue
		}
		req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	return req, nil
}

// transportErr turns a failed call into a refusal whose message names the
// problem and whose cause carries no secret (an api_key in the query is
// part of the URL that url.Error quotes).
func (e *Egress) transportErr(ctx context.Context, err error, red *redactor, host string) error {
	if f, ok := fault.As(err); ok {
		return f
	}
	var refused *RefusedError
	if errors.As(err, &refused) {
		return fault.New(fault.Forbidden, "egress_refused", refused.Error())
	}
	cause := errors.New(red.string(err.Error()))
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fault.Wrap(fault.Unavailable, "egress_canceled", "the call to "+host+" was canceled", cause)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fault.Wrap(fault.Unavailable, "egress_timeout", fmt.Sprintf("%s did not answer within %s (EGRESS_TIMEOUT)", host, e.cfg.Timeout), cause)
	}
	return fault.Wrap(fault.Unavailable, "egress_unreachable", "could not reach "+host+": "+red.string(shortErr(err)), cause)
}

// shortErr is the innermost message of err (url.Error and net.OpError
// repeat the URL and addresses around it).
func shortErr(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

func (e *Egress) logCall(r Request, method string, u *url.URL, red *redactor, out *Response) {
	e.log.Info("egress call", "tenant", r.Tenant, "profile", r.Profile, "method", method, "host", u.Host,
		"path", red.string(u.EscapedPath()), "status", out.Status, "bytes", len(out.Body), "truncated", out.Truncated,
		"duration_ms", out.Duration.Milliseconds())
}

// opened is what auth needs of a profile.
type opened = integration.Opened
