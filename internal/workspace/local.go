package workspace

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/playbookstudio/gateway/internal/sandbox"
)

// LocalConfig configures the local-process runtime.
type LocalConfig struct {
	// CodeServer is the code-server executable (the project's set-up
	// installs it under .cache/code-server).
	CodeServer string
	// Dir holds one folder per workspace (project, user data, extensions,
	// home) and the sockets; it must be short enough for unix socket paths.
	Dir string
	// ExtensionVSIX is preinstalled in every workspace when set.
	ExtensionVSIX string
	// Path is the PATH workspaces get (code-server needs node on it).
	Path string
	// Sandbox contains each workspace (package sandbox): its own
	// namespaces, uid, and nothing of the host but its own folder. Nil
	// runs code-server as a plain process of the gateway's user, which
	// only suits a single developer's machine (and the benchmark's
	// baseline); the gateway never does that unless told to.
	Sandbox *sandbox.Sandbox
	// UIDBase is the first host uid given to a sandboxed workspace (one
	// uid per workspace, allocated upwards; default 3,000,000).
	UIDBase int
	// Network shares the host's network with sandboxed workspaces. By
	// default a workspace has only its loopback, on which the gateway's
	// workspace API is forwarded to APISocket.
	Network bool
}

// Local runs each workspace's code-server on this host, in a process
// group of its own, listening on a unix socket with mode 0600 in a folder
// only the workspace's uid (and root) may enter, with no TCP port. With a
// Sandbox (the default of the gateway) each workspace runs in a
// bubblewrap sandbox as a uid of its own.
//
// Layout under Dir (root-owned folders are 0711: enterable, not listable):
//
//	ws/KEY/meta.json        what reconcile trusts (root only; never inside a sandbox)
//	ws/KEY/home/            the workspace's home, /home/coder inside (its uid, 0700):
//	       project/         the playbook folders
//	       .code-server/    code-server's user data and extensions
//	run/KEY/cs.sock         code-server's socket (its uid, 0700)
//	api/gateway.sock        the gateway's workspace API, for sandboxes without a network
//	extensions/HASH/        the prepared agent extension, copied into each home
type Local struct {
	cfg LocalConfig
	log *slog.Logger

	mu    sync.Mutex
	procs map[string]*exec.Cmd // started by this gateway, reaped on exit
	tmpl  string               // prepared extensions folder, copied into each workspace
}

var _ Runtime = (*Local)(nil)

// meta is what a workspace folder remembers about its process, so a
// restarted gateway can find (and adopt or stop) it. It lives outside the
// workspace's home, readable by root alone: the workspace cannot rewrite
// what reconcile trusts.
type meta struct {
	Key       string    `json:"key"`
	Owner     string    `json:"owner"`
	Tenant    string    `json:"tenant"`
	TokenHash string    `json:"tokenHash,omitempty"`
	PID       int       `json:"pid"`   // code-server, or bwrap when sandboxed
	Start     uint64    `json:"start"` // PID's start time (a reused PID differs)
	Init      int       `json:"init"`  // the sandbox's PID 1 as the host sees it
	InitStart uint64    `json:"initStart"`
	UID       int       `json:"uid,omitempty"` // the workspace's host uid when sandboxed as root
	StartedAt time.Time `json:"startedAt"`
}

// maxSocketPath leaves room under the kernel's 108-byte sun_path.
const maxSocketPath = 100

// NewLocal checks cfg and prepares the extension template.
func NewLocal(cfg LocalConfig, log *slog.Logger) (*Local, error) {
	if cfg.CodeServer == "" || cfg.Dir == "" {
		return nil, errors.New("workspace: local runtime needs the code-server path and a data folder")
	}
	if _, err := os.Stat(cfg.CodeServer); err != nil {
		return nil, fmt.Errorf("workspace: code-server not found at %s (the project's set-up installs it: make run does): %w", cfg.CodeServer, err)
	}
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("workspace: data folder %q must be absolute", cfg.Dir)
	}
	if n := len(filepath.Join(cfg.Dir, "run", "0123456789abcdef", "cs.sock")); n > maxSocketPath {
		return nil, fmt.Errorf("workspace: DATA_DIR %q is too long for unix socket paths (%d > %d bytes); choose a shorter one", cfg.Dir, n, maxSocketPath)
	}
	abs, err := filepath.Abs(cfg.CodeServer)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	cfg.CodeServer = abs
	// Enterable by the workspaces' uids (bwrap opens what it binds), not
	// listable: nobody learns the other workspaces' keys from here.
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "run"), filepath.Join(cfg.Dir, "ws")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("workspace: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("workspace: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "api"), 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	if cfg.Path == "" {
		cfg.Path = "/usr/local/bin:/usr/bin:/bin"
	}
	if cfg.UIDBase <= 0 {
		cfg.UIDBase = 3_000_000
	}
	if cfg.Sandbox == nil {
		log.Warn("local workspaces are NOT sandboxed: every workspace runs as the gateway's own user and can read its files; use only on a single developer's machine")
	} else if !cfg.Sandbox.SeparateUIDs() {
		log.Warn("the gateway does not run as root: sandboxed workspaces keep the gateway's uid on the host (their namespaces still hide everything but their own folder)")
	}
	l := &Local{cfg: cfg, log: log, procs: map[string]*exec.Cmd{}}
	if cfg.ExtensionVSIX != "" {
		tmpl, err := l.prepareExtensions()
		if err != nil {
			return nil, err
		}
		l.tmpl = tmpl
	}
	return l, nil
}

func (l *Local) Name() string { return "local" }

// prepareExtensions installs the .vsix once into a folder named by its
// hash; starting a workspace then copies that folder, which is far faster
// than running code-server's installer for every cold start.
func (l *Local) prepareExtensions() (string, error) {
	raw, err := os.ReadFile(l.cfg.ExtensionVSIX)
	if err != nil {
		return "", fmt.Errorf("workspace: extension %s: %w", l.cfg.ExtensionVSIX, err)
	}
	sum := sha256.Sum256(raw)
	dir := filepath.Join(l.cfg.Dir, "extensions", hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, ".ready")); err == nil {
		return dir, nil
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.cfg.CodeServer, "--extensions-dir", dir, "--user-data-dir", filepath.Join(dir, ".user-data"), "--install-extension", l.cfg.ExtensionVSIX)
	cmd.Env = []string{"PATH=" + l.cfg.Path, "HOME=" + dir}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("workspace: install extension %s: %w: %s", l.cfg.ExtensionVSIX, err, bytes.TrimSpace(out))
	}
	_ = os.RemoveAll(filepath.Join(dir, ".user-data"))
	if err := os.WriteFile(filepath.Join(dir, ".ready"), nil, 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

func (l *Local) dir(key string) string     { return filepath.Join(l.cfg.Dir, "ws", key) }
func (l *Local) home(key string) string    { return filepath.Join(l.dir(key), "home") }
func (l *Local) sockDir(key string) string { return filepath.Join(l.cfg.Dir, "run", key) }
func (l *Local) socket(key string) string  { return filepath.Join(l.sockDir(key), "cs.sock") }
func (l *Local) project(key string) string { return filepath.Join(l.home(key), "project") }

// APISocket is where the gateway serves its workspace API for sandboxed
// workspaces that have no network: each sees the folder read-only at
// /run/playbook, and a forwarder inside carries PLAYBOOK_GATEWAY_URL's
// loopback port to it.
func (l *Local) APISocket() string { return filepath.Join(l.cfg.Dir, "api", "gateway.sock") }

// Sandboxed tells whether workspaces run in the sandbox without a network
// of their own (and so reach the gateway through APISocket).
func (l *Local) Sandboxed() (sandboxed, network bool) { return l.cfg.Sandbox != nil, l.cfg.Network }

// Inside a sandbox, the workspace's folders are always at the same
// paths (as in the Docker image).
const (
	sandboxHome    = "/home/coder"
	sandboxSockDir = "/run/code-server"
	sandboxAPIDir  = "/run/playbook"
	sandboxForward = "/opt/playbook/forward.js"
)

// forwardJS carries the workspace's loopback port named by
// PLAYBOOK_GATEWAY_URL to the gateway's API socket, for sandboxes whose
// network is only their loopback.
//
//go:embed forward.js
var forwardJS []byte

// Start launches code-server for spec unless it already runs.
func (l *Local) Start(ctx context.Context, spec Spec) error {
	if !validKey(spec.Key) {
		return fmt.Errorf("workspace: invalid key %q", spec.Key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, err := l.readMeta(spec.Key)
	if err == nil && l.alive(m) {
		return nil
	}
	m = meta{Key: spec.Key, Owner: spec.Owner, Tenant: spec.Tenant, TokenHash: spec.TokenHash, UID: m.UID}
	if err := l.prepare(&m); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(l.dir(spec.Key), "code-server.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	defer logf.Close()
	if l.cfg.Sandbox != nil {
		err = l.startSandboxed(spec, &m, logf)
	} else {
		err = l.startPlain(spec, &m, logf)
	}
	if err != nil {
		return err
	}
	m.StartedAt = time.Now().UTC()
	if err := l.writeMeta(m); err != nil {
		l.kill(m)
		return err
	}
	return nil
}

// prepare makes the workspace's folders, owned by its uid, with the
// extension and the default settings in place.
func (l *Local) prepare(m *meta) error {
	key := m.Key
	if err := os.MkdirAll(l.dir(key), 0o711); err != nil {
		return fmt.Errorf("workspace: create folders: %w", err)
	}
	// A workspace that gets its uid now has its whole home handed over
	// once (it may hold files of a version without uids); after that a
	// start hands over only what it writes itself.
	fresh := l.separateUIDs() && m.UID == 0
	if fresh {
		uid, err := l.allocateUID(key)
		if err != nil {
			return err
		}
		m.UID = uid
		// Recorded before anything runs as that uid.
		if err := l.writeMeta(*m); err != nil {
			return err
		}
	}
	home := l.home(key)
	for _, sub := range []string{"project", ".code-server/data", ".code-server/extensions"} {
		if err := os.MkdirAll(filepath.Join(home, sub), 0o700); err != nil {
			return fmt.Errorf("workspace: create folders: %w", err)
		}
	}
	copied, err := l.installExtensions(key)
	if err != nil {
		return err
	}
	userDir := filepath.Join(home, ".code-server", "data", "User")
	if err := writeDefaultSettings(userDir); err != nil {
		return err
	}
	sock := l.sockDir(key)
	if err := os.MkdirAll(sock, 0o700); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	_ = os.Remove(l.socket(key))
	if !l.separateUIDs() {
		return nil
	}
	// What the gateway wrote belongs to the workspace's uid; links are
	// not followed.
	trees := []string{}
	if fresh {
		trees = append(trees, home, sock)
	} else if copied {
		trees = append(trees, filepath.Join(home, ".code-server", "extensions"))
	}
	for _, d := range trees {
		if err := lchownTree(d, m.UID); err != nil {
			return fmt.Errorf("workspace: hand the folders to the workspace's uid: %w", err)
		}
	}
	if fresh {
		return nil
	}
	for _, p := range []string{home, filepath.Join(home, "project"), filepath.Join(home, ".code-server"), filepath.Join(home, ".code-server", "data"),
		userDir, filepath.Join(userDir, "settings.json"), sock} {
		if err := os.Lchown(p, m.UID, m.UID); err != nil {
			return fmt.Errorf("workspace: hand the folders to the workspace's uid: %w", err)
		}
	}
	return nil
}

func (l *Local) separateUIDs() bool {
	return l.cfg.Sandbox != nil && l.cfg.Sandbox.SeparateUIDs()
}

// allocateUID gives key the lowest uid from UIDBase that no other
// workspace's meta.json holds.
func (l *Local) allocateUID(key string) (int, error) {
	entries, err := os.ReadDir(filepath.Join(l.cfg.Dir, "ws"))
	if err != nil {
		return 0, fmt.Errorf("workspace: %w", err)
	}
	used := map[int]bool{}
	for _, e := range entries {
		if e.Name() == key {
			continue
		}
		if m, err := l.readMeta(e.Name()); err == nil && m.UID > 0 {
			used[m.UID] = true
		}
	}
	uid := l.cfg.UIDBase
	for used[uid] {
		uid++
	}
	return uid, nil
}

// codeServerArgs are code-server's flags for a workspace whose home,
// socket folder and project are at those paths.
func codeServerArgs(home, sock string) []string {
	return []string{
		"--auth", "none",
		"--socket", filepath.Join(sock, "cs.sock"), "--socket-mode", "600",
		"--user-data-dir", filepath.Join(home, ".code-server", "data"),
		"--extensions-dir", filepath.Join(home, ".code-server", "extensions"),
		"--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
		"--disable-getting-started-override",
		filepath.Join(home, "project"),
	}
}

// env is a workspace's whole environment: nothing of the gateway's own
// (its client secret, the model key) may reach it.
func (l *Local) env(spec Spec, home string) []string {
	env := []string{"PATH=" + l.cfg.Path, "HOME=" + home, "LANG=C.UTF-8", "SHELL=/bin/bash", "USER=coder"}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// startPlain runs code-server as a plain process of the gateway's user.
func (l *Local) startPlain(spec Spec, m *meta, logf *os.File) error {
	home := l.home(spec.Key)
	cmd := exec.Command(l.cfg.CodeServer, codeServerArgs(home, l.sockDir(spec.Key))...)
	cmd.Env = l.env(spec, home)
	cmd.Dir = l.project(spec.Key)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so Stop ends code-server and every child it
	// spawned (extension host, terminals) together; no Pdeathsig, so the
	// workspace outlives a gateway restart and can be adopted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("workspace: start code-server: %w", err)
	}
	l.procs[spec.Key] = cmd
	go func() { _ = cmd.Wait() }() // reap; exit is noticed through alive()
	m.PID = cmd.Process.Pid
	m.Start, _ = sandbox.StartTime(m.PID)
	return nil
}

// startSandboxed runs code-server in a bubblewrap sandbox: the system
// read-only, code-server's installation read-only, the workspace's home
// and socket folder writable, nothing else of the host.
func (l *Local) startSandboxed(spec Spec, m *meta, logf *os.File) error {
	csRoot := installRoot(l.cfg.CodeServer)
	argv := append([]string{l.cfg.CodeServer}, codeServerArgs(sandboxHome, sandboxSockDir)...)
	binds := []sandbox.Bind{
		{Host: l.home(spec.Key), Inside: sandboxHome, Writable: true},
		{Host: l.sockDir(spec.Key), Inside: sandboxSockDir, Writable: true},
		{Host: csRoot, Inside: csRoot},
	}
	files := []sandbox.File{
		{Inside: "/etc/passwd", Content: []byte(fmt.Sprintf("root:x:0:0:root:/root:/usr/sbin/nologin\ncoder:x:%d:%d:coder:%s:/bin/bash\n", l.uidOf(m), l.uidOf(m), sandboxHome))},
		{Inside: "/etc/group", Content: []byte(fmt.Sprintf("root:x:0:\ncoder:x:%d:\n", l.uidOf(m)))},
		{Inside: "/etc/hostname", Content: []byte("workspace\n")},
	}
	if !l.cfg.Network {
		// Only the loopback: the gateway's workspace API comes in through
		// its socket, carried to PLAYBOOK_GATEWAY_URL's port by a forwarder
		// that runs beside code-server as the workspace's own user.
		binds = append(binds, sandbox.Bind{Host: filepath.Dir(l.APISocket()), Inside: sandboxAPIDir})
		files = append(files, sandbox.File{Inside: sandboxForward, Content: forwardJS})
		argv = append([]string{"/bin/sh", "-c", `node ` + sandboxForward + ` ` + sandboxAPIDir + `/gateway.sock & exec "$0" "$@"`}, argv...)
	}
	sbx := sandbox.Spec{
		Argv: argv, Env: l.env(spec, sandboxHome), UID: l.uidOf(m), GID: l.uidOf(m),
		Binds: binds, Files: files, Dir: sandboxHome + "/project", Network: l.cfg.Network,
		// A fork bomb stops at this many tasks of the workspace's uid.
		MaxProcs: 4096,
		Stdout:   logf, Stderr: logf,
	}
	p, err := l.cfg.Sandbox.Start(sbx)
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	go func() { _ = p.Wait() }() // reap; exit is noticed through alive()
	m.PID, m.Init = p.PID, p.Init
	m.Start, _ = sandbox.StartTime(p.PID)
	m.InitStart, _ = sandbox.StartTime(p.Init)
	return nil
}

func (l *Local) uidOf(m *meta) int {
	if m.UID > 0 {
		return m.UID
	}
	return os.Getuid()
}

// installRoot is the folder holding code-server's node_modules (its
// hoisted dependencies come along), bound read-only into every sandbox.
func installRoot(codeServer string) string {
	p := filepath.Clean(codeServer)
	for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
		if filepath.Base(d) == "node_modules" {
			return filepath.Dir(d)
		}
	}
	return filepath.Dir(p)
}

// lchownTree hands dir and everything below it to uid, never following a
// link.
func lchownTree(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// installExtensions copies the prepared extension folder into the
// workspace when it holds another version (or none), and says whether it
// did.
func (l *Local) installExtensions(key string) (copied bool, err error) {
	if l.tmpl == "" {
		return false, nil
	}
	dst := filepath.Join(l.home(key), ".code-server", "extensions")
	marker := filepath.Join(dst, ".template")
	if b, err := os.ReadFile(marker); err == nil && string(b) == l.tmpl {
		return false, nil
	}
	if err := os.RemoveAll(dst); err != nil {
		return false, fmt.Errorf("workspace: %w", err)
	}
	if err := os.CopyFS(dst, os.DirFS(l.tmpl)); err != nil {
		return false, fmt.Errorf("workspace: copy extensions: %w", err)
	}
	return true, os.WriteFile(marker, []byte(l.tmpl), 0o600)
}

// alive reports whether the workspace m describes still runs: its
// process (the sandbox's PID 1 when sandboxed) is there with the start
// time recorded, so a PID reused by another program does not count.
func (l *Local) alive(m meta) bool {
	if m.Init > 0 {
		return sandbox.Alive(m.Init, m.InitStart)
	}
	return sandbox.Alive(m.PID, m.Start)
}

// kill ends the workspace m describes at once.
func (l *Local) kill(m meta) {
	if m.Init > 0 {
		_ = sandbox.Kill(m.Init)
	}
	if m.PID > 0 && sandbox.Alive(m.PID, m.Start) {
		_ = syscall.Kill(-m.PID, syscall.SIGKILL)
	}
}

func (l *Local) readMeta(key string) (meta, error) {
	var m meta
	raw, err := os.ReadFile(filepath.Join(l.dir(key), "meta.json"))
	if err != nil {
		return m, err
	}
	err = json.Unmarshal(raw, &m)
	return m, err
}

func (l *Local) writeMeta(m meta) error {
	raw, _ := json.Marshal(m)
	tmp := filepath.Join(l.dir(m.Key), "meta.json.tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	return os.Rename(tmp, filepath.Join(l.dir(m.Key), "meta.json"))
}

// Stop ends the workspace: a plain code-server's process group gets
// SIGTERM, then SIGKILL after five seconds; a sandbox's PID 1 gets SIGKILL
// (its namespace ends with it; nothing in it can be trusted to tidy up).
func (l *Local) Stop(ctx context.Context, key string) error {
	if !validKey(key) {
		return fmt.Errorf("workspace: invalid key %q", key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, err := l.readMeta(key)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if l.alive(m) {
		if m.Init > 0 {
			_ = sandbox.Kill(m.Init)
		} else {
			_ = syscall.Kill(-m.PID, syscall.SIGTERM)
		}
		deadline := time.Now().Add(5 * time.Second)
		for l.alive(m) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		if l.alive(m) {
			l.kill(m)
		}
	}
	delete(l.procs, key)
	_ = os.Remove(l.socket(key))
	m.PID, m.Start, m.Init, m.InitStart = 0, 0, 0, 0
	return l.writeMeta(m)
}

// Remove stops the workspace and deletes its folder.
func (l *Local) Remove(ctx context.Context, key string) error {
	if err := l.Stop(ctx, key); err != nil {
		return err
	}
	if err := os.RemoveAll(l.dir(key)); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	return nil
}

// List reads every workspace folder's meta.json.
func (l *Local) List(ctx context.Context) ([]Observed, error) {
	entries, err := os.ReadDir(filepath.Join(l.cfg.Dir, "ws"))
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	var out []Observed
	for _, e := range entries {
		if !e.IsDir() || !validKey(e.Name()) {
			continue
		}
		m, err := l.readMeta(e.Name())
		if err != nil || m.Key != e.Name() {
			// A folder without a readable meta.json is reported as a stray
			// with no owner, so reconcile stops whatever might run there.
			out = append(out, Observed{Key: e.Name()})
			continue
		}
		out = append(out, Observed{Key: m.Key, Owner: m.Owner, Tenant: m.Tenant, TokenHash: m.TokenHash, Running: l.alive(m)})
	}
	return out, nil
}

func (l *Local) Health(ctx context.Context, key string) (Health, error) {
	dial, err := l.Dialer(ctx, key)
	if err != nil {
		return Health{}, err
	}
	return ProbeHealth(ctx, dial)
}

// Dialer connects to the workspace's unix socket.
func (l *Local) Dialer(_ context.Context, key string) (DialFunc, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("workspace: invalid key %q", key)
	}
	sock := l.socket(key)
	var d net.Dialer
	return func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, "unix", sock)
	}, nil
}

// CopyOut archives a folder of the project without following symlinks:
// os.Root refuses any path that would leave the project folder.
func (l *Local) CopyOut(ctx context.Context, key, path string) (io.ReadCloser, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("workspace: invalid key %q", key)
	}
	root, err := os.OpenRoot(l.project(key))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("workspace: %w", err)
	}
	return tarFolder(ctx, root, path)
}

// CopyIn extracts archive into a folder of the project.
func (l *Local) CopyIn(ctx context.Context, key, path string, archive io.Reader) error {
	if !validKey(key) {
		return fmt.Errorf("workspace: invalid key %q", key)
	}
	root, err := os.OpenRoot(l.project(key))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ErrNotFound
		}
		return fmt.Errorf("workspace: %w", err)
	}
	defer root.Close()
	if err := untarInto(ctx, root, path, archive); err != nil {
		return err
	}
	if !l.separateUIDs() {
		return nil
	}
	// What the gateway wrote belongs to the workspace's uid, or its user
	// could not edit the seeded playbook.
	m, err := l.readMeta(key)
	if err != nil || m.UID <= 0 {
		return nil
	}
	return chownIn(root, path, m.UID)
}

// chownIn hands dir (relative to root), its parents below root and
// everything in it to uid, inside root and without following links.
func chownIn(root *os.Root, dir string, uid int) error {
	dir, ok := CleanRelPath(dir)
	if !ok {
		return fmt.Errorf("workspace: invalid folder %q", dir)
	}
	for p := dir; p != "." && p != "/"; p = filepath.Dir(p) {
		if err := root.Lchown(p, uid, uid); err != nil {
			return fmt.Errorf("workspace: %w", err)
		}
	}
	return fs.WalkDir(root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return root.Lchown(p, uid, uid)
	})
}

// Close leaves the workspaces running: they are adopted after a restart.
func (l *Local) Close() error { return nil }

// ProjectPath is where the workspace's project folder is, as its
// code-server sees it.
func (l *Local) ProjectPath(key string) string {
	if l.cfg.Sandbox != nil {
		return sandboxHome + "/project"
	}
	return l.project(key)
}

// DefaultSettings are the workbench settings a new workspace starts with:
// straight into the playbook, no walkthroughs, no telemetry, no prompts
// about trusting the folder the gateway itself opened. The workspace image
// copies the same file (images/build-offline.sh).
//
//go:embed settings.json
var DefaultSettings []byte

// writeDefaultSettings writes the settings once; the user's own changes
// are kept after that.
func writeDefaultSettings(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	p := filepath.Join(dir, "settings.json")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return os.WriteFile(p, DefaultSettings, 0o600)
}
