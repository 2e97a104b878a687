package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// target is one way to the workspace: direct (its unix socket), through
// nginx, or through the gateway. Every way gets the same request bytes:
// the IDE host name and the IDE cookie.
type target struct {
	name   string
	dial   func(ctx context.Context) (net.Conn, error)
	host   string // Host header and WebSocket origin host
	cookie string
}

func tcpDialer(port int) func(ctx context.Context) (net.Conn, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func unixDialer(sock string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
}

// request is a plain HTTP/1.1 keep-alive GET with no Accept-Encoding.
func (t target) request(path string) []byte {
	s := "GET " + path + " HTTP/1.1\r\nHost: " + t.host + "\r\nUser-Agent: pbs-bench\r\nAccept: */*\r\n"
	if t.cookie != "" {
		s += "Cookie: " + t.cookie + "\r\n"
	}
	return []byte(s + "\r\n")
}

// httpConn is one keep-alive connection of the load generator: raw
// request bytes out, http.ReadResponse in, the body read into a buffer
// of the connection's own. No goroutines besides the caller's.
type httpConn struct {
	t    target
	c    net.Conn
	br   *bufio.Reader
	sink []byte
}

func (hc *httpConn) get(ctx context.Context, req []byte) (status int, n int64, err error) {
	if hc.c == nil {
		c, err := hc.t.dial(ctx)
		if err != nil {
			return 0, 0, err
		}
		hc.c = c
		hc.br = bufio.NewReaderSize(c, 64<<10)
	}
	_ = hc.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := hc.c.Write(req); err != nil {
		hc.close()
		return 0, 0, err
	}
	resp, err := http.ReadResponse(hc.br, nil)
	if err != nil {
		hc.close()
		return 0, 0, err
	}
	for {
		m, rerr := resp.Body.Read(hc.sink)
		n += int64(m)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			hc.close()
			return 0, n, rerr
		}
	}
	resp.Body.Close()
	if resp.Close {
		hc.close() // the server ends keep-alive (nginx after keepalive_requests)
	}
	return resp.StatusCode, n, nil
}

func (hc *httpConn) close() {
	if hc.c != nil {
		hc.c.Close()
		hc.c = nil
	}
}

// loadResult is one closed-loop HTTP run.
type loadResult struct {
	ok, failed int64
	bytes      int64
	window     time.Duration
	firstErr   error
}

func (r loadResult) rps() float64 { return float64(r.ok) / r.window.Seconds() }

// httpLoad runs conns closed loops of GET path for warmup+measure (at
// most maxReqs requests in all); only responses completed inside the
// measurement window count. wantBytes, when set, is the body size every
// response must have.
func httpLoad(ctx context.Context, t target, path string, conns int, warmup, measure time.Duration, maxReqs int64, wantBytes int64) loadResult {
	req := t.request(path)
	var ok, failed, total, nbytes atomic.Int64
	var errOnce sync.Once
	var firstErr error
	begin := time.Now()
	from, until := begin.Add(warmup), begin.Add(warmup+measure)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &httpConn{t: t, sink: make([]byte, 256<<10)}
			defer hc.close()
			for ctx.Err() == nil && total.Add(1) <= maxReqs {
				status, n, err := hc.get(ctx, req)
				now := time.Now()
				if now.After(until) {
					return
				}
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("status %d", status)
				}
				if err == nil && wantBytes > 0 && n != wantBytes {
					err = fmt.Errorf("body of %d bytes, want %d", n, wantBytes)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					if now.After(from) {
						failed.Add(1)
					}
					if sleep(ctx, 10*time.Millisecond) != nil {
						return
					}
					continue
				}
				if now.After(from) {
					ok.Add(1)
					nbytes.Add(n)
				}
			}
		}()
	}
	wg.Wait()
	window := min(time.Since(begin), warmup+measure) - warmup
	if window <= 0 {
		window = time.Millisecond
	}
	r := loadResult{ok: ok.Load(), failed: failed.Load(), bytes: nbytes.Load(), window: window, firstErr: firstErr}
	if r.ok == 0 && r.firstErr == nil {
		r.firstErr = errors.New("no request completed in the window")
	}
	return r
}

// fetch is one GET through t, for checks and for finding workbench.js.
func fetch(ctx context.Context, t target, path string, hdr string) (int, []byte, error) {
	c, err := t.dial(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	req := t.request(path)
	req = append(req[:len(req)-2], []byte(hdr+"Connection: close\r\n\r\n")...)
	if _, err := c.Write(req); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
