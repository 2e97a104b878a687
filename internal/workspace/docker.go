package workspace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
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

// Docker runtime modes: how the gateway reaches a workspace's code-server.
const (
	// DockerModePublish publishes the container's port 8080 on a random
	// port of 127.0.0.1: the gateway runs on the host.
	DockerModePublish = "publish"
	// DockerModeNetwork reaches the container by name on its network: the
	// gateway runs in a container itself (compose), and the runtime
	// connects that container to every workspace's network.
	DockerModeNetwork = "network"
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
)

// codeServerPort is where code-server listens inside the container.
const codeServerPort = "8080"

// DockerConfig configures the Docker runtime. Zero durations take their
// defaults.
type DockerConfig struct {
	// Host is the Docker API address in DOCKER_HOST form
	// (unix:///run/podman/podman.sock); empty means the DOCKER_HOST
	// environment variable, or Docker's default socket.
	Host string
	// Image is the workspace image (localhost/playbook-workspace:latest).
	// Its CMD runs code-server (see images/Containerfile) unless Command
	// is set.
	Image string
	// Command, when set, replaces the image's CMD.
	Command []string
	// User runs the container's processes, as numeric "uid:gid"; root is
	// refused. Default "1000:1000" (the image's coder user).
	User string
	// Memory (bytes), NanoCPUs (1e9 = one CPU) and PidsLimit bound each
	// workspace; all are required.
	Memory    int64
	NanoCPUs  int64
	PidsLimit int64
	// Mode is DockerModePublish (default) or DockerModeNetwork.
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
	// InternalNetworks (network mode only) creates the workspaces'
	// networks without a route off the host: a workspace can reach the
	// gateway and nothing else. Publish mode cannot use it (ports are
	// not forwarded into internal networks).
	InternalNetworks bool
	// NamePrefix names each workspace's container, volume and network:
	// prefix + key. Default "pbs-ws-".
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

// Docker runs each workspace as a hardened container with its own named
// volume (the project folder, kept across Stop and Start) and its own
// bridge network (so workspaces cannot reach each other). Everything it
// needs to know about a workspace lives in the container's labels, so any
// gateway replica, or a restarted one, finds it again.
type Docker struct {
	cfg      DockerConfig
	cli      *client.Client
	log      *slog.Logger
	uid, gid int

	keyMu sync.Map // key → *sync.Mutex: one Start/Stop/Remove per key at a time

	mu        sync.Mutex
	ports     map[string]string // publish mode: key → 127.0.0.1:port
	connected map[string]bool   // network mode: gateway joined the key's network
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
	case DockerModePublish, DockerModeNetwork:
	default:
		return nil, bad("mode %q is neither %q nor %q", cfg.Mode, DockerModePublish, DockerModeNetwork)
	}
	if cfg.InternalNetworks && cfg.Mode != DockerModeNetwork {
		return nil, bad("internal networks need network mode: ports are not published from internal networks")
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
	return &Docker{
		cfg: cfg, cli: cli, log: log, uid: uid, gid: gid,
		ports: map[string]string{}, connected: map[string]bool{},
	}, nil
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
	delete(d.ports, key)
	delete(d.connected, key)
	d.mu.Unlock()
}

// specHash is what LabelSpec holds: the inputs of a container's creation
// apart from the image (compared by id separately).
func (d *Docker) specHash(spec Spec) string {
	raw, _ := json.Marshal(struct {
		Env                  map[string]string
		Owner, Tenant, Token string
		User                 string
		Memory, CPUs, Pids   int64
		Command              []string
		Mode                 string
		Internal             bool
	}{spec.Env, spec.Owner, spec.Tenant, spec.TokenHash, d.cfg.User, d.cfg.Memory, d.cfg.NanoCPUs, d.cfg.PidsLimit, d.cfg.Command, d.cfg.Mode, d.cfg.InternalNetworks})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:12])
}

// Start creates the workspace's network, volume and container when
// missing and starts the container; a running workspace is left alone.
// It is idempotent, and two gateways starting one key at once end with
// one container (a lost create race counts as "exists").
func (d *Docker) Start(ctx context.Context, spec Spec) error {
	if !validKey(spec.Key) {
		return fmt.Errorf("workspace: invalid key %q", spec.Key)
	}
	for k := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("workspace: invalid environment variable name %q", k)
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
		return d.ensureGateway(ctx, spec.Key)
	}
	if exists && d.stale(ctx, info, spec) {
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
				return d.ensureGateway(ctx, spec.Key)
			}
		}
	}
	d.forget(spec.Key) // a new start gets a new host port
	// A stopped container's network may have been pruned meanwhile.
	if err := d.ensureNetwork(ctx, spec.Key); err != nil {
		return err
	}
	if err := d.ensureGateway(ctx, spec.Key); err != nil {
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
	d.log.Info("workspace container started", "key", spec.Key, "container", name)
	return d.watchStart(ctx, spec.Key)
}

// stale reports whether a stopped container must be recreated: it was
// made from other inputs, or from an older build of the image.
func (d *Docker) stale(ctx context.Context, info container.InspectResponse, spec Spec) bool {
	if info.Config == nil || info.Config.Labels[LabelSpec] != d.specHash(spec) {
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

// create makes the network, the volume and the container. created is
// false when the container appeared meanwhile (another gateway's Start).
func (d *Docker) create(ctx context.Context, spec Spec) (created bool, err error) {
	name := d.ContainerName(spec.Key)
	cctx, cancel := d.call(ctx)
	_, err = d.cli.ImageInspect(cctx, d.cfg.Image)
	cancel()
	if cerrdefs.IsNotFound(err) {
		return false, fmt.Errorf("docker: workspace image %q not found: build it with `make image` (images/build-offline.sh)", d.cfg.Image)
	}
	if err != nil {
		return false, d.fail("inspect workspace image "+d.cfg.Image, err)
	}
	if err := d.ensureNetwork(ctx, spec.Key); err != nil {
		return false, err
	}
	if err := d.ensureVolume(ctx, spec); err != nil {
		return false, err
	}

	env := make([]string, 0, len(spec.Env))
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	port := nat.Port(codeServerPort + "/tcp")
	cfg := &container.Config{
		Image:        d.cfg.Image,
		User:         d.cfg.User,
		Env:          env,
		Labels:       d.labels(spec),
		WorkingDir:   ProjectDir,
		ExposedPorts: nat.PortSet{port: {}},
	}
	if len(d.cfg.Command) > 0 {
		cfg.Cmd = d.cfg.Command
	}
	stopSecs := int(d.cfg.StopTimeout / time.Second)
	cfg.StopTimeout = &stopSecs
	pids := d.cfg.PidsLimit
	init := true
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(name),
		Mounts: []mount.Mount{{
			Type:   mount.TypeVolume,
			Source: name,
			Target: ProjectDir,
		}},
		CapDrop:       []string{"ALL"},
		SecurityOpt:   []string{"no-new-privileges"},
		Privileged:    false,
		Init:          &init,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources: container.Resources{
			Memory:     d.cfg.Memory,
			MemorySwap: d.cfg.Memory, // no swap on top
			NanoCPUs:   d.cfg.NanoCPUs,
			PidsLimit:  &pids,
		},
	}
	if d.cfg.Mode == DockerModePublish {
		host.PortBindings = nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: ""}}}
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: {}}}

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

func (d *Docker) ensureNetwork(ctx context.Context, key string) error {
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
		Internal: d.cfg.InternalNetworks,
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
	name := d.ContainerName(spec.Key)
	cctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.cli.VolumeInspect(cctx, name); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return d.fail("inspect workspace volume "+name, err)
	}
	_, err := d.cli.VolumeCreate(cctx, volume.CreateOptions{
		Name: name,
		Labels: map[string]string{
			LabelWorkspace: "1", LabelKey: spec.Key, LabelOwner: spec.Owner, LabelTenant: spec.Tenant,
		},
	})
	if err != nil {
		if _, ierr := d.cli.VolumeInspect(cctx, name); ierr == nil {
			return nil
		}
		return d.fail("create workspace volume "+name, err)
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

// Remove deletes the container, its volume (the files) and its network.
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
	if err := d.cli.VolumeRemove(cctx, name, true); err != nil && !cerrdefs.IsNotFound(err) {
		return d.fail("remove workspace volume "+name, err)
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

// Dialer reaches code-server: in publish mode at 127.0.0.1 and the
// container's published port (looked up once, again after a failed
// dial); in network mode by the container's name on its network.
func (d *Docker) Dialer(ctx context.Context, key string) (DialFunc, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("workspace: invalid key %q", key)
	}
	var nd net.Dialer
	if d.cfg.Mode == DockerModeNetwork {
		if err := d.ensureGateway(ctx, key); err != nil {
			if _, ok, ierr := d.inspect(ctx, d.ContainerName(key)); ierr == nil && !ok {
				return nil, ErrNotFound
			}
			return nil, err
		}
		addr := net.JoinHostPort(d.ContainerName(key), codeServerPort)
		return func(ctx context.Context) (net.Conn, error) {
			return nd.DialContext(ctx, "tcp", addr)
		}, nil
	}
	if _, err := d.hostPort(ctx, key, false); err != nil {
		return nil, err
	}
	return func(ctx context.Context) (net.Conn, error) {
		addr, err := d.hostPort(ctx, key, false)
		if err != nil {
			return nil, err
		}
		conn, err := nd.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		// The container may have been restarted on another port.
		fresh, ferr := d.hostPort(ctx, key, true)
		if ferr != nil {
			return nil, ferr
		}
		if fresh == addr {
			return nil, err
		}
		return nd.DialContext(ctx, "tcp", fresh)
	}, nil
}

// hostPort returns 127.0.0.1:PORT where key's code-server is published.
func (d *Docker) hostPort(ctx context.Context, key string, refresh bool) (string, error) {
	if !refresh {
		d.mu.Lock()
		addr, ok := d.ports[key]
		d.mu.Unlock()
		if ok {
			return addr, nil
		}
	}
	name := d.ContainerName(key)
	info, ok, err := d.inspect(ctx, name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrNotFound
	}
	if info.State == nil || !info.State.Running {
		d.forget(key)
		code := 0
		if info.State != nil {
			code = info.State.ExitCode
		}
		return "", fmt.Errorf("docker: workspace container %s is not running (exit code %d)", name, code)
	}
	if info.NetworkSettings != nil {
		for _, b := range info.NetworkSettings.Ports[nat.Port(codeServerPort+"/tcp")] {
			if b.HostPort != "" && (b.HostIP == "127.0.0.1" || b.HostIP == "") {
				addr := net.JoinHostPort("127.0.0.1", b.HostPort)
				d.mu.Lock()
				d.ports[key] = addr
				d.mu.Unlock()
				return addr, nil
			}
		}
	}
	return "", fmt.Errorf("docker: workspace container %s publishes no port for %s on 127.0.0.1", name, codeServerPort)
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

// Close releases the API client; the workspaces keep running and are
// found again by List.
func (d *Docker) Close() error { return d.cli.Close() }
