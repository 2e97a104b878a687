package ideproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/workspace/workspacetest"
)

// FuzzForwardDifferential sends one request, made of fuzzed parts, to
// the gateway twice: through the relay engine and through the stdlib
// engine. It was written to hold a hand-written HTTP forwarder to
// net/http's framing; that forwarder lost to httputil.ReverseProxy in
// `make bench` and went, so both engines now carry HTTP through
// ReverseProxy and the comparison guards against the engines' HTTP
// paths drifting apart again; the invariants below are what it still
// finds when they fail. Behind each sits a raw
// workspace that records exactly what it received and answers with the
// fuzzed response bytes. It checks, for each engine, what must never
// reach a workspace (the gateway's cookies, credentials, forwarding
// headers the client made up, request trailers), and that both engines
// deliver the same request to the workspace (method, path, host, headers,
// framing, body) and the same response to the browser (status, headers,
// framing, body, truncation), up to the differences listed in
// sameUpstream and sameClient, each of which is equivalent for a server
// or a browser. Where net/http rejects the workspace's response (the
// stdlib engine answers 502), the forwarder must reject it too.
//
// The request's framing is the harness's (framing: 0 Content-Length, 1
// chunked, 2 chunked with trailers, 3 none): malformed request framing
// is refused by the gateway's own net/http server before either engine
// sees the request, so fuzzing it would compare net/http with itself.
func FuzzForwardDifferential(f *testing.F) {
	type seed struct {
		method, target, headers string
		body                    string
		framing                 uint8
		response                string
	}
	ok := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
	for _, s := range []seed{
		{"GET", "/", "", "", 3, ok},
		{"GET", "/static/x.js?v=1&w=%20", "Accept: */*\nUser-Agent: Mozilla/5.0", "", 3, ok},
		{"POST", "/upload", "Content-Type: application/octet-stream", "0123456789", 0, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"},
		{"PUT", "/chunked", "", "some streamed bytes", 1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
		{"PUT", "/trailers", "Te: trailers", "body", 2, "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nX-Sum: 42\r\n\r\n"},
		{"POST", "/empty", "", "", 1, ok},
		{"POST", "/empty", "", "", 0, ok},
		{"DELETE", "/thing", "", "", 3, "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"},
		{"GET", "/cached", "If-None-Match: \"x\"", "", 3, "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n"},
		{"HEAD", "/", "", "", 3, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
		{"GET", "/until-close", "", "", 3, "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\nread until the workspace closes"},
		{"GET", "/events", "Accept: text/event-stream", "", 3, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n"},
		{"GET", "/early", "", "", 3, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" + ok},
		{"GET", "/switch", "", "", 3, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
		{"GET", "/h2c", "Connection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA", "", 3, ok},
		{"GET", "/garbage", "", "", 3, "this is not HTTP at all\r\n\r\n"},
		{"GET", "/nothing", "", "", 3, ""},
		{"GET", "/short", "", "", 3, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
		{"GET", "/badchunk", "", "", 3, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
		{"GET", "/both", "", "", 3, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"GET", "/twolengths", "", "", 3, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{"GET", "/samelengths", "", "", 3, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
		{"GET", "/gzip-te", "", "", 3, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc"},
		{"GET", "/hop", "", "", 3, "HTTP/1.1 200 OK\r\nConnection: X-Private, close\r\nX-Private: hop\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nSet-Cookie: theme=dark; Path=/\r\nContent-Length: 2\r\n\r\nok"},
		{"GET", "/creds", "Authorization: Bearer secret\nProxy-Authorization: Basic eA==\nCookie: pbs_session=portal; theme=dark\nCookie: __Host-pbs_csrf=c; lang=en; pbs_ide=other\nX-Forwarded-For: 203.0.113.9\nX-Forwarded-Host: evil.example\nX-Forwarded-Proto: https\nForwarded: for=203.0.113.9\nConnection: X-Hop\nX-Hop: 1\nX-Kept: a\nX-Kept: b", "", 3, ok},
		{"GET", "/expect", "Expect: 100-continue", "", 3, ok},
		{"POST", "/expect", "Expect: 100-continue", "data", 0, ok},
		{"GET", "/a%2Fb/%41/c%20d;p?x=1;y=2&z=%zz", "", "", 3, ok},
		{"GET", "/é?q=é", "", "", 3, ok},
		{"OPTIONS", "*", "", "", 3, ok},
		{"GET", "/empty-ua", "User-Agent:", "", 3, ok},
		{"GET", "/big-head", "", "", 3, "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("x", 8000) + "\r\nContent-Length: 0\r\n\r\n"},
		{"PATCH", "/notfound", "", "x", 0, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"},
		{"GET", "/trailer-undeclared", "", "", 3, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Late: 1\r\n\r\n"},
	} {
		f.Add(s.method, s.target, s.headers, []byte(s.body), s.framing, []byte(s.response))
	}
	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte, framing uint8, response []byte) {
		if len(method)+len(target)+len(headers) > 16<<10 || len(body) > 64<<10 || len(response) > 64<<10 {
			t.Skip("too large to be interesting")
		}
		var got [2]exchange
		for i, engine := range engines {
			got[i] = runExchange(t, engine, method, target, headers, body, framing%4, response)
			got[i].checkInvariants(t, engine)
		}
		sameUpstream(t, got[0], got[1])
		sameClient(t, got[0], got[1])
	})
}

// exchange is one request through one engine: what the workspace got
// and what the browser got.
type exchange struct {
	host, cookieValue string
	method            string
	upstream          []upstreamSaw
	client            clientSaw
}

// upstreamSaw is a request as the workspace received it.
type upstreamSaw struct {
	err           error // it could not be parsed, or its body not read
	raw           []byte
	method        string
	url           *url.URL
	requestURI    string
	host          string
	header        http.Header
	contentLength int64
	chunked       bool
	body          []byte
	trailer       http.Header
}

// clientSaw is the gateway's response as the browser received it (1xx
// answers skipped, as a browser does).
type clientSaw struct {
	err           error // no response at all
	status        int
	header        http.Header
	contentLength int64
	chunked       bool
	body          []byte
	truncated     bool // the body ended early
	trailer       http.Header
}

// rawWorkspace records each request it gets and answers it with
// response, then closes the connection.
type rawWorkspace struct {
	response []byte
	mu       sync.Mutex
	saw      []upstreamSaw
}

func (w *rawWorkspace) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	saw := upstreamSaw{}
	req, err := http.ReadRequest(br)
	if err == nil {
		saw.method, saw.url, saw.requestURI, saw.host = req.Method, req.URL, req.RequestURI, req.Host
		saw.header, saw.contentLength = req.Header, req.ContentLength
		saw.chunked = len(req.TransferEncoding) > 0
		saw.body, err = io.ReadAll(req.Body)
		saw.trailer = req.Trailer
	}
	saw.err = err
	if err == nil && br.Buffered() > 0 {
		saw.err = fmt.Errorf("%d bytes after the request", br.Buffered())
	}
	saw.raw = raw.Bytes()
	w.mu.Lock()
	w.saw = append(w.saw, saw)
	w.mu.Unlock()
	_, _ = c.Write(w.response)
}

// runExchange builds a gateway with engine in front of a raw workspace,
// sends it the request and reads the answer.
func runExchange(t *testing.T, engine, method, target, headers string, body []byte, framing uint8, response []byte) exchange {
	ws := &rawWorkspace{response: response}
	dial, stop := listenConns(t, ws.serve)
	f := &fixture{t: t, engine: engine, rt: workspacetest.New()}
	f.rt.DialFunc = dial
	f.start()
	x := exchange{host: f.host, cookieValue: strings.TrimPrefix(f.cookie, f.p.CookieName()+"="), method: method}

	c, err := net.Dial("tcp", f.gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = c.Write(fuzzRequest(method, target, headers, body, framing, f.host, f.cookie)) }()
	x.client = readClient(bufio.NewReader(c), method)
	// The workspace recorded the request before it answered, and the
	// gateway answered after that; but a response the gateway made up
	// (an error) may come first: wait for the workspace's connections.
	stop()
	ws.mu.Lock()
	x.upstream = ws.saw
	ws.mu.Unlock()
	// Each gateway has a session of its own: its host name is "HOST" in
	// the comparisons.
	for i := range x.upstream {
		u := &x.upstream[i]
		if u.host == x.host {
			u.host = "HOST"
		}
		if h := u.header["X-Forwarded-Host"]; len(h) == 1 && h[0] == x.host {
			u.header["X-Forwarded-Host"] = []string{"HOST"}
		}
	}
	return x
}

// fuzzRequest is the request's bytes: the fuzzed request line and header
// lines (without framing headers, which the harness sets), the session's
// Host and cookie, Connection: close (one request per connection), and
// the body framed as framing says.
func fuzzRequest(method, target, headers string, body []byte, framing uint8, host, cookie string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nConnection: close\r\n", method, target, host, cookie)
	for _, line := range strings.Split(strings.ReplaceAll(headers, "\r", ""), "\n") {
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "", "host", "content-length", "transfer-encoding", "trailer":
			continue
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	switch framing {
	case 0:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
		b.Write(body)
	case 1, 2:
		if framing == 2 {
			b.WriteString("Trailer: X-Trail\r\n")
		}
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for i, part := range [][]byte{body[:len(body)/2], body[len(body)/2:]} {
			if len(part) > 0 {
				fmt.Fprintf(&b, "%x;chunk=%d\r\n", len(part), i)
				b.Write(part)
				b.WriteString("\r\n")
			}
		}
		b.WriteString("0\r\n")
		if framing == 2 {
			b.WriteString("X-Trail: 1\r\nCookie: pbs_session=secret\r\nAuthorization: Basic eDp5\r\n")
		}
		b.WriteString("\r\n")
	default:
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func readClient(br *bufio.Reader, method string) clientSaw {
	var cs clientSaw
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			cs.err = err
			return cs
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		cs.status, cs.header, cs.contentLength = resp.StatusCode, resp.Header, resp.ContentLength
		cs.chunked = len(resp.TransferEncoding) > 0
		cs.body, err = io.ReadAll(resp.Body)
		cs.truncated = err != nil
		cs.trailer = resp.Trailer
		cs.header.Del("Date")
		return cs
	}
}

// checkInvariants: what the workspace must never see, whatever the engine.
func (x exchange) checkInvariants(t *testing.T, engine string) {
	t.Helper()
	for _, u := range x.upstream {
		if u.err != nil {
			t.Errorf("%s: the workspace could not read the forwarded request: %v\n%q", engine, u.err, u.raw)
			continue
		}
		if bytes.Contains(u.raw, []byte(x.cookieValue)) {
			t.Errorf("%s: the IDE cookie reached the workspace:\n%q", engine, u.raw)
		}
		for _, k := range []string{"Authorization", "Proxy-Authorization", "X-Forwarded-For", "Forwarded"} {
			if _, ok := u.header[k]; ok {
				t.Errorf("%s: %s reached the workspace: %q", engine, k, u.header[k])
			}
		}
		for _, ck := range (&http.Request{Header: u.header}).Cookies() {
			if !keepCookie(ck.Name + "=") {
				t.Errorf("%s: the gateway's cookie %s reached the workspace", engine, ck.Name)
			}
		}
		if u.host != "HOST" || u.header.Get("X-Forwarded-Host") != "HOST" || u.header.Get("X-Forwarded-Proto") != "http" ||
			len(u.header["X-Forwarded-Host"]) != 1 || len(u.header["X-Forwarded-Proto"]) != 1 {
			t.Errorf("%s: host %q, forwarding headers %q %q", engine, u.host, u.header["X-Forwarded-Host"], u.header["X-Forwarded-Proto"])
		}
		if len(u.trailer) > 0 {
			t.Errorf("%s: request trailers reached the workspace: %v", engine, u.trailer)
		}
		if len(x.upstream) > 1 {
			t.Errorf("%s: the workspace got %d requests for one", engine, len(x.upstream))
		}
	}
}

// sameUpstream compares what the workspace got through each engine.
// Accepted differences, all equivalent for the workspace:
//   - the request target: the forwarder passes the browser's as it came;
//     net/http re-escapes the path (e.g. raw UTF-8 as %XX) and drops
//     query parameters it cannot parse (httputil.ReverseProxy's
//     cleanQueryParams). The decoded path must match, and the query when
//     it parses;
//   - an empty body: the forwarder passes an empty chunked body as such,
//     net/http sends none (Content-Length: 0 for POST, PUT and PATCH);
//   - an empty User-Agent: net/http leaves it out.
func sameUpstream(t *testing.T, relay, std exchange) {
	t.Helper()
	if len(relay.upstream) != len(std.upstream) {
		t.Fatalf("the workspace got %d requests through the relay engine, %d through the stdlib engine\nrelay: %+v\nstdlib: %+v\nclient: relay %+v, stdlib %+v",
			len(relay.upstream), len(std.upstream), relay.upstream, std.upstream, relay.client, std.client)
	}
	for i := range relay.upstream {
		r, s := relay.upstream[i], std.upstream[i]
		if r.err != nil || s.err != nil {
			continue // reported by checkInvariants
		}
		if r.method != s.method || r.host != s.host || r.url.Path != s.url.Path {
			t.Errorf("request line: relay %s %q (host %q), stdlib %s %q (host %q)", r.method, r.requestURI, r.host, s.method, s.requestURI, s.host)
		}
		if _, err := url.ParseQuery(r.url.RawQuery); err == nil && r.url.RawQuery != s.url.RawQuery {
			t.Errorf("query: relay %q, stdlib %q", r.url.RawQuery, s.url.RawQuery)
		}
		rh, sh := r.header.Clone(), s.header.Clone()
		for _, h := range []http.Header{rh, sh} {
			if v, ok := h["User-Agent"]; ok && len(v) == 1 && v[0] == "" {
				delete(h, "User-Agent")
			}
		}
		if !reflect.DeepEqual(rh, sh) {
			t.Errorf("request headers differ:\nrelay  %q\nstdlib %q", rh, sh)
		}
		if !bytes.Equal(r.body, s.body) {
			t.Errorf("request body: relay %q, stdlib %q", r.body, s.body)
		}
		if len(r.body) > 0 && (r.chunked != s.chunked || r.contentLength != s.contentLength) {
			t.Errorf("request framing: relay chunked %v length %d, stdlib chunked %v length %d", r.chunked, r.contentLength, s.chunked, s.contentLength)
		}
	}
}

// sameClient compares what the browser got through each engine, Date
// aside. A response aborted midway (the workspace's body failed) is a
// failed request for a browser whether its head was sent or not (the
// stdlib engine flushes a streamed response's head from a timer of its
// own, so whether it was is a matter of timing): only the abort itself
// must match then.
func sameClient(t *testing.T, relay, std exchange) {
	t.Helper()
	r, s := relay.client, std.client
	rAborted, sAborted := r.err != nil || r.truncated, s.err != nil || s.truncated
	if rAborted != sAborted {
		t.Fatalf("response: relay %d %q (%v, truncated %v), stdlib %d %q (%v, truncated %v)",
			r.status, r.body, r.err, r.truncated, s.status, s.body, s.err, s.truncated)
	}
	if rAborted {
		return
	}
	if r.status != s.status || !bytes.Equal(r.body, s.body) {
		t.Fatalf("response: relay %d %q, stdlib %d %q", r.status, r.body, s.status, s.body)
	}
	if len(r.body) == 0 {
		// Not framed at all, or framed as "Content-Length: 0" by
		// net/http: the same empty body.
		for _, h := range []http.Header{r.header, s.header} {
			if v := h["Content-Length"]; len(v) == 1 && v[0] == "0" {
				delete(h, "Content-Length")
			}
		}
	}
	if !reflect.DeepEqual(r.header, s.header) {
		t.Errorf("response headers differ:\nrelay  %q\nstdlib %q", r.header, s.header)
	}
	// An empty body is the same however framed (the stdlib engine may
	// flush a streamed head before it knows the body is empty).
	if len(r.body) > 0 && (r.chunked != s.chunked || r.contentLength != s.contentLength) {
		t.Errorf("response framing: relay chunked %v length %d, stdlib chunked %v length %d", r.chunked, r.contentLength, s.chunked, s.contentLength)
	}
	if !reflect.DeepEqual(r.trailer, s.trailer) {
		t.Errorf("response trailers: relay %v, stdlib %v", r.trailer, s.trailer)
	}
}

// FuzzIDECookie: the IDE cookie parser (ideCookies) finds what net/http's
// r.CookiesNamed finds, in order, never a malformed value; the cookie
// stripping (scrubHeaders) lets no gateway cookie through; and a
// workspace's Set-Cookie line, taken from either input, comes out
// host-only and of no gateway name, or not at all.
func FuzzIDECookie(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""},
		{"pbs_ide=abc", ""},
		{"a=1; pbs_ide=abc; b=2", ""},
		{" pbs_ide = abc ", ""},
		{`pbs_ide="quoted"`, ""},
		{`pbs_ide=bad"value; pbs_ide=good`, ""},
		{"pbs_ide=; x=1", "pbs_ide=second-line"},
		{"pbs_ide=first", "pbs_ide=second"},
		{"pbs_idex=no; xpbs_ide=no", "__Host-pbs_csrf=c; pbs_session=s"},
		{"pbs_ide=a\\b;pbs_ide=c", ""},
		{"pbs_ide=with space", "=x; ;; d"},
		{"pbs_ide=\x00\x7f\xff", "pbs_ide=é"},
		{"PBS_IDE=upper; pbs_ide=lower", ""},
		{`pbs_ide=""`, `pbs_ide="a`},
		// A parent-domain cookie planted ahead of ours, and many of them.
		{"pbs_ide=planted-by-a-sibling; theme=dark; pbs_ide=ours", "pbs_ide=another"},
		{strings.Repeat("pbs_ide=junk; ", 12) + "pbs_ide=ours", "pbs_ide=last"},
		{"__Secure-pbs_session=s; __host-pbs_ide=i; __SECURE-PBS_X=y; keep=1", "pbs_ide=ours"},
		// Set-Cookie lines (the second input is read as one too).
		{"a=1; Domain=ide.test; Path=/", "pbs_ide=x; Domain=.ide.test"},
		{"b=2; path=/; DOMAIN=.example; domain=x; HttpOnly", "__Host-pbs_ide=x; Path=/; Secure"},
		{"pbs_ide", " __secure-pbs_s=1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		var lines []string
		for _, l := range []string{line1, line2} {
			if l != "" {
				lines = append(lines, l)
			}
		}
		checkIDECookies(t, lines)

		scrubbed := http.Header{"Cookie": append([]string(nil), lines...)}
		scrubHeaders(scrubbed, "h", "http")
		for _, ck := range (&http.Request{Header: http.Header{"Cookie": {scrubbed.Get("Cookie")}}}).Cookies() {
			if gatewayCookie(ck.Name) {
				t.Errorf("%q let the gateway's cookie %s through", lines, ck.Name)
			}
		}

		set := http.Header{"Set-Cookie": append([]string(nil), lines...)}
		scrubSetCookies(set)
		for _, line := range set["Set-Cookie"] {
			ck, err := http.ParseSetCookie(line)
			if err != nil {
				continue // a browser drops it too
			}
			if ck.Domain != "" || gatewayCookie(ck.Name) {
				t.Errorf("Set-Cookie %q came out as %q: domain %q, name %q", lines, line, ck.Domain, ck.Name)
			}
			for _, attr := range strings.Split(line, ";")[1:] {
				if k, _, _ := strings.Cut(attr, "="); strings.EqualFold(strings.TrimSpace(k), "domain") {
					t.Errorf("Set-Cookie %q came out as %q, with a Domain", lines, line)
				}
			}
		}
	})
}
