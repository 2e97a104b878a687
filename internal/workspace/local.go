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
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
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
}

// Local runs each workspace as a code-server process of the gateway's own
// user, in a process group of its own, listening on a unix socket with
// mode 0600 and no TCP port. It is the embedded default for one machine;
// it does not isolate users from each other the way containers do.
type Local struct {
	cfg LocalConfig
	log *slog.Logger

	mu    sync.Mutex
	procs map[string]*exec.Cmd // started by this gateway, reaped on exit
	tmpl  string               // prepared extensions folder, copied into each workspace
}

var _ Runtime = (*Local)(nil)

// meta is what a workspace folder remembers about its process, so a
// restarted gateway can find (and adopt or stop) it.
type meta struct {
	Key       string    `json:"key"`
	Owner     string    `json:"owner"`
	Tenant    string    `json:"tenant"`
	TokenHash string    `json:"tokenHash,omitempty"`
	PID       int       `json:"pid"`
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
	if n := len(filepath.Join(cfg.Dir, "run", "0123456789abcdef.sock")); n > maxSocketPath {
		return nil, fmt.Errorf("workspace: DATA_DIR %q is too long for unix socket paths (%d > %d bytes); choose a shorter one", cfg.Dir, n, maxSocketPath)
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "run"), filepath.Join(cfg.Dir, "ws")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("workspace: %w", err)
		}
	}
	if cfg.Path == "" {
		cfg.Path = "/usr/local/bin:/usr/bin:/bin"
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

func (l *Local) dir(key string) string    { return filepath.Join(l.cfg.Dir, "ws", key) }
func (l *Local) socket(key string) string { return filepath.Join(l.cfg.Dir, "run", key+".sock") }
func (l *Local) project(key string) string {
	return filepath.Join(l.dir(key), "project")
}

// Start launches code-server for spec unless it already runs.
func (l *Local) Start(ctx context.Context, spec Spec) error {
	if !validKey(spec.Key) {
		return fmt.Errorf("workspace: invalid key %q", spec.Key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if m, err := l.readMeta(spec.Key); err == nil && l.alive(spec.Key, m.PID) {
		return nil
	}
	d := l.dir(spec.Key)
	for _, sub := range []string{"project", "user-data", "home", "extensions"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
			return fmt.Errorf("workspace: create folders: %w", err)
		}
	}
	if err := l.installExtensions(spec.Key); err != nil {
		return err
	}
	if err := writeDefaultSettings(filepath.Join(d, "user-data", "User")); err != nil {
		return err
	}
	sock := l.socket(spec.Key)
	_ = os.Remove(sock)
	logf, err := os.OpenFile(filepath.Join(d, "code-server.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	defer logf.Close()

	cmd := exec.Command(l.cfg.CodeServer,
		"--auth", "none",
		"--socket", sock, "--socket-mode", "600",
		"--user-data-dir", filepath.Join(d, "user-data"),
		"--extensions-dir", filepath.Join(d, "extensions"),
		"--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
		"--disable-getting-started-override",
		filepath.Join(d, "project"),
	)
	// A clean environment: nothing of the gateway's own (its client secret,
	// the model key) may reach the workspace.
	cmd.Env = []string{
		"PATH=" + l.cfg.Path,
		"HOME=" + filepath.Join(d, "home"),
		"LANG=C.UTF-8",
		"SHELL=/bin/bash",
	}
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = filepath.Join(d, "project")
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
	m := meta{Key: spec.Key, Owner: spec.Owner, Tenant: spec.Tenant, TokenHash: spec.TokenHash, PID: cmd.Process.Pid, StartedAt: time.Now().UTC()}
	if err := l.writeMeta(m); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return err
	}
	return nil
}

// installExtensions copies the prepared extension folder into the
// workspace when it holds another version (or none).
func (l *Local) installExtensions(key string) error {
	if l.tmpl == "" {
		return nil
	}
	dst := filepath.Join(l.dir(key), "extensions")
	marker := filepath.Join(dst, ".template")
	if b, err := os.ReadFile(marker); err == nil && string(b) == l.tmpl {
		return nil
	}
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if err := os.CopyFS(dst, os.DirFS(l.tmpl)); err != nil {
		return fmt.Errorf("workspace: copy extensions: %w", err)
	}
	return os.WriteFile(marker, []byte(l.tmpl), 0o600)
}

// alive reports whether pid is this workspace's code-server: the process
// exists and its command line names the workspace's socket (a pid reused
// by another program does not count).
func (l *Local) alive(key string, pid int) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil && zombie(stat) {
		return false
	}
	return bytes.Contains(cmdline, []byte(l.socket(key)))
}

// zombie reads the state field of /proc/PID/stat ("pid (comm) S ...").
func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
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

// Stop ends the workspace's process group: SIGTERM, then SIGKILL after
// five seconds.
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
	if l.alive(key, m.PID) {
		_ = syscall.Kill(-m.PID, syscall.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		for l.alive(key, m.PID) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		if l.alive(key, m.PID) {
			_ = syscall.Kill(-m.PID, syscall.SIGKILL)
		}
	}
	delete(l.procs, key)
	_ = os.Remove(l.socket(key))
	m.PID = 0
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
		out = append(out, Observed{Key: m.Key, Owner: m.Owner, Tenant: m.Tenant, TokenHash: m.TokenHash, Running: l.alive(m.Key, m.PID)})
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
	return untarInto(ctx, root, path, archive)
}

// Close leaves the workspaces running: they are adopted after a restart.
func (l *Local) Close() error { return nil }

// ProjectPath is where the workspace's project folder is, as its
// code-server sees it.
func (l *Local) ProjectPath(key string) string { return l.project(key) }

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
