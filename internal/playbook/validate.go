package playbook

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/playbookstudio/gateway/internal/fault"
)

// The bundle's well-known files.
const (
	MainFile     = "playbook.py"
	ReadmeFile   = "README.md"
	ManifestFile = "manifest.json"
	// Entrypoint is what manifest.json must name.
	Entrypoint = "playbook.py:run"
	// MaxPlaybookLines is the product's limit on playbook.py's lines.
	MaxPlaybookLines = 5000
	// SDKModule is the runtime's ctx stub that the agent places in
	// workspaces; playbooks may import it.
	SDKModule = "playbook_sdk"
)

//go:embed checker.py
var checkerSource string

// Defaults of the Validator's limits.
const (
	// DefaultCheckTimeout bounds one run of the checker, wall clock.
	DefaultCheckTimeout = 10 * time.Second
	// DefaultCheckMemory is the checker's address space: a 5,000-line
	// playbook parses in a tenth of it; a file built to blow up the
	// parser meets it within a second or two.
	DefaultCheckMemory = 256 << 20
	// DefaultCheckCPU is the checker's CPU time.
	DefaultCheckCPU = 5 * time.Second
	// DefaultQueueWait is how long a check waits for a free checker
	// before it is refused as too_busy.
	DefaultQueueWait = 2 * time.Second
	// maxCheckers caps the default number of checkers at once (one per
	// CPU): each may take DefaultCheckMemory.
	maxCheckers = 4
	// maxCheckerOutput bounds what is read of the checker's answer; it
	// reports at most 500 errors and 500 warnings of at most 400
	// characters each (checker.py).
	maxCheckerOutput = 1 << 20
	// maxCheckerStderr is the tail of its standard error that is kept.
	maxCheckerStderr = 8 << 10
	// checkerNice is the checker's scheduling priority (19 is the
	// lowest), below the gateway's own.
	checkerNice = 10
)

// Validator checks a bundle without ever running it: the Python part
// (checker.py) only parses the code with ast, in a process of its own with
// limits on its memory, CPU time, wall-clock time and processes, at most
// MaxConcurrent at once. It is safe for concurrent use once built; set
// its exported fields before the first Validate. A zero field takes its
// default.
type Validator struct {
	// MaxLines bounds playbook.py's lines (MaxPlaybookLines by default).
	MaxLines int
	// Timeout bounds one run of the checker, wall clock
	// (DefaultCheckTimeout).
	Timeout time.Duration
	// MemoryLimit is the checker's address space in bytes
	// (DefaultCheckMemory).
	MemoryLimit int64
	// CPULimit is the checker's CPU time, in whole seconds, rounded up
	// (DefaultCheckCPU).
	CPULimit time.Duration
	// MaxConcurrent is the number of checkers that run at once
	// (GOMAXPROCS, at most 4).
	MaxConcurrent int
	// QueueWait is how long a check waits for a free checker before
	// Validate refuses it as too_busy (DefaultQueueWait).
	QueueWait time.Duration

	python string          // the interpreter itself, shims resolved
	stdlib map[string]bool // sys.stdlib_module_names of that interpreter
	slots  *gate           // the checkers running; shared by copies
	// source is the checker's program (checkerSource; tests put others).
	source string
	// nice is the checker's scheduling priority (checkerNice; tests that
	// assert which limit a file meets run it at the gateway's own, so
	// that a loaded machine does not turn CPU limits into timeouts).
	nice int
	// onStart and onExit, when set, learn each checker's pid once its
	// limits hold and once it has been waited for (tests count them).
	onStart, onExit func(pid int)
}

func (v *Validator) timeout() time.Duration { return cmp.Or(v.Timeout, DefaultCheckTimeout) }

func (v *Validator) memoryLimit() int64 { return cmp.Or(v.MemoryLimit, DefaultCheckMemory) }

func (v *Validator) queueWait() time.Duration { return cmp.Or(v.QueueWait, DefaultQueueWait) }

// cpuSeconds is CPULimit in whole seconds, at least 1.
func (v *Validator) cpuSeconds() int64 {
	d := cmp.Or(v.CPULimit, DefaultCheckCPU)
	return max(1, int64((d+time.Second-1)/time.Second))
}

func (v *Validator) maxConcurrent() int {
	if v.MaxConcurrent > 0 {
		return v.MaxConcurrent
	}
	return max(1, min(runtime.GOMAXPROCS(0), maxCheckers))
}

// NewValidator checks the Python interpreter (python, "python3" when
// empty; it must be 3.10 or newer, like the workspaces') and learns its
// standard library's modules from sys.stdlib_module_names.
func NewValidator(python string) (*Validator, error) {
	if python == "" {
		python = "python3"
	}
	bin, err := exec.LookPath(python)
	if err != nil {
		return nil, fmt.Errorf("playbook: validation needs Python 3.10 or newer, and %q was not found: %w", python, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The probe runs with the gateway's environment so that launchers such
	// as pyenv shims work; it reports the real executable, which the
	// checker then runs with a clean environment.
	const probe = `import sys, json; print(json.dumps({"version": list(sys.version_info[:2]), "executable": sys.executable, "stdlib": sorted(getattr(sys, "stdlib_module_names", ()))}))`
	cmd := exec.CommandContext(ctx, bin, "-I", "-S", "-c", probe)
	var stderr limitedBuffer
	stderr.max = 4 << 10
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("playbook: running %s to learn its standard library: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	var info struct {
		Version    []int    `json:"version"`
		Executable string   `json:"executable"`
		Stdlib     []string `json:"stdlib"`
	}
	if err := json.Unmarshal(out, &info); err != nil || len(info.Version) != 2 {
		return nil, fmt.Errorf("playbook: %s did not answer as Python 3.10 or newer would (%q)", bin, bytes.TrimSpace(out))
	}
	if info.Version[0] != 3 || info.Version[1] < 10 || len(info.Stdlib) == 0 {
		return nil, fmt.Errorf("playbook: %s is Python %d.%d; validation needs Python 3.10 or newer (for sys.stdlib_module_names)",
			bin, info.Version[0], info.Version[1])
	}
	v := &Validator{
		MaxLines:    MaxPlaybookLines,
		Timeout:     DefaultCheckTimeout,
		MemoryLimit: DefaultCheckMemory,
		CPULimit:    DefaultCheckCPU,
		QueueWait:   DefaultQueueWait,
		python:      bin,
		stdlib:      make(map[string]bool, len(info.Stdlib)),
		slots:       newGate(),
		source:      checkerSource,
		nice:        checkerNice,
	}
	if info.Executable != "" {
		v.python = info.Executable
	}
	for _, m := range info.Stdlib {
		v.stdlib[m] = true
	}
	return v, nil
}

// Validate checks a bundle: playbook.py (present, at most MaxLines lines,
// parses, defines def run(alert, ctx)), every .py file (parses, imports
// only the standard library, the bundle's own modules and playbook_sdk),
// manifest.json when present, README.md (present; a warning without a
// mermaid block). Problems are sorted by path and line. A file the checker
// cannot get through within its limits (too deeply nested, too complex,
// too slow) is an error on that file; so is a failure of the checker
// itself. The error is a *fault.Error of kind Busy (too_busy) when
// MaxConcurrent checkers were busy for all of QueueWait; nothing else.
func (v *Validator) Validate(ctx context.Context, b *Bundle) (Report, error) {
	return v.validate(ctx, b, false)
}

// CollectAndValidate waits, as Validate does, for a free checker, and
// only then calls collect and validates the bundle it returns, so that
// checks waiting for a checker hold no bundle and a refused one (the Busy
// fault, as Validate's) has read nothing. An error of collect is returned
// as it is. Cancelled while waiting, it returns an empty bundle and a
// report that says so.
func (v *Validator) CollectAndValidate(ctx context.Context, collect func() (*Bundle, error)) (*Bundle, Report, error) {
	if v.slots != nil {
		switch err := v.slots.acquire(ctx, v.maxConcurrent(), v.queueWait()); {
		case errors.Is(err, errGateFull):
			return nil, Report{}, v.tooBusy()
		case err != nil:
			return &Bundle{}, Report{Errors: []Problem{{Path: MainFile, Message: "could not be checked: validation was cancelled"}}, Warnings: []Problem{}}, nil
		}
		defer v.slots.release()
	}
	b, err := collect()
	if err != nil {
		return nil, Report{}, err
	}
	rep, err := v.validate(ctx, b, true)
	return b, rep, err
}

// validate is Validate; held: the caller holds a checker already.
func (v *Validator) validate(ctx context.Context, b *Bundle, held bool) (Report, error) {
	rep := Report{Errors: []Problem{}, Warnings: []Problem{}}
	if b == nil {
		b = &Bundle{}
	}
	if len(b.Skipped) > 0 {
		rep.Skipped = slices.Clone(b.Skipped)
	}
	files := make(map[string][]byte, len(b.Files))
	for _, f := range b.Files {
		files[f.Path] = f.Content
	}

	if src, ok := files[MainFile]; !ok {
		rep.Errors = append(rep.Errors, Problem{Path: MainFile,
			Message: "is missing; the playbook's code must be in playbook.py at the top of the folder"})
	} else {
		rep.Lines = countLines(src)
		if maxLines := cmp.Or(v.MaxLines, MaxPlaybookLines); rep.Lines > maxLines {
			rep.Errors = append(rep.Errors, Problem{Path: MainFile, Message: fmt.Sprintf(
				"has %s lines; a playbook may have at most %s lines", formatCount(rep.Lines), formatCount(maxLines))})
		}
	}

	errs, warns, err := v.checkPython(ctx, b, held)
	if err != nil {
		return Report{}, err
	}
	rep.Errors = append(rep.Errors, errs...)
	rep.Warnings = append(rep.Warnings, warns...)

	if src, ok := files[ManifestFile]; ok {
		rep.Errors = append(rep.Errors, checkManifest(src)...)
	}

	if src, ok := files[ReadmeFile]; !ok {
		rep.Errors = append(rep.Errors, Problem{Path: ReadmeFile,
			Message: "is missing; document what the playbook does in README.md, with a mermaid flowchart"})
	} else if mermaid, found := firstMermaid(string(src)); !found {
		rep.Warnings = append(rep.Warnings, Problem{Path: ReadmeFile,
			Message: "has no ```mermaid block; add a flowchart of what the playbook does"})
	} else if strings.TrimSpace(mermaid) == "" {
		rep.Warnings = append(rep.Warnings, Problem{Path: ReadmeFile, Message: "its ```mermaid block is empty"})
	}

	sortProblems(rep.Errors)
	sortProblems(rep.Warnings)
	return rep, nil
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Line, b.Line))
	})
}

// checkPython runs checker.py on the bundle's .py files, once a checker
// is free (held: the caller holds one). Its only error is the Busy fault.
func (v *Validator) checkPython(ctx context.Context, b *Bundle, held bool) (errs, warns []Problem, err error) {
	type pyFile struct {
		Path   string `json:"path"`
		Source string `json:"source"`
	}
	req := struct {
		Files   []pyFile `json:"files"`
		Main    string   `json:"main"`
		Allowed []string `json:"allowed"`
	}{Main: MainFile}
	allowed := map[string]bool{SDKModule: true}
	for m := range v.stdlib {
		allowed[m] = true
	}
	sent := map[string]bool{}
	for _, f := range b.Files {
		if !strings.HasSuffix(f.Path, ".py") {
			continue
		}
		sent[f.Path] = true
		// The bundle's own modules: helpers.py is "helpers"; pkg/mod.py
		// makes "pkg" importable (a package or a namespace package).
		top, _, nested := strings.Cut(f.Path, "/")
		if !nested {
			top = strings.TrimSuffix(top, ".py")
		}
		allowed[top] = true
	}
	if len(sent) == 0 {
		return nil, nil, nil
	}
	failed := func(msg string) ([]Problem, []Problem, error) {
		return []Problem{{Path: MainFile, Message: "could not be checked: " + msg}}, nil, nil
	}

	if v.slots == nil {
		return failed("the validator was not made by NewValidator")
	}
	if !held {
		switch err := v.slots.acquire(ctx, v.maxConcurrent(), v.queueWait()); {
		case errors.Is(err, errGateFull):
			return nil, nil, v.tooBusy()
		case err != nil:
			return failed("validation was cancelled")
		}
		defer v.slots.release()
	}

	// The request is built only now: waiting checks hold their bundle,
	// not a second copy of it.
	for _, f := range b.Files {
		if sent[f.Path] {
			req.Files = append(req.Files, pyFile{Path: f.Path, Source: string(f.Content)})
		}
	}
	for m := range allowed {
		req.Allowed = append(req.Allowed, m)
	}
	slices.Sort(req.Allowed)
	input, err := json.Marshal(req)
	req.Files = nil
	if err != nil {
		return failed(err.Error())
	}

	run := v.runChecker(ctx, input)
	lim := v.limitsText()
	// The file it was on when it stopped, else playbook.py.
	file := run.checking
	if !sent[file] {
		file = MainFile
	}
	tooComplex := func(why string) ([]Problem, []Problem, error) {
		return []Problem{{Path: file, Message: tooComplexPrefix + why}}, nil, nil
	}
	signal, sigName := stopSignal(run.state, run.cpuLimitReached)
	switch {
	case run.cancelled:
		return failed("validation was cancelled")
	case run.timedOut:
		return tooComplex(fmt.Sprintf("checking it took longer than allowed (limit %s)", lim.timeout))
	case run.startErr != nil:
		return failed("the checker did not start: " + run.startErr.Error())
	case signal == "cpu":
		return tooComplex(fmt.Sprintf("parsing it takes more CPU time than allowed (limit %s)", lim.cpu))
	case signal == "crash":
		return tooComplex(fmt.Sprintf("Python's parser crashed on it (%s)", sigName))
	case signal != "":
		return tooComplex(fmt.Sprintf("the checker was stopped (%s)", sigName))
	case run.waitErr != nil && strings.Contains(run.stderr, "MemoryError"):
		return tooComplex(fmt.Sprintf("parsing it needs more memory than allowed (limit %s)", lim.memory))
	case run.waitErr != nil && strings.Contains(run.stderr, "RecursionError"):
		return tooComplex("its code nests deeper than Python's parser can follow (limit: Python's recursion limit)")
	case run.waitErr != nil:
		msg := "the checker failed"
		if l := lastLine(run.stderr); l != "" && !strings.HasPrefix(l, checkingPrefix) {
			msg += ": " + truncateText(l, 300)
		}
		return failed(msg)
	case run.truncated:
		return failed("the checker's answer is too long")
	}
	errs, warns, err = parseCheckerAnswer(run.stdout, sent, lim)
	if err != nil {
		return failed("the checker's answer is not understood")
	}
	return errs, warns, nil
}

// tooComplexPrefix starts the message of a file the checker could not
// get through within its limits.
const tooComplexPrefix = "the file is too deeply nested or too complex to check: "

// tooBusy is the refusal of a check that found no free checker.
func (v *Validator) tooBusy() error {
	return &fault.Error{Kind: fault.Busy, Code: "too_busy",
		Message:    "Too many playbooks are being checked at the moment; nothing was checked. Try again in a few seconds.",
		RetryAfter: time.Duration(v.cpuSeconds()) * time.Second}
}

// checkerLimitsText are the limits as the messages name them.
type checkerLimitsText struct{ memory, cpu, timeout string }

func (v *Validator) limitsText() checkerLimitsText {
	return checkerLimitsText{
		memory:  formatBytes(v.memoryLimit()),
		cpu:     (time.Duration(v.cpuSeconds()) * time.Second).String(),
		timeout: v.timeout().String(),
	}
}

// checkerRun is what one run of the checker left.
type checkerRun struct {
	stdout    []byte
	truncated bool   // stdout was longer than maxCheckerOutput
	stderr    string // its tail
	checking  string // the file it said it was checking last
	state     *os.ProcessState
	startErr  error // it did not start, or its limits could not be set
	waitErr   error
	timedOut  bool // Timeout ran out
	cancelled bool // ctx ended
	// cpuLimitReached: it used at least its CPU time.
	cpuLimitReached bool
}

// runChecker runs the checker on input: with an empty environment but
// for the locale, in /, in a process group of its own, its limits set
// before input is written to it, its output bounded.
func (v *Validator) runChecker(ctx context.Context, input []byte) checkerRun {
	var run checkerRun
	tctx, cancel := context.WithTimeout(ctx, v.timeout())
	defer cancel()
	// -I: isolated (no PYTHON* variables, no user site, no script folder
	// on sys.path); -S: no site module. The bundle is data on stdin.
	cmd := exec.CommandContext(tctx, v.python, "-I", "-S", "-c", cmp.Or(v.source, checkerSource))
	cmd.Env = []string{"LC_ALL=C.UTF-8"}
	cmd.Dir = "/"
	isolate(cmd)
	stdout := &limitedBuffer{max: maxCheckerOutput}
	stderr := &tailBuffer{max: maxCheckerStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	ended := func() {
		run.cancelled = ctx.Err() != nil
		run.timedOut = !run.cancelled && tctx.Err() != nil
	}
	if err != nil {
		run.startErr = err
		ended()
		return run
	}
	pid := cmd.Process.Pid
	if err := v.limitChecker(pid); err != nil {
		_ = cmd.Cancel()
		_ = cmd.Wait()
		run.startErr = err
		if v.onExit != nil {
			v.onExit(pid)
		}
		return run
	}
	if v.onStart != nil {
		v.onStart(pid)
	}
	// A checker that stops reading (it was stopped, or failed) makes this
	// fail; Wait says why.
	_, _ = stdin.Write(input)
	_ = stdin.Close()
	endGroup(pid)
	run.waitErr = cmd.Wait()
	if v.onExit != nil {
		v.onExit(pid)
	}
	ended()
	run.state = cmd.ProcessState
	if run.state != nil {
		used := run.state.UserTime() + run.state.SystemTime()
		run.cpuLimitReached = used >= time.Duration(v.cpuSeconds())*time.Second
	}
	run.stdout, run.truncated = stdout.Bytes(), stdout.truncated
	run.stderr = stderr.String()
	run.checking = lastChecking(run.stderr)
	return run
}

// checkingPrefix starts the line checker.py writes to stderr before each
// file: "checking: " and the path as a JSON string.
const checkingPrefix = "checking: "

// lastChecking is the path of stderr's last "checking:" line, or "".
func lastChecking(stderr string) string {
	lines := strings.Split(stderr, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), checkingPrefix); ok {
			var p string
			if json.Unmarshal([]byte(rest), &p) != nil {
				return ""
			}
			return p
		}
	}
	return ""
}

// Most problems parseCheckerAnswer keeps of each sort, and the longest
// message (in bytes) it keeps.
const (
	maxAnswerProblems = 500
	maxAnswerMessage  = 1000
)

// parseCheckerAnswer reads checker.py's answer (see its header). sent are
// the paths of the files it was given: a problem on any other path is put
// on playbook.py. A problem with a reason (the file was too complex to
// check) gets the gateway's sentence around Python's words. At most
// maxAnswerProblems of each sort are kept, messages are cut to
// maxAnswerMessage bytes, lines are never negative.
func parseCheckerAnswer(out []byte, sent map[string]bool, lim checkerLimitsText) (errs, warns []Problem, err error) {
	var answer struct {
		Errors   []checkerProblem `json:"errors"`
		Warnings []checkerProblem `json:"warnings"`
	}
	if err := json.Unmarshal(out, &answer); err != nil {
		return nil, nil, err
	}
	if answer.Errors == nil || answer.Warnings == nil {
		return nil, nil, errors.New("the answer lacks errors or warnings")
	}
	conv := func(ps []checkerProblem) []Problem {
		out := make([]Problem, 0, min(len(ps), maxAnswerProblems))
		for _, p := range ps[:min(len(ps), maxAnswerProblems)] {
			out = append(out, p.problem(sent, lim))
		}
		return out
	}
	return conv(answer.Errors), conv(answer.Warnings), nil
}

// checkerProblem is a problem as checker.py reports it.
type checkerProblem struct {
	Path    string `json:"path"`
	Line    int    `json:"line"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

func (p checkerProblem) problem(sent map[string]bool, lim checkerLimitsText) Problem {
	out := Problem{Path: p.Path, Line: max(p.Line, 0), Message: truncateText(p.Message, maxAnswerMessage)}
	if !sent[out.Path] {
		out.Path = MainFile
	}
	detail := truncateText(strings.TrimSpace(p.Message), 300)
	switch p.Reason {
	case "":
	case "memory":
		out.Message = tooComplexPrefix + fmt.Sprintf("parsing it needs more memory than allowed (limit %s)", lim.memory)
	case "recursion":
		out.Message = tooComplexPrefix + fmt.Sprintf("%s (limit: Python's recursion limit)", cmp.Or(detail, "its code nests too deeply"))
	case "nesting":
		out.Message = tooComplexPrefix + fmt.Sprintf("%s (limit: the nesting Python's parser accepts)", cmp.Or(detail, "its code nests too deeply"))
	default:
		out.Message = tooComplexPrefix + cmp.Or(detail, "the checker gave up")
	}
	return out
}

// truncateText cuts s to at most n bytes, on a rune boundary, marking the
// cut with "...".
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-3, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// countLines counts lines as Python does: "\n", "\r\n" and a lone "\r"
// end a line; a last line without an ending counts.
func countLines(src []byte) int {
	n := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '\n':
			n++
		case '\r':
			if i+1 < len(src) && src[i+1] == '\n' {
				i++
			}
			n++
		}
	}
	if len(src) > 0 && src[len(src)-1] != '\n' && src[len(src)-1] != '\r' {
		n++
	}
	return n
}

// checkManifest checks manifest.json: a JSON object with name,
// description, integrations and entrypoint. Other fields are allowed.
func checkManifest(src []byte) []Problem {
	bad := func(msg string) Problem { return Problem{Path: ManifestFile, Message: msg} }
	src = bytes.TrimPrefix(src, []byte("\uFEFF"))
	var raw any
	if err := json.Unmarshal(src, &raw); err != nil {
		p := bad("is not valid JSON: " + err.Error())
		var se *json.SyntaxError
		if errors.As(err, &se) {
			p.Line = lineAt(src, int(min(se.Offset, int64(len(src)))))
		}
		return []Problem{p}
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return []Problem{bad("is not a JSON object; it must be {\"name\", \"description\", \"integrations\", \"entrypoint\"}")}
	}
	var ps []Problem
	for _, field := range []string{"name", "description"} {
		v, present := m[field]
		s, isString := v.(string)
		switch {
		case !present:
			ps = append(ps, bad(fmt.Sprintf("has no %q field (a string)", field)))
		case !isString:
			ps = append(ps, bad(fmt.Sprintf("its %q field must be a string", field)))
		case field == "name" && strings.TrimSpace(s) == "":
			ps = append(ps, bad(`its "name" field is empty`))
		}
	}
	switch v, present := m["integrations"]; {
	case !present:
		ps = append(ps, bad(`has no "integrations" field (an array of integration names, [] for none)`))
	default:
		arr, isArray := v.([]any)
		ok := isArray
		for _, e := range arr {
			if _, isString := e.(string); !isString {
				ok = false
			}
		}
		if !ok {
			ps = append(ps, bad(`its "integrations" field must be an array of strings`))
		}
	}
	switch v, present := m["entrypoint"]; {
	case !present:
		ps = append(ps, bad(fmt.Sprintf("has no %q field; it must be %q", "entrypoint", Entrypoint)))
	case v != Entrypoint:
		ps = append(ps, bad(fmt.Sprintf("its %q field is %s; it must be %q", "entrypoint", jsonText(v), Entrypoint)))
	}
	return ps
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return displayPath(string(b))
}

// ManifestDescription is manifest.json's description, "" when there is
// none (or the manifest is not valid).
func ManifestDescription(b *Bundle) string {
	src, ok := bundleFile(b, ManifestFile)
	if !ok {
		return ""
	}
	var m struct {
		Description any `json:"description"`
	}
	if json.Unmarshal(bytes.TrimPrefix(src, []byte("\uFEFF")), &m) != nil {
		return ""
	}
	s, _ := m.Description.(string)
	return strings.TrimSpace(s)
}

// Documentation returns README.md's text and the source of its first
// ```mermaid fenced block (without the fences); "" for what is missing.
func Documentation(b *Bundle) (readme, mermaid string) {
	src, ok := bundleFile(b, ReadmeFile)
	if !ok {
		return "", ""
	}
	readme = string(src)
	mermaid, _ = firstMermaid(readme)
	return readme, mermaid
}

func bundleFile(b *Bundle, name string) ([]byte, bool) {
	if b == nil {
		return nil, false
	}
	for _, f := range b.Files {
		if f.Path == name {
			return f.Content, true
		}
	}
	return nil, false
}

// firstMermaid finds the first fenced code block (``` or ~~~, CommonMark
// rules) whose info string is "mermaid" and returns its content. Fences
// inside other fenced blocks do not count; a block left open runs to the
// end of the text.
func firstMermaid(md string) (string, bool) {
	lines := strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		indent, char, n, info, ok := openingFence(lines[i])
		if !ok {
			continue
		}
		lang, _, _ := strings.Cut(info, " ")
		isMermaid := strings.EqualFold(lang, "mermaid")
		var body []string
		for i++; i < len(lines); i++ {
			if closingFence(lines[i], char, n) {
				break
			}
			if isMermaid {
				body = append(body, trimIndent(lines[i], indent))
			}
		}
		if isMermaid {
			return strings.Join(body, "\n"), true
		}
	}
	return "", false
}

func leadingSpaces(s string) int {
	n := 0
	for n < len(s) && s[n] == ' ' {
		n++
	}
	return n
}

func openingFence(line string) (indent int, char byte, n int, info string, ok bool) {
	indent = leadingSpaces(line)
	if indent > 3 {
		return 0, 0, 0, "", false
	}
	rest := line[indent:]
	if rest == "" || (rest[0] != '`' && rest[0] != '~') {
		return 0, 0, 0, "", false
	}
	char = rest[0]
	for n < len(rest) && rest[n] == char {
		n++
	}
	if n < 3 {
		return 0, 0, 0, "", false
	}
	info = strings.TrimSpace(rest[n:])
	if char == '`' && strings.ContainsRune(info, '`') {
		return 0, 0, 0, "", false
	}
	return indent, char, n, info, true
}

func closingFence(line string, char byte, n int) bool {
	indent := leadingSpaces(line)
	if indent > 3 {
		return false
	}
	rest := line[indent:]
	m := 0
	for m < len(rest) && rest[m] == char {
		m++
	}
	return m >= n && strings.TrimSpace(rest[m:]) == ""
}

func trimIndent(line string, indent int) string {
	return line[min(indent, leadingSpaces(line)):]
}

// limitedBuffer keeps at most max bytes and notes when it dropped some.
// (It must not embed a bytes.Buffer: io.Copy, as os/exec uses it, would
// find the buffer's ReadFrom and read past the limit.)
type limitedBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); len(p) > room {
		b.truncated = true
		b.buf = append(b.buf, p[:max(room, 0)]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte  { return b.buf }
func (b *limitedBuffer) String() string { return string(b.buf) }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if drop := len(b.buf) + len(p) - b.max; drop > 0 {
		b.buf = append(b.buf[:0], b.buf[drop:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) String() string { return string(b.buf) }

// gate counts the checkers running. Its limit is given at each acquire,
// so that a Validator's MaxConcurrent may be set after NewValidator.
type gate struct {
	mu      sync.Mutex
	running int
	freed   chan struct{} // closed, and replaced, when a checker ends
}

func newGate() *gate { return &gate{freed: make(chan struct{})} }

// errGateFull: every checker stayed busy for the whole wait.
var errGateFull = errors.New("playbook: every checker is busy")

// acquire takes a place among at most limit running checkers, waiting at
// most wait for one: errGateFull after that, ctx's error when it ends
// first.
func (g *gate) acquire(ctx context.Context, limit int, wait time.Duration) error {
	var timeout <-chan time.Time
	for {
		g.mu.Lock()
		if g.running < limit {
			g.running++
			g.mu.Unlock()
			return nil
		}
		freed := g.freed
		g.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-freed:
		case <-timeout:
			return errGateFull
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *gate) release() {
	g.mu.Lock()
	g.running--
	close(g.freed)
	g.freed = make(chan struct{})
	g.mu.Unlock()
}
