// Package testsvc starts the real services that integration tests talk to
// (Redis, the dev OpenID provider) on loopback ports, and stops them when
// the test ends. It is imported only by tests.
package testsvc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/child"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := child.FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return port
}

// Redis is a redis-server process owned by one test.
type Redis struct {
	URL  string
	Addr string
	proc *child.Proc
	bin  string
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
	r := &Redis{bin: bin, dir: t.TempDir(), t: t}
	// A free port can be taken by another process before redis-server
	// binds it (other test binaries run at the same time): then what
	// answers there is not our Redis, and another port is tried.
	for range 5 {
		r.port = FreePort(t)
		r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
		r.URL = "redis://" + r.Addr + "/0"
		if err = r.tryStart(); err == nil {
			t.Cleanup(r.Stop)
			return r
		}
	}
	t.Fatalf("redis-server did not start: %v", err)
	return nil
}

// tryStart starts redis-server on r.port and checks that it is ours that
// answers PING there.
func (r *Redis) tryStart() error {
	p, err := child.Start("redis-server", filepath.Join(r.dir, "redis.log"), os.Environ(), r.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "yes")
	if err != nil {
		return err
	}
	r.proc = p
	err = child.WaitTCP(context.Background(), r.Addr, 10*time.Second, p)
	if err == nil {
		err = pingRedis(r.Addr)
	}
	if err != nil {
		r.Stop()
		return fmt.Errorf("redis-server on %s: %w", r.Addr, err)
	}
	return nil
}

// pingRedis asks addr for PONG.
func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("not our Redis there: it answered %q", strings.TrimSpace(line))
	}
	return nil
}

func (r *Redis) start() {
	r.t.Helper()
	// The same port again (clients keep the address): retried while the
	// old socket lingers.
	var err error
	for range 20 {
		if err = r.tryStart(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("redis-server did not start again on %s: %v", r.Addr, err)
}

// Stop ends the server (by its PID) and waits for it; Restart starts it
// again on the same port, for tests of Redis going away and coming back.
func (r *Redis) Stop() {
	if r.proc == nil {
		return
	}
	r.proc.Stop(syscall.SIGTERM, 5*time.Second)
	r.proc = nil
}

// Restart starts a stopped server again on the same address.
func (r *Redis) Restart() {
	r.t.Helper()
	r.start()
}

// WaitHTTP polls url until it answers 200 or the time is up.
func WaitHTTP(ctx context.Context, url string, within time.Duration) error {
	return child.WaitHTTP(ctx, nil, url, within, nil)
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
	logPath := filepath.Join(t.TempDir(), "devidp.log")
	p, err := child.Start("devidp", logPath, os.Environ(), bin,
		"-addr", "127.0.0.1:"+strconv.Itoa(port),
		"-issuer", d.Issuer,
		"-client-id", d.ClientID,
		"-client-secret", d.ClientSecret,
		"-redirect-uris", redirectURI,
		"-post-logout-redirect-uris", postLogout,
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM, 5*time.Second)
		if t.Failed() {
			t.Logf("devidp log:\n%s", p.LogTail(200))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := child.WaitHTTP(ctx, nil, d.Issuer+"/.well-known/openid-configuration", 15*time.Second, p); err != nil {
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
