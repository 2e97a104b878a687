package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/workspace"
)

// hostileSource is about 1 MiB (at most the 1 MiB a file may have) of
// Python: head, open repeated, close repeated as often, tail, then run().
func hostileSource(head, open, close, tail string) string {
	const size = 1 << 20
	run := "\ndef run(alert, ctx):\n    return {}\n"
	n := (size - len(head) - len(tail) - len(run)) / (len(open) + len(close))
	return head + strings.Repeat(open, n) + strings.Repeat(close, n) + tail + run
}

// rssBytes is the resident set of this process (the gateway runs in it)
// and its peak since the peak was last reset, from /proc/self/status.
func rssBytes() (rss, peak int64, err error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%q: %w", line, err)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/self/status")
	}
	return rss, peak, nil
}

// pythonChildren are this process's child processes running Python (the
// checkers; the workspace's code-server is a child too).
func pythonChildren() []string {
	var found []string
	self := strconv.Itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		raw, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		fields := strings.Fields(s[close+1:])
		if len(fields) > 1 && fields[1] == self && fields[0] != "Z" && strings.HasPrefix(s[open+1:close], "python") {
			found = append(found, filepath.Base(d)+" "+s[open+1:close])
		}
	}
	return found
}

// sessionFolder finds the session's playbook folder on the host, once
// the gateway has made it: a folder of that name in a "project" folder
// of the workspace (the local runtime's layout is its own business).
func sessionFolder(t *testing.T, workspaces, key, name string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		found := ""
		filepath.WalkDir(workspaces, func(p string, d fs.DirEntry, err error) error {
			if err != nil || found != "" {
				return fs.SkipDir
			}
			if d.IsDir() && d.Name() == name && filepath.Base(filepath.Dir(p)) == "project" && strings.Contains(p, key) {
				found = p
				return fs.SkipAll
			}
			return nil
		})
		if found != "" {
			return found
		}
		if time.Now().After(deadline) {
			t.Fatalf("no folder %q of workspace %s under %s", name, key, workspaces)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHostileValidationsKeepTheGatewayUp is issue 11's bound: twenty
// concurrent saves of a folder of hostile 1 MiB files leave /healthz
// answering within 1 s and the gateway's resident memory under 300 MB;
// each save answers 422 validation_failed (naming the file too complex to
// check) or 429 too_busy with Retry-After, never a 5xx. The gateway runs
// in this process, so its RSS is this process's, the test's own included;
// the checkers are child processes, bounded by their own limits.
func TestHostileValidationsKeepTheGatewayUp(t *testing.T) {
	const (
		saves      = 20
		healthzMax = time.Second
		rssMax     = 300_000_000
	)
	g, idp, env := gatewayWithWorkspaces(t, nil)
	alice := newBrowser(t)
	signIn(t, alice, g, idp, "alice", "alice")
	var am me
	alice.getJSON(t, g.base+"/api/me", &am)
	key := workspace.KeyFor(am.Tenant, am.ID)

	var s startedSession
	if code := alice.api(t, g, am.CSRFToken, http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Hostile"}, &s); code != http.StatusCreated {
		t.Fatalf("start: %d %+v", code, s.Error)
	}
	waitReady(t, alice, g, am.CSRFToken, s.ID)
	// A folder of four hostile 1 MiB files (4 MiB of the 5 MiB a folder
	// may hold), each built to blow up the parser in its own way, checked
	// in this order: brackets nested past the parser's limit, an
	// expression chain nested past its recursion limit, a dict literal
	// that needs more than the checker's memory, and an f-string whose
	// fields take more than its CPU time.
	writeFiles(t, sessionFolder(t, filepath.Join(env["DATA_DIR"], "workspaces"), key, s.Folder), map[string]string{
		"a_nesting.py":  hostileSource("x = ", "[", "]", ""),
		"b_chain.py":    hostileSource("x = 1", "+1", "", ""),
		"c_dict.py":     hostileSource("x = {", "1: 1, ", "", "}"),
		"playbook.py":   hostileSource("x = f'", "{x}", "", "'"),
		"README.md":     phishingReadme,
		"manifest.json": phishingManifest,
	})

	// Measure from here: the peak RSS is reset (Linux 4.0 and later) and
	// /healthz is polled, as a load balancer would, without cookies.
	resetPeak := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	rssBefore, _, err := rssBytes()
	if err != nil {
		t.Fatal(err)
	}
	probe := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer probe.CloseIdleConnections()
	var (
		mu         sync.Mutex
		probes     int
		slowest    time.Duration
		probeErrs  []string
		rssPolled  = rssBefore
		stopProbes = make(chan struct{})
		probesDone = make(chan struct{})
	)
	go func() {
		defer close(probesDone)
		for {
			start := time.Now()
			resp, err := probe.Get(g.base + "/healthz")
			took := time.Since(start)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			rss, _, rerr := rssBytes()
			mu.Lock()
			probes++
			slowest = max(slowest, took)
			rssPolled = max(rssPolled, rss)
			switch {
			case err != nil:
				probeErrs = append(probeErrs, err.Error())
			case resp.StatusCode != http.StatusOK:
				probeErrs = append(probeErrs, resp.Status)
			case rerr != nil:
				probeErrs = append(probeErrs, rerr.Error())
			}
			mu.Unlock()
			select {
			case <-stopProbes:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	// Twenty saves at once, from alice's portal session.
	type answer struct {
		status     int
		retryAfter string
		body       apiError
		raw        string
		err        error
		took       time.Duration
	}
	client := &http.Client{Jar: alice.Jar, Timeout: 2 * time.Minute, Transport: &http.Transport{MaxConnsPerHost: saves}}
	defer client.CloseIdleConnections()
	answers := make([]answer, saves)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range saves {
		wg.Go(func() {
			a := &answers[i]
			req, _ := http.NewRequest(http.MethodPost, g.base+"/api/edit-sessions/"+s.ID+"/save", nil)
			for k, v := range map[string]string{"Accept": "application/json", "Origin": g.base, "X-CSRF-Token": am.CSRFToken} {
				req.Header.Set(k, v)
			}
			t0 := time.Now()
			resp, err := client.Do(req)
			a.took = time.Since(t0)
			if err != nil {
				a.err = err
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			a.status, a.retryAfter, a.raw = resp.StatusCode, resp.Header.Get("Retry-After"), string(raw)
			a.err = json.Unmarshal(raw, &a.body)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProbes)
	<-probesDone
	rssAfter, peak, err := rssBytes()
	if err != nil {
		t.Fatal(err)
	}

	failed, busy := 0, 0
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("save %d: %v (%d %q)", i, a.err, a.status, a.raw)
		case a.status == http.StatusUnprocessableEntity && a.body.Error != nil && a.body.Error.Code == "validation_failed":
			failed++
			named := false
			for _, p := range a.body.Problems {
				named = named || strings.Contains(p.Message, "too deeply nested or too complex to check")
			}
			if !named {
				t.Errorf("save %d: validation_failed without a too-complex problem: %+v", i, a.body.Problems)
			}
			t.Logf("save %d: %d after %v: %+v", i, a.status, a.took.Round(time.Millisecond), a.body.Problems)
		case a.status == http.StatusTooManyRequests && a.body.Error != nil && a.body.Error.Code == "too_busy":
			busy++
			if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 {
				t.Errorf("save %d: 429 with Retry-After %q", i, a.retryAfter)
			}
		default:
			t.Errorf("save %d: %d %q; want 422 validation_failed or 429 too_busy", i, a.status, a.raw)
		}
	}
	if failed == 0 {
		t.Errorf("no save was checked (all %d too busy)", busy)
	}

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d saves in %v: %d validation_failed, %d too_busy; /healthz: %d probes, slowest %v; RSS before %d MB, polled max %d MB, after %d MB, peak %d MB (reset: %v)",
		saves, elapsed.Round(time.Millisecond), failed, busy, probes, slowest.Round(time.Millisecond),
		rssBefore/1e6, rssPolled/1e6, rssAfter/1e6, peak/1e6, resetPeak)
	if len(probeErrs) > 0 {
		t.Errorf("/healthz failed %d times: %q", len(probeErrs), probeErrs)
	}
	if probes < 10 {
		t.Errorf("only %d /healthz probes in %v", probes, elapsed)
	}
	if slowest >= healthzMax {
		t.Errorf("/healthz took %v at worst; the bound is %v", slowest, healthzMax)
	}
	if resetPeak && peak >= rssMax || rssPolled >= rssMax {
		t.Errorf("RSS reached %d bytes (peak %d); the bound is %d", rssPolled, peak, rssMax)
	}

	// Every checker has been waited for.
	deadline := time.Now().Add(5 * time.Second)
	for left := pythonChildren(); len(left) > 0; left = pythonChildren() {
		if time.Now().After(deadline) {
			t.Errorf("checkers left running: %v", left)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}
