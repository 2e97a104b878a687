// Command bench measures Playbook Studio's gateway on this machine and
// prints one line per figure on stdout:
//
//	name<TAB>value<TAB>unit[<TAB>ratio]
//
// where ratio, on the gateway's proxy lines, is gateway/nginx of the same
// run (higher is better for rates, lower for latencies, memory and CPU).
// Baselines are direct_* (straight to the workspace's unix socket) and
// nginx_* (Debian's nginx set up as code-server's guide recommends).
// Every proxy figure is measured for both proxy engines in the same run:
// proxy_* is the default engine (IDE_PROXY_ENGINE=relay: the gateway's
// own HTTP forwarding and epoll WebSocket relay), stdproxy_* the stdlib
// one (httputil.ReverseProxy over a tuned http.Transport). Each engine
// runs in a gateway of its own, in front of a workspace of its own with
// an nginx of its own over it, and its ratio is against that nginx; the
// ways of a workload take turns in a rotated order every round, so the
// noise of a shared machine spreads over all of them. Progress and
// diagnostics (every way's figures, the second nginx's included) go to
// stderr. `make bench` runs it after `make build`; everything it starts
// is stopped at the end, on error and on Ctrl-C.
//
// Figures: workspace cold starts (local and Docker-on-Podman runtimes)
// and warm Ensure; the IDE proxy (the real code-server's workbench.js
// and /healthz, WebSocket echo at 1, 32 and 256 connections with
// cmd/bench/wsecho standing in for code-server, RSS per idle WebSocket,
// CPU per round trip); the edit lock on a local Redis.
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

	"github.com/playbookstudio/gateway/internal/child"
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
	flag.StringVar(&only, "only", "workspaces,docker,lock,proxy,markdown,egress,secrets,runner", "groups to run (comma separated): workspaces, docker, lock, proxy (= http, ws and save), http, ws, save, markdown, egress, secrets, runner")
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
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute) // a hard bound on the whole run
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
		gateway: filepath.Join(root, "bin", "gateway"),
		devidp:  filepath.Join(root, "bin", "devidp"),
		// A folder of its own that anyone may read: a sandboxed workspace
		// (another uid) runs wsecho from there.
		wsecho:     filepath.Join(dir, "wsecho", "wsecho"),
		codeServer: filepath.Join(root, ".cache", "code-server", "node_modules", ".bin", "code-server"),
	}
	if _, err := os.Stat(p.codeServer); err != nil {
		return fmt.Errorf("code-server is not installed at %s: run `make build` (scripts/setup.sh installs it)", p.codeServer)
	}
	if err := os.Mkdir(filepath.Dir(p.wsecho), 0o755); err != nil {
		return err
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
	fmt.Fprintln(os.Stderr, "# proxy_* = the gateway's relay engine, stdproxy_* = its stdlib engine (httputil.ReverseProxy),")
	fmt.Fprintln(os.Stderr, "# each with a workspace and an nginx of its own (nginx-std for stdproxy_*).")
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
	if o.only["egress"] {
		if err := benchEgress(ctx, 5000, out); err != nil {
			return err
		}
	}
	if o.only["secrets"] {
		if err := benchSecrets(20000, out); err != nil {
			return err
		}
	}
	if o.only["runner"] {
		if err := benchRunner(ctx, 15, 20, 30, out); err != nil {
			return err
		}
	}
	if o.only["markdown"] {
		// The portal's renderer runs in the browser; node runs the same
		// module (web/bench/markdown.mjs prints its own lines).
		progress("markdown: the portal's renderer against plain markdown-it")
		cmd := exec.CommandContext(ctx, "node", "bench/markdown.mjs")
		cmd.Dir = filepath.Join(root, "web")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("markdown bench: %w", err)
		}
	}
	return nil
}

var workbenchJS = regexp.MustCompile(`[^"'\s]*workbench\.js`)

// The proxy engines the bench compares (IDE_PROXY_ENGINE): each runs in
// a gateway of its own, in front of a workspace of its own, with an nginx
// of its own over that same workspace; a gateway figure's ratio is
// against that nginx, in the same run.
var engines = []struct{ engine, prefix, suffix string }{
	{"relay", "proxy", ""},         // proxy_*: the default engine
	{"stdlib", "stdproxy", "-std"}, // stdproxy_*: httputil.ReverseProxy
}

// stack is one engine's gateway, its session (alice's), the workspace's
// socket and the nginx over it.
type stack struct {
	prefix, suffix string
	g              *gatewayProc
	s              *ideSession
	sock           string
	n              *nginxProc
}

func (st *stack) nginx() target {
	return target{name: "nginx" + st.suffix, dial: tcpDialer(st.n.port), host: withPort(st.s.host, st.n.port), cookie: st.s.cookie}
}

func (st *stack) gateway() target {
	return target{name: "gateway" + st.suffix, dial: tcpDialer(st.g.port), host: st.s.host, cookie: st.s.cookie}
}

// ways are the targets of a workload: direct (to the first stack's
// workspace), then each stack's nginx and gateway.
func ways(stacks []*stack) []target {
	st := stacks[0]
	ts := []target{{name: "direct", dial: unixDialer(st.sock), host: st.s.host, cookie: st.s.cookie}}
	for _, st := range stacks {
		ts = append(ts, st.nginx(), st.gateway())
	}
	return ts
}

// startStacks starts a gateway per engine over upstream (code-server or
// wsecho), signs alice in on each, and starts an nginx over each
// gateway's workspace.
func startStacks(ctx context.Context, p paths, idp *devIDP, ports []int, name, upstream string, cl *cleanups) ([]*stack, error) {
	var stacks []*stack
	for i, e := range engines {
		g, err := startGateway(ctx, p.gateway, p.dir, "gw-"+name+e.suffix, ports[i], e.engine, idp, upstream, cl)
		if err != nil {
			return nil, fmt.Errorf("gateway (%s, %s engine): %w", name, e.engine, err)
		}
		s, err := openIDE(ctx, g, idp, "alice", "alice")
		if err != nil {
			return nil, fmt.Errorf("gateway (%s, %s engine): %w%s", name, e.engine, err, logIfFailed(ctx, g.proc))
		}
		sock := filepath.Join(g.dataDir, "workspaces", "run", s.key, "cs.sock")
		n, err := startNginx(ctx, p.dir, "nginx-"+name+e.suffix, sock, cl)
		if err != nil {
			return nil, fmt.Errorf("nginx: %w", err)
		}
		stacks = append(stacks, &stack{prefix: e.prefix, suffix: e.suffix, g: g, s: s, sock: sock, n: n})
	}
	return stacks, nil
}

// benchProxy: figures B (a) to (e), for each engine.
func benchProxy(ctx context.Context, p paths, o options, out *output, cl *cleanups) error {
	doHTTP := o.only["proxy"] || o.only["http"] || o.only["save"]
	doWS := o.only["proxy"] || o.only["ws"]
	var csPorts, wsPorts []int
	var redirects, postLogout []string
	for _, ports := range []*[]int{&csPorts, &wsPorts} {
		for range engines {
			port, err := child.FreePort()
			if err != nil {
				return err
			}
			*ports = append(*ports, port)
			pub := "http://playbooks.localhost:" + strconv.Itoa(port)
			redirects, postLogout = append(redirects, pub+"/auth/callback"), append(postLogout, pub+"/")
		}
	}
	progress("proxy: dev provider; per engine (%d), a gateway with the real code-server and one with wsecho, each with an nginx over its workspace", len(engines))
	idp, err := startDevIDP(ctx, p.devidp, p.dir, redirects, postLogout, cl)
	if err != nil {
		return fmt.Errorf("devidp: %w", err)
	}

	if doHTTP {
		cs, err := startStacks(ctx, p, idp, csPorts, "codeserver", p.codeServer, cl)
		if err != nil {
			return err
		}
		if o.only["proxy"] || o.only["http"] {
			if err := benchHTTP(ctx, o, out, cs); err != nil {
				return err
			}
		}
		if o.only["proxy"] || o.only["save"] {
			if err := benchSave(ctx, out, cs[0].g, cs[0].s); err != nil {
				return err
			}
		}
		// The code-server side is done: stop it, so it takes no CPU from the rest.
		for _, st := range cs {
			st.n.Stop(syscall.SIGTERM, 10*time.Second)
			st.g.shutdown()
		}
	}
	if doWS {
		ec, err := startStacks(ctx, p, idp, wsPorts, "wsecho", p.wsecho, cl)
		if err != nil {
			return err
		}
		return benchWS(ctx, o, out, ec)
	}
	return nil
}

// benchHTTP: (a) and (b), with the real code-server.
func benchHTTP(ctx context.Context, o options, out *output, stacks []*stack) error {
	cs := ways(stacks)
	status, page, err := fetch(ctx, cs[0], "/?folder="+url.QueryEscape(stacks[0].s.project), "Accept: text/html\r\n")
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
	httpFigure(ctx, out, stacks, js, 4, size, "asset_rps", o)
	progress("(b) /healthz, 32 connections")
	httpFigure(ctx, out, stacks, "/healthz", 32, 0, "small_rps", o)
	return nil
}

// benchWS: (d) then (c) and (e), wsecho behind each engine's gateway and
// its nginx, each fresh for the memory figure.
func benchWS(ctx context.Context, o options, out *output, stacks []*stack) error {
	ec := ways(stacks)
	groups := map[string]*procGroup{}
	for _, st := range stacks {
		groups["nginx"+st.suffix] = &procGroup{pid: st.n.PID(), withChildren: true}
		groups["gateway"+st.suffix] = &procGroup{pid: st.g.PID()}
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
	for _, st := range stacks {
		out.ratioLine(st.prefix+"_ws_idle_kib_per_conn", idle["gateway"+st.suffix], "KiB", idle["nginx"+st.suffix])
	}

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
			progress("  %-11s %8.0f rt/s  p50 %6.0fµs  p99 %6.0fµs  (%d round trips, proxy CPU %s)", t.name, r.rtps(), us(r.p50), us(r.p99), r.all, r.cpu)
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
			for _, st := range stacks {
				out.ratioLine(st.prefix+"_"+f.name+sfx, f.v(*res["gateway"+st.suffix]), f.unit, f.v(*res["nginx"+st.suffix]))
			}
		}
	}
	perRT := func(name string) float64 { return us(cpu[name]) / float64(max(rts[name], 1)) }
	out.line("nginx_ws_cpu_us_per_rt", perRT("nginx"), "µs")
	for _, st := range stacks {
		out.ratioLine(st.prefix+"_ws_cpu_us_per_rt", perRT("gateway"+st.suffix), "µs", perRT("nginx"+st.suffix))
	}
	return nil
}

// httpFigure runs one HTTP workload every way, in rotation, and prints
// its lines.
func httpFigure(ctx context.Context, out *output, stacks []*stack, path string, conns int, size int64, name string, o options) {
	ts := ways(stacks)
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
		progress("  %-11s %8.1f req/s  (%d ok, %d failed, %.0f MB/s)%s", t.name, r.rps(), r.ok, r.failed,
			float64(r.bytes)/r.window.Seconds()/1e6, errNote(r.firstErr))
		rps[t.name] = math.NaN()
		if r.ok > 0 {
			rps[t.name] = r.rps()
		}
	}
	out.line("direct_"+name, rps["direct"], "req/s")
	out.line("nginx_"+name, rps["nginx"], "req/s")
	for _, st := range stacks {
		out.ratioLine(st.prefix+"_"+name, rps["gateway"+st.suffix], "req/s", rps["nginx"+st.suffix])
	}
}

// logIfFailed is a process's log tail for an error message, unless the
// run was interrupted.
func logIfFailed(ctx context.Context, p *proc) string {
	if ctx.Err() != nil {
		return ""
	}
	return "\n" + p.LogTail(10)
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
