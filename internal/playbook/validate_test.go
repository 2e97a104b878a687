package playbook

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var testValidatorOnce = sync.OnceValues(func() (*Validator, error) {
	v, err := NewValidator("")
	if v != nil {
		// The tests check what the checker finds, not how fast a loaded
		// machine runs it: no test should meet too_busy, a timeout or a
		// starved checker because the machine is busy. (The tests of
		// the limits set their own; TestValidateCheckerLimits checks the
		// defaults.)
		v.QueueWait = time.Minute
		v.Timeout = 2 * time.Minute
		v.nice = 0
	}
	return v, err
})

// testValidator uses the machine's python3, as the gateway does.
func testValidator(t testing.TB) *Validator {
	t.Helper()
	v, err := testValidatorOnce()
	if err != nil {
		t.Fatalf("the playbook checks need python3 (3.10 or newer): %v", err)
	}
	return v
}

// validatorCopy is a copy of the test validator with checkers of its own,
// for a test to change its fields.
func validatorCopy(t testing.TB) *Validator {
	t.Helper()
	v := *testValidator(t)
	v.slots = newGate()
	return &v
}

// validate runs v.Validate, which must not refuse.
func validate(t testing.TB, v *Validator, ctx context.Context, b *Bundle) Report {
	t.Helper()
	rep, err := v.Validate(ctx, b)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return rep
}

// phishingBundle is the good bundle of testdata/phishing.
func phishingBundle(t testing.TB) *Bundle {
	t.Helper()
	b, err := Collect(bytes.NewReader(testdataTar(t, "phishing")), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withFiles returns a copy of b with files set (content "" removes a file).
func withFiles(b *Bundle, files map[string]string) *Bundle {
	out := &Bundle{Skipped: b.Skipped}
	for _, f := range b.Files {
		if _, ok := files[f.Path]; !ok {
			out.Files = append(out.Files, f)
		}
	}
	for p, c := range files {
		if c != "" {
			out.Files = append(out.Files, File{Path: p, Content: []byte(c)})
		}
	}
	slices.SortFunc(out.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out
}

const minimalRun = "def run(alert, ctx):\n    return {}\n"

// wantProblem matches a Problem: Line -1 is any line; Message a substring.
type wantProblem = Problem

func matchProblems(t *testing.T, kind string, got, want []Problem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s %+v; want %+v", kind, got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.Path != w.Path || (w.Line >= 0 && g.Line != w.Line) || !strings.Contains(g.Message, w.Message) {
			t.Errorf("%s %d = %+v; want %+v", kind, i, g, w)
		}
	}
}

func TestValidateGoodBundle(t *testing.T) {
	v := testValidator(t)
	b := phishingBundle(t)
	rep := validate(t, v, context.Background(), b)
	if !rep.Passed() || len(rep.Warnings) != 0 {
		t.Fatalf("errors %+v, warnings %+v; want none", rep.Errors, rep.Warnings)
	}
	if rep.Lines != 68 {
		t.Errorf("lines %d; want 68", rep.Lines)
	}
	readme, mermaid := Documentation(b)
	if !strings.HasPrefix(readme, "# Phishing triage\n") || !strings.HasPrefix(mermaid, "flowchart TD\n    A[Alert]") || strings.Contains(mermaid, "```") {
		t.Errorf("Documentation: %q, %q", readme, mermaid)
	}
	if d := ManifestDescription(b); !strings.HasPrefix(d, "Scores phishing emails") {
		t.Errorf("ManifestDescription: %q", d)
	}
}

func TestValidate(t *testing.T) {
	v := testValidator(t)
	good := phishingBundle(t)
	lines := func(n int) string {
		return minimalRun + strings.Repeat("# padding\n", n-2)
	}
	tests := []struct {
		name     string
		files    map[string]string
		errors   []wantProblem
		warnings []wantProblem
	}{
		{name: "good bundle"},
		{name: "without manifest.json", files: map[string]string{"manifest.json": ""}},
		{name: "no mermaid block is a warning only",
			files:    map[string]string{"README.md": "# Phishing triage\n\nIt triages phishing.\n\n```python\nrun(alert, ctx)\n```\n"},
			warnings: []wantProblem{{Path: "README.md", Line: -1, Message: "has no ```mermaid block"}}},
		{name: "empty mermaid block is a warning",
			files:    map[string]string{"README.md": "# x\n~~~mermaid\n~~~\n"},
			warnings: []wantProblem{{Path: "README.md", Line: -1, Message: "mermaid block is empty"}}},
		{name: "README.md missing", files: map[string]string{"README.md": ""},
			errors: []wantProblem{{Path: "README.md", Message: "is missing"}}},
		{name: "playbook.py missing", files: map[string]string{"playbook.py": ""},
			errors: []wantProblem{{Path: "playbook.py", Message: "is missing"}}},
		{name: "5,000 lines pass", files: map[string]string{"playbook.py": lines(5000)}},
		{name: "5,001 lines are refused", files: map[string]string{"playbook.py": lines(5001)},
			errors: []wantProblem{{Path: "playbook.py", Message: "has 5,001 lines; a playbook may have at most 5,000 lines"}}},
		{name: "lines ended by a lone CR count", files: map[string]string{"playbook.py": strings.ReplaceAll(lines(5001), "\n", "\r")},
			errors: []wantProblem{{Path: "playbook.py", Message: "has 5,001 lines"}}},
		{name: "syntax error with its line", files: map[string]string{"playbook.py": "import json\n\ndef run(alert, ctx)\n    return {}\n"},
			errors: []wantProblem{{Path: "playbook.py", Line: 3, Message: "syntax error: expected ':'"}}},
		{name: "syntax error in a helper", files: map[string]string{"indicators.py": "def extract_urls(text:\n"},
			errors: []wantProblem{{Path: "indicators.py", Line: 1, Message: "syntax error"}}},
		{name: "import requests", files: map[string]string{"playbook.py": "import json\nimport requests\n" + minimalRun},
			errors: []wantProblem{{Path: "playbook.py", Line: 2, Message: `imports 'requests', which is neither in the standard library nor a module of this playbook`}}},
		{name: "from requests import and dotted imports", files: map[string]string{"playbook.py": "from requests import get\nimport yaml.loader as y\nimport os.path\n" + minimalRun},
			errors: []wantProblem{
				{Path: "playbook.py", Line: 1, Message: `imports from 'requests'`},
				{Path: "playbook.py", Line: 2, Message: `imports 'yaml.loader'`}}},
		{name: "__import__ and import_module with literals", files: map[string]string{"playbook.py": minimalRun +
			"\nimport importlib\nfrom importlib import import_module as im\n" +
			"m = __import__(\"requests\")\n" + // line 6
			"n = importlib.import_module(\"boto3.s3\")\n" +
			"o = im(\"paramiko\")\n" +
			"p = __import__(\"json\")\n" +
			"q = importlib.import_module(\".sub\", \"pkg\")\n"},
			errors: []wantProblem{
				{Path: "playbook.py", Line: 6, Message: `__import__() imports 'requests'`},
				{Path: "playbook.py", Line: 7, Message: `import_module() imports 'boto3.s3'`},
				{Path: "playbook.py", Line: 8, Message: `import_module() imports 'paramiko'`}}},
		{name: "dynamic imports", files: map[string]string{"playbook.py": minimalRun +
			"name = 'requests'\n" + // 3
			"m = __import__(name)\n" +
			"import importlib as il\n" +
			"n = il.import_module(name)\n" + // 6
			"imp = __import__\n" +
			"import builtins\n" +
			"o = getattr(builtins, '__import__')('x')\n"}, // 9
			errors: []wantProblem{
				{Path: "playbook.py", Line: 4, Message: "dynamic import: __import__() is used with a module name computed at run time"},
				{Path: "playbook.py", Line: 6, Message: "dynamic import: import_module()"},
				{Path: "playbook.py", Line: 7, Message: "dynamic import: __import__ is used"},
				{Path: "playbook.py", Line: 9, Message: "dynamic import: getattr(..., '__import__')"}}},
		{name: "imports are checked in every .py file", files: map[string]string{
			"indicators.py":        "import re\nimport tldextract\n",
			"tests/test_triage.py": "import unittest\nimport pytest\nimport playbook\n"},
			errors: []wantProblem{
				{Path: "indicators.py", Line: 2, Message: `'tldextract'`},
				{Path: "tests/test_triage.py", Line: 2, Message: `'pytest'`}}},
		{name: "own packages, relative imports and playbook_sdk are allowed", files: map[string]string{
			"playbook.py":        "from __future__ import annotations\nimport playbook_sdk\nimport triage\nfrom triage.rules import score\nfrom triage import rules\nimport lib.util\n" + minimalRun,
			"triage/__init__.py": "from . import rules\nfrom .rules import score\n",
			"triage/rules.py":    "from ..indicators import extract_urls\n\ndef score(x):\n    return 1\n",
			"lib/util.py":        "import collections.abc\n",
			"playbook_sdk.py":    "class Ctx: ...\n"}},
		{name: "run missing", files: map[string]string{"playbook.py": "import json\n\ndef main(alert, ctx):\n    return {}\n\nclass P:\n    def run(self, alert, ctx):\n        pass\n"},
			errors: []wantProblem{{Path: "playbook.py", Message: "defines no module-level function run(alert, ctx)"}}},
		{name: "async run", files: map[string]string{"playbook.py": "async def run(alert, ctx):\n    return {}\n"},
			errors: []wantProblem{{Path: "playbook.py", Line: 1, Message: "run is defined with async def"}}},
		{name: "run with one parameter", files: map[string]string{"playbook.py": "def run(alert):\n    return {}\n"},
			errors: []wantProblem{{Path: "playbook.py", Line: 1, Message: "run must take exactly two positional parameters, (alert, ctx); it takes (alert)"}}},
		{name: "run with extra parameters", files: map[string]string{"playbook.py": "def run(alert, ctx, *args, mode=1, **kw):\n    return {}\n"},
			errors: []wantProblem{{Path: "playbook.py", Line: 1, Message: "it takes (alert, ctx, *args, mode, **kw)"}}},
		{name: "run with other names", files: map[string]string{"playbook.py": "def run(event, context):\n    return {}\n"},
			errors: []wantProblem{{Path: "playbook.py", Line: 1, Message: "it takes (event, context)"}}},
		{name: "run annotated, positional-only and defined twice", files: map[string]string{"playbook.py": "def run(a, b):\n    pass\n\ndef run(alert: dict, ctx: 'Ctx', /) -> dict:\n    return {}\n"},
			warnings: []wantProblem{{Path: "playbook.py", Line: 4, Message: "run is defined 2 times"}}},
		{name: "invalid escape sequence is a warning", files: map[string]string{"playbook.py": "import re\nPAT = re.compile('\\d+')\n" + minimalRun},
			warnings: []wantProblem{{Path: "playbook.py", Line: 2, Message: "invalid escape sequence"}}},
		{name: "manifest not JSON", files: map[string]string{"manifest.json": "{\n  \"name\": \"x\",\n  oops\n}"},
			errors: []wantProblem{{Path: "manifest.json", Line: 3, Message: "is not valid JSON"}}},
		{name: "manifest not an object", files: map[string]string{"manifest.json": "[1]"},
			errors: []wantProblem{{Path: "manifest.json", Message: "is not a JSON object"}}},
		{name: "manifest fields", files: map[string]string{"manifest.json": `{"name": "", "description": 3, "integrations": ["mail", 7], "entrypoint": "main.py:main"}`},
			errors: []wantProblem{
				{Path: "manifest.json", Message: `its "name" field is empty`},
				{Path: "manifest.json", Message: `its "description" field must be a string`},
				{Path: "manifest.json", Message: `its "integrations" field must be an array of strings`},
				{Path: "manifest.json", Message: `its "entrypoint" field is "main.py:main"; it must be "playbook.py:run"`}}},
		{name: "manifest fields missing", files: map[string]string{"manifest.json": `{"version": 2}`},
			errors: []wantProblem{
				{Path: "manifest.json", Message: `has no "name" field`},
				{Path: "manifest.json", Message: `has no "description" field`},
				{Path: "manifest.json", Message: `has no "integrations" field`},
				{Path: "manifest.json", Message: `has no "entrypoint" field; it must be "playbook.py:run"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := validate(t, v, context.Background(), withFiles(good, tt.files))
			matchProblems(t, "errors", rep.Errors, tt.errors)
			matchProblems(t, "warnings", rep.Warnings, tt.warnings)
			if rep.Passed() != (len(tt.errors) == 0) {
				t.Errorf("Passed() = %v", rep.Passed())
			}
		})
	}
}

// TestValidateNeverRuns: the checker parses; top-level code, imports and
// run() are never executed.
func TestValidateNeverRuns(t *testing.T) {
	v := testValidator(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	code := fmt.Sprintf("open(%q, 'w').write('top level')\nimport helper\n\ndef run(alert, ctx):\n    open(%q, 'w').write('run')\n\nrun({}, None)\n", marker, marker)
	b := &Bundle{Files: []File{
		{Path: "playbook.py", Content: []byte(code)},
		{Path: "helper.py", Content: []byte(fmt.Sprintf("open(%q, 'w').write('import')\n", marker))},
		{Path: "README.md", Content: []byte("```mermaid\nflowchart TD\n  A-->B\n```\n")},
	}}
	rep := validate(t, v, context.Background(), b)
	if !rep.Passed() || len(rep.Warnings) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the playbook ran: %v", err)
	}
}

func TestValidateCheckerFailure(t *testing.T) {
	v := validatorCopy(t)
	v.Timeout = time.Nanosecond
	rep := validate(t, v, context.Background(), phishingBundle(t))
	matchProblems(t, "errors", rep.Errors, []Problem{{Path: "playbook.py", Message: "the file is too deeply nested or too complex to check: checking it took longer than allowed (limit 1ns)"}})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep = validate(t, testValidator(t), ctx, phishingBundle(t))
	matchProblems(t, "errors", rep.Errors, []Problem{{Path: "playbook.py", Message: "could not be checked: validation was cancelled"}})
}

func TestNewValidatorErrors(t *testing.T) {
	_, err := NewValidator(filepath.Join(t.TempDir(), "python3"))
	if err == nil || !strings.Contains(err.Error(), "validation needs Python 3.10 or newer") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing python: %v", err)
	}
	old := filepath.Join(t.TempDir(), "python3")
	script := "#!/bin/sh\necho '{\"version\": [3, 9], \"executable\": \"/x\", \"stdlib\": []}'\n"
	if err := os.WriteFile(old, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = NewValidator(old)
	if err == nil || !strings.Contains(err.Error(), "is Python 3.9; validation needs Python 3.10 or newer") {
		t.Errorf("old python: %v", err)
	}
	v := testValidator(t)
	for _, m := range []string{"json", "re", "datetime", "ipaddress", "urllib", "__future__"} {
		if !v.stdlib[m] {
			t.Errorf("%s not in the standard library", m)
		}
	}
}

func TestFirstMermaid(t *testing.T) {
	tests := []struct {
		name, md, want string
		found          bool
	}{
		{"none", "# t\ntext\n", "", false},
		{"backticks", "# t\n```mermaid\nflowchart TD\n  A-->B\n```\nafter\n", "flowchart TD\n  A-->B", true},
		{"tildes and info", "~~~ Mermaid title\ngraph LR\n~~~\n", "graph LR", true},
		{"first of two", "```mermaid\none\n```\n```mermaid\ntwo\n```\n", "one", true},
		{"after another block", "```python\nx = 1\n```\n```mermaid\nflow\n```\n", "flow", true},
		{"inside another block", "````markdown\n```mermaid\nnot this\n```\n````\n", "", false},
		{"indented", "  ```mermaid\n  flowchart TD\n    A\n  ```\n", "flowchart TD\n  A", true},
		{"CRLF", "```mermaid\r\nflowchart TD\r\n```\r\n", "flowchart TD", true},
		{"unclosed", "```mermaid\nflowchart TD\n", "flowchart TD\n", true},
		{"longer closing fence", "```mermaid\nA\n`````\n", "A", true},
		{"not a fence", "``mermaid``\n", "", false},
	}
	for _, tt := range tests {
		got, found := firstMermaid(tt.md)
		if got != tt.want || found != tt.found {
			t.Errorf("%s: %q, %v; want %q, %v", tt.name, got, found, tt.want, tt.found)
		}
	}
}

func TestManifestDescription(t *testing.T) {
	for md, want := range map[string]string{
		`{"description": "  Triage.  "}`:   "Triage.",
		"\uFEFF{\"description\": \"bom\"}": "bom",
		`{"description": 3}`:               "",
		`not json`:                         "",
	} {
		b := &Bundle{Files: []File{{Path: "manifest.json", Content: []byte(md)}}}
		if got := ManifestDescription(b); got != want {
			t.Errorf("ManifestDescription(%q) = %q; want %q", md, got, want)
		}
	}
	if got := ManifestDescription(&Bundle{}); got != "" {
		t.Errorf("no manifest: %q", got)
	}
	if r, m := Documentation(nil); r != "" || m != "" {
		t.Errorf("Documentation(nil) = %q, %q", r, m)
	}
}

func TestCountLines(t *testing.T) {
	for s, want := range map[string]int{"": 0, "a": 1, "a\n": 1, "a\nb": 2, "a\r\nb\r\n": 2, "a\rb\r": 2, "\n\n": 2} {
		if got := countLines([]byte(s)); got != want {
			t.Errorf("countLines(%q) = %d; want %d", s, got, want)
		}
	}
}

// bigPlaybook is the good playbook padded with real code to 5,000 lines.
func bigPlaybook(t testing.TB) *Bundle {
	good := phishingBundle(t)
	var src bytes.Buffer
	for _, f := range good.Files {
		if f.Path == "playbook.py" {
			src.Write(f.Content)
		}
	}
	for i := 0; countLines(src.Bytes()) < 5000-4; i++ {
		fmt.Fprintf(&src, "\n\ndef helper_%d(alert, ctx):\n    return {\"n\": %d, \"title\": alert.get(\"title\", \"\").lower()}\n", i, i)
	}
	for countLines(src.Bytes()) < 5000 {
		src.WriteString("# end\n")
	}
	return withFiles(good, map[string]string{"playbook.py": src.String()})
}

func TestValidateTiming(t *testing.T) {
	v := testValidator(t)
	b := bigPlaybook(t)
	start := time.Now()
	rep := validate(t, v, context.Background(), b)
	if !rep.Passed() || rep.Lines != 5000 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("Validate of a %d-line playbook: %v", rep.Lines, time.Since(start))
}

func BenchmarkValidate5000(b *testing.B) {
	v := testValidator(b)
	bundle := bigPlaybook(b)
	for b.Loop() {
		if rep, err := v.Validate(context.Background(), bundle); err != nil || !rep.Passed() {
			b.Fatal(rep.Errors)
		}
	}
}
