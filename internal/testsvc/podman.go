package testsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/child"
)

// containersConf is the Podman configuration these machines need: runc
// (crun fails on their hybrid cgroups) and rlimits the sandbox can grant.
const containersConf = `[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
`

// Podman is a `podman system service` process serving the Docker Engine
// API on a unix socket of its own, owned by one test. Containers, images
// and volumes live in Podman's ordinary storage, so images built with
// `make image` are there.
type Podman struct {
	// DockerHost is the API's address for DOCKER_HOST or a client's host
	// option: unix:///tmp/pbs-podman-…/podman.sock.
	DockerHost string
	// Conf is the containers.conf every podman command here uses.
	Conf string
	bin  string
}

// StartPodman starts the Docker-compatible API on a private socket and
// stops it (by its PID) when the test ends. Podman and runc come from
// Debian (make setup installs them); a machine without them fails
// loudly rather than skipping the real thing.
func StartPodman(t testing.TB) *Podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman is not installed: run `make setup` (it installs Debian's podman and runc)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatalf("runc is not installed: run `make setup` (it installs Debian's podman and runc)")
	}
	// Recommended, not required, by Debian's podman: an install without
	// recommends lacks them. catatonit is the containers' init; netavark
	// and aardvark-dns give isolated bridges with names that resolve.
	for _, f := range []string{"/usr/libexec/podman/catatonit", "/usr/lib/podman/netavark", "/usr/lib/podman/aardvark-dns"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s is missing: run `make setup` (it installs Debian's catatonit, netavark and aardvark-dns with podman)", f)
		}
	}
	// A short folder: unix socket paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "pbs-podman-")
	if err != nil {
		t.Fatalf("podman: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := &Podman{Conf: filepath.Join(dir, "containers.conf"), bin: bin}
	if err := os.WriteFile(p.Conf, []byte(containersConf), 0o644); err != nil {
		t.Fatalf("podman: %v", err)
	}
	sock := filepath.Join(dir, "podman.sock")
	p.DockerHost = "unix://" + sock
	proc, err := child.Start("podman system service", filepath.Join(dir, "service.log"), p.env(), bin, "system", "service", "--time=0", p.DockerHost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Stop(syscall.SIGTERM, 10*time.Second)
		if t.Failed() {
			t.Logf("podman service log (tail):\n%s", proc.LogTail(40))
		}
	})
	if err := child.WaitHTTP(context.Background(), unixClient(sock), "http://podman/_ping", 20*time.Second, proc); err != nil {
		t.Fatalf("podman system service did not answer on %s: %v", p.DockerHost, err)
	}
	return p
}

// unixClient is an HTTP client of the unix socket sock.
func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

func (p *Podman) env() []string {
	return append(os.Environ(), "CONTAINERS_CONF="+p.Conf)
}

// Podman runs the podman command line with the same configuration and
// returns what it printed (stdout and stderr).
func (p *Podman) Podman(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = p.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// StubImageRepo is the repository of the stub workspace image.
const StubImageRepo = "localhost/pbs-stub"

// stubContainerfile builds the stub workspace image: a static binary, the
// project folder owned by the workspace user, nothing else.
const stubContainerfile = `FROM scratch
COPY --chown=1000:1000 rootfs/ /
USER 1000:1000
WORKDIR /home/coder/project
EXPOSE 8080
CMD ["/stub"]
`

var stubImage struct {
	sync.Mutex
	ref string
}

// BuildStubImage builds (once per test binary, and not again while its
// inputs are unchanged: the tag is their hash) the stub workspace image
// from internal/workspace/testdata/stub, a tiny stand-in for code-server,
// and returns its reference.
func BuildStubImage(t testing.TB, p *Podman) string {
	t.Helper()
	stubImage.Lock()
	defer stubImage.Unlock()
	if stubImage.ref != "" {
		return stubImage.ref
	}
	src := filepath.Join(RepoRoot(), "internal", "workspace", "testdata", "stub", "main.go")
	code, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("stub image: %v", err)
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\x00%s\x00%s\x00", runtime.Version(), stubContainerfile, code)
	ref := StubImageRepo + ":" + hex.EncodeToString(sum.Sum(nil))[:16]
	if _, err := p.Podman("image", "exists", ref); err == nil {
		stubImage.ref = ref
		return ref
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "rootfs", "stub")
	if err := os.MkdirAll(filepath.Join(dir, "rootfs", "home", "coder", "project"), 0o755); err != nil {
		t.Fatalf("stub image: %v", err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./internal/workspace/testdata/stub")
	build.Dir = RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("stub image: build the stub: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(stubContainerfile), 0o644); err != nil {
		t.Fatalf("stub image: %v", err)
	}
	if _, err := p.Podman("build", "--quiet", "--file", filepath.Join(dir, "Containerfile"),
		"--label", "io.playbookstudio.test-stub=1", "--tag", ref, dir); err != nil {
		t.Fatalf("stub image: %v", err)
	}
	// Older builds of the stub are dropped (those still used by a
	// container stay).
	if out, err := p.Podman("images", "--noheading", "--format", "{{.Repository}}:{{.Tag}}", StubImageRepo); err == nil {
		for _, old := range strings.Fields(out) {
			if old != ref && strings.HasPrefix(old, StubImageRepo+":") {
				_, _ = p.Podman("rmi", old)
			}
		}
	}
	stubImage.ref = ref
	return ref
}
