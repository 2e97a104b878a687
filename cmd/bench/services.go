package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/playbookstudio/gateway/internal/child"
)

// startRedis runs redis-server on a free loopback port, no persistence.
func startRedis(ctx context.Context, dir string, cl *cleanups) (addr string, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server is not installed (make setup installs Debian's redis-server)")
	}
	port, err := child.FreePort()
	if err != nil {
		return "", err
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	p, err := child.Start("redis-server", filepath.Join(dir, "redis.log"), os.Environ(), bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "yes")
	if err != nil {
		return "", err
	}
	cl.add(func() { p.Stop(syscall.SIGTERM, 5*time.Second) })
	return addr, child.WaitTCP(ctx, addr, 10*time.Second, p)
}

// devIDP is bin/devidp on a free port.
type devIDP struct {
	issuer, clientID, secret string
}

func startDevIDP(ctx context.Context, bin, dir string, redirects, postLogout []string, cl *cleanups) (*devIDP, error) {
	port, err := child.FreePort()
	if err != nil {
		return nil, err
	}
	d := &devIDP{issuer: "http://127.0.0.1:" + strconv.Itoa(port), clientID: "playbook-studio", secret: "bench-secret-" + strconv.Itoa(port)}
	p, err := child.Start("devidp", filepath.Join(dir, "devidp.log"), []string{"PATH=" + os.Getenv("PATH")},
		bin,
		"-addr", "127.0.0.1:"+strconv.Itoa(port), "-issuer", d.issuer,
		"-client-id", d.clientID, "-client-secret", d.secret,
		"-redirect-uris", strings.Join(redirects, ","),
		"-post-logout-redirect-uris", strings.Join(postLogout, ","))
	if err != nil {
		return nil, err
	}
	cl.add(func() { p.Stop(syscall.SIGTERM, 5*time.Second) })
	return d, child.WaitHTTP(ctx, nil, d.issuer+"/.well-known/openid-configuration", 15*time.Second, p)
}

// gatewayProc is a bin/gateway process with its own data folder.
type gatewayProc struct {
	*proc
	port    int
	public  string // http://playbooks.localhost:PORT
	dataDir string
	// codeServer is what its local runtime starts (code-server or wsecho).
	codeServer string
}

// shutdown stops the gateway, then the workspaces it started: they
// outlive a gateway by design (a restarted one adopts them).
func (g *gatewayProc) shutdown() {
	g.Stop(syscall.SIGTERM, 20*time.Second)
	stopLocalWorkspaces(filepath.Join(g.dataDir, "workspaces"), g.codeServer)
}

// startGateway runs bin/gateway on port with the proxy engine, the local
// runtime and codeServer (the real one or wsecho), in memory, no
// extension. Its
// stdout (one JSON line per request) goes to a file, as nginx's access
// log does.
func startGateway(ctx context.Context, bin, dir, name string, port int, engine string, idp *devIDP, codeServer string, cl *cleanups) (*gatewayProc, error) {
	g := &gatewayProc{port: port, public: "http://playbooks.localhost:" + strconv.Itoa(port), dataDir: filepath.Join(dir, name)}
	if err := os.MkdirAll(g.dataDir, 0o700); err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + g.dataDir,
		"LISTEN_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"METRICS_ADDR=127.0.0.1:0",
		"PUBLIC_URL=" + g.public,
		"IDE_URL_TEMPLATE=http://{session}.ide.playbooks.localhost:" + strconv.Itoa(port),
		"OIDC_ISSUER=" + idp.issuer,
		"OIDC_CLIENT_ID=" + idp.clientID,
		"OIDC_CLIENT_SECRET=" + idp.secret,
		"DATA_DIR=" + g.dataDir,
		"CODE_SERVER_BIN=" + codeServer,
		"EDIT_SESSION_TTL=30m",
		"IDE_PROXY_ENGINE=" + engine,
		// The bench holds 1,000 idle WebSockets and 256 busy ones through
		// one edit session, far past the per-session caps a browser needs.
		"IDE_MAX_WEBSOCKETS_PER_SESSION=4096",
		"IDE_MAX_REQUESTS_PER_SESSION=4096",
		"LOG_LEVEL=info",
	}
	p, err := child.Start(name, filepath.Join(dir, name+".log"), env, bin, "-workspace-extension=")
	if err != nil {
		return nil, err
	}
	g.proc = p
	g.codeServer = codeServer
	cl.add(g.shutdown)
	return g, child.WaitHTTP(ctx, nil, "http://127.0.0.1:"+strconv.Itoa(port)+"/healthz", 20*time.Second, p)
}

// nginxProc is Debian's nginx run as this program's own process.
type nginxProc struct {
	*proc
	port int
}

// nginxConf follows code-server's guide for a reverse proxy (proxy_pass,
// Host $host, Upgrade and Connection for WebSockets), with an upstream
// keepalive pool over the workspace's unix socket and HTTP/1.1 to it.
// Accept-Encoding is not set: nginx passes the client's own.
const nginxConf = `{{USER}}worker_processes auto;
worker_rlimit_nofile 16384;
daemon off;
master_process on;
pid {{DIR}}/nginx.pid;
error_log {{DIR}}/error.log warn;
events { worker_connections 8192; }
http {
    access_log {{DIR}}/access.log;
    client_body_temp_path {{DIR}}/client_body;
    proxy_temp_path {{DIR}}/proxy;
    fastcgi_temp_path {{DIR}}/fastcgi;
    uwsgi_temp_path {{DIR}}/uwsgi;
    scgi_temp_path {{DIR}}/scgi;
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }
    upstream workspace {
        server unix:{{SOCK}};
        keepalive 64;
    }
    server {
        listen 127.0.0.1:{{PORT}};
        server_name _;
        location / {
            proxy_pass http://workspace;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
        }
    }
}
`

func startNginx(ctx context.Context, dir, name, sock string, cl *cleanups) (*nginxProc, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: nginx is missing; installing Debian's nginx with apt-get")
		inst := exec.CommandContext(ctx, "bash", "-c", "apt-get install -y -qq --no-install-recommends nginx || (apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx)")
		inst.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		inst.Stdout, inst.Stderr = os.Stderr, os.Stderr
		if ierr := inst.Run(); ierr != nil {
			return nil, fmt.Errorf("install nginx: %w", ierr)
		}
		bin = "/usr/sbin/nginx"
	}
	port, err := child.FreePort()
	if err != nil {
		return nil, err
	}
	ndir := filepath.Join(dir, name)
	if err := os.MkdirAll(ndir, 0o700); err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		// The workspace socket is mode 0600 and owned by this user: the
		// workers must run as it, as the gateway does.
		user = "user root;\n"
	}
	conf := strings.NewReplacer("{{USER}}", user, "{{DIR}}", ndir, "{{SOCK}}", sock, "{{PORT}}", strconv.Itoa(port)).Replace(nginxConf)
	confPath := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p, err := child.Start(name, filepath.Join(ndir, "stderr.log"), []string{"PATH=" + os.Getenv("PATH")}, bin,
		"-p", ndir, "-c", confPath, "-e", filepath.Join(ndir, "error.log"))
	if err != nil {
		return nil, err
	}
	cl.add(func() { p.Stop(syscall.SIGTERM, 10*time.Second) })
	n := &nginxProc{proc: p, port: port}
	if err := child.WaitTCP(ctx, "127.0.0.1:"+strconv.Itoa(port), 10*time.Second, p); err != nil {
		raw, _ := os.ReadFile(filepath.Join(ndir, "error.log"))
		return nil, fmt.Errorf("%w\n%s\n%s", err, raw, p.LogTail(10))
	}
	// Wait for its workers.
	for i := 0; i < 100 && len(children(p.PID())) == 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	return n, nil
}

// podman is a `podman system service` serving the Docker API on a socket
// of its own (internal/testsvc.StartPodman's equivalent outside tests).
type podman struct {
	dockerHost string
	conf       string
	bin        string
}

const containersConf = `[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
`

func startPodman(ctx context.Context, cl *cleanups) (*podman, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return nil, errors.New("podman is not installed (make setup installs Debian's podman and runc)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, errors.New("runc is not installed (make setup installs it)")
	}
	for _, f := range []string{"/usr/libexec/podman/catatonit", "/usr/lib/podman/netavark", "/usr/lib/podman/aardvark-dns"} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%s is missing (make setup installs it)", f)
		}
	}
	dir, err := os.MkdirTemp("", "pbsb-podman-")
	if err != nil {
		return nil, err
	}
	cl.add(func() { _ = os.RemoveAll(dir) })
	pm := &podman{conf: filepath.Join(dir, "containers.conf"), bin: bin}
	if err := os.WriteFile(pm.conf, []byte(containersConf), 0o644); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "podman.sock")
	pm.dockerHost = "unix://" + sock
	p, err := child.Start("podman", filepath.Join(dir, "service.log"), pm.env(), bin, "system", "service", "--time=0", pm.dockerHost)
	if err != nil {
		return nil, err
	}
	cl.add(func() { p.Stop(syscall.SIGTERM, 10*time.Second) })
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	if err := child.WaitHTTP(ctx, &http.Client{Transport: tr}, "http://podman/_ping", 20*time.Second, p); err != nil {
		return nil, fmt.Errorf("podman system service: %w", err)
	}
	return pm, nil
}

func (p *podman) env() []string { return append(os.Environ(), "CONTAINERS_CONF="+p.conf) }

func (p *podman) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = p.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}
