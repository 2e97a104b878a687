package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// wsConn is the client end of one WebSocket (RFC 6455), just enough of it
// for a closed-loop echo: single binary frames, masked as a client must.
type wsConn struct {
	c     net.Conn
	br    *bufio.Reader
	frame []byte // the masked frame this connection sends, built once
	plain []byte // its payload, unmasked
	in    []byte
}

var wsSeq atomic.Int64

// wsDial opens a WebSocket through t with the IDE origin and cookie, and
// prepares a masked frame of size bytes.
func wsDial(ctx context.Context, t target, size int) (*wsConn, error) {
	c, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET /?reconnectionToken=" + strconv.FormatInt(wsSeq.Add(1), 10) + "&reconnection=false&skipWebSocketFrames=false HTTP/1.1\r\n" +
		"Host: " + t.host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n" +
		"Origin: http://" + t.host + "\r\n"
	if t.cookie != "" {
		req += "Cookie: " + t.cookie + "\r\n"
	}
	req += "\r\n"
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 8<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("WebSocket handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		c.Close()
		return nil, fmt.Errorf("WebSocket handshake: %d %s", resp.StatusCode, body)
	}
	_ = c.SetDeadline(time.Time{})
	w := &wsConn{c: c, br: br, plain: make([]byte, size), in: make([]byte, size)}
	_, _ = rand.Read(w.plain)
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	switch {
	case size < 126:
		w.frame = append(w.frame, 0x82, 0x80|byte(size))
	case size <= 0xffff:
		w.frame = append(w.frame, 0x82, 0x80|126, byte(size>>8), byte(size))
	default:
		w.frame = append(w.frame, 0x82, 0x80|127)
		w.frame = binary.BigEndian.AppendUint64(w.frame, uint64(size))
	}
	w.frame = append(w.frame, mask[:]...)
	for i, b := range w.plain {
		w.frame = append(w.frame, b^mask[i&3])
	}
	return w, nil
}

// roundTrip sends the frame and reads the echo.
func (w *wsConn) roundTrip() error {
	if _, err := w.c.Write(w.frame); err != nil {
		return err
	}
	var hdr [10]byte
	if _, err := io.ReadFull(w.br, hdr[:2]); err != nil {
		return err
	}
	if hdr[0]&0x0f != 0x2 || hdr[1]&0x80 != 0 {
		return fmt.Errorf("unexpected frame %#x %#x", hdr[0], hdr[1])
	}
	n := int(hdr[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(w.br, hdr[2:4]); err != nil {
			return err
		}
		n = int(binary.BigEndian.Uint16(hdr[2:4]))
	case 127:
		if _, err := io.ReadFull(w.br, hdr[2:10]); err != nil {
			return err
		}
		n = int(binary.BigEndian.Uint64(hdr[2:10]))
	}
	if n != len(w.in) {
		return fmt.Errorf("echo of %d bytes, want %d", n, len(w.in))
	}
	if _, err := io.ReadFull(w.br, w.in); err != nil {
		return err
	}
	if w.in[0] != w.plain[0] || w.in[n-1] != w.plain[n-1] {
		return errors.New("echo differs from the message")
	}
	return nil
}

func (w *wsConn) close() { w.c.Close() }

// wsResult is one closed-loop WebSocket run.
type wsResult struct {
	rts      int64         // round trips in the window
	all      int64         // round trips in all (warm-up included)
	window   time.Duration // measurement window
	p50, p99 time.Duration
	cpu      time.Duration // the proxy's CPU over the whole run, when measured
	lat      []time.Duration
}

// add merges another run (round) of the same workload into r.
func (r *wsResult) add(o wsResult) {
	r.rts += o.rts
	r.all += o.all
	r.window += o.window
	r.cpu += o.cpu
	r.lat = append(r.lat, o.lat...)
	r.p50, r.p99 = percentile(r.lat, 50), percentile(r.lat, 99)
}

func (r wsResult) rtps() float64 { return float64(r.rts) / r.window.Seconds() }

// wsLoad opens conns WebSockets, then each runs a closed loop of 1 KB
// echoes for warmup+measure (at most maxRTs round trips per connection);
// latencies of the window are kept. When proxy is set, its CPU time is
// read before the first connection and after the last one closed.
func wsLoad(ctx context.Context, t target, conns, size int, warmup, measure time.Duration, maxRTs int, proxy *procGroup) (wsResult, error) {
	var cpu0 time.Duration
	if proxy != nil {
		var err error
		if cpu0, err = proxy.cpu(); err != nil {
			return wsResult{}, err
		}
	}
	ws, err := wsDialMany(ctx, t, conns, size)
	if err != nil {
		return wsResult{}, err
	}
	var all atomic.Int64
	lats := make([][]time.Duration, conns)
	errs := make([]error, conns)
	begin := time.Now()
	from, until := begin.Add(warmup), begin.Add(warmup+measure)
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for j := 0; j < maxRTs && ctx.Err() == nil; j++ {
				start := time.Now()
				if start.After(until) {
					break
				}
				if err := w.roundTrip(); err != nil {
					errs[i] = err
					break
				}
				all.Add(1)
				if start.After(from) {
					end := time.Now()
					if end.Before(until) {
						lat = append(lat, end.Sub(start))
					}
				}
			}
			lats[i] = lat
		}()
	}
	wg.Wait()
	end := time.Now()
	if end.After(until) {
		end = until
	}
	for _, w := range ws {
		w.close()
	}
	for _, err := range errs {
		if err != nil {
			return wsResult{}, err
		}
	}
	var merged []time.Duration
	for _, l := range lats {
		merged = append(merged, l...)
	}
	r := wsResult{rts: int64(len(merged)), all: all.Load(), window: end.Sub(from), lat: merged}
	if r.window <= 0 || r.rts == 0 {
		return r, errors.New("no round trip in the window")
	}
	r.p50, r.p99 = percentile(merged, 50), percentile(merged, 99)
	if proxy != nil {
		// Let the proxy notice the closes and tear the tunnels down.
		_ = sleep(ctx, 300*time.Millisecond)
		cpu1, err := proxy.cpu()
		if err != nil {
			return r, err
		}
		r.cpu = cpu1 - cpu0
	}
	return r, nil
}

// wsDialMany opens n WebSockets, 16 handshakes at a time.
func wsDialMany(ctx context.Context, t target, n, size int) ([]*wsConn, error) {
	ws := make([]*wsConn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			ws[i], errs[i] = wsDial(dctx, t, size)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, w := range ws {
				if w != nil {
					w.close()
				}
			}
			return nil, fmt.Errorf("WebSocket %d of %d: %w", i+1, n, err)
		}
	}
	return ws, nil
}

// wsIdle opens n WebSockets through t, checks each with one echo, lets
// them sit idle, and reports the proxy's RSS growth per connection (KiB).
func wsIdle(ctx context.Context, t target, n, size int, proxy procGroup) (float64, error) {
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return 0, err
	}
	before, err := proxy.rssKiB()
	if err != nil {
		return 0, err
	}
	ws, err := wsDialMany(ctx, t, n, size)
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, w := range ws {
			w.close()
		}
	}()
	for _, w := range ws {
		if err := w.roundTrip(); err != nil {
			return 0, err
		}
	}
	if err := sleep(ctx, time.Second); err != nil {
		return 0, err
	}
	after, err := proxy.rssKiB()
	if err != nil {
		return 0, err
	}
	progress("  %s: RSS %d KiB → %d KiB with %d idle WebSockets", t.name, before, after, n)
	return float64(after-before) / float64(n), nil
}
