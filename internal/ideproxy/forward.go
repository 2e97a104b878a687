package ideproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/editsession"
)

// HTTP requests go to the workspace over keep-alive connections of a pool
// per workspace, written and read in the handler's own goroutine: no
// transport goroutines, no per-request contexts.
const (
	// idleTimeout closes a pooled connection nobody used for this long.
	idleTimeout = 90 * time.Second
	// probeAfter: a connection idle for longer is checked before reuse,
	// since the workspace may have closed it (code-server's keep-alive
	// timeout is 5 s).
	probeAfter = time.Second
	// maxIdle bounds the idle connections kept per workspace.
	maxIdle = 256
	// headerTimeout bounds the wait for the response's head.
	headerTimeout = 60 * time.Second
	dialTimeout   = 15 * time.Second
	// maxResponseHead bounds the response's head, 1xx answers included:
	// the workspace is not trusted.
	maxResponseHead = 1 << 20
)

var errHeadTooLarge = fmt.Errorf("the workspace's response head is over %d bytes", maxResponseHead)

// upstream is one workspace's pool of idle keep-alive connections.
type upstream struct {
	p   *Proxy
	key string

	mu     sync.Mutex
	idle   []*bconn // a stack: the most recently used on top
	timer  *time.Timer
	closed bool
}

// bconn is a connection to a workspace.
type bconn struct {
	conn   net.Conn
	up     *upstream
	br     *bufio.Reader // reads through the bconn, which counts bytes
	bw     *bufio.Writer
	nread  int64
	limit  int64 // when not 0, Read fails once nread reaches it
	idleAt time.Time
	// bodyc reports the end of the request body's writer, when the body
	// is written by a goroutine of its own.
	bodyc chan error
	// aborted is set by cut, under the session state's lock.
	aborted bool
	// waiting is when the wait for the response's head began (Unix ns),
	// 0 when not waiting; the watchdog sets timedOut when it gives up.
	waiting  atomic.Int64
	timedOut atomic.Bool
}

func (bc *bconn) Read(b []byte) (int, error) {
	if bc.limit != 0 {
		if bc.nread >= bc.limit {
			return 0, errHeadTooLarge
		}
		b = b[:min(int64(len(b)), bc.limit-bc.nread)]
	}
	n, err := bc.conn.Read(b)
	bc.nread += int64(n)
	return n, err
}

func (p *Proxy) upstream(key string) *upstream {
	if v, ok := p.upstreams.Load(key); ok {
		return v.(*upstream)
	}
	v, _ := p.upstreams.LoadOrStore(key, &upstream{p: p, key: key})
	return v.(*upstream)
}

// get returns an idle connection (reused) or a new one.
func (u *upstream) get(ctx context.Context) (bc *bconn, reused bool, err error) {
	var now time.Time
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			break
		}
		bc = u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		if now.IsZero() {
			now = time.Now()
		}
		if age := now.Sub(bc.idleAt); age < probeAfter || age < idleTimeout && alive(bc.conn) {
			return bc, true, nil
		}
		_ = bc.conn.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := u.p.dial(ctx, u.key)
	if err != nil {
		return nil, false, err
	}
	bc = &bconn{conn: c, up: u}
	bc.br = bufio.NewReaderSize(bc, 32<<10)
	bc.bw = bufio.NewWriterSize(c, 16<<10)
	return bc, false, nil
}

// put returns a connection whose response was read to its end.
func (u *upstream) put(bc *bconn) {
	bc.idleAt = time.Now()
	u.mu.Lock()
	if u.closed || len(u.idle) >= maxIdle {
		u.mu.Unlock()
		_ = bc.conn.Close()
		return
	}
	u.idle = append(u.idle, bc)
	if u.timer == nil {
		u.timer = time.AfterFunc(idleTimeout, u.sweep)
	}
	u.mu.Unlock()
}

// sweep closes the connections idle for idleTimeout.
func (u *upstream) sweep() {
	now := time.Now()
	var stale []*bconn
	u.mu.Lock()
	keep := u.idle[:0]
	for _, bc := range u.idle {
		if now.Sub(bc.idleAt) >= idleTimeout {
			stale = append(stale, bc)
		} else {
			keep = append(keep, bc)
		}
	}
	clear(u.idle[len(keep):])
	u.idle = keep
	if len(u.idle) > 0 && !u.closed && u.timer != nil {
		u.timer.Reset(idleTimeout / 2)
	} else {
		u.timer = nil
	}
	u.mu.Unlock()
	for _, bc := range stale {
		_ = bc.conn.Close()
	}
}

// close closes the idle connections; later ones are closed on return.
func (u *upstream) close() {
	u.mu.Lock()
	u.closed = true
	idle := u.idle
	u.idle = nil
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	u.mu.Unlock()
	for _, bc := range idle {
		_ = bc.conn.Close()
	}
}

// watch starts the watchdog, once.
func (p *Proxy) watch() {
	if p.watching.Load() {
		return
	}
	p.watchMu.Lock()
	defer p.watchMu.Unlock()
	if !p.watching.Load() && !p.closed.Load() {
		p.watchdog = time.AfterFunc(headerTimeout/4, p.checkHeads)
		p.watching.Store(true)
	}
}

// checkHeads closes the connections that have waited for a response's
// head for longer than headerTimeout (a workspace that hangs), instead
// of a read deadline per request.
func (p *Proxy) checkHeads() {
	limit := time.Now().Add(-headerTimeout).UnixNano()
	p.states.Range(func(_, v any) bool {
		st := v.(*sessionState)
		st.mu.Lock()
		for bc := range st.inflight {
			if w := bc.waiting.Load(); w != 0 && w < limit {
				bc.timedOut.Store(true)
				_ = bc.conn.Close()
			}
		}
		st.mu.Unlock()
		return true
	})
	p.watchMu.Lock()
	if !p.closed.Load() {
		p.watchdog.Reset(headerTimeout / 4)
	}
	p.watchMu.Unlock()
}

// forward proxies one HTTP request, streaming both ways; cut aborts it
// at once if the session ends.
func (p *Proxy) forward(c echo.Context, st *sessionState, sess *editsession.Session) error {
	r := c.Request()
	p.watch()
	up := p.upstream(sess.WorkspaceKey)
	// A request without a body that is safe to repeat goes again, once, on
	// a new connection when a pooled one turns out closed before answering.
	retry := r.ContentLength == 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions)
	for attempt := 0; ; attempt++ {
		bc, reused, err := up.get(r.Context())
		if err != nil {
			p.proxyError(c, err)
			return nil
		}
		if !st.begin(bc) {
			_ = bc.conn.Close()
			return p.ended(c, sess.ID)
		}
		before := bc.nread
		resp, err := p.roundTrip(bc, r)
		if err != nil {
			live := st.end(bc)
			_ = bc.conn.Close()
			bc.bodyDone()
			if !live {
				return p.ended(c, sess.ID)
			}
			if reused && retry && attempt == 0 && bc.nread == before && !bc.timedOut.Load() {
				continue
			}
			p.proxyError(c, err)
			return nil
		}
		return p.respond(c, st, bc, resp)
	}
}

// roundTrip writes r to bc and reads the response's head. A request body
// is written by a goroutine of its own, as the response is read: the
// workspace may answer before it has read all of it.
func (p *Proxy) roundTrip(bc *bconn, r *http.Request) (*http.Response, error) {
	// The watchdog closes the connection if the request's head cannot be
	// written or the response's head does not come within headerTimeout.
	bc.waiting.Store(time.Now().UnixNano())
	defer bc.waiting.Store(0)
	if err := p.writeHead(bc.bw, r); err != nil {
		return nil, p.timedOut(bc, err)
	}
	if r.ContentLength != 0 {
		c := make(chan error, 1)
		bc.bodyc = c
		go func() { c <- p.writeBody(bc, r) }()
	}
	// The head (1xx answers included) may not be larger than
	// maxResponseHead; what is buffered already counts.
	bc.limit = bc.nread - int64(bc.br.Buffered()) + maxResponseHead
	defer func() { bc.limit = 0 }()
	for {
		resp, err := http.ReadResponse(bc.br, r)
		if err != nil {
			return nil, p.timedOut(bc, err)
		}
		switch {
		case resp.StatusCode < 100:
			return nil, fmt.Errorf("the workspace answered an invalid status %d", resp.StatusCode)
		case resp.StatusCode >= 200:
			return resp, nil
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("the workspace switched protocols on a plain request")
		}
		// 1xx informational answers (100 Continue, 103 Early Hints) are
		// the proxy's business only: wait for the final one.
	}
}

// timedOut says so in err when the watchdog closed bc.
func (p *Proxy) timedOut(bc *bconn, err error) error {
	if bc.timedOut.Load() {
		return fmt.Errorf("no answer within %v: %w", headerTimeout, err)
	}
	return err
}

// bodyDone waits for the request body's writer, if any, and reports
// whether it wrote the whole body. A writer still at work when the
// response is complete is stopped by closing the connection.
func (bc *bconn) bodyDone() bool {
	c := bc.bodyc
	if c == nil {
		return true
	}
	bc.bodyc = nil
	for range 2 {
		select {
		case err := <-c:
			return err == nil
		default:
			runtime.Gosched()
		}
	}
	_ = bc.conn.Close()
	<-c
	return false
}

// writeHead writes r's head to the workspace, flushed if r has no body.
// It drops what
// the workspace must never see (the gateway's cookies, credentials,
// forwarding headers a client made up) and the hop-by-hop headers (RFC
// 9110, 7.6.1), and sets what code-server's own origin check reads, without
// touching r.Header.
func (p *Proxy) writeHead(bw *bufio.Writer, r *http.Request) error {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		uri = r.URL.RequestURI()
	}
	_, _ = bw.WriteString(r.Method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(uri)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(r.Host)
	_, _ = bw.WriteString("\r\n")
	connection := r.Header["Connection"]
	for k, vv := range r.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Proxy-Connection", "Keep-Alive",
			"Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade", "Expect",
			"Authorization", "Cookie", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded":
			continue
		}
		if len(connection) > 0 && listedIn(connection, k) {
			continue
		}
		for _, v := range vv {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && listedIn(te, "trailers") {
		_, _ = bw.WriteString("Te: trailers\r\n")
	}
	if len(connection) == 0 || !listedIn(connection, "Cookie") {
		writeCookies(bw, r.Header["Cookie"])
	}
	_, _ = bw.WriteString("X-Forwarded-Host: ")
	_, _ = bw.WriteString(r.Host)
	_, _ = bw.WriteString("\r\nX-Forwarded-Proto: ")
	_, _ = bw.WriteString(p.cfg.Hosts.Scheme)
	_, _ = bw.WriteString("\r\n")
	switch {
	case r.ContentLength > 0:
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), r.ContentLength, 10))
		_, _ = bw.WriteString("\r\n\r\n")
		return nil
	case r.ContentLength < 0:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		return bw.Flush()
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		_, _ = bw.WriteString("Content-Length: 0\r\n\r\n")
	default:
		_, _ = bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// writeBody writes r's body after its head. If the browser's body
// fails (it went away, or sent less than it announced), the connection
// is closed: the workspace must not wait for the rest, nor answer a
// truncated request.
func (p *Proxy) writeBody(bc *bconn, r *http.Request) error {
	err := p.copyBody(bc.bw, r)
	var rerr *bodyError
	if errors.As(err, &rerr) {
		_ = bc.conn.Close()
	}
	return err
}

// bodyError is a failure to read the browser's request body.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

func (p *Proxy) copyBody(bw *bufio.Writer, r *http.Request) error {
	if r.ContentLength < 0 {
		return p.writeChunked(bw, r)
	}
	buf := p.buffers.get()
	defer p.buffers.put(buf)
	b := *buf
	left := r.ContentLength
	for left > 0 {
		n, err := r.Body.Read(b[:min(int64(len(b)), left)])
		if n > 0 {
			if _, werr := bw.Write(b[:n]); werr != nil {
				return werr
			}
			left -= int64(n)
		}
		if err == io.EOF && left > 0 {
			return &bodyError{io.ErrUnexpectedEOF}
		}
		if err != nil && err != io.EOF {
			return &bodyError{err}
		}
	}
	return bw.Flush()
}

// writeChunked streams a body of unknown length, a chunk per read.
// Request trailers are not passed on (neither does the stdlib engine).
func (p *Proxy) writeChunked(bw *bufio.Writer, r *http.Request) error {
	buf := p.buffers.get()
	defer p.buffers.put(buf)
	b := *buf
	for {
		n, err := r.Body.Read(b)
		if n > 0 {
			_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			_, _ = bw.WriteString("\r\n")
			_, _ = bw.Write(b[:n])
			_, _ = bw.WriteString("\r\n")
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &bodyError{err}
		}
	}
	_, _ = bw.WriteString("0\r\n\r\n")
	return bw.Flush()
}

// writeCookies writes the Cookie header without the gateway's cookies,
// all lines joined in one.
func writeCookies(bw *bufio.Writer, lines []string) {
	first := true
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if !keepCookie(part) {
				continue
			}
			if first {
				_, _ = bw.WriteString("Cookie: ")
				first = false
			} else {
				_, _ = bw.WriteString("; ")
			}
			_, _ = bw.WriteString(part)
		}
	}
	if !first {
		_, _ = bw.WriteString("\r\n")
	}
}

// listedIn reports whether one of the comma-separated tokens of values
// is token, in any case.
func listedIn(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hopByHop are the response headers that stay between the workspace and
// the proxy.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// respond copies the response to the browser. A response without a
// length (or an event stream) is flushed as its data arrives. The
// connection goes back to the pool only when the response was read to
// its end and the workspace keeps it open.
func (p *Proxy) respond(c echo.Context, st *sessionState, bc *bconn, resp *http.Response) error {
	w := c.Response()
	h := w.Header()
	connection := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if hopByHop(k) || len(connection) > 0 && listedIn(connection, k) {
			continue
		}
		if old, ok := h[k]; ok {
			h[k] = append(old, vv...)
		} else {
			h[k] = vv
		}
	}
	if _, ok := resp.Header["Content-Type"]; !ok {
		// What the workspace sent, no more: net/http does not sniff a
		// type for it.
		h["Content-Type"] = nil
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	streaming := resp.ContentLength < 0 || isEventStream(resp.Header)
	if announced > 0 || isEventStream(resp.Header) {
		w.Flush()
	}

	buf := p.buffers.get()
	b := *buf
	var rerr, werr error
	for {
		n, err := resp.Body.Read(b)
		if n > 0 {
			if _, werr = w.Write(b[:n]); werr != nil {
				break
			}
			if streaming {
				w.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	p.buffers.put(buf)
	live := st.end(bc)
	if werr != nil || rerr != nil {
		_ = bc.conn.Close()
	}
	sent := bc.bodyDone()
	if live && sent && rerr == nil && werr == nil && !resp.Close && bc.br.Buffered() == 0 {
		_ = resp.Body.Close()
		bc.up.put(bc)
	} else {
		_ = bc.conn.Close()
	}
	if rerr != nil {
		// The workspace failed (or the session was cut) mid-body: abort
		// the response, so the browser does not take it as complete.
		panic(http.ErrAbortHandler)
	}
	if werr == nil && len(resp.Trailer) > 0 {
		for k, vv := range resp.Trailer {
			if len(resp.Trailer) != announced {
				k = http.TrailerPrefix + k
			}
			for _, v := range vv {
				h.Add(k, v)
			}
		}
	}
	return nil
}

func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	const es = "text/event-stream"
	return len(ct) > 0 && len(ct[0]) >= len(es) && strings.EqualFold(ct[0][:len(es)], es)
}
