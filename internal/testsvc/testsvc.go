// Package testsvc starts the real services that integration tests talk to
// (Redis, the dev OpenID provider) on loopback ports, and stops them when
// the test ends. It is imported only by tests.
package testsvc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Redis is a redis-server process owned by one test.
type Redis struct {
	URL  string
	Addr string
	cmd  *exec.Cmd
	dir  string
	port int
	t    testing.TB
}

// StartRedis starts redis-server on a free loopback port with no
// persistence. The project's set-up (make setup) installs redis-server; a
// machine without it fails loudly rather than skipping the real thing.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed: run `make setup` (it installs Debian's redis-server)")
	}
	r := &Redis{dir: t.TempDir(), port: FreePort(t), t: t}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	r.URL = "redis://" + r.Addr + "/0"
	r.start(bin)
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) start(bin string) {
	r.t.Helper()
	r.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "yes")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	if err := waitTCP(r.Addr, 10*time.Second); err != nil {
		r.t.Fatalf("redis-server did not listen on %s: %v", r.Addr, err)
	}
}

// Stop ends the server (by its PID) and waits for it; Restart starts it
// again on the same port, for tests of Redis going away and coming back.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// Restart starts a stopped server again on the same address.
func (r *Redis) Restart() {
	r.t.Helper()
	bin, _ := exec.LookPath("redis-server")
	r.start(bin)
}

func waitTCP(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitHTTP polls url until it answers 200 or the time is up.
func WaitHTTP(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready: %v", url, last)
}

// RepoRoot finds the module root from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// DevIDP is a running cmd/devidp process.
type DevIDP struct {
	Issuer       string
	ClientID     string
	ClientSecret string
}

// StartDevIDP builds and starts the real dev OpenID provider on a free
// loopback port, registering redirectURI (and postLogout) for its client.
func StartDevIDP(t testing.TB, redirectURI, postLogout string) *DevIDP {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devidp")
	build := exec.Command("go", "build", "-o", bin, "./cmd/devidp")
	build.Dir = RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build devidp: %v\n%s", err, out)
	}
	port := FreePort(t)
	d := &DevIDP{
		Issuer:       "http://127.0.0.1:" + strconv.Itoa(port),
		ClientID:     "playbook-studio",
		ClientSecret: "test-secret-" + strconv.Itoa(port),
	}
	cmd := exec.Command(bin,
		"-addr", "127.0.0.1:"+strconv.Itoa(port),
		"-issuer", d.Issuer,
		"-client-id", d.ClientID,
		"-client-secret", d.ClientSecret,
		"-redirect-uris", redirectURI,
		"-post-logout-redirect-uris", postLogout,
	)
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start devidp: %v", err)
	}
	var logTail []string
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if len(logTail) < 200 {
				logTail = append(logTail, s.Text())
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
		<-logDone
		if t.Failed() {
			t.Logf("devidp log:\n%s", strings.Join(logTail, "\n"))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := WaitHTTP(ctx, d.Issuer+"/.well-known/openid-configuration", 15*time.Second); err != nil {
		t.Fatalf("devidp: %v", err)
	}
	return d
}

// CodeServer returns the code-server the project's set-up installed.
func CodeServer(t testing.TB) string {
	t.Helper()
	p := filepath.Join(RepoRoot(), ".cache", "code-server", "node_modules", ".bin", "code-server")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("code-server is not installed at %s: run `make setup` (scripts/install-code-server.sh)", p)
	}
	return p
}

// ExtensionVSIX returns the built agent extension, or "" when it has not
// been built; with PBS_REQUIRE_EXTENSION=1 (set by make test) a missing
// one fails the test.
func ExtensionVSIX(t testing.TB) string {
	t.Helper()
	p := filepath.Join(RepoRoot(), ".cache", "playbook-agent.vsix")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("PBS_REQUIRE_EXTENSION") == "1" {
			t.Fatalf("the extension is not built at %s: run scripts/build-extension.sh", p)
		}
		return ""
	}
	return p
}
