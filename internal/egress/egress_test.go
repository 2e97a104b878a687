package egress

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/playbookstudio/gateway/internal/egress/egresstest"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memOpener is the test double of integration.Profiles.Open.
type memOpener struct {
	mu sync.Mutex
	m  map[string]integration.Opened
}

func (o *memOpener) Open(_ context.Context, tenant, name string) (integration.Opened, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.m[tenant+"/"+name]
	if !ok {
		return p, fault.New(fault.NotFound, "integration_not_found", "no integration profile "+name)
	}
	return p, nil
}

func profile(name, base string, m integration.Method, c integration.Config, s integration.Secrets) integration.Opened {
	return integration.Opened{Profile: integration.Profile{ID: "id-" + name, Tenant: "t1", Name: name, BaseURL: base, AuthMethod: m, Config: c}, Secrets: s}
}

func cidrs(t testing.TB, s ...string) []*net.IPNet {
	var out []*net.IPNet
	for _, c := range s {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func newEgress(t testing.TB, cfg Config, ps ...integration.Opened) *Egress {
	t.Helper()
	o := &memOpener{m: map[string]integration.Opened{}}
	for _, p := range ps {
		o.m[p.Tenant+"/"+p.Name] = p
	}
	if cfg.AllowCIDRs == nil {
		cfg.AllowCIDRs = cidrs(t, "127.0.0.1/32")
	}
	e, err := New(cfg, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func do(t *testing.T, e *Egress, r Request) *Response {
	t.Helper()
	if r.Tenant == "" {
		r.Tenant = "t1"
	}
	resp, err := e.Do(context.Background(), r)
	if err != nil {
		t.Fatalf("Do(%s %s): %v", r.Method, r.Path, err)
	}
	return resp
}

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestNewValidates(t *testing.T) {
	o := &memOpener{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := New(Config{}, nil, log); err == nil {
		t.Error("New without an opener succeeded")
	}
	if _, err := New(Config{}, o, nil); err == nil {
		t.Error("New without a logger succeeded")
	}
	if _, err := New(Config{Timeout: -1}, o, log); err == nil {
		t.Error("New with a negative timeout succeeded")
	}
	e, err := New(Config{}, o, log)
	if err != nil || e.cfg.Timeout != 30*time.Second || e.cfg.MaxResponseBytes != 5<<20 || e.cfg.MaxRequestBytes != 5<<20 {
		t.Fatalf("defaults: %+v, %v", e.cfg, err)
	}
}

func TestBasicAndBearer(t *testing.T) {
	basic := egresstest.Serve(t, egresstest.Basic("svc", "pa55-w0rd"))
	bearer := egresstest.Serve(t, egresstest.Bearer("jwt.token.value"))
	e := newEgress(t, Config{},
		profile("basic", basic.URL+"/api", integration.Basic, integration.Config{Username: "svc"}, integration.Secrets{Password: "pa55-w0rd"}),
		profile("basic-wrong", basic.URL+"/api", integration.Basic, integration.Config{Username: "svc"}, integration.Secrets{Password: "nope"}),
		profile("bearer", bearer.URL+"/api", integration.Bearer, integration.Config{}, integration.Secrets{Token: "jwt.token.value"}),
		profile("bearer-wrong", bearer.URL+"/api", integration.Bearer, integration.Config{}, integration.Secrets{Token: "other"}),
	)
	for _, c := range []struct {
		profile, path string
		status        int
	}{{"basic", "/basic", 200}, {"basic-wrong", "/basic", 401}, {"bearer", "/bearer", 200}, {"bearer-wrong", "/bearer", 401}} {
		resp := do(t, e, Request{Profile: c.profile, Method: "GET", Path: c.path})
		if resp.Status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.profile, resp.Status, c.status, resp.Body)
		}
		if c.status == 200 {
			// The verifiers echo the credential back, as httpbin does: it
			// must not reach the playbook.
			for _, leak := range []string{"pa55-w0rd", "jwt.token.value", "c3ZjOnBhNTUtdzByZA=="} {
				if contains(string(resp.Body), leak) || contains(resp.Header.Get("X-Echo"), leak) {
					t.Errorf("%s: the answer carries %q: %q / %q", c.profile, leak, resp.Body, resp.Header.Get("X-Echo"))
				}
			}
			if !contains(string(resp.Body), redacted) {
				t.Errorf("%s: body %q, want the echoed credential redacted", c.profile, resp.Body)
			}
		}
	}
}

func TestAPIKey(t *testing.T) {
	const key = "k-3f9a/b+c"
	hdr := egresstest.Serve(t, egresstest.APIKey("header", "X-API-Key", key))
	qry := egresstest.Serve(t, egresstest.APIKey("query", "apikey", key)) // echoes the key in the query
	e := newEgress(t, Config{},
		profile("hdr", hdr.URL, integration.APIKey, integration.Config{In: "header", Name: "X-API-Key"}, integration.Secrets{APIKey: key}),
		profile("qry", qry.URL, integration.APIKey, integration.Config{In: "query", Name: "apikey"}, integration.Secrets{APIKey: key}),
		profile("hdr-wrong", hdr.URL, integration.APIKey, integration.Config{In: "header", Name: "X-API-Key"}, integration.Secrets{APIKey: "nope"}),
		profile("qry-wrong", qry.URL, integration.APIKey, integration.Config{In: "query", Name: "apikey"}, integration.Secrets{APIKey: "nope"}),
	)
	for _, c := range []struct {
		profile, path string
		status        int
	}{{"hdr", "/h", 200}, {"qry", "/q?x=1", 200}, {"hdr-wrong", "/h", 403}, {"qry-wrong", "/q", 403}} {
		resp := do(t, e, Request{Profile: c.profile, Method: "GET", Path: c.path, Query: url.Values{"y": {"2"}}})
		if resp.Status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.profile, resp.Status, c.status, resp.Body)
		}
		if contains(string(resp.Body), "k-3f9a") {
			t.Errorf("%s: the answer carries the key: %s", c.profile, resp.Body)
		}
	}
}

func TestOAuth2ClientCredentials(t *testing.T) {
	o := egresstest.NewOAuth2("client-1", "s3cr3t-client")
	srv := egresstest.Serve(t, o)
	cfg := integration.Config{TokenURL: srv.URL + egresstest.TokenPath, ClientID: "client-1", Scopes: []string{"read", "write"}, Audience: "https://api.example"}
	e := newEgress(t, Config{},
		profile("graph", srv.URL+"/v1", integration.OAuth2ClientCredentials, cfg, integration.Secrets{ClientSecret: "s3cr3t-client"}),
		profile("graph-wrong", srv.URL+"/v1", integration.OAuth2ClientCredentials, cfg, integration.Secrets{ClientSecret: "wrong-secret"}),
	)
	for i := 0; i < 3; i++ {
		resp := do(t, e, Request{Profile: "graph", Method: "POST", Path: "/me", Body: []byte("payload")})
		if resp.Status != 200 || !contains(string(resp.Body), "and payload") {
			t.Fatalf("call %d: %d %s", i, resp.Status, resp.Body)
		}
		if contains(string(resp.Body), "access-") {
			t.Errorf("the access token is not redacted: %s", resp.Body)
		}
	}
	if n := o.Issued(); n != 1 {
		t.Errorf("%d token requests for 3 calls, want 1 (the token is cached until it expires)", n)
	}
	if form := o.LastForm(); form.Get("scope") != "read write" || form.Get("audience") != "https://api.example" {
		t.Errorf("token request form %v, want scope and audience", form)
	}

	// The resource revokes the token: one refresh, one retry of the same
	// body, and the caller never sees the 401.
	o.RevokeAll()
	resp := do(t, e, Request{Profile: "graph", Method: "POST", Path: "/me", Body: []byte("again")})
	if resp.Status != 200 || !contains(string(resp.Body), "and again") {
		t.Fatalf("after revocation: %d %s", resp.Status, resp.Body)
	}
	if n := o.Issued(); n != 2 {
		t.Errorf("%d token requests, want 2 (one refresh after the 401)", n)
	}

	// A wrong client secret: the token endpoint's 401 comes back as the
	// answer, marked, and without the secret it quoted.
	resp = do(t, e, Request{Tenant: "t1", Profile: "graph-wrong", Method: "GET", Path: "/me"})
	if resp.Status != 401 || resp.Header.Get("X-Egress-Stage") != "token" || !contains(string(resp.Body), "invalid_client") {
		t.Fatalf("wrong secret: %d %v %s", resp.Status, resp.Header, resp.Body)
	}
	if contains(string(resp.Body), "wrong-secret") {
		t.Errorf("the token endpoint's answer leaks the secret: %s", resp.Body)
	}
}

// The token request goes through the same address policy: a token URL on
// a loopback address that EGRESS_ALLOW_CIDRS does not cover is refused.
func TestOAuth2TokenURLUnderPolicy(t *testing.T) {
	var dialled []string
	cfg := Config{AllowCIDRs: cidrs(t, "127.0.0.1/32"), dialHook: func(a string) { dialled = append(dialled, a) }}
	res := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	e := newEgress(t, cfg, profile("p", res.URL, integration.OAuth2ClientCredentials,
		integration.Config{TokenURL: "http://127.0.0.3:9/token", ClientID: "c"}, integration.Secrets{ClientSecret: "s"}))
	_, err := e.Do(context.Background(), Request{Tenant: "t1", Profile: "p", Path: "/"})
	if fault.CodeOf(err) != "egress_refused" {
		t.Fatalf("Do = %v, want egress_refused for the token endpoint", err)
	}
	// (x/oauth2 tries the client's credentials in a header, then in the
	// form: two attempts, both refused before connecting.)
	for _, a := range dialled {
		if !strings.HasPrefix(a, "127.0.0.3:") {
			t.Errorf("dialled %v", dialled)
		}
	}
	if len(dialled) == 0 {
		t.Error("the token endpoint's address never reached the policy")
	}
}

func TestRedirectReturnedNotFollowed(t *testing.T) {
	// The redirect target is another local server: were the redirect
	// followed, it would be reached (and no test traffic ever leaves
	// loopback, even when this code regresses).
	var hits, stolen atomic.Int32
	other := server(t, func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) })
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	})
	var mu sync.Mutex
	var dialled []string
	e := newEgress(t, Config{AllowCIDRs: cidrs(t, "127.0.0.1/32"), dialHook: func(a string) { mu.Lock(); dialled = append(dialled, a); mu.Unlock() }},
		profile("p", srv.URL, integration.Bearer, integration.Config{}, integration.Secrets{Token: "a-bearer-token"}))
	resp := do(t, e, Request{Profile: "p", Method: "GET", Path: "/x"})
	if resp.Status != http.StatusFound || resp.Header.Get("Location") != other.URL+"/steal" {
		t.Fatalf("got %d %v, want the 302 as it is", resp.Status, resp.Header)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits.Load() != 1 || stolen.Load() != 0 || len(dialled) != 1 || dialled[0] != srv.Listener.Addr().String() {
		t.Errorf("hits %d, redirect target hits %d, dialled %v: only the profile's server may be reached", hits.Load(), stolen.Load(), dialled)
	}
}

func TestLimits(t *testing.T) {
	const secret = "SECRET-TOKEN-VALUE"
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("a", 5000)))
		case "/cut-secret": // the cap falls inside an echoed secret
			_, _ = w.Write([]byte(strings.Repeat("a", 1020) + secret + strings.Repeat("b", 100)))
		case "/slow":
			<-r.Context().Done()
		}
	})
	e := newEgress(t, Config{MaxResponseBytes: 1024, Timeout: 300 * time.Millisecond},
		profile("p", srv.URL, integration.Bearer, integration.Config{}, integration.Secrets{Token: secret}))
	resp := do(t, e, Request{Profile: "p", Path: "/big"})
	if !resp.Truncated || len(resp.Body) != 1024 {
		t.Errorf("big: truncated=%v len=%d, want true 1024", resp.Truncated, len(resp.Body))
	}
	resp = do(t, e, Request{Profile: "p", Path: "/cut-secret"})
	if !resp.Truncated || contains(string(resp.Body), "SECR") || len(resp.Body) != 1020 {
		t.Errorf("cut-secret: truncated=%v tail=%q, want the partial secret dropped", resp.Truncated, resp.Body[max(0, len(resp.Body)-10):])
	}
	_, err := e.Do(context.Background(), Request{Tenant: "t1", Profile: "p", Method: "POST", Path: "/x", Body: make([]byte, 1025)})
	if f, ok := fault.As(err); !ok || f.Kind != fault.TooLarge || f.Code != "egress_body_too_large" {
		t.Errorf("big request body: %v, want egress_body_too_large", err)
	}
	_, err = e.Do(context.Background(), Request{Tenant: "t1", Profile: "p", Path: "/slow"})
	if f, ok := fault.As(err); !ok || f.Code != "egress_timeout" || !contains(f.Message, "EGRESS_TIMEOUT") {
		t.Errorf("slow: %v, want egress_timeout", err)
	}
	_, err = e.Do(context.Background(), Request{Tenant: "t1", Profile: "p", Path: "/../etc"})
	if fault.CodeOf(err) != "invalid_path" {
		t.Errorf("path escape: %v, want invalid_path", err)
	}
	_, err = e.Do(context.Background(), Request{Tenant: "t1", Profile: "nope", Path: "/"})
	if fault.CodeOf(err) != "integration_not_found" {
		t.Errorf("unknown profile: %v, want integration_not_found", err)
	}
	_, err = e.Do(context.Background(), Request{Tenant: "t1", Profile: "p", Method: "TRACE", Path: "/"})
	if fault.CodeOf(err) != "invalid_method" {
		t.Errorf("TRACE: %v, want invalid_method", err)
	}
}

// TestRangeHeadersDropped: a playbook cannot ask for a byte range of an
// answer (a server echoing the credential would hand it out in pieces too
// small to redact), nor move the call to another host with Host.
func TestRangeHeadersDropped(t *testing.T) {
	var seen atomic.Value
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Range") + "|" + r.Header.Get("If-Range") + "|" + r.Host + "|" + r.Header.Get("X-Keep"))
	})
	e := newEgress(t, Config{AllowCIDRs: cidrs(t, "127.0.0.1/32")},
		profile("p", srv.URL, integration.Bearer, integration.Config{}, integration.Secrets{Token: "a-bearer-token"}))
	do(t, e, Request{Profile: "p", Method: "GET", Path: "/x", Header: http.Header{
		"Range": {"bytes=0-3"}, "If-Range": {"x"}, "Host": {"evil.example"}, "X-Keep": {"yes"}}})
	if got, want := seen.Load(), "||"+srv.Listener.Addr().String()+"|yes"; got != want {
		t.Errorf("the server saw %q, want %q", got, want)
	}
}
