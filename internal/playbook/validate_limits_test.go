package playbook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/fault"
)

const readmeWithFlow = "```mermaid\nflowchart TD\n  A-->B\n```\n"

// hostileBundle is playbook.py (and README.md) only.
func hostileBundle(code string) *Bundle {
	return &Bundle{Files: []File{
		{Path: "playbook.py", Content: []byte(code)},
		{Path: "README.md", Content: []byte(readmeWithFlow)},
	}}
}

// mib builds about 1 MiB of source: head, open repeated, close repeated
// as often, tail, then a good run().
func mib(head, open, close, tail string) string {
	const size = 1 << 20
	n := (size - len(head) - len(tail) - len(minimalRun) - 1) / (len(open) + len(close))
	return head + strings.Repeat(open, n) + strings.Repeat(close, n) + tail + "\n" + minimalRun
}

// TestValidateHostileFiles: 1 MiB files built to blow up Python's parser
// come back as one clear error on the file, within the checker's limits,
// whatever the Python (3.10 crashes on some of them; later ones raise).
func TestValidateHostileFiles(t *testing.T) {
	tests := []struct {
		name, code string
		// oneOf: the message holds one of these (Python versions differ).
		oneOf []string
		line  int
		// cpu: a CPU limit of its own (the file takes seconds of it).
		cpu time.Duration
	}{
		{name: "nested parentheses", code: mib("x = ", "(", ")", ""),
			oneOf: []string{"too many nested parentheses (limit: the nesting Python's parser accepts)"}, line: 1},
		{name: "nested brackets", code: mib("x = ", "[", "]", ""),
			oneOf: []string{"too many nested parentheses"}, line: 1},
		{name: "nested dict literals", code: mib("x = ", "{1: ", "}", ""),
			oneOf: []string{"too many nested parentheses"}, line: 1},
		{name: "nested f-strings", code: mib("x = ", "f'{", "}'", ""),
			oneOf: []string{"too many nested parentheses", "too many nested f-strings", "f-string: expressions nested too deeply"}, line: 1},
		{name: "deep indentation", code: func() string {
			var b strings.Builder
			for i := 0; b.Len() < 1<<20-len(minimalRun)-4096; i++ {
				b.WriteString(strings.Repeat(" ", i) + "if x:\n")
			}
			return b.String() + minimalRun
		}(), oneOf: []string{"too many levels of indentation"}},
		{name: "expression chain 1+1+1", code: mib("x = 1", "+1", "", ""),
			oneOf: []string{"maximum recursion depth exceeded", "(limit: Python's recursion limit)", "Python's parser crashed on it", "needs more memory than allowed (limit 256 MiB)"}},
		{name: "attribute chain", code: mib("x = a", ".b", "", ""),
			oneOf: []string{"(limit: Python's recursion limit)", "Python's parser crashed on it", "needs more memory than allowed"}},
		{name: "unary minus chain", code: mib("x = ", "-", "", "1"),
			oneOf: []string{"(limit: the nesting Python's parser accepts)", "(limit: Python's recursion limit)"}},
		{name: "giant dict literal", code: mib("x = {", "1: 1, ", "", "}"),
			oneOf: []string{"parsing it needs more memory than allowed (limit 256 MiB)"}},
		{name: "giant tuple", code: mib("x = 1", ", 1", "", ""),
			oneOf: []string{"parsing it needs more memory than allowed (limit 256 MiB)"}},
		{name: "f-string of many fields", code: mib("x = f'", "{x}", "", "'"), cpu: time.Second,
			oneOf: []string{"parsing it takes more CPU time than allowed (limit 1s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := len(tt.code); n < 1<<20-8192 || n > 1<<20 {
				t.Fatalf("the file has %d bytes; want about 1 MiB", n)
			}
			v := validatorCopy(t)
			if tt.cpu > 0 {
				v.CPULimit = tt.cpu
			}
			start := time.Now()
			rep := validate(t, v, context.Background(), hostileBundle(tt.code))
			t.Logf("%v: %+v", time.Since(start).Round(time.Millisecond), rep.Errors)
			if len(rep.Errors) != 1 {
				t.Fatalf("errors %+v; want one", rep.Errors)
			}
			p := rep.Errors[0]
			if p.Path != "playbook.py" || !strings.HasPrefix(p.Message, "the file is too deeply nested or too complex to check: ") {
				t.Fatalf("error %+v", p)
			}
			if tt.line > 0 && p.Line != tt.line {
				t.Errorf("line %d; want %d", p.Line, tt.line)
			}
			found := false
			for _, want := range tt.oneOf {
				found = found || strings.Contains(p.Message, want)
			}
			if !found {
				t.Errorf("message %q; want one of %q", p.Message, tt.oneOf)
			}
		})
	}
}

// TestValidateOddFiles: files that are not hostile but odd get their
// ordinary answer.
func TestValidateOddFiles(t *testing.T) {
	v := testValidator(t)
	for name, tt := range map[string]struct{ code, want string }{
		"300 parentheses":      {"x = " + strings.Repeat("(", 300) + strings.Repeat(")", 300) + "\n" + minimalRun, "too many nested parentheses"},
		"not UTF-8 after all":  {"x = '\xff'\n" + minimalRun, ""},
		"a huge module name":   {"import " + strings.Repeat("a", 1<<19) + "\n" + minimalRun, "which is neither in the standard library"},
		"a huge integer":       {"x = " + strings.Repeat("9", 1<<19) + "\n" + minimalRun, "syntax error"},
		"1 MiB of one comment": {"#" + strings.Repeat("x", 1<<20-100) + "\n" + minimalRun, ""},
	} {
		t.Run(name, func(t *testing.T) {
			rep := validate(t, v, context.Background(), hostileBundle(tt.code))
			for _, p := range rep.Errors {
				if p.Path != "playbook.py" || len(p.Message) > maxAnswerMessage {
					t.Errorf("error %.300s", fmt.Sprintf("%+v", p))
				}
			}
			if tt.want != "" && (len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Message, tt.want)) {
				t.Errorf("errors %.500s; want one with %q", fmt.Sprintf("%+v", rep.Errors), tt.want)
			}
		})
	}
}

// checker is a stand-in for checker.py: it reads its input, then runs
// body.
func checker(body string) string {
	return "import json, os, signal, sys, time\nreq = json.loads(sys.stdin.buffer.read())\n" + body +
		"\nsys.stdout.write(json.dumps({'errors': [], 'warnings': []}))\n"
}

// TestValidateCheckerStopped: each way a checker ends badly is one
// sentence on the file it was checking.
func TestValidateCheckerStopped(t *testing.T) {
	tests := []struct {
		name, source string
		set          func(*Validator)
		want         Problem
	}{
		{name: "wall-clock timeout", source: checker("time.sleep(60)"), set: func(v *Validator) { v.Timeout = 300 * time.Millisecond },
			want: Problem{Path: "playbook.py", Message: "the file is too deeply nested or too complex to check: checking it took longer than allowed (limit 300ms)"}},
		{name: "CPU limit", source: checker("while True: pass"), set: func(v *Validator) { v.CPULimit = time.Second },
			want: Problem{Path: "playbook.py", Message: "the file is too deeply nested or too complex to check: parsing it takes more CPU time than allowed (limit 1s)"}},
		{name: "CPU limit, on the file it was checking", source: checker("sys.stderr.write('checking: \"playbook.py\"\\nchecking: \"helpers/deep.py\"\\n'); sys.stderr.flush(); os.kill(os.getpid(), signal.SIGXCPU)"),
			want: Problem{Path: "helpers/deep.py", Message: "parsing it takes more CPU time than allowed (limit 5s)"}},
		{name: "a file it was not given is playbook.py", source: checker("sys.stderr.write('checking: \"../../etc/passwd\"\\n'); sys.stderr.flush(); os.kill(os.getpid(), signal.SIGXCPU)"),
			want: Problem{Path: "playbook.py", Message: "parsing it takes more CPU time than allowed"}},
		{name: "memory limit", source: checker("b = bytearray(1 << 30)"),
			want: Problem{Path: "playbook.py", Message: "the file is too deeply nested or too complex to check: parsing it needs more memory than allowed (limit 256 MiB)"}},
		{name: "memory limit configured", source: checker("b = bytearray(200 << 20)"), set: func(v *Validator) { v.MemoryLimit = 128 << 20 },
			want: Problem{Path: "playbook.py", Message: "parsing it needs more memory than allowed (limit 128 MiB)"}},
		{name: "recursion", source: checker("def f(): f()\nf()"),
			want: Problem{Path: "playbook.py", Message: "its code nests deeper than Python's parser can follow"}},
		{name: "crash", source: checker("os.kill(os.getpid(), signal.SIGSEGV)"),
			want: Problem{Path: "playbook.py", Message: "the file is too deeply nested or too complex to check: Python's parser crashed on it (segmentation fault)"}},
		{name: "another signal", source: checker("os.kill(os.getpid(), signal.SIGTERM)"),
			want: Problem{Path: "playbook.py", Message: "the checker was stopped (terminated)"}},
		{name: "failure", source: checker("raise ValueError('the checker is broken')"),
			want: Problem{Path: "playbook.py", Message: "could not be checked: the checker failed: ValueError: the checker is broken"}},
		{name: "answer too long", source: checker("sys.stdout.write('x' * (2 << 20))"),
			want: Problem{Path: "playbook.py", Message: "could not be checked: the checker's answer is too long"}},
		{name: "answer not JSON", source: "import sys\nsys.stdin.buffer.read()\nprint('hello')\n",
			want: Problem{Path: "playbook.py", Message: "could not be checked: the checker's answer is not understood"}},
		{name: "checker does not read its input", source: "print('{\"errors\": [], \"warnings\": []}')",
			want: Problem{}},
	}
	b := withFiles(phishingBundle(t), map[string]string{"helpers/deep.py": "x = 1\n"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := validatorCopy(t)
			v.source = tt.source
			if tt.set != nil {
				tt.set(v)
			}
			rep := validate(t, v, context.Background(), b)
			if tt.want == (Problem{}) {
				matchProblems(t, "errors", rep.Errors, nil)
				return
			}
			tt.want.Line = -1
			matchProblems(t, "errors", rep.Errors, []Problem{tt.want})
		})
	}
}

// procStat is a process's /proc/<pid>/stat after its name.
func procStat(pid int) ([]string, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(raw)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:]), true
}

// TestValidateCheckerLimits reads the limits of a running checker, as the
// kernel holds them, before it is given the bundle.
func TestValidateCheckerLimits(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("limits are set on Linux")
	}
	v := validatorCopy(t)
	v.nice = checkerNice // NewValidator's
	var (
		limits, environ, cwd string
		stat                 []string
		pid                  int
	)
	v.onStart = func(p int) {
		pid = p
		dir := "/proc/" + strconv.Itoa(p)
		// On a loaded machine the first read can find the new process's
		// environment not yet readable (an empty file): read again briefly.
		for i := 0; i < 50 && environ == ""; i++ {
			if i > 0 {
				time.Sleep(2 * time.Millisecond)
			}
			l, _ := os.ReadFile(dir + "/limits")
			e, _ := os.ReadFile(dir + "/environ")
			limits, environ = string(l), string(e)
		}
		cwd, _ = os.Readlink(dir + "/cwd")
		stat, _ = procStat(p)
	}
	rep := validate(t, v, context.Background(), phishingBundle(t))
	if !rep.Passed() {
		t.Fatalf("report %+v", rep)
	}
	for _, want := range [][]string{
		{"Max address space", "268435456", "268435456", "bytes"},
		{"Max cpu time", "5", "6", "seconds"},
		{"Max processes", "0", "0", "processes"},
		{"Max file size", "0", "0", "bytes"},
		{"Max core file size", "0", "0", "bytes"},
		{"Max open files", "32", "32", "files"},
	} {
		found := false
		for _, line := range strings.Split(limits, "\n") {
			if rest, ok := strings.CutPrefix(line, want[0]); ok && strings.Join(strings.Fields(rest), " ") == strings.Join(want[1:], " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("limits lack %q:\n%s", want, limits)
		}
	}
	if environ != "LC_ALL=C.UTF-8\x00" {
		t.Errorf("environment %q", environ)
	}
	if cwd != "/" {
		t.Errorf("working directory %q", cwd)
	}
	// stat after the name: state ppid pgrp ... nice is field 19 (index 16).
	if len(stat) < 17 || stat[2] != strconv.Itoa(pid) || stat[16] != strconv.Itoa(checkerNice) {
		t.Errorf("stat %q: want its own process group %d and nice %d", stat, pid, checkerNice)
	}
}

// TestValidateKillsTheProcessGroup: a checker that has started another
// process takes it along when it is stopped.
func TestValidateKillsTheProcessGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process groups are checked through /proc")
	}
	v := validatorCopy(t)
	v.Timeout = 2 * time.Second
	// RLIMIT_NPROC stops the fork except for root.
	v.source = checker("try:\n    os.fork()\nexcept OSError:\n    pass\ntime.sleep(60)")
	var group int
	v.onExit = func(pid int) { group = pid }
	rep := validate(t, v, context.Background(), phishingBundle(t))
	matchProblems(t, "errors", rep.Errors, []Problem{{Path: "playbook.py", Line: -1, Message: "took longer than allowed (limit 2s)"}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := groupMembers(group)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v of the checker's group live on", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestValidateEndsTheProcessGroup: a process the checker started does
// not outlive it, even when the checker ends well.
func TestValidateEndsTheProcessGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process groups are checked through /proc")
	}
	v := validatorCopy(t)
	// The child closes its output so that the checker's answer is not
	// held up; it lingers, as anything forked here would, until killed.
	v.source = checker("try:\n    if os.fork() == 0:\n        os.close(1); os.close(2)\n        time.sleep(60)\nexcept OSError:\n    pass")
	var group int
	v.onExit = func(pid int) { group = pid }
	start := time.Now()
	rep := validate(t, v, context.Background(), phishingBundle(t))
	if !rep.Passed() {
		t.Fatalf("report %+v", rep.Errors)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v: the forked process held the checker's output", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for left := groupMembers(group); len(left) > 0; left = groupMembers(group) {
		if time.Now().After(deadline) {
			t.Fatalf("processes %v of the checker's group live on", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupMembers are the live (not zombie) processes of process group pgrp.
func groupMembers(pgrp int) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if st, ok := procStat(pid); ok && len(st) > 2 && st[0] != "Z" && st[2] == strconv.Itoa(pgrp) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// children counts this process's children.
func children() int {
	n := 0
	self := strconv.Itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if st, ok := procStat(pid); ok && len(st) > 1 && st[1] == self {
			n++
		}
	}
	return n
}

// counter counts the checkers running, through the hooks and through
// /proc, and keeps the peaks.
type counter struct {
	mu               sync.Mutex
	startedCond      *sync.Cond
	running, peak    int
	started          int
	sampleProcesses  bool
	procPeak         int
	processesSampled int
	stop, done       chan struct{}
}

func watch(v *Validator, sampleProcesses bool) *counter {
	c := &counter{stop: make(chan struct{}), done: make(chan struct{}), sampleProcesses: sampleProcesses}
	c.startedCond = sync.NewCond(&c.mu)
	v.onStart = func(int) {
		c.mu.Lock()
		c.running++
		c.started++
		c.peak = max(c.peak, c.running)
		c.startedCond.Broadcast()
		c.mu.Unlock()
	}
	v.onExit = func(int) {
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
	}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if c.sampleProcesses && runtime.GOOS == "linux" {
				n := children()
				c.mu.Lock()
				c.procPeak = max(c.procPeak, n)
				c.processesSampled++
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *counter) waitStarted(n int) {
	c.mu.Lock()
	for c.started < n {
		c.startedCond.Wait()
	}
	c.mu.Unlock()
}

func (c *counter) close() {
	close(c.stop)
	<-c.done
}

// TestValidateConcurrencyLimit: N+k checks at once run at most N checkers
// at a time; the others wait for a free one and then pass.
func TestValidateConcurrencyLimit(t *testing.T) {
	v := validatorCopy(t)
	v.MaxConcurrent = 2
	v.QueueWait = time.Minute
	v.source = checker("time.sleep(0.5)")
	c := watch(v, true)
	const checks = 2 + 5
	var wg sync.WaitGroup
	errs := make([]error, checks)
	reps := make([]Report, checks)
	b := phishingBundle(t)
	for i := range checks {
		wg.Go(func() { reps[i], errs[i] = v.Validate(context.Background(), b) })
	}
	wg.Wait()
	c.close()
	for i := range checks {
		if errs[i] != nil || !reps[i].Passed() {
			t.Errorf("check %d: %v %+v", i, errs[i], reps[i].Errors)
		}
	}
	if c.peak != 2 || c.started != checks {
		t.Errorf("%d checkers at most, %d in all; want 2 and %d", c.peak, c.started, checks)
	}
	if c.procPeak > 2 {
		t.Errorf("%d child processes at once; want at most 2", c.procPeak)
	}
	t.Logf("peak %d checkers; %d child processes at most in %d samples", c.peak, c.procPeak, c.processesSampled)
}

// TestValidateTooBusy: with every checker busy for all of QueueWait, a
// check is refused as too_busy with a Retry-After, and runs no checker.
func TestValidateTooBusy(t *testing.T) {
	v := validatorCopy(t)
	v.MaxConcurrent = 2
	v.QueueWait = 200 * time.Millisecond
	v.source = checker("time.sleep(60)")
	c := watch(v, false)
	defer c.close()
	b := phishingBundle(t)

	// Two checks hold both checkers until they are cancelled.
	holdCtx, release := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	held := make([]Report, 2)
	for i := range held {
		wg.Go(func() { held[i], _ = v.Validate(holdCtx, b) })
	}
	c.waitStarted(2)

	const extra = 3
	var ewg sync.WaitGroup
	errs := make([]error, extra)
	took := make([]time.Duration, extra)
	for i := range extra {
		ewg.Go(func() {
			start := time.Now()
			_, errs[i] = v.Validate(context.Background(), b)
			took[i] = time.Since(start)
		})
	}
	ewg.Wait()
	for i, err := range errs {
		f, ok := fault.As(err)
		if !ok || f.Kind != fault.Busy || f.Code != "too_busy" || f.RetryAfter < time.Second || !strings.Contains(f.Message, "Try again") {
			t.Errorf("extra check %d: %v; want a Busy too_busy fault with RetryAfter", i, err)
		}
		if took[i] < v.QueueWait {
			t.Errorf("extra check %d refused after %v, before QueueWait", i, took[i])
		}
	}
	// A check whose caller gives up while it waits is cancelled, not busy.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	rep, err := v.Validate(ctx, b)
	cancel()
	if err != nil {
		t.Errorf("cancelled while waiting: %v", err)
	}
	matchProblems(t, "errors", rep.Errors, []Problem{{Path: "playbook.py", Line: -1, Message: "could not be checked: validation was cancelled"}})

	release()
	wg.Wait()
	for _, r := range held {
		matchProblems(t, "errors", r.Errors, []Problem{{Path: "playbook.py", Line: -1, Message: "validation was cancelled"}})
	}
	c.mu.Lock()
	started, running := c.started, c.running
	c.mu.Unlock()
	if started != 2 || running != 0 {
		t.Errorf("%d checkers started, %d running; want 2 and 0", started, running)
	}
	// And once they are free, checks run again.
	v.source = checker("")
	if rep := validate(t, v, context.Background(), b); !rep.Passed() {
		t.Errorf("after the busy spell: %+v", rep.Errors)
	}
}

// TestValidateDefaults: a Validator's zero fields take the defaults.
func TestValidateDefaults(t *testing.T) {
	var v Validator
	if v.timeout() != 10*time.Second || v.memoryLimit() != 256<<20 || v.cpuSeconds() != 5 || v.queueWait() != 2*time.Second {
		t.Errorf("defaults %v %v %v %v", v.timeout(), v.memoryLimit(), v.cpuSeconds(), v.queueWait())
	}
	if n := v.maxConcurrent(); n < 1 || n > 4 || n > runtime.GOMAXPROCS(0) {
		t.Errorf("default concurrency %d", n)
	}
	v.CPULimit = 1500 * time.Millisecond
	if v.cpuSeconds() != 2 {
		t.Errorf("1.5s of CPU is %d s", v.cpuSeconds())
	}
	rep, err := v.Validate(context.Background(), hostileBundle(minimalRun))
	if err != nil {
		t.Fatal(err)
	}
	matchProblems(t, "errors", rep.Errors, []Problem{{Path: "playbook.py", Line: -1, Message: "could not be checked: the validator was not made by NewValidator"}})
}

func TestTailBufferAndLastChecking(t *testing.T) {
	// io.Copy, as os/exec uses it, must go through the limit.
	lb := &limitedBuffer{max: 4}
	if n, err := io.Copy(lb, strings.NewReader("123456")); err != nil || n != 6 || lb.String() != "1234" || !lb.truncated {
		t.Errorf("limitedBuffer after io.Copy: %d %v %q %v", n, err, lb.String(), lb.truncated)
	}
	b := &tailBuffer{max: 8}
	b.Write([]byte("abc"))
	b.Write([]byte("defgh"))
	b.Write([]byte("ij"))
	if b.String() != "cdefghij" {
		t.Errorf("tail %q", b.String())
	}
	b.Write([]byte("0123456789"))
	if b.String() != "23456789" {
		t.Errorf("tail %q", b.String())
	}
	for in, want := range map[string]string{
		"":                     "",
		"checking: \"a.py\"\n": "a.py",
		"checking: \"a.py\"\nchecking: \"b/c.py\"\nTraceback\nMemoryError\n": "b/c.py",
		"checking: \"a.py":           "",
		"checking: \"\\u00e9.py\"\n": "é.py",
		"no such line\n":             "",
		"ecking: \"x.py\"\n":         "",
	} {
		if got := lastChecking(in); got != want {
			t.Errorf("lastChecking(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestParseCheckerAnswer(t *testing.T) {
	sent := map[string]bool{"playbook.py": true, "lib/x.py": true}
	lim := checkerLimitsText{memory: "256 MiB", cpu: "5s", timeout: "10s"}
	errs, warns, err := parseCheckerAnswer([]byte(`{"errors": [
		{"path": "lib/x.py", "line": 3, "message": "syntax error: invalid syntax"},
		{"path": "/etc/passwd", "line": -4, "message": "m"},
		{"path": "playbook.py", "line": 1, "message": "too many nested parentheses", "reason": "nesting"},
		{"path": "playbook.py", "message": "MemoryError", "reason": "memory"},
		{"path": "playbook.py", "message": "maximum recursion depth exceeded", "reason": "recursion"},
		{"path": "playbook.py", "message": "", "reason": "from the future"}],
		"warnings": [{"path": "lib/x.py", "line": 2, "message": "invalid escape sequence"}]}`), sent, lim)
	if err != nil {
		t.Fatal(err)
	}
	want := []Problem{
		{Path: "lib/x.py", Line: 3, Message: "syntax error: invalid syntax"},
		{Path: "playbook.py", Line: 0, Message: "m"},
		{Path: "playbook.py", Line: 1, Message: "the file is too deeply nested or too complex to check: too many nested parentheses (limit: the nesting Python's parser accepts)"},
		{Path: "playbook.py", Message: "the file is too deeply nested or too complex to check: parsing it needs more memory than allowed (limit 256 MiB)"},
		{Path: "playbook.py", Message: "the file is too deeply nested or too complex to check: maximum recursion depth exceeded (limit: Python's recursion limit)"},
		{Path: "playbook.py", Message: "the file is too deeply nested or too complex to check: the checker gave up"},
	}
	if len(errs) != len(want) {
		t.Fatalf("errors %+v", errs)
	}
	for i := range want {
		if errs[i] != want[i] {
			t.Errorf("error %d = %+v; want %+v", i, errs[i], want[i])
		}
	}
	if len(warns) != 1 || warns[0].Line != 2 {
		t.Errorf("warnings %+v", warns)
	}
	for _, bad := range []string{``, `null`, `[]`, `{"errors": []}`, `{"errors": {}, "warnings": []}`, `{"errors": [], "warnings": [1]}`} {
		if _, _, err := parseCheckerAnswer([]byte(bad), sent, lim); err == nil {
			t.Errorf("%q was understood", bad)
		}
	}
	many, _ := json.Marshal(map[string]any{"errors": make([]checkerProblem, 2000), "warnings": []any{}})
	if errs, _, err := parseCheckerAnswer(many, sent, lim); err != nil || len(errs) != maxAnswerProblems {
		t.Errorf("2,000 errors: %d kept, %v", len(errs), err)
	}
}

// FuzzParseCheckerAnswer: whatever the checker writes, the problems are
// on files it was given (or playbook.py), with lines >= 0 and bounded
// messages, at most maxAnswerProblems of each sort.
func FuzzParseCheckerAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"errors": [], "warnings": []}`,
		`{"errors": [{"path": "playbook.py", "line": 3, "message": "syntax error: expected ':'"}], "warnings": []}`,
		`{"errors": [{"path": "playbook.py", "line": 1, "message": "too many nested parentheses", "reason": "nesting"}], "warnings": []}`,
		`{"errors": [{"path": "x.py", "line": 0, "message": "", "reason": "memory"}], "warnings": [{"path": "../x", "line": -1, "message": "w"}]}`,
		`{"errors": [{"path": "playbook.py", "line": 9223372036854775807, "message": "\u00e9\ud800", "reason": "recursion"}], "warnings": []}`,
		`{"errors": [{"path": 1}], "warnings": null}`,
		`{"errors": [{"reason": "nesting", "message": "` + strings.Repeat("é", 700) + `"}], "warnings": []}`,
		`not json`,
	} {
		f.Add([]byte(seed))
	}
	sent := map[string]bool{"playbook.py": true, "helpers.py": true}
	lim := checkerLimitsText{memory: "256 MiB", cpu: "5s", timeout: "10s"}
	f.Fuzz(func(t *testing.T, out []byte) {
		errs, warns, err := parseCheckerAnswer(out, sent, lim)
		if err != nil {
			if errs != nil || warns != nil {
				t.Fatal("problems with an error")
			}
			return
		}
		if errs == nil || warns == nil || len(errs) > maxAnswerProblems || len(warns) > maxAnswerProblems {
			t.Fatalf("%d errors, %d warnings", len(errs), len(warns))
		}
		for _, p := range append(errs, warns...) {
			if !sent[p.Path] || p.Line < 0 || len(p.Message) > maxAnswerMessage+len(tooComplexPrefix)+100 {
				t.Fatalf("problem %+v", p)
			}
		}
	})
}

// TestCollectAndValidate: the bundle is collected only once a checker is
// free; a refused or cancelled check collects nothing; collect's error
// is returned as it is.
func TestCollectAndValidate(t *testing.T) {
	v := validatorCopy(t)
	v.MaxConcurrent = 1
	v.QueueWait = 200 * time.Millisecond
	good := phishingBundle(t)
	collected := 0
	collect := func() (*Bundle, error) { collected++; return good, nil }

	b, rep, err := v.CollectAndValidate(context.Background(), collect)
	if err != nil || b != good || !rep.Passed() || collected != 1 {
		t.Fatalf("CollectAndValidate: %v %v %+v, %d collections", b == good, err, rep.Errors, collected)
	}
	refusal := fault.New(fault.Rejected, "validation_failed", "The folder is empty.")
	if _, _, err := v.CollectAndValidate(context.Background(), func() (*Bundle, error) { return nil, refusal }); err != refusal {
		t.Errorf("collect's error came back as %v", err)
	}

	// One check holds the only checker.
	holder := *v
	holder.source = checker("time.sleep(60)")
	c := watch(&holder, false)
	defer c.close()
	holdCtx, release := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); holder.Validate(holdCtx, good) }()
	c.waitStarted(1)

	collected = 0
	_, _, err = v.CollectAndValidate(context.Background(), collect)
	if f, ok := fault.As(err); !ok || f.Kind != fault.Busy || f.Code != "too_busy" || collected != 0 {
		t.Errorf("while busy: %v, %d collections; want too_busy and none", err, collected)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	b, rep, err = v.CollectAndValidate(ctx, collect)
	cancel()
	if err != nil || b == nil || collected != 0 {
		t.Errorf("cancelled while waiting: %v, %v, %d collections", b, err, collected)
	}
	matchProblems(t, "errors", rep.Errors, []Problem{{Path: "playbook.py", Line: -1, Message: "could not be checked: validation was cancelled"}})
	release()
	<-done
	if _, rep, err := v.CollectAndValidate(context.Background(), collect); err != nil || !rep.Passed() || collected != 1 {
		t.Errorf("once free: %v %+v, %d collections", err, rep.Errors, collected)
	}
}
