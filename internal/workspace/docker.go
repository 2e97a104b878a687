package workspace

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// Docker runtime modes: how the gateway reaches a workspace's code-server
// (always through the workspace's guard, images/guard) and how much
// network a workspace has.
const (
	// DockerModePublish publishes the guard's port on a random port of
	// 127.0.0.1: the gateway runs on the host. Each workspace has a bridge
	// network of its own, but routed off the host: the engines forward
	// published ports only into routed networks (Docker's and Podman's
	// internal networks get no port forwarding). So in this mode a
	// workspace reaches what the host reaches (the internet, the cloud
	// metadata address, services the host offers on its bridge addresses,
	// and other workspaces' container addresses unless the engine's
	// isolation between bridges holds: netavark 1.4, Debian 12's, loses
	// it, see TestDockerIsolation), though not the host's loopback. What
	// it cannot reach is another workspace's code-server: that has no
	// address, and its guard wants its own container's secret. Socket
	// mode closes the rest; a host firewall rule can too.
	DockerModePublish = "publish"
	// DockerModeNetwork reaches the guard by the container's name on the
	// workspace's network: the gateway runs in a container itself
	// (compose), and the runtime connects that container to every
	// workspace's network. The networks are internal (no route off the
	// host) unless Egress is set.
	DockerModeNetwork = "network"
	// DockerModeSocket gives a workspace no network at all, only its
	// loopback: the guard listens on a unix socket in a volume of the
	// workspace's own, which the gateway (root on the engine's host)
	// reaches under the volume's mount point, and the workspace reaches the
	// gateway's API through a socket in a shared volume, carried to the
	// loopback port of PLAYBOOK_GATEWAY_URL by the guard. The gateway runs
	// on the engine's host, as root (a rootless engine's volumes belong to
	// mapped uids its user cannot enter).
	DockerModeSocket = "socket"
)

// Labels the Docker runtime puts on what it creates.
const (
	LabelWorkspace = "io.playbookstudio.workspace" // "1" on containers, volumes, networks
	LabelKey       = "io.playbookstudio.key"
	LabelOwner     = "io.playbookstudio.owner"
	LabelTenant    = "io.playbookstudio.tenant"
	LabelTokenHash = "io.playbookstudio.token-hash"
	// LabelSpec is a hash of everything the container was created from
	// (environment, limits, command): a stopped container whose hash no
	// longer matches is recreated on Start (its volume, the files, stays).
	LabelSpec = "io.playbookstudio.spec"
	// LabelGuard, on the workspace image, is the path of its guard
	// (images/guard): the runtime makes it the container's first process.
	// An image without it is refused.
	LabelGuard = "io.playbookstudio.guard"
)

// Inside every workspace container.
const (
	// guardPort is where the guard listens in publish and network modes;
	// code-server itself has no TCP port (it listens on a unix socket in
	// the container, the guard's upstream, set by the image).
	guardPort = "8081"
	// guardDir holds the guard's socket in socket mode: the workspace's
	// run volume, a tmpfs.
	guardDir = "/run/pbs-guard"
	// apiDir holds the gateway's API socket in socket mode (the shared
	// API volume, read-only).
	apiDir = "/run/playbook"
	// homeDir is the workspace user's home: a tmpfs, the project volume
	// below it.
	homeDir = "/home/coder"

	guardSockName = "guard.sock"
	apiSockName   = "gateway.sock"

	envGuardSecret  = "PBS_GUARD_SECRET"
	envGuardListen  = "PBS_GUARD_LISTEN"
	envGuardForward = "PBS_GUARD_FORWARD"
	envGatewayURL   = "PLAYBOOK_GATEWAY_URL"
)

// DockerConfig configures the Docker runtime. Zero durations and sizes
// take their defaults.
type DockerConfig struct {
	// Host is the Docker API address in DOCKER_HOST form
	// (unix:///run/podman/podman.sock); empty means the DOCKER_HOST
	// environment variable, or Docker's default socket.
	Host string
	// Image is the workspace image (localhost/playbook-workspace:latest).
	// It must carry the LabelGuard label; its CMD runs code-server (see
	// images/Containerfile), as the guard's child, unless Command is set.
	Image string
	// Command, when set, replaces the image's CMD (the guard stays).
	Command []string
	// User runs the container's processes, as numeric "uid:gid"; root is
	// refused. Default "1000:1000" (the image's coder user). Without a user
	// namespace this is the host's uid too: a host account with it can
	// reach the workspaces' processes and files (NewDocker warns).
	User string
	// Memory (bytes), NanoCPUs (1e9 = one CPU) and PidsLimit bound each
	// workspace; all are required.
	Memory    int64
	NanoCPUs  int64
	PidsLimit int64
	// TmpfsSize bounds each of the workspace's writable tmpfs mounts (its
	// home and /tmp; /var/tmp and /run get less): the root file system is
	// read-only. tmpfs pages count against Memory. Default 256 MiB.
	TmpfsSize int64
	// VolumeSize, when set, is the size limit (bytes) of each new project
	// volume. Only Podman's local volume driver has one, and only where
	// its storage is on XFS mounted with project quotas (prjquota); on any
	// other file system (ext4 here) Podman refuses the volume, and Start
	// says so. Docker's local driver has no size option. Default 0: no
	// limit on the project folder (everything else is bounded: the root
	// file system is read-only, the tmpfs mounts have sizes).
	VolumeSize int64
	// Mode is DockerModePublish (default), DockerModeNetwork or
	// DockerModeSocket.
	Mode string
	// GatewayContainer (network mode) is the gateway's own container, by
	// name or id; it is connected to each workspace's network. Empty
	// means this process's hostname, which Docker and Podman set to the
	// container's short id.
	GatewayContainer string
	// GatewayAlias (network mode) is the name workspaces reach the
	// gateway by on their network (WORKSPACE_GATEWAY_URL then is
	// http://ALIAS:PORT); every gateway replica joins under it. Default
	// "pbs-gateway".
	GatewayAlias string
	// Egress (network mode only) gives the workspaces' networks a route
	// off the host. Off by default: each network is internal, and a
	// workspace reaches its gateway and nothing else (not the internet,
	// not the cloud metadata address, not the other workspaces).
	Egress bool
	// InternalNetworks is what network mode does unless Egress is set;
	// it is kept for configurations that ask for it (it conflicts with
	// Egress, and publish and socket modes refuse it).
	InternalNetworks bool
	// APIAddr (socket mode) is where the runtime carries the workspaces'
	// connections to the gateway's API: a loopback host:port, normally
	// the gateway's own listener. Empty: the host and port of the
	// workspace's PLAYBOOK_GATEWAY_URL, which must then be a loopback URL
	// (inside the workspace the guard listens on that port).
	APIAddr string
	// NamePrefix names each workspace's container, volumes and network:
	// prefix + key (and prefix + "api", the shared API volume of socket
	// mode). Default "pbs-ws-".
	NamePrefix string
	// StartWatch is how long Start watches a freshly started container:
	// it returns as soon as code-server answers /healthz, fails if the
	// container exits meanwhile, and returns nil when the time passes
	// with the container still running (the Manager keeps polling
	// Health). Default 5s.
	StartWatch time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	// Default 5s.
	StopTimeout time.Duration
	// APITimeout bounds each Docker API call. Default 30s.
	APITimeout time.Duration
}

// How the gateway reaches code-server, and only the gateway does.
//
// code-server runs with --auth none (the gateway authenticates users), so
// whoever connects to it owns the workspace. Two ways were weighed: a
// per-workspace secret the gateway presents, or a socket only the gateway
// can open. A socket alone fits a gateway on the engine's host (socket
// mode uses one, in a volume under the engine's root-only folder), but not
// a gateway in a container (network mode), and a host account that shares
// the workspaces' uid can still open it through /proc/PID/root. A secret
// in an HTTP header would need every proxied request and WebSocket of
// ideproxy to carry it, and a proxy in the container to check it. So the
// secret is checked once per connection instead, by the guard, a small
// process in front of code-server (images/guard), in a handshake the
// runtime's DialFunc completes before it returns the connection: the
// gateway's Dialer interface stays (a net.Conn to code-server), every
// mode works the same (a TCP port, a name on a network, a unix socket),
// and neither side ever sends the secret, only proofs bound to fresh
// nonces. The guard proves the secret first, so the gateway never sends a
// request to a container it did not inspect: the secret is made anew for
// each container, which is also what keeps a replica's cached target
// (below) from reaching a replaced container's successor on a recycled
// port, another user's. The secret lives in the container's configuration
// (PBS_GUARD_SECRET): any replica with the engine's API reads it back; the
// guard removes it from its child's environment and makes itself
// undumpable, so the workspace's processes (same uid) cannot read it.
//
// Docker runs each workspace as a hardened container: a non-root user, no
// capabilities, no-new-privileges, memory, CPU and process limits, a
// read-only root file system with tmpfs mounts where the workspace writes
// (its home, /tmp, /run), its own named volume (the project folder, kept
// across Stop and Start), and its own network (or none). Its first
// process is the guard (images/guard), the only way into code-server,
// which answers nobody who cannot prove the container's secret.
// Everything the runtime needs to know about a workspace lives in the
// container's labels and configuration, so any gateway replica, or a
// restarted one, finds it again.
type Docker struct {
	cfg      DockerConfig
	cli      *client.Client
	log      *slog.Logger
	uid, gid int

	keyMu sync.Map // key → *sync.Mutex: one Start/Stop/Remove per key at a time

	mu        sync.Mutex
	targets   map[string]target // key → where its guard listens, as last inspected
	connected map[string]bool   // network mode: gateway joined the key's network
	engine    string            // "podman" or "docker", once asked

	api apiRelay // socket mode: the workspaces' way to the gateway's API
}

// target is where one container's guard listens, and the container's
// secret. It is cached per key, but it is a container's, not a key's: the
// secret is made anew for every container, so a target left over from a
// replaced container can never complete a handshake with another one.
type target struct {
	id      string // the container's id
	network string // "tcp" or "unix"
	addr    string
	secret  []byte
}

func (t target) same(o target) bool {
	return t.id == o.id && t.network == o.network && t.addr == o.addr && bytes.Equal(t.secret, o.secret)
}

var _ Runtime = (*Docker)(nil)

// NewDocker checks cfg and makes a client; it does not contact the API
// (see Ping), so a gateway can start while the daemon is still coming up.
func NewDocker(cfg DockerConfig, log *slog.Logger) (*Docker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("workspace: docker runtime: "+format, a...)
	}
	if strings.TrimSpace(cfg.Image) == "" {
		return nil, bad("an image is required (build it with `make image`: localhost/playbook-workspace:latest)")
	}
	if cfg.Memory <= 0 || cfg.NanoCPUs <= 0 || cfg.PidsLimit <= 0 {
		return nil, bad("memory, CPU and pids limits must all be set above zero (memory=%d nanoCPUs=%d pids=%d)", cfg.Memory, cfg.NanoCPUs, cfg.PidsLimit)
	}
	if cfg.Memory < 64<<20 {
		return nil, bad("memory limit %d bytes is below 64 MiB; code-server cannot run in that", cfg.Memory)
	}
	if cfg.User == "" {
		cfg.User = "1000:1000"
	}
	uid, gid, err := parseUser(cfg.User)
	if err != nil {
		return nil, bad("%v", err)
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = DockerModePublish
	case DockerModePublish, DockerModeNetwork, DockerModeSocket:
	default:
		return nil, bad("mode %q is none of %q, %q and %q", cfg.Mode, DockerModePublish, DockerModeNetwork, DockerModeSocket)
	}
	if cfg.InternalNetworks && cfg.Mode != DockerModeNetwork {
		return nil, bad("internal networks need network mode: ports are not published from internal networks (socket mode has no network at all)")
	}
	if cfg.Egress && cfg.Mode != DockerModeNetwork {
		return nil, bad("egress is a network mode setting (publish mode always has it; socket mode never)")
	}
	if cfg.Egress && cfg.InternalNetworks {
		return nil, bad("internal networks and egress exclude each other")
	}
	if cfg.TmpfsSize < 0 || cfg.VolumeSize < 0 {
		return nil, bad("sizes cannot be negative")
	}
	if cfg.TmpfsSize == 0 {
		cfg.TmpfsSize = 256 << 20
	}
	if cfg.TmpfsSize < 16<<20 {
		return nil, bad("tmpfs size %d bytes is below 16 MiB; code-server's home does not fit", cfg.TmpfsSize)
	}
	if cfg.APIAddr != "" {
		if cfg.Mode != DockerModeSocket {
			return nil, bad("the API address is a socket mode setting")
		}
		if _, err := loopbackAddr(cfg.APIAddr); err != nil {
			return nil, bad("API address: %v", err)
		}
	}
	if cfg.Mode == DockerModeNetwork && cfg.GatewayContainer == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, bad("network mode needs the gateway's container name (and the hostname is unknown: %v)", err)
		}
		cfg.GatewayContainer = h
	}
	if cfg.Mode == DockerModeNetwork && cfg.GatewayAlias == "" {
		cfg.GatewayAlias = "pbs-gateway"
	}
	if cfg.GatewayAlias != "" && !validNamePrefix(cfg.GatewayAlias) {
		return nil, bad("gateway alias %q must be lower-case letters, digits and dashes, starting with a letter", cfg.GatewayAlias)
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "pbs-ws-"
	}
	if !validNamePrefix(cfg.NamePrefix) {
		return nil, bad("name prefix %q must be lower-case letters, digits and dashes, starting with a letter", cfg.NamePrefix)
	}
	if cfg.StartWatch < 0 || cfg.StopTimeout < 0 || cfg.APITimeout < 0 {
		return nil, bad("timeouts cannot be negative")
	}
	if cfg.StartWatch == 0 {
		cfg.StartWatch = 5 * time.Second
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	if cfg.APITimeout == 0 {
		cfg.APITimeout = 30 * time.Second
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, bad("Docker API address: %v", err)
	}
	if cfg.Mode != DockerModeNetwork {
		warnSharedUID(log, uid)
	}
	return &Docker{
		cfg: cfg, cli: cli, log: log, uid: uid, gid: gid,
		targets: map[string]target{}, connected: map[string]bool{},
	}, nil
}

// warnSharedUID says when the workspaces' uid is an account of this host
// (the gateway runs on the engine's host in publish and socket modes).
// Without a user namespace a container's uid is the host's: that account
// may signal and trace the workspaces' processes and read their files
// through /proc/PID/root, whatever the guard does. Run workspaces under a
// uid no host account has (User), or remap them (Docker's userns-remap,
// Podman's --userns=auto with /etc/subuid).
func warnSharedUID(log *slog.Logger, uid int) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return
	}
	log.Warn("the workspaces' uid is an account of this host, which can reach their processes and files; choose another uid or a user namespace",
		"uid", uid, "account", u.Username)
}

func parseUser(u string) (uid, gid int, err error) {
	a, b, ok := strings.Cut(u, ":")
	if !ok {
		return 0, 0, fmt.Errorf("user %q must be numeric uid:gid", u)
	}
	uid, err1 := strconv.Atoi(a)
	gid, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("user %q must be numeric uid:gid", u)
	}
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("user %q is root; workspaces run as a non-root user", u)
	}
	return uid, gid, nil
}

func validNamePrefix(p string) bool {
	if p == "" || len(p) > 40 || p[0] < 'a' || p[0] > 'z' {
		return false
	}
	for _, c := range p {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func (d *Docker) Name() string { return "docker" }

// Config returns the configuration in effect (with defaults filled in).
func (d *Docker) Config() DockerConfig { return d.cfg }

// ContainerName is the name of key's container, volume and network.
func (d *Docker) ContainerName(key string) string { return d.cfg.NamePrefix + key }

// Ping checks that the Docker API answers.
func (d *Docker) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	defer cancel()
	if _, err := d.cli.Ping(ctx); err != nil {
		return d.fail("reach the Docker API", err)
	}
	return nil
}

// fail wraps a Docker API error with the step that failed and, when the
// API itself is unreachable, where it was looked for.
func (d *Docker) fail(step string, err error) error {
	switch {
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("docker: %s: cannot reach the Docker API at %s (is dockerd or `podman system service` running?): %w", step, d.cli.DaemonHost(), err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("docker: %s: no answer from the Docker API at %s in time: %w", step, d.cli.DaemonHost(), err)
	}
	return fmt.Errorf("docker: %s: %w", step, err)
}

func (d *Docker) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.cfg.APITimeout)
}

func (d *Docker) lockKey(key string) func() {
	m, _ := d.keyMu.LoadOrStore(key, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func (d *Docker) forget(key string) {
	d.mu.Lock()
	delete(d.targets, key)
	delete(d.connected, key)
	d.mu.Unlock()
}

// guardProtocol names the guard's handshake; containers made for another
// one (or none) are recreated.
const guardProtocol = "pbs-guard/1"

// specHash is what LabelSpec holds: the inputs of a container's creation
// apart from the image (compared by id separately) and its secret.
func (d *Docker) specHash(spec Spec) string {
	raw, _ := json.Marshal(struct {
		Env                  map[string]string
		Owner, Tenant, Token string
		User                 string
		Memory, CPUs, Pids   int64
		Command              []string
		Mode                 string
		Internal             bool
		Guard                string
		Tmpfs                int64
		Egress               bool
	}{spec.Env, spec.Owner, spec.Tenant, spec.TokenHash, d.cfg.User, d.cfg.Memory, d.cfg.NanoCPUs, d.cfg.PidsLimit, d.cfg.Command, d.cfg.Mode, d.cfg.InternalNetworks,
		guardProtocol, d.cfg.TmpfsSize, d.cfg.Egress})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:12])
}

// Start creates the workspace's network, volumes and container when
// missing and starts the container; a running workspace is left alone
// (unless it predates the guard: nobody could reach it). It is
// idempotent, and two gateways starting one key at once end with one
// container (a lost create race counts as "exists").
func (d *Docker) Start(ctx context.Context, spec Spec) error {
	if !validKey(spec.Key) {
		return fmt.Errorf("workspace: invalid key %q", spec.Key)
	}
	for k := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.HasPrefix(k, "PBS_GUARD_") {
			return fmt.Errorf("workspace: invalid environment variable name %q", k)
		}
	}
	if d.cfg.Mode == DockerModeSocket {
		if err := d.learnAPITarget(spec.Env[envGatewayURL]); err != nil {
			return err
		}
	}
	unlock := d.lockKey(spec.Key)
	defer unlock()
	name := d.ContainerName(spec.Key)

	info, exists, err := d.inspect(ctx, name)
	if err != nil {
		return err
	}
	if exists && info.State != nil && info.State.Running {
		if _, ok := guardSecret(info); ok {
			return d.ready(ctx, spec.Key)
		}
		d.log.Warn("running workspace container predates the guard and cannot be reached; recreating it (files stay in its volume)", "key", spec.Key)
	}
	if exists && (d.stale(ctx, info, spec) || info.State != nil && info.State.Running) {
		d.log.Info("workspace container is outdated; recreating it (files stay in its volume)", "key", spec.Key)
		if err := d.removeContainer(ctx, name); err != nil {
			return err
		}
		exists = false
	}
	if !exists {
		created, err := d.create(ctx, spec)
		if err != nil {
			return err
		}
		if !created {
			// Another gateway created it meanwhile: start that one.
			if info, _, err = d.inspect(ctx, name); err != nil {
				return err
			}
			if info.State != nil && info.State.Running {
				return d.ready(ctx, spec.Key)
			}
		}
	}
	d.forget(spec.Key) // a new start may get a new port; the target is looked up again
	// A stopped container's network may have been pruned meanwhile.
	if err := d.ensureNetwork(ctx, spec.Key); err != nil {
		return err
	}
	if err := d.ready(ctx, spec.Key); err != nil {
		return err
	}
	cctx, cancel := d.call(ctx)
	err = d.cli.ContainerStart(cctx, name, container.StartOptions{})
	cancel()
	if err != nil {
		if info, ok, ierr := d.inspect(ctx, name); ierr == nil && ok && info.State != nil && info.State.Running {
			return nil // started by someone else meanwhile
		}
		// A container that cannot start (bad user, missing command) is
		// removed, so that the next Start creates it afresh; the volume
		// with the files stays.
		d.removeHalfStarted(name)
		return d.fail("start workspace container "+name, err)
	}
	d.log.Info("workspace container started", "key", spec.Key, "container", name, "mode", d.cfg.Mode)
	return d.watchStart(ctx, spec.Key)
}

// ready makes what the gateway needs around a workspace: in network mode
// its own membership of the workspace's network, in socket mode the API
// socket the workspace reaches it by.
func (d *Docker) ready(ctx context.Context, key string) error {
	switch d.cfg.Mode {
	case DockerModeNetwork:
		return d.ensureGateway(ctx, key)
	case DockerModeSocket:
		return d.ensureAPI(ctx)
	}
	return nil
}

// stale reports whether a stopped container must be recreated: it was
// made from other inputs, or from an older build of the image.
func (d *Docker) stale(ctx context.Context, info container.InspectResponse, spec Spec) bool {
	if info.Config == nil || info.Config.Labels[LabelSpec] != d.specHash(spec) {
		return true
	}
	if _, ok := guardSecret(info); !ok {
		return true
	}
	cctx, cancel := d.call(ctx)
	defer cancel()
	img, err := d.cli.ImageInspect(cctx, d.cfg.Image)
	if err != nil {
		return false // no image to recreate from: start what exists
	}
	return trimDigest(img.ID) != trimDigest(info.Image)
}

func trimDigest(id string) string { return strings.TrimPrefix(id, "sha256:") }

// guardSecret is the container's guard secret, from its configuration.
func guardSecret(info container.InspectResponse) ([]byte, bool) {
	if info.Config == nil {
		return nil, false
	}
	for _, kv := range info.Config.Env {
		if v, ok := strings.CutPrefix(kv, envGuardSecret+"="); ok {
			b, err := hex.DecodeString(v)
			return b, err == nil && len(b) >= 32
		}
	}
	return nil, false
}

// envOf is the value of name in the container's configured environment.
func envOf(info container.InspectResponse, name string) string {
	if info.Config == nil {
		return ""
	}
	for _, kv := range info.Config.Env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// inspect reads a container; exists is false when there is none.
func (d *Docker) inspect(ctx context.Context, name string) (info container.InspectResponse, exists bool, err error) {
	cctx, cancel := d.call(ctx)
	defer cancel()
	info, err = d.cli.ContainerInspect(cctx, name)
	if cerrdefs.IsNotFound(err) {
		return info, false, nil
	}
	if err != nil {
		return info, false, d.fail("inspect workspace container "+name, err)
	}
	return info, true, nil
}

func (d *Docker) labels(spec Spec) map[string]string {
	return map[string]string{
		LabelWorkspace: "1",
		LabelKey:       spec.Key,
		LabelOwner:     spec.Owner,
		LabelTenant:    spec.Tenant,
		LabelTokenHash: spec.TokenHash,
		LabelSpec:      d.specHash(spec),
	}
}

// runVolume is the name of key's run volume (socket mode): a tmpfs the
// guard makes its socket in.
func (d *Docker) runVolume(key string) string { return d.ContainerName(key) + "-run" }

// apiVolume is the name of the volume holding the gateway's API socket
// (socket mode), shared read-only by every workspace.
func (d *Docker) apiVolume() string { return d.cfg.NamePrefix + "api" }

// podman tells whether the engine is Podman, whose tmpfs mounts differ
// (below); asked once.
func (d *Docker) podman(ctx context.Context) (bool, error) {
	d.mu.Lock()
	engine := d.engine
	d.mu.Unlock()
	if engine == "" {
		cctx, cancel := d.call(ctx)
		v, err := d.cli.ServerVersion(cctx)
		cancel()
		if err != nil {
			return false, d.fail("ask the engine's version", err)
		}
		engine = "docker"
		for _, c := range v.Components {
			if strings.Contains(strings.ToLower(c.Name), "podman") {
				engine = "podman"
			}
		}
		d.mu.Lock()
		d.engine = engine
		d.mu.Unlock()
	}
	return engine == "podman", nil
}

// tmpfsMounts are the writable places of the read-only root file system:
// the home (code-server's user data, caches, the user's dotfiles; the
// project volume is mounted below it), /tmp, /var/tmp and /run (where
// code-server's own socket is, the guard's upstream). Docker mounts a
// tmpfs empty, owned by root with the given mode (1777: the workspace's
// user may write); Podman copies the image's folder up into it and takes
// its mode from there, so it needs "U" to hand the tmpfs to the user.
// What the image's home holds is seeded by the image's start script
// either way. Files in the home last until the container stops.
func (d *Docker) tmpfsMounts(podman bool) map[string]string {
	own := "mode=1777"
	if podman {
		own = "mode=0700,U"
	}
	opts := func(size int64, own string) string {
		return fmt.Sprintf("rw,nosuid,nodev,size=%d,%s", size, own)
	}
	return map[string]string{
		homeDir:    opts(d.cfg.TmpfsSize, own),
		"/tmp":     opts(d.cfg.TmpfsSize, "mode=1777"),
		"/var/tmp": opts(d.cfg.TmpfsSize/4, "mode=1777"),
		"/run":     opts(16<<20, own),
	}
}

// create makes the network, the volumes and the container. created is
// false when the container appeared meanwhile (another gateway's Start).
func (d *Docker) create(ctx context.Context, spec Spec) (created bool, err error) {
	name := d.ContainerName(spec.Key)
	cctx, cancel := d.call(ctx)
	img, err := d.cli.ImageInspect(cctx, d.cfg.Image)
	cancel()
	if cerrdefs.IsNotFound(err) {
		return false, fmt.Errorf("docker: workspace image %q not found: build it with `make image` (images/build-offline.sh)", d.cfg.Image)
	}
	if err != nil {
		return false, d.fail("inspect workspace image "+d.cfg.Image, err)
	}
	var guardPath string
	var cmd []string
	if img.Config != nil {
		guardPath = img.Config.Labels[LabelGuard]
		cmd = img.Config.Cmd
	}
	if !path.IsAbs(guardPath) {
		return false, fmt.Errorf("docker: workspace image %q has no guard (label %s): it predates the guard or was not built by images/; rebuild it with `make image`", d.cfg.Image, LabelGuard)
	}
	if len(d.cfg.Command) > 0 {
		cmd = d.cfg.Command
	}
	if len(cmd) == 0 {
		return false, fmt.Errorf("docker: workspace image %q has no CMD to run under its guard, and no command is configured", d.cfg.Image)
	}
	podman, err := d.podman(ctx)
	if err != nil {
		return false, err
	}
	if err := d.ensureNetwork(ctx, spec.Key); err != nil {
		return false, err
	}
	if err := d.ensureVolume(ctx, spec); err != nil {
		return false, err
	}

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return false, fmt.Errorf("docker: guard secret: %w", err)
	}
	env := make([]string, 0, len(spec.Env)+3)
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	env = append(env, envGuardSecret+"="+hex.EncodeToString(secret))
	mounts := []mount.Mount{{
		Type:   mount.TypeVolume,
		Source: name,
		Target: ProjectDir,
	}}
	cfg := &container.Config{
		Image:      d.cfg.Image,
		User:       d.cfg.User,
		Labels:     d.labels(spec),
		WorkingDir: ProjectDir,
		Entrypoint: []string{guardPath, "--"},
		Cmd:        cmd,
	}
	port := nat.Port(guardPort + "/tcp")
	switch d.cfg.Mode {
	case DockerModePublish, DockerModeNetwork:
		env = append(env, envGuardListen+"=tcp::"+guardPort)
		cfg.ExposedPorts = nat.PortSet{port: {}}
	case DockerModeSocket:
		env = append(env, envGuardListen+"=unix:"+guardDir+"/"+guardSockName)
		if err := d.ensureRunVolume(ctx, spec); err != nil {
			return false, err
		}
		apiVol, err := d.ensureAPIVolume(ctx)
		if err != nil {
			return false, err
		}
		mounts = append(mounts,
			mount.Mount{Type: mount.TypeVolume, Source: d.runVolume(spec.Key), Target: guardDir},
			mount.Mount{Type: mount.TypeVolume, Source: apiVol, Target: apiDir, ReadOnly: true})
		if port, ok := loopbackURLPort(spec.Env[envGatewayURL]); ok {
			// Inside, the gateway's URL is the workspace's own loopback:
			// the guard carries that port to the API socket.
			env = append(env, envGuardForward+"=tcp:127.0.0.1:"+port+"=unix:"+apiDir+"/"+apiSockName)
		}
	}
	cfg.Env = env
	stopSecs := int(d.cfg.StopTimeout / time.Second)
	cfg.StopTimeout = &stopSecs
	pids := d.cfg.PidsLimit
	noInit := false // the guard is the container's init
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(name),
		Mounts:         mounts,
		ReadonlyRootfs: true,
		Tmpfs:          d.tmpfsMounts(podman),
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Privileged:     false,
		Init:           &noInit,
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources: container.Resources{
			Memory:     d.cfg.Memory,
			MemorySwap: d.cfg.Memory, // no swap on top
			NanoCPUs:   d.cfg.NanoCPUs,
			PidsLimit:  &pids,
		},
	}
	var netCfg *network.NetworkingConfig
	switch d.cfg.Mode {
	case DockerModePublish:
		host.PortBindings = nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: ""}}}
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: {}}}
	case DockerModeNetwork:
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: {}}}
	case DockerModeSocket:
		host.NetworkMode = "none"
	}

	cctx, cancel = d.call(ctx)
	_, err = d.cli.ContainerCreate(cctx, cfg, host, netCfg, nil, name)
	cancel()
	if err != nil {
		if d.appeared(ctx, name, err) {
			return false, nil // another Start won the race
		}
		return false, d.fail("create workspace container "+name, err)
	}
	d.log.Info("workspace container created", "key", spec.Key, "container", name, "image", d.cfg.Image)
	return true, nil
}

// appeared reports whether a failed create lost a race: the container
// exists after all. Podman answers a name conflict with 500 ("already in
// use"), not 409, and reserves the name before the container can be
// inspected, so a conflict is given a moment to show up.
func (d *Docker) appeared(ctx context.Context, name string, createErr error) bool {
	conflict := cerrdefs.IsConflict(createErr) || strings.Contains(createErr.Error(), "already in use")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, err := d.inspect(ctx, name); err == nil && ok {
			return true
		}
		if !conflict || time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ensureNetwork makes key's bridge network (publish and network modes;
// socket mode has none). Each is a bridge of its own, isolated from the
// others' (Docker's isolation chains; Podman's Docker API sets netavark's
// isolate option), and in network mode internal: no default route, no
// NAT, nothing off the host.
func (d *Docker) ensureNetwork(ctx context.Context, key string) error {
	if d.cfg.Mode == DockerModeSocket {
		return nil
	}
	name := d.ContainerName(key)
	cctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.cli.NetworkInspect(cctx, name, network.InspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return d.fail("inspect workspace network "+name, err)
	}
	_, err := d.cli.NetworkCreate(cctx, name, network.CreateOptions{
		Driver:   "bridge",
		Internal: d.cfg.Mode == DockerModeNetwork && !d.cfg.Egress,
		Labels:   map[string]string{LabelWorkspace: "1", LabelKey: key},
	})
	if err != nil {
		// Podman answers "already exists" with 500: look again.
		if _, ierr := d.cli.NetworkInspect(cctx, name, network.InspectOptions{}); ierr == nil {
			return nil
		}
		return d.fail("create workspace network "+name, err)
	}
	return nil
}

func (d *Docker) ensureVolume(ctx context.Context, spec Spec) error {
	var opts map[string]string
	if d.cfg.VolumeSize > 0 {
		// Podman's local driver: an XFS project quota on the volume's
		// folder.
		opts = map[string]string{"o": "size=" + strconv.FormatInt(d.cfg.VolumeSize, 10)}
	}
	return d.volume(ctx, d.ContainerName(spec.Key), spec, opts, "workspace volume")
}

// ensureRunVolume makes key's run volume (socket mode): a tmpfs owned by
// the workspace's user, mode 0700, which the engine mounts on the host
// under its volumes folder (only root enters it) while the container
// runs. The guard makes its socket there.
func (d *Docker) ensureRunVolume(ctx context.Context, spec Spec) error {
	return d.volume(ctx, d.runVolume(spec.Key), spec, map[string]string{
		"type": "tmpfs", "device": "tmpfs",
		"o": fmt.Sprintf("uid=%d,gid=%d,mode=0700", d.uid, d.gid),
	}, "workspace run volume")
}

// volume makes the named volume unless it exists.
func (d *Docker) volume(ctx context.Context, name string, spec Spec, opts map[string]string, what string) error {
	cctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.cli.VolumeInspect(cctx, name); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return d.fail("inspect "+what+" "+name, err)
	}
	_, err := d.cli.VolumeCreate(cctx, volume.CreateOptions{
		Name:       name,
		DriverOpts: opts,
		Labels: map[string]string{
			LabelWorkspace: "1", LabelKey: spec.Key, LabelOwner: spec.Owner, LabelTenant: spec.Tenant,
		},
	})
	if err != nil {
		if _, ierr := d.cli.VolumeInspect(cctx, name); ierr == nil {
			return nil
		}
		if strings.Contains(err.Error(), "Quota") || strings.Contains(err.Error(), "quota") {
			return fmt.Errorf("docker: create %s %s with a size limit of %d bytes: %w (the engine's volume storage needs XFS with project quotas; set no volume size elsewhere)", what, name, d.cfg.VolumeSize, err)
		}
		return d.fail("create "+what+" "+name, err)
	}
	return nil
}

// ensureGateway (network mode) connects the gateway's container to key's
// network, once per key and process.
func (d *Docker) ensureGateway(ctx context.Context, key string) error {
	if d.cfg.Mode != DockerModeNetwork {
		return nil
	}
	d.mu.Lock()
	done := d.connected[key]
	d.mu.Unlock()
	if done {
		return nil
	}
	netName := d.ContainerName(key)
	cctx, cancel := d.call(ctx)
	defer cancel()
	gw, err := d.cli.ContainerInspect(cctx, d.cfg.GatewayContainer)
	if err != nil {
		return d.fail("inspect the gateway's container "+d.cfg.GatewayContainer, err)
	}
	if gw.NetworkSettings == nil || gw.NetworkSettings.Networks[netName] == nil {
		ep := &network.EndpointSettings{Aliases: []string{d.cfg.GatewayAlias}}
		if err := d.cli.NetworkConnect(cctx, netName, d.cfg.GatewayContainer, ep); err != nil {
			again, ierr := d.cli.ContainerInspect(cctx, d.cfg.GatewayContainer)
			if ierr != nil || again.NetworkSettings == nil || again.NetworkSettings.Networks[netName] == nil {
				return d.fail("connect the gateway's container to workspace network "+netName, err)
			}
		}
	}
	d.mu.Lock()
	d.connected[key] = true
	d.mu.Unlock()
	return nil
}

// watchStart waits for code-server's first answer, or for the container
// to exit (an error naming its exit code and last log lines; the
// container is removed, its volume kept), for at most StartWatch.
func (d *Docker) watchStart(ctx context.Context, key string) error {
	name := d.ContainerName(key)
	deadline := time.Now().Add(d.cfg.StartWatch)
	wait := 20 * time.Millisecond
	for {
		info, ok, err := d.inspect(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("docker: workspace container %s disappeared while starting", name)
		}
		if info.State != nil && !info.State.Running && info.State.Status != "created" {
			code := info.State.ExitCode
			logs := d.logTail(name, 20)
			d.removeHalfStarted(name)
			return fmt.Errorf("docker: workspace container %s exited with code %d while starting (removed; its files are kept); last log lines:\n%s", name, code, logs)
		}
		if info.State != nil && info.State.Running {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			h, err := d.Health(pctx, key)
			cancel()
			if err == nil && h.Status != "" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			d.log.Warn("workspace container runs but code-server has not answered yet", "key", key, "after", d.cfg.StartWatch)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker: wait for workspace container %s to start: %w", name, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
}

// logTail returns the container's last lines of output, for error
// messages; failures to read them are reported in their place.
func (d *Docker) logTail(name string, lines int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := d.cli.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	defer rc.Close()
	raw, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, bytes.NewReader(raw)); err != nil {
		out.Reset()
		out.Write(raw) // not multiplexed (a TTY container)
	}
	s := strings.TrimSpace(out.String())
	if s == "" {
		return "(no output)"
	}
	return s
}

// removeHalfStarted removes a container that failed to start, keeping its
// volume. It runs on a fresh context: the caller's may be what failed.
func (d *Docker) removeHalfStarted(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.APITimeout)
	defer cancel()
	if err := d.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("could not remove a workspace container that failed to start", "container", name, "err", err)
	}
}

func (d *Docker) removeContainer(ctx context.Context, name string) error {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout+d.cfg.StopTimeout)
	defer cancel()
	err := d.cli.ContainerRemove(cctx, name, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return d.fail("remove workspace container "+name, err)
	}
	return nil
}

// Stop stops the container (SIGTERM, SIGKILL after StopTimeout), keeping
// it and its volume.
func (d *Docker) Stop(ctx context.Context, key string) error {
	if !validKey(key) {
		return fmt.Errorf("workspace: invalid key %q", key)
	}
	unlock := d.lockKey(key)
	defer unlock()
	d.forget(key)
	name := d.ContainerName(key)
	secs := int(d.cfg.StopTimeout / time.Second)
	cctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout+d.cfg.StopTimeout)
	defer cancel()
	err := d.cli.ContainerStop(cctx, name, container.StopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsNotModified(err) {
		return d.fail("stop workspace container "+name, err)
	}
	return nil
}

// Remove deletes the container, its volumes (the files) and its network.
func (d *Docker) Remove(ctx context.Context, key string) error {
	if !validKey(key) {
		return fmt.Errorf("workspace: invalid key %q", key)
	}
	unlock := d.lockKey(key)
	defer unlock()
	d.forget(key)
	name := d.ContainerName(key)
	if err := d.removeContainer(ctx, name); err != nil {
		return err
	}
	cctx, cancel := d.call(ctx)
	defer cancel()
	for _, v := range []string{name, d.runVolume(key)} {
		if err := d.cli.VolumeRemove(cctx, v, true); err != nil && !cerrdefs.IsNotFound(err) {
			return d.fail("remove workspace volume "+v, err)
		}
	}
	if d.cfg.Mode == DockerModeNetwork {
		if err := d.cli.NetworkDisconnect(cctx, name, d.cfg.GatewayContainer, true); err != nil && !cerrdefs.IsNotFound(err) {
			d.log.Debug("disconnect gateway from workspace network", "network", name, "err", err)
		}
	}
	if err := d.cli.NetworkRemove(cctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		return d.fail("remove workspace network "+name, err)
	}
	d.log.Info("workspace removed", "key", key, "container", name)
	return nil
}

// List finds the workspace containers by label, running or not.
func (d *Docker) List(ctx context.Context) ([]Observed, error) {
	cctx, cancel := d.call(ctx)
	defer cancel()
	cs, err := d.cli.ContainerList(cctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelWorkspace+"=1")),
	})
	if err != nil {
		return nil, d.fail("list workspace containers", err)
	}
	var out []Observed
	for _, c := range cs {
		key := c.Labels[LabelKey]
		if !validKey(key) || !hasName(c.Names, d.ContainerName(key)) {
			continue // another deployment's (other name prefix), or not ours
		}
		out = append(out, Observed{
			Key:       key,
			Owner:     c.Labels[LabelOwner],
			Tenant:    c.Labels[LabelTenant],
			TokenHash: c.Labels[LabelTokenHash],
			Running:   c.State == container.StateRunning,
		})
	}
	return out, nil
}

func hasName(names []string, want string) bool {
	for _, n := range names {
		if strings.TrimPrefix(n, "/") == want {
			return true
		}
	}
	return false
}

// Health probes code-server's /healthz. When the workspace cannot be
// reached because its container has exited, the error says so, with the
// exit code.
func (d *Docker) Health(ctx context.Context, key string) (Health, error) {
	dial, err := d.Dialer(ctx, key)
	if err != nil {
		return Health{}, err
	}
	h, err := ProbeHealth(ctx, dial)
	if err != nil {
		return Health{}, fmt.Errorf("docker: workspace %s health: %w", key, err)
	}
	return h, nil
}

// Dialer reaches code-server through the workspace's guard: in publish
// mode at 127.0.0.1 and the container's published port, in network mode
// by the container's name on its network, in socket mode at the guard's
// socket under the run volume's mount point. Every connection first
// completes the guard's handshake with the secret of the container that
// was inspected, so it reaches that container or fails; the target is
// looked up once, and again after a failed dial (a replaced container, a
// restart on another port), never reused for another container.
func (d *Docker) Dialer(ctx context.Context, key string) (DialFunc, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("workspace: invalid key %q", key)
	}
	// Network mode: the gateway on the workspace's network. Socket mode:
	// the API socket served (by this process, or another that still
	// answers; taken over when that one is gone).
	if err := d.ready(ctx, key); err != nil {
		if _, ok, ierr := d.inspect(ctx, d.ContainerName(key)); ierr == nil && !ok {
			return nil, ErrNotFound
		}
		return nil, err
	}
	if _, err := d.target(ctx, key, false); err != nil {
		return nil, err
	}
	return func(ctx context.Context) (net.Conn, error) { return d.dial(ctx, key) }, nil
}

// errGuardDown is the guard's word that code-server does not accept
// connections yet (the right container, not ready).
var errGuardDown = errors.New("code-server is not listening yet")

// errNotGuard means the far end did not prove the container's secret: not
// the container that was inspected (a replaced one, or anybody else on a
// recycled port), or no guard at all.
var errNotGuard = errors.New("the far end is not this workspace's guard")

func (d *Docker) dial(ctx context.Context, key string) (net.Conn, error) {
	t, err := d.target(ctx, key, false)
	if err != nil {
		return nil, err
	}
	conn, err := d.dialTarget(ctx, t)
	if err == nil || errors.Is(err, errGuardDown) || ctx.Err() != nil {
		return conn, err
	}
	// The container may have been replaced, or restarted on another port.
	fresh, ferr := d.target(ctx, key, true)
	if ferr != nil {
		return nil, ferr
	}
	if fresh.same(t) {
		return nil, err
	}
	return d.dialTarget(ctx, fresh)
}

func (d *Docker) dialTarget(ctx context.Context, t target) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, t.network, t.addr)
	if err != nil {
		return nil, err
	}
	if err := guardHandshake(ctx, conn, t.secret); err != nil {
		conn.Close()
		return nil, fmt.Errorf("docker: workspace guard at %s: %w", t.addr, err)
	}
	return conn, nil
}

// guardHandshake is the gateway's side of the guard's handshake (the
// protocol is described in images/guard): it proves the secret to the
// guard only after the guard proved it, and sends nothing else before.
func guardHandshake(ctx context.Context, conn net.Conn, secret []byte) error {
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	nc := make([]byte, 16)
	if _, err := rand.Read(nc); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, "PBSG1 "+hex.EncodeToString(nc)+"\n"); err != nil {
		return err
	}
	// One byte at a time: nothing past the line may be consumed here.
	line := make([]byte, 0, 128)
	b := make([]byte, 1)
	for {
		if _, err := conn.Read(b); err != nil {
			if errors.Is(err, io.EOF) {
				return errNotGuard
			}
			return err
		}
		if b[0] == '\n' {
			break
		}
		if len(line) == cap(line) {
			return errNotGuard
		}
		line = append(line, b[0])
	}
	f := strings.Fields(string(line))
	if len(f) != 3 {
		return errNotGuard
	}
	ns, err1 := hex.DecodeString(f[1])
	got, err2 := hex.DecodeString(f[2])
	if err1 != nil || err2 != nil || !hmac.Equal(got, guardMAC(secret, "guard", f[0], nc, ns)) {
		return errNotGuard
	}
	if f[0] != "ok" {
		return errGuardDown
	}
	if _, err := io.WriteString(conn, hex.EncodeToString(guardMAC(secret, "gateway", "", nc, ns))+"\n"); err != nil {
		return err
	}
	if !stop() { // ctx ended: the deadline may be set to the past any moment
		return context.Cause(ctx)
	}
	_ = conn.SetDeadline(time.Time{})
	return nil
}

func guardMAC(key []byte, role, status string, nc, ns []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(guardProtocol + "\x00" + role + "\x00" + status + "\x00"))
	h.Write(nc)
	h.Write(ns)
	return h.Sum(nil)
}

// target inspects key's container (or, unless refresh, takes what was
// cached): its id, its guard's secret, and where the guard listens. A
// container that is not running, or whose labels do not name key, is
// not a target.
func (d *Docker) target(ctx context.Context, key string, refresh bool) (target, error) {
	if !refresh {
		d.mu.Lock()
		t, ok := d.targets[key]
		d.mu.Unlock()
		if ok {
			return t, nil
		}
	}
	name := d.ContainerName(key)
	info, ok, err := d.inspect(ctx, name)
	if err != nil {
		return target{}, err
	}
	if !ok {
		d.forget(key)
		return target{}, ErrNotFound
	}
	if info.State == nil || !info.State.Running {
		d.forget(key)
		code := 0
		if info.State != nil {
			code = info.State.ExitCode
		}
		return target{}, fmt.Errorf("docker: workspace container %s is not running (exit code %d)", name, code)
	}
	if info.Config == nil || info.Config.Labels[LabelWorkspace] != "1" || info.Config.Labels[LabelKey] != key {
		return target{}, fmt.Errorf("docker: container %s is not workspace %s's (its labels say otherwise)", name, key)
	}
	secret, ok := guardSecret(info)
	if !ok {
		return target{}, fmt.Errorf("docker: workspace container %s predates the guard and cannot be reached; it is recreated on its next start", name)
	}
	t := target{id: info.ID, secret: secret}
	switch d.cfg.Mode {
	case DockerModePublish:
		if info.NetworkSettings != nil {
			for _, b := range info.NetworkSettings.Ports[nat.Port(guardPort+"/tcp")] {
				if b.HostPort != "" && (b.HostIP == "127.0.0.1" || b.HostIP == "") {
					t.network, t.addr = "tcp", net.JoinHostPort("127.0.0.1", b.HostPort)
					break
				}
			}
		}
		if t.addr == "" {
			return target{}, fmt.Errorf("docker: workspace container %s publishes no port for its guard (%s) on 127.0.0.1", name, guardPort)
		}
	case DockerModeNetwork:
		t.network, t.addr = "tcp", net.JoinHostPort(name, guardPort)
	case DockerModeSocket:
		if err := d.learnAPITarget(envOf(info, envGatewayURL)); err != nil {
			return target{}, err
		}
		if err := d.ensureAPI(ctx); err != nil {
			return target{}, err
		}
		dir, err := d.mountpoint(ctx, d.runVolume(key))
		if err != nil {
			return target{}, err
		}
		t.network, t.addr = "unix", filepath.Join(dir, guardSockName)
		if len(t.addr) > 107 {
			return target{}, fmt.Errorf("docker: the guard's socket path %s is longer than a unix socket path may be", t.addr)
		}
	}
	d.mu.Lock()
	d.targets[key] = t
	d.mu.Unlock()
	return t, nil
}

// mountpoint is where the engine mounts a volume on its host, checked to
// be a folder this process can enter: socket mode needs the gateway on
// the engine's host, with the engine's rights on its volumes (root).
func (d *Docker) mountpoint(ctx context.Context, name string) (string, error) {
	cctx, cancel := d.call(ctx)
	v, err := d.cli.VolumeInspect(cctx, name)
	cancel()
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", ErrNotFound
		}
		return "", d.fail("inspect workspace volume "+name, err)
	}
	fi, err := os.Stat(v.Mountpoint)
	if err != nil || !fi.IsDir() || v.Mountpoint == "" {
		return "", fmt.Errorf("docker: socket mode: volume %s's folder %q is not reachable from here (%v): the gateway must run on the engine's host as root", name, v.Mountpoint, err)
	}
	return v.Mountpoint, nil
}

// cancelOnClose ends a streaming request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// CopyOut streams a folder of the project as a tar archive whose entry
// names are relative to it (Docker's own archive starts each name with
// the folder's base name; that first part is dropped). Owners are
// cleared; symlinks stay links.
func (d *Docker) CopyOut(ctx context.Context, key, p string) (io.ReadCloser, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("workspace: invalid key %q", key)
	}
	rel, ok := CleanRelPath(p)
	if !ok {
		return nil, fmt.Errorf("workspace: invalid folder %q", p)
	}
	name := d.ContainerName(key)
	src := path.Join(ProjectDir, rel)
	// The stream may outlast APITimeout; only the request's start is
	// bounded by it.
	sctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(d.cfg.APITimeout, cancel)
	rc, stat, err := d.cli.CopyFromContainer(sctx, name, src)
	timer.Stop()
	if err != nil {
		cancel()
		if cerrdefs.IsNotFound(err) {
			return nil, ErrNotFound
		}
		return nil, d.fail("copy "+rel+" out of workspace container "+name, err)
	}
	if stat.Mode&os.ModeSymlink != 0 || !stat.Mode.IsDir() {
		rc.Close()
		cancel()
		return nil, fmt.Errorf("workspace: %q is not a folder", rel)
	}
	pr, pw := io.Pipe()
	go func() {
		defer rc.Close()
		defer cancel()
		pw.CloseWithError(rebaseTar(rc, pw))
	}()
	return cancelOnClose{pr, cancel}, nil
}

// ProjectPath is the same in every container: ProjectDir.
func (d *Docker) ProjectPath(string) string { return ProjectDir }

// CopyIn extracts a tar archive into a folder of the project, creating it
// (and its parents) owned by the workspace's user. Like the local runtime
// it writes only folders and regular files, refuses names that leave the
// folder and bounds the archive's size; it also refuses a folder path
// through a symlink, which Docker would follow inside the container.
func (d *Docker) CopyIn(ctx context.Context, key, p string, archive io.Reader) error {
	if !validKey(key) {
		return fmt.Errorf("workspace: invalid key %q", key)
	}
	rel, ok := CleanRelPath(p)
	if !ok {
		return fmt.Errorf("workspace: invalid folder %q", p)
	}
	name := d.ContainerName(key)
	if _, ok, err := d.inspect(ctx, name); err != nil {
		return err
	} else if !ok {
		return ErrNotFound
	}
	if err := d.checkFolderPath(ctx, name, rel); err != nil {
		return err
	}
	cctx, cancel := d.call(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	built := make(chan error, 1)
	go func() {
		err := d.retarInto(rel, archive, pw)
		pw.CloseWithError(err)
		built <- err
	}()
	err := d.cli.CopyToContainer(cctx, name, ProjectDir, pr, container.CopyToContainerOptions{})
	pr.CloseWithError(errors.New("copy ended"))
	if berr := <-built; berr != nil {
		return berr
	}
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return ErrNotFound
		}
		return d.fail("copy into "+rel+" of workspace container "+name, err)
	}
	return nil
}

// checkFolderPath refuses a folder path whose existing parts are not
// plain folders (a symlink planted by the workspace's user would make
// the copy, done as root by the daemon, write elsewhere).
func (d *Docker) checkFolderPath(ctx context.Context, name, rel string) error {
	if rel == "." {
		return nil
	}
	cur := ProjectDir
	for _, part := range strings.Split(rel, "/") {
		cur = path.Join(cur, part)
		cctx, cancel := d.call(ctx)
		st, err := d.cli.ContainerStatPath(cctx, name, cur)
		cancel()
		if cerrdefs.IsNotFound(err) {
			return nil // the rest is created by the copy
		}
		if err != nil {
			return d.fail("look at "+cur+" in workspace container "+name, err)
		}
		if st.Mode&os.ModeSymlink != 0 || !st.Mode.IsDir() {
			return fmt.Errorf("workspace: %q is not a folder", strings.TrimPrefix(cur, ProjectDir+"/"))
		}
	}
	return nil
}

// apiRelay is socket mode's way from the workspaces to the gateway's API:
// a unix socket in the shared API volume (mounted read-only in every
// workspace at apiDir, where the guard's forwarder connects), carried to
// the gateway's loopback listener. Only one process on a host serves the
// socket: a runtime that finds another one's relay answering leaves it
// alone, and takes the socket over when it no longer answers.
type apiRelay struct {
	mu     sync.Mutex
	ln     net.Listener
	probed time.Time // when another process's relay last answered
	target string    // loopback host:port of the gateway's API
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// loopbackAddr checks that hostport is an IP loopback address (or
// localhost, taken as 127.0.0.1) and returns it: the only place the relay
// carries workspace connections to.
func loopbackAddr(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("%q is not a loopback address", hostport)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("%q has no valid port", hostport)
	}
	return net.JoinHostPort(host, port), nil
}

// loopbackURLPort is the port of a loopback http(s) URL
// (PLAYBOOK_GATEWAY_URL in socket mode).
func loopbackURLPort(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if _, err := loopbackAddr(net.JoinHostPort(u.Hostname(), port)); err != nil {
		return "", false
	}
	return port, true
}

// learnAPITarget takes the relay's target from a workspace's
// PLAYBOOK_GATEWAY_URL unless APIAddr sets it. In socket mode a workspace
// has only its loopback, so any other gateway URL could never be reached:
// that is refused here.
func (d *Docker) learnAPITarget(gatewayURL string) error {
	if gatewayURL == "" {
		return nil
	}
	port, ok := loopbackURLPort(gatewayURL)
	if !ok {
		return fmt.Errorf("docker: socket mode: workspaces have no network but their loopback, so PLAYBOOK_GATEWAY_URL must be a loopback URL on the gateway's own port (http://127.0.0.1:PORT), not %q", gatewayURL)
	}
	d.api.mu.Lock()
	defer d.api.mu.Unlock()
	if d.api.target == "" {
		if d.cfg.APIAddr != "" {
			d.api.target, _ = loopbackAddr(d.cfg.APIAddr)
		} else {
			d.api.target = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return nil
}

// ensureAPIVolume makes the shared API volume and returns its name.
func (d *Docker) ensureAPIVolume(ctx context.Context) (string, error) {
	name := d.apiVolume()
	return name, d.volume(ctx, name, Spec{}, nil, "API volume")
}

// ensureAPI serves the API socket unless this runtime or another
// process's already does (checked at most every two seconds).
func (d *Docker) ensureAPI(ctx context.Context) error {
	r := &d.api
	r.mu.Lock()
	done := r.ln != nil || r.closed || (!r.probed.IsZero() && time.Since(r.probed) < 2*time.Second)
	r.mu.Unlock()
	if done {
		return nil
	}
	name, err := d.ensureAPIVolume(ctx)
	if err != nil {
		return err
	}
	dir, err := d.mountpoint(ctx, name)
	if err != nil {
		return err
	}
	sock := filepath.Join(dir, apiSockName)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil || r.closed {
		return nil
	}
	if c, err := net.DialTimeout("unix", sock, 200*time.Millisecond); err == nil {
		c.Close()
		r.probed = time.Now()
		return nil
	}
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("docker: socket mode: serve the workspaces' API socket %s: %w", sock, err)
	}
	// The workspaces' uid connects; the volume's folder, under the
	// engine's root-only volumes folder, keeps everyone else out.
	if err := os.Chmod(sock, 0o666); err != nil {
		ln.Close()
		return fmt.Errorf("docker: socket mode: %w", err)
	}
	r.ln = ln
	r.conns = map[net.Conn]struct{}{}
	r.wg.Add(1)
	go d.serveAPI(ln)
	d.log.Info("serving the workspaces' API socket", "socket", sock)
	return nil
}

func (d *Docker) serveAPI(ln net.Listener) {
	r := &d.api
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Warn("workspace API socket", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return
		}
		to := r.target
		r.conns[c] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go func() {
			defer r.wg.Done()
			defer func() {
				r.mu.Lock()
				delete(r.conns, c)
				r.mu.Unlock()
			}()
			if to == "" { // no workspace said where the gateway is yet
				c.Close()
				return
			}
			up, err := net.DialTimeout("tcp", to, 5*time.Second)
			if err != nil {
				c.Close()
				return
			}
			r.mu.Lock()
			if r.closed {
				r.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			r.conns[up] = struct{}{}
			r.mu.Unlock()
			spliceConns(c, up)
			r.mu.Lock()
			delete(r.conns, up)
			r.mu.Unlock()
		}()
	}
}

// spliceConns copies both ways until both directions end, passing on
// half-closes, then closes both.
func spliceConns(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(b, a)
		closeWrite(b)
		close(done)
	}()
	_, _ = io.Copy(a, b)
	closeWrite(a)
	<-done
	a.Close()
	b.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// Close stops the API socket's relay (socket mode) and releases the API
// client; the workspaces keep running and are found again by List.
func (d *Docker) Close() error {
	r := &d.api
	r.mu.Lock()
	r.closed = true
	if r.ln != nil {
		r.ln.Close()
	}
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return d.cli.Close()
}
