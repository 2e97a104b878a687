// Command bench measures Playbook Studio's gateway on this machine and
// prints one line per figure on stdout:
//
//	name<TAB>value<TAB>unit[<TAB>ratio]
//
// where ratio, on the gateway's proxy lines, is gateway/nginx of the same
// run (higher is better for rates, lower for latencies, memory and CPU).
// Baselines are direct_* (straight to the workspace's unix socket) and
// nginx_* (Debian's nginx set up as code-server's guide recommends).
// Progress and diagnostics go to stderr. `make bench` runs it after
// `make build`; everything it starts is stopped at the end, on error and
// on Ctrl-C.
//
// Figures: workspace cold starts (local and Docker-on-Podman runtimes)
// and warm Ensure; the IDE proxy three ways (the real code-server's
// workbench.js and /healthz, WebSocket echo at 1, 32 and 256 connections
// with cmd/bench/wsecho standing in for code-server, RSS per idle
// WebSocket, CPU per round trip); the edit lock on a local Redis.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	warmup, measure time.Duration
	cold            int
	warmCalls       int
	lockCalls       int
	idle            int
	rounds          int
	only            map[string]bool
	image           string
	keep            bool
}

func main() {
	var o options
	var only string
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "warm-up of each load run (each round)")
	flag.DurationVar(&o.measure, "duration", 6*time.Second, "measurement window of each workload and way, split over the rounds")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per workload; each round runs the three ways in a rotated order")
	flag.IntVar(&o.cold, "cold", 5, "cold starts per runtime (the median is reported)")
	flag.IntVar(&o.warmCalls, "warm-calls", 10000, "Ensure calls on a ready workspace")
	flag.IntVar(&o.lockCalls, "lock-calls", 10000, "edit lock acquire+release pairs")
	flag.IntVar(&o.idle, "idle", 1000, "idle WebSockets for the memory figure")
	flag.StringVar(&only, "only", "workspaces,docker,lock,proxy", "groups to run (comma separated): workspaces, docker, lock, proxy (= http, ws and save), http, ws, save")
	flag.StringVar(&o.image, "image", "localhost/playbook-workspace:latest", "workspace image for the Docker runtime")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder (logs, nginx.conf) for inspection")
	flag.Parse()
	o.rounds = max(o.rounds, 1)
	o.only = map[string]bool{}
	for _, g := range strings.Split(only, ",") {
		o.only[strings.TrimSpace(g)] = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute) // a hard bound on the whole run
	defer cancel()
	cl := &cleanups{}
	err := run(ctx, o, cl)
	if ctx.Err() != nil && err != nil {
		progress("interrupted: %v", err)
	}
	progress("load average now: %s", loadavg())
	progress("stopping everything started")
	cl.run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	progress("done")
}

// paths of what the run needs.
type paths struct {
	root, dir               string
	gateway, devidp, wsecho string
	codeServer              string
}

func run(ctx context.Context, o options, cl *cleanups) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	// A short folder: unix socket paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "pbsb-")
	if err != nil {
		return err
	}
	cl.add(func() {
		if o.keep {
			progress("kept %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	p := paths{root: root, dir: dir,
		gateway:    filepath.Join(root, "bin", "gateway"),
		devidp:     filepath.Join(root, "bin", "devidp"),
		wsecho:     filepath.Join(dir, "wsecho"),
		codeServer: filepath.Join(root, ".cache", "code-server", "node_modules", ".bin", "code-server"),
	}
	if _, err := os.Stat(p.codeServer); err != nil {
		return fmt.Errorf("code-server is not installed at %s: run `make build` (scripts/setup.sh installs it)", p.codeServer)
	}
	builds := [][2]string{{p.wsecho, "./cmd/bench/wsecho"}}
	for _, b := range [][2]string{{p.gateway, "./cmd/gateway"}, {p.devidp, "./cmd/devidp"}} {
		if _, err := os.Stat(b[0]); err != nil {
			progress("%s is not built (make build does it); building it for this run", b[0])
			b[0] = filepath.Join(dir, filepath.Base(b[0]))
			builds = append(builds, b)
		}
	}
	for _, b := range builds {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b[0], b[1])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
		switch filepath.Base(b[0]) {
		case "gateway":
			p.gateway = b[0]
		case "devidp":
			p.devidp = b[0]
		}
	}

	out := &output{}
	fmt.Fprintln(os.Stderr, "# one line per figure on stdout: name<TAB>value<TAB>unit[<TAB>ratio]")
	fmt.Fprintln(os.Stderr, "# ratio = gateway/nginx in the same run: higher is better for *_rps and *_rtps;")
	fmt.Fprintln(os.Stderr, "# lower is better for latencies (p50, p99), memory (idle KiB) and CPU (µs per round trip).")
	fmt.Fprintln(os.Stderr, "# direct_* = straight to the workspace's unix socket; nginx_* = Debian's nginx, same upstream.")
	progress("load average at start: %s (2 cores shared by client, proxy and backend)", loadavg())

	if o.only["workspaces"] {
		if err := benchLocalWorkspaces(ctx, root, dir, p.codeServer, o.cold, o.warmCalls, out, cl); err != nil {
			return err
		}
	}
	if o.only["docker"] {
		if err := benchDockerWorkspaces(ctx, o.image, o.cold, out, cl); err != nil {
			return err
		}
	}
	if o.only["lock"] {
		if err := benchLock(ctx, dir, o.lockCalls, 20*time.Second, out, cl); err != nil {
			return err
		}
	}
	if o.only["proxy"] || o.only["http"] || o.only["ws"] || o.only["save"] {
		if err := benchProxy(ctx, p, o, out, cl); err != nil {
			return err
		}
	}
	return nil
}

var workbenchJS = regexp.MustCompile(`[^"'\s]*workbench\.js`)

// benchProxy: figures B (a) to (e).
func benchProxy(ctx context.Context, p paths, o options, out *output, cl *cleanups) error {
	port1, err := freePort()
	if err != nil {
		return err
	}
	port2, err := freePort()
	if err != nil {
		return err
	}
	pub := func(port int) string { return "http://playbooks.localhost:" + strconv.Itoa(port) }
	progress("proxy: dev provider, two gateways (real code-server; wsecho), two nginx")
	idp, err := startDevIDP(ctx, p.devidp, p.dir,
		[]string{pub(port1) + "/auth/callback", pub(port2) + "/auth/callback"}, []string{pub(port1) + "/", pub(port2) + "/"}, cl)
	if err != nil {
		return fmt.Errorf("devidp: %w", err)
	}
	g1, err := startGateway(ctx, p.gateway, p.dir, "gw-codeserver", port1, idp, p.codeServer, cl)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g2, err := startGateway(ctx, p.gateway, p.dir, "gw-wsecho", port2, idp, p.wsecho, cl)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	s1, err := openIDE(ctx, g1, idp, "alice", "alice")
	if err != nil {
		return fmt.Errorf("gateway with code-server: %w%s", err, logIfFailed(ctx, g1.proc))
	}
	s2, err := openIDE(ctx, g2, idp, "alice", "alice")
	if err != nil {
		return fmt.Errorf("gateway with wsecho: %w%s", err, logIfFailed(ctx, g2.proc))
	}
	sock1 := filepath.Join(g1.dataDir, "workspaces", "run", s1.key+".sock")
	sock2 := filepath.Join(g2.dataDir, "workspaces", "run", s2.key+".sock")
	n1, err := startNginx(ctx, p.dir, "nginx-codeserver", sock1, cl)
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	n2, err := startNginx(ctx, p.dir, "nginx-wsecho", sock2, cl)
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	ways := func(s *ideSession, sock string, n *nginxProc, g *gatewayProc) []target {
		return []target{
			{name: "direct", dial: unixDialer(sock), host: s.host, cookie: s.cookie},
			{name: "nginx", dial: tcpDialer(n.port), host: withPort(s.host, n.port), cookie: s.cookie},
			{name: "gateway", dial: tcpDialer(g.port), host: s.host, cookie: s.cookie},
		}
	}

	if o.only["proxy"] || o.only["http"] {
		if err := benchHTTP(ctx, o, out, ways(s1, sock1, n1, g1), s1.project); err != nil {
			return err
		}
	}
	if o.only["proxy"] || o.only["save"] {
		if err := benchSave(ctx, out, s1); err != nil {
			return err
		}
	}
	// The code-server side is done: stop it, so it takes no CPU from the rest.
	n1.stop(syscall.SIGTERM, 10*time.Second)
	g1.shutdown()
	if o.only["proxy"] || o.only["ws"] {
		return benchWS(ctx, o, out, ways(s2, sock2, n2, g2), n2, g2)
	}
	return nil
}

// benchHTTP: (a) and (b), with the real code-server.
func benchHTTP(ctx context.Context, o options, out *output, cs []target, project string) error {
	status, page, err := fetch(ctx, cs[0], "/?folder="+url.QueryEscape(project), "Accept: text/html\r\n")
	if err != nil || status != 200 {
		return fmt.Errorf("workbench page: %d %v", status, err)
	}
	js := workbenchJS.FindString(string(page))
	if js == "" {
		return fmt.Errorf("no workbench.js in the workbench page")
	}
	if !strings.HasPrefix(js, "/") {
		js = "/" + strings.TrimPrefix(js, "./")
	}
	var size int64
	for _, t := range cs {
		st, body, err := fetch(ctx, t, js, "")
		if err != nil || st != 200 {
			return fmt.Errorf("%s: GET %s: %d %v %.200s", t.name, js, st, err, body)
		}
		if size != 0 && int64(len(body)) != size {
			return fmt.Errorf("%s: workbench.js of %d bytes, direct gave %d", t.name, len(body), size)
		}
		size = int64(len(body))
	}
	progress("(a) %s: %d bytes, 4 connections, no compression", js, size)
	httpFigure(ctx, out, cs, js, 4, size, "asset_rps", o)
	progress("(b) /healthz, 32 connections")
	httpFigure(ctx, out, cs, "/healthz", 32, 0, "small_rps", o)
	return nil
}

// benchWS: (d) then (c) and (e), wsecho behind the second gateway and
// nginx, each fresh for the memory figure.
func benchWS(ctx context.Context, o options, out *output, ec []target, n2 *nginxProc, g2 *gatewayProc) error {
	groups := map[string]*procGroup{
		"nginx":   {pid: n2.pid(), withChildren: true},
		"gateway": {pid: g2.pid()},
	}
	progress("(d) %d idle WebSockets", o.idle)
	idle := map[string]float64{}
	for _, t := range ec[1:] {
		kib, err := wsIdle(ctx, t, o.idle, 1024, *groups[t.name])
		if err != nil {
			return fmt.Errorf("%s idle WebSockets: %w", t.name, err)
		}
		idle[t.name] = kib
	}
	out.line("nginx_ws_idle_kib_per_conn", idle["nginx"], "KiB")
	out.ratioLine("proxy_ws_idle_kib_per_conn", idle["gateway"], "KiB", idle["nginx"])

	cpu := map[string]time.Duration{}
	rts := map[string]int64{}
	for _, c := range []int{1, 32, 256} {
		progress("(c) WebSocket echo, 1 KB messages, %d connections", c)
		res := map[string]*wsResult{}
		for _, t := range ec {
			res[t.name] = &wsResult{}
		}
		for r := 0; r < o.rounds; r++ {
			for i := range ec {
				t := ec[(i+r)%len(ec)] // each round in another order: noise spreads evenly
				_ = sleep(ctx, 200*time.Millisecond)
				one, err := wsLoad(ctx, t, c, 1024, o.warmup, o.measure/time.Duration(o.rounds), 2_000_000, groups[t.name])
				if err != nil {
					return fmt.Errorf("%s WebSocket echo at %d connections: %w", t.name, c, err)
				}
				res[t.name].add(one)
				cpu[t.name] += one.cpu
				rts[t.name] += one.all
			}
		}
		for _, t := range ec {
			r := res[t.name]
			progress("  %-7s %8.0f rt/s  p50 %6.0fµs  p99 %6.0fµs  (%d round trips, proxy CPU %s)", t.name, r.rtps(), us(r.p50), us(r.p99), r.all, r.cpu)
		}
		sfx := "_c" + strconv.Itoa(c)
		for _, f := range []struct {
			name, unit string
			v          func(wsResult) float64
		}{
			{"ws_rtps", "rt/s", wsResult.rtps},
			{"ws_p50", "µs", func(r wsResult) float64 { return us(r.p50) }},
			{"ws_p99", "µs", func(r wsResult) float64 { return us(r.p99) }},
		} {
			out.line("direct_"+f.name+sfx, f.v(*res["direct"]), f.unit)
			out.line("nginx_"+f.name+sfx, f.v(*res["nginx"]), f.unit)
			out.ratioLine("proxy_"+f.name+sfx, f.v(*res["gateway"]), f.unit, f.v(*res["nginx"]))
		}
	}
	perRT := func(name string) float64 { return us(cpu[name]) / float64(max(rts[name], 1)) }
	out.line("nginx_ws_cpu_us_per_rt", perRT("nginx"), "µs")
	out.ratioLine("proxy_ws_cpu_us_per_rt", perRT("gateway"), "µs", perRT("nginx"))
	return nil
}

// httpFigure runs one HTTP workload three ways and prints its lines.
func httpFigure(ctx context.Context, out *output, ts []target, path string, conns int, size int64, name string, o options) {
	agg := map[string]*loadResult{}
	for _, t := range ts {
		agg[t.name] = &loadResult{}
	}
	for r := 0; r < o.rounds; r++ {
		for i := range ts {
			t := ts[(i+r)%len(ts)] // each round in another order: noise spreads evenly
			_ = sleep(ctx, 200*time.Millisecond)
			one := httpLoad(ctx, t, path, conns, o.warmup, o.measure/time.Duration(o.rounds), 5_000_000, size)
			a := agg[t.name]
			a.ok, a.failed, a.bytes, a.window = a.ok+one.ok, a.failed+one.failed, a.bytes+one.bytes, a.window+one.window
			if a.firstErr == nil {
				a.firstErr = one.firstErr
			}
		}
	}
	rps := map[string]float64{}
	for _, t := range ts {
		r := agg[t.name]
		progress("  %-7s %8.1f req/s  (%d ok, %d failed, %.0f MB/s)%s", t.name, r.rps(), r.ok, r.failed,
			float64(r.bytes)/r.window.Seconds()/1e6, errNote(r.firstErr))
		rps[t.name] = math.NaN()
		if r.ok > 0 {
			rps[t.name] = r.rps()
		}
	}
	out.line("direct_"+name, rps["direct"], "req/s")
	out.line("nginx_"+name, rps["nginx"], "req/s")
	out.ratioLine("proxy_"+name, rps["gateway"], "req/s", rps["nginx"])
}

// logIfFailed is a process's log tail for an error message, unless the
// run was interrupted.
func logIfFailed(ctx context.Context, p *proc) string {
	if ctx.Err() != nil {
		return ""
	}
	return "\n" + p.logTail(10)
}

func errNote(err error) string {
	if err == nil {
		return ""
	}
	return "  first error: " + err.Error()
}

func withPort(host string, port int) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return host + ":" + strconv.Itoa(port)
}

// output prints the figures, one line each, on stdout.
type output struct{}

func (output) line(name string, v float64, unit string) {
	if math.IsNaN(v) {
		progress("SKIP %s: not measured", name)
		return
	}
	fmt.Printf("%s\t%s\t%s\n", name, fmtVal(v), unit)
}

func (output) ratioLine(name string, v float64, unit string, base float64) {
	if math.IsNaN(v) {
		progress("SKIP %s: not measured", name)
		return
	}
	if math.IsNaN(base) || base == 0 {
		fmt.Printf("%s\t%s\t%s\n", name, fmtVal(v), unit)
		return
	}
	fmt.Printf("%s\t%s\t%s\t%.2f\n", name, fmtVal(v), unit, v/base)
}

// fmtVal keeps three significant digits, never in exponent form.
func fmtVal(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a == 0:
		return "0"
	default:
		dec := 2 - int(math.Floor(math.Log10(a)))
		return strconv.FormatFloat(v, 'f', dec, 64)
	}
}

var started = time.Now()

func loadavg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, a...))
}
