package ideproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/playbookstudio/gateway/internal/workspace/workspacetest"
)

func TestForwardHeadersAndKeepAlive(t *testing.T) { forEngines(t, testForwardHeadersAndKeepAlive) }

func testForwardHeadersAndKeepAlive(t *testing.T, engine string) {
	var seen atomic.Pointer[http.Request]
	f := newFixture(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r)
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Backend", "yes")
		w.Header().Set("Content-Security-Policy", "script-src 'self'")
		_, _ = io.WriteString(w, "hello "+r.URL.RequestURI())
	}))
	c := f.client()
	for i := range 20 {
		req := f.request(http.MethodGet, fmt.Sprintf("/a%%2Fb/c?x=%d&y=%%20", i), nil)
		req.Header.Set("Cookie", "theme=dark; "+f.cookie+"; pbs_session=s; __Host-pbs_csrf=c; lang=en")
		req.Header.Set("Authorization", "Bearer secret")
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("Forwarded", "for=203.0.113.9")
		req.Header.Set("Connection", "X-Hop, keep-alive")
		req.Header.Set("X-Hop", "1")
		req.Header.Set("Te", "trailers")
		req.Header.Set("X-Kept", "v1")
		req.Header.Add("X-Kept", "v2")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("hello /a%%2Fb/c?x=%d&y=%%20", i); resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("got %d %q, want %q", resp.StatusCode, body, want)
		}
		if i > 0 {
			continue
		}
		if resp.Header.Get("X-Backend") != "yes" || resp.Header.Get("X-Private") != "" || resp.Header.Get("Keep-Alive") != "" {
			t.Errorf("response headers: %v", resp.Header)
		}
		r := seen.Load()
		h := r.Header
		if got := h.Get("Cookie"); got != "theme=dark; lang=en" {
			t.Errorf("Cookie reaching the workspace: %q", got)
		}
		for _, k := range []string{"Authorization", "X-Forwarded-For", "Forwarded", "X-Hop"} {
			if v := h.Get(k); v != "" {
				t.Errorf("%s reached the workspace: %q", k, v)
			}
		}
		if h.Get("X-Forwarded-Host") != f.host || h.Get("X-Forwarded-Proto") != "http" || r.Host != f.host {
			t.Errorf("forwarding headers: host %q, %v", r.Host, h)
		}
		if h.Get("Te") != "trailers" || strings.Join(h.Values("X-Kept"), ",") != "v1,v2" {
			t.Errorf("kept headers: %v", h)
		}
		if h.Get("User-Agent") != "Go-http-client/1.1" {
			t.Errorf("User-Agent = %q", h.Get("User-Agent"))
		}
	}
	if n := f.conns.Load(); n != 1 {
		t.Errorf("the backend saw %d connections for 20 sequential requests, want 1 (keep-alive)", n)
	}
}

func TestForwardBodies(t *testing.T) { forEngines(t, testForwardBodies) }

func testForwardBodies(t *testing.T, engine string) {
	big := make([]byte, 5<<20+123)
	_, _ = rand.Read(big)
	f := newFixture(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("X-Length", fmt.Sprint(r.ContentLength))
			w.Header().Set("X-Encoding", strings.Join(r.TransferEncoding, ","))
			body, _ := io.ReadAll(r.Body)
			_, _ = w.Write(body)
		case "/early":
			// Answers without reading the body, and keeps the
			// connection open.
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			_, _ = w.Write(big)
		case "/chunked":
			for i := range 5 {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
			}
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Content-Length", "7")
			_, _ = io.WriteString(w, "default")
		}
	}))
	c := f.client()
	get := func(req *http.Request) (*http.Response, []byte) {
		t.Helper()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	// A body of known length, both ways.
	resp, body := get(f.request(http.MethodPost, "/echo", bytes.NewReader(big)))
	if !bytes.Equal(body, big) || resp.Header.Get("X-Length") != fmt.Sprint(len(big)) {
		t.Errorf("POST echo: %d bytes, length header %q", len(body), resp.Header.Get("X-Length"))
	}
	// An answer before the body was read.
	resp, _ = get(f.request(http.MethodPost, "/early", bytes.NewReader(big)))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("early answer: %d", resp.StatusCode)
	}
	// A chunked request body streams chunked.
	pr, pw := io.Pipe()
	go func() {
		for i := range 10 {
			fmt.Fprintf(pw, "chunk %d\n", i)
		}
		pw.Close()
	}()
	req := f.request(http.MethodPut, "/echo", pr)
	req.ContentLength = -1
	resp, body = get(req)
	if !strings.HasPrefix(string(body), "chunk 0\n") || !strings.HasSuffix(string(body), "chunk 9\n") || resp.Header.Get("X-Encoding") != "chunked" {
		t.Errorf("chunked PUT: %q %v", body, resp.Header)
	}
	// An empty POST says so.
	resp, _ = get(f.request(http.MethodPost, "/echo", nil))
	if resp.Header.Get("X-Length") != "0" {
		t.Errorf("empty POST: length %q", resp.Header.Get("X-Length"))
	}
	// A large response with a length.
	resp, body = get(f.request(http.MethodGet, "/big", nil))
	if !bytes.Equal(body, big) || resp.ContentLength != int64(len(big)) {
		t.Errorf("big: %d bytes, length %d", len(body), resp.ContentLength)
	}
	// A chunked response, trailers, HEAD, 204.
	_, body = get(f.request(http.MethodGet, "/chunked", nil))
	if string(body) != "part 0;part 1;part 2;part 3;part 4;" {
		t.Errorf("chunked: %q", body)
	}
	resp, body = get(f.request(http.MethodGet, "/trailer", nil))
	if string(body) != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("trailer: %q %v", body, resp.Trailer)
	}
	resp, body = get(f.request(http.MethodHead, "/", nil))
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 7 {
		t.Errorf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	resp, _ = get(f.request(http.MethodGet, "/nocontent", nil))
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("204: %d", resp.StatusCode)
	}
	resp, body = get(f.request(http.MethodGet, "/", nil))
	if string(body) != "default" {
		t.Errorf("after all that: %d %q", resp.StatusCode, body)
	}
	if n := f.conns.Load(); n != 2 {
		t.Errorf("the backend saw %d connections, want 2 (one after the early answer)", n)
	}
}

func TestForwardStreams(t *testing.T) { forEngines(t, testForwardStreams) }

func testForwardStreams(t *testing.T, engine string) {
	next := make(chan struct{})
	f := newFixture(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for i := range 3 {
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	}))
	resp := f.do(f.request(http.MethodGet, "/events", nil))
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		next <- struct{}{}
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
	}
}

// rawBackend answers each request on a connection with "ok" and then
// closes the connection without saying so, like a server whose keep-alive
// timeout just passed.
func rawBackend(t *testing.T, requests *atomic.Int64) (dial func(ctx context.Context) (net.Conn, error)) {
	dial, _ = listenConns(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		requests.Add(1)
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	return dial
}

func workspaceKey(f *fixture) string {
	sess, ok := f.sessions.Live(f.sid)
	if !ok {
		f.t.Fatal("no live session")
	}
	return sess.WorkspaceKey
}

func TestForwardUnreachableWorkspace(t *testing.T) { forEngines(t, testForwardUnreachableWorkspace) }

func testForwardUnreachableWorkspace(t *testing.T, engine string) {
	f := &fixture{t: t, engine: engine, rt: &workspacetest.Runtime{DialFunc: func(context.Context) (net.Conn, error) {
		return nil, errors.New("connection refused")
	}}}
	f.start()
	resp := f.do(f.request(http.MethodGet, "/", nil))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "workspace_unreachable") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestCutAbortsRequestsInFlight(t *testing.T) { forEngines(t, testCutAbortsRequestsInFlight) }

func testCutAbortsRequestsInFlight(t *testing.T, engine string) {
	arrived := make(chan string, 2)
	release := make(chan struct{})
	f := newFixture(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/partial" {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "half")
			w.(http.Flusher).Flush()
		}
		arrived <- r.URL.Path
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	type result struct {
		code int
		body string
		err  error
	}
	results := make(chan result, 2)
	for _, path := range []string{"/waiting", "/partial"} {
		go func() {
			req := f.request(http.MethodGet, path, nil)
			req.Header.Set("Accept", "application/json")
			resp, err := f.client().Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{code: resp.StatusCode, body: string(body), err: err}
		}()
	}
	<-arrived
	<-arrived
	start := time.Now()
	f.end()
	for range 2 {
		select {
		case r := <-results:
			switch {
			case r.err != nil:
				// The response under way was aborted, not completed.
				if r.body != "" && r.body != "half" {
					t.Errorf("aborted with body %q", r.body)
				}
			case r.code == http.StatusGone && strings.Contains(r.body, "session_ended"):
			default:
				t.Errorf("after the cut: %d %q", r.code, r.body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a request outlived its session")
		}
	}
	t.Logf("requests cut %v after the session ended", time.Since(start))
	// And the session's host refuses from now on.
	req := f.request(http.MethodGet, "/", nil)
	req.Header.Set("Accept", "application/json")
	resp := f.do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Errorf("after the end: %d", resp.StatusCode)
	}
}

// cannedBackend answers every request on a keep-alive connection with the
// same small response, allocating nothing per request.
func cannedBackend(t testing.TB) func(ctx context.Context) (net.Conn, error) {
	const resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Wed, 25 Nov 2026 22:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 36\r\n\r\n{\"status\":\"alive\",\"lastHeartbeat\":0}"
	dial, _ := listenConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	})
	return dial
}

// BenchmarkServe is one small proxied GET through Serve (no network on
// the browser's side), per engine.
func BenchmarkServe(b *testing.B) {
	for _, engine := range engines {
		b.Run(engine, func(b *testing.B) {
			f := &fixture{t: b, engine: engine, rt: workspacetest.New()}
			f.rt.DialFunc = cannedBackend(b)
			f.start()
			e := echo.New()
			e.Any("/*", f.p.Serve)
			req := httptest.NewRequest(http.MethodGet, "http://"+f.host+"/healthz", nil)
			req.Header.Set("Cookie", f.cookie)
			req.Header.Set("User-Agent", "pbs-bench")
			req.Header.Set("Accept", "*/*")
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				e.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
	}
}

// answeringBackend answers every request with the bytes of answer (then
// closes the connection), whatever the proxy does with them.
func answeringBackend(t *testing.T, answer func(w io.Writer)) func(ctx context.Context) (net.Conn, error) {
	dial, _ := listenConns(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		answer(c)
	})
	return dial
}

func TestForwardRefusesAnOversizedHead(t *testing.T) {
	forEngines(t, testForwardRefusesAnOversizedHead)
}

func testForwardRefusesAnOversizedHead(t *testing.T, engine string) {
	f := &fixture{t: t, engine: engine, rt: workspacetest.New()}
	f.rt.DialFunc = answeringBackend(t, func(w io.Writer) {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nX-Big: ")
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range (maxResponseHead >> 16) + 2 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "\r\nContent-Length: 0\r\n\r\n")
	})
	f.start()
	resp := f.do(f.request(http.MethodGet, "/", nil))
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("a head of over %d bytes: %d, want 502", maxResponseHead, resp.StatusCode)
	}
}

func TestForwardShortRequestBody(t *testing.T) { forEngines(t, testForwardShortRequestBody) }

// A browser that sends less body than it announced and stops: the
// workspace must not wait for the rest.
func testForwardShortRequestBody(t *testing.T, engine string) {
	got := make(chan error, 1)
	f := newFixture(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	}))
	c, err := net.Dial("tcp", f.gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 100 KB of the 1 MB announced: more than the proxy buffers, so the
	// workspace gets the request and part of its body.
	req := "POST /upload HTTP/1.1\r\nHost: " + f.host + "\r\nCookie: " + f.cookie + "\r\nContent-Length: 1000000\r\n\r\n"
	if _, err := io.WriteString(c, req+strings.Repeat("x", 100_000)); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err == nil {
			t.Error("the workspace read a whole body")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the workspace still waits for the rest of the body")
	}
	// And the browser is answered (or let go).
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("the browser's connection: %v", err)
	}
}
