//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func key(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// echoUpstream listens on a unix socket (standing in for code-server) and
// echoes each connection, prefixed with "up:".
func echoUpstream(t *testing.T) addr {
	t.Helper()
	p := filepath.Join(t.TempDir(), "up.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("up:"))
				io.Copy(c, c)
			}()
		}
	}()
	return addr{"unix", p}
}

// startGuard serves a guard with key k on a loopback port.
func startGuard(t *testing.T, k []byte, up addr) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	g := &guard{key: k, upstream: up, logf: t.Logf}
	go g.serve(ln)
	return ln.Addr().String()
}

// client is the gateway's side of the handshake, written from the
// protocol's description (the gateway's own is in internal/workspace).
func client(t *testing.T, c net.Conn, k []byte) (status string, ok bool) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	nc := make([]byte, nonceLen)
	rand.Read(nc)
	fmt.Fprintf(c, "PBSG1 %s\n", hex.EncodeToString(nc))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", false
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		t.Fatalf("answer %q", line)
	}
	ns, _ := hex.DecodeString(f[1])
	got, _ := hex.DecodeString(f[2])
	if !bytes.Equal(got, mac(k, "guard", f[0], nc, ns)) {
		return f[0], false
	}
	if f[0] == "ok" {
		fmt.Fprintf(c, "%s\n", hex.EncodeToString(mac(k, "gateway", "", nc, ns)))
	}
	c.SetDeadline(time.Time{})
	return f[0], true
}

func TestHandshakeThenUpstream(t *testing.T) {
	k := key(t)
	a := startGuard(t, k, echoUpstream(t))
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st, ok := client(t, c, k); !ok || st != "ok" {
		t.Fatalf("handshake: %q %v", st, ok)
	}
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	if string(b) != "up:hello" {
		t.Errorf("through the guard: %q", b)
	}
}

func TestWrongKeyReachesNothing(t *testing.T) {
	k := key(t)
	a := startGuard(t, k, echoUpstream(t))

	// The gateway of another workspace: its proof is refused, and the
	// guard's proof does not verify under its key either.
	c, _ := net.Dial("tcp", a)
	defer c.Close()
	if _, ok := client(t, c, key(t)); ok {
		t.Error("a guard's proof verified under another key")
	}
	c2, _ := net.Dial("tcp", a)
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	nc := make([]byte, nonceLen)
	fmt.Fprintf(c2, "PBSG1 %s\n", hex.EncodeToString(nc))
	br := bufio.NewReader(c2)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c2, "%s\nGET / HTTP/1.1\r\n\r\n", strings.Repeat("00", 32))
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("a bad proof got an answer: %q", rest)
	}
	// Someone who speaks HTTP right away gets nothing at all.
	c3, _ := net.Dial("tcp", a)
	defer c3.Close()
	c3.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c3, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if rest, _ := io.ReadAll(c3); len(rest) != 0 {
		t.Errorf("plain HTTP got an answer: %q", rest)
	}
}

func TestUpstreamDownIsSaid(t *testing.T) {
	k := key(t)
	a := startGuard(t, k, addr{"unix", filepath.Join(t.TempDir(), "nobody.sock")})
	c, _ := net.Dial("tcp", a)
	defer c.Close()
	if st, ok := client(t, c, k); !ok || st != "down" {
		t.Errorf("handshake with code-server down: %q %v", st, ok)
	}
}

func TestConfig(t *testing.T) {
	good := map[string]string{
		envSecret:   strings.Repeat("ab", 32),
		envUpstream: "unix:/run/code-server/cs.sock",
	}
	env := func(over map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := over[k]; ok {
				return v
			}
			return good[k]
		}
	}
	c, err := configFromEnv(env(nil))
	if err != nil || c.listen.String() != "tcp::8081" || c.forward != nil {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = configFromEnv(env(map[string]string{envListen: "unix:/run/g/guard.sock", envForward: "tcp:127.0.0.1:8080=unix:/run/playbook/gateway.sock"}))
	if err != nil || c.listen.network != "unix" || c.forward == nil || c.forward[1].address != "/run/playbook/gateway.sock" {
		t.Fatalf("socket mode: %+v %v", c, err)
	}
	for name, over := range map[string]map[string]string{
		"no secret":           {envSecret: ""},
		"short secret":        {envSecret: "abcd"},
		"no upstream":         {envUpstream: ""},
		"remote upstream":     {envUpstream: "tcp:10.0.0.1:8080"},
		"relative socket":     {envUpstream: "unix:cs.sock"},
		"bad listen":          {envListen: "udp::53"},
		"forward to tcp":      {envForward: "tcp:127.0.0.1:8080=tcp:127.0.0.1:9"},
		"forward from all":    {envForward: "tcp::8080=unix:/run/playbook/gateway.sock"},
		"forward without '='": {envForward: "tcp:127.0.0.1:8080"},
	} {
		if _, err := configFromEnv(env(over)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	got := childEnv([]string{"PATH=/bin", envSecret + "=x", "HOME=/h", envListen + "=y"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/h" {
		t.Errorf("child environment: %v", got)
	}
}

func TestForward(t *testing.T) {
	up := echoUpstream(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go forward(ln, up, t.Logf)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("api"))
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	if string(b) != "up:api" {
		t.Errorf("forwarded: %q", b)
	}
}

// TestSupervise runs a child through the guard's init loop: its exit
// status comes back, and an orphan it leaves is reaped.
func TestSupervise(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	if code := supervise([]string{"/bin/sh", "-c", "(sleep 0.1 &) ; exit 7"}, os.Environ(), t.Logf); code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
	if code := supervise([]string{"/no/such/command"}, nil, t.Logf); code != 127 {
		t.Errorf("missing command: %d", code)
	}
}
