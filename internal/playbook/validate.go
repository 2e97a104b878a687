package playbook

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
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

// Validator checks a bundle without ever running it: the Python part
// (checker.py) only parses the code with ast. It is safe for concurrent
// use once built; set its exported fields before the first Validate.
type Validator struct {
	// MaxLines bounds playbook.py's lines (MaxPlaybookLines by default).
	MaxLines int
	// Timeout bounds one run of the checker (10 s by default).
	Timeout time.Duration

	python string          // the interpreter itself, shims resolved
	stdlib map[string]bool // sys.stdlib_module_names of that interpreter
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
		MaxLines: MaxPlaybookLines,
		Timeout:  10 * time.Second,
		python:   bin,
		stdlib:   make(map[string]bool, len(info.Stdlib)),
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
// mermaid block). Problems are sorted by path and line. A failure of the
// checker itself (timeout, crash) is reported as an error on playbook.py.
func (v *Validator) Validate(ctx context.Context, b *Bundle) Report {
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

	errs, warns := v.checkPython(ctx, b)
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
	return rep
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Line, b.Line))
	})
}

// checkPython runs checker.py on the bundle's .py files.
func (v *Validator) checkPython(ctx context.Context, b *Bundle) (errs, warns []Problem) {
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
	for _, f := range b.Files {
		if !strings.HasSuffix(f.Path, ".py") {
			continue
		}
		req.Files = append(req.Files, pyFile{Path: f.Path, Source: string(f.Content)})
		// The bundle's own modules: helpers.py is "helpers"; pkg/mod.py
		// makes "pkg" importable (a package or a namespace package).
		top, _, nested := strings.Cut(f.Path, "/")
		if !nested {
			top = strings.TrimSuffix(top, ".py")
		}
		allowed[top] = true
	}
	if len(req.Files) == 0 {
		return nil, nil
	}
	for m := range allowed {
		req.Allowed = append(req.Allowed, m)
	}
	slices.Sort(req.Allowed)
	input, err := json.Marshal(req)
	if err != nil {
		return []Problem{{Path: MainFile, Message: "could not be checked: " + err.Error()}}, nil
	}

	ctx, cancel := context.WithTimeout(ctx, cmp.Or(v.Timeout, 10*time.Second))
	defer cancel()
	// -I: isolated (no PYTHON* variables, no user site, no script folder
	// on sys.path); -S: no site module. The bundle is data on stdin.
	cmd := exec.CommandContext(ctx, v.python, "-I", "-S", "-c", checkerSource)
	cmd.Env = []string{"LC_ALL=C.UTF-8"}
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(input)
	stdout := &limitedBuffer{max: 16 << 20}
	stderr := &limitedBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := "could not be checked: the checker failed"
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			msg = fmt.Sprintf("could not be checked: the checker took longer than %s", cmp.Or(v.Timeout, 10*time.Second))
		case ctx.Err() != nil:
			msg = "could not be checked: validation was cancelled"
		case stderr.Len() > 0:
			msg += ": " + lastLine(stderr.String())
		}
		return []Problem{{Path: MainFile, Message: msg}}, nil
	}
	var out struct {
		Errors   []Problem `json:"errors"`
		Warnings []Problem `json:"warnings"`
	}
	if stdout.truncated {
		return []Problem{{Path: MainFile, Message: "could not be checked: the checker's answer is too long"}}, nil
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return []Problem{{Path: MainFile, Message: "could not be checked: the checker's answer is not JSON"}}, nil
	}
	return out.Errors, out.Warnings
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
type limitedBuffer struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.truncated = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
