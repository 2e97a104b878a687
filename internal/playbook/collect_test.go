package playbook

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// collectEnt is one entry of a test archive.
type collectEnt struct {
	name string
	typ  byte // tar.TypeReg when zero
	body string
	link string
	size int64 // when set, the header claims this size (and body is not written)
}

func reg(name, body string) collectEnt { return collectEnt{name: name, body: body} }

// collectTar writes a tar stream of ents.
func collectTar(t testing.TB, ents ...collectEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644, ModTime: time.Unix(1_700_000_000, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
			if e.size != 0 {
				h.Size = e.size
			}
		}
		if typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("header %q: %v", e.name, err)
		}
		if e.size != 0 {
			// The stream ends here: the header lies about what follows.
			return buf.Bytes()
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testdataTar archives a folder of testdata as the gateway would receive it.
func testdataTar(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.AddFS(os.DirFS(filepath.Join("testdata", dir))); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// countingReader counts what Collect consumed.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// checkCollected holds for every bundle Collect returns.
func checkCollected(t testing.TB, b *Bundle, lim Limits) {
	t.Helper()
	lim = lim.withDefaults()
	if len(b.Files) > lim.MaxFiles {
		t.Fatalf("%d files, limit %d", len(b.Files), lim.MaxFiles)
	}
	if len(b.Skipped) > lim.MaxEntries {
		t.Fatalf("%d skipped, limit %d entries", len(b.Skipped), lim.MaxEntries)
	}
	var total int64
	for i, f := range b.Files {
		total += int64(len(f.Content))
		if int64(len(f.Content)) > lim.MaxFile {
			t.Fatalf("%q is %d bytes, limit %d", f.Path, len(f.Content), lim.MaxFile)
		}
		p := f.Path
		if p == "" || p != path.Clean(p) || path.IsAbs(p) || p == "." || strings.ContainsAny(p, "\\\x00") || !utf8.ValidString(p) {
			t.Fatalf("unclean path %q", p)
		}
		if slices.Contains(strings.Split(p, "/"), "..") || slices.Contains(strings.Split(p, "/"), "__pycache__") || strings.HasPrefix(p, ".agent/") {
			t.Fatalf("path %q should not be collected", p)
		}
		if !utf8.Valid(f.Content) || bytes.IndexByte(f.Content, 0) >= 0 {
			t.Fatalf("%q is not UTF-8 text", p)
		}
		if i > 0 && b.Files[i-1].Path >= p {
			t.Fatalf("files not sorted or duplicated: %q then %q", b.Files[i-1].Path, p)
		}
	}
	if total > lim.MaxTotal {
		t.Fatalf("%d bytes in all, limit %d", total, lim.MaxTotal)
	}
}

func collectPaths(b *Bundle) []string {
	var ps []string
	for _, f := range b.Files {
		ps = append(ps, f.Path)
	}
	return ps
}

func TestCollect(t *testing.T) {
	good := []collectEnt{
		{name: "./", typ: tar.TypeDir},
		reg("./playbook.py", "def run(alert, ctx):\n    return {}\n"),
		reg("./README.md", "# x\n"),
		{name: "./pkg/", typ: tar.TypeDir},
		reg("./pkg/__init__.py", ""),
	}
	type want struct {
		paths    []string  // collected files (on success)
		skipped  []Problem // Bundle.Skipped (on success)
		problems []Problem // CollectError's problems, Message a substring
		bad      bool      // ErrBadArchive
	}
	mb := strings.Repeat("a", 1_000_000)
	tests := []struct {
		name string
		ents []collectEnt
		lim  Limits
		want want
	}{
		{"dot-slash entries", good, Limits{},
			want{paths: []string{"README.md", "pkg/__init__.py", "playbook.py"}}},
		{"plain entries sorted", []collectEnt{reg("z.txt", "z"), reg("a.txt", "a"), reg("m/n.txt", "n")}, Limits{},
			want{paths: []string{"a.txt", "m/n.txt", "z.txt"}}},
		{"empty stream", nil, Limits{}, want{}},
		{"symlink to /etc/passwd is skipped and reported",
			append(slices.Clone(good), collectEnt{name: "./passwd", typ: tar.TypeSymlink, link: "/etc/passwd"}), Limits{},
			want{paths: []string{"README.md", "pkg/__init__.py", "playbook.py"},
				skipped: []Problem{{Path: "passwd", Message: "skipped: symbolic link to /etc/passwd"}}}},
		{"links, devices and FIFOs are skipped", []collectEnt{
			reg("playbook.py", "x = 1\n"),
			{name: "hard", typ: tar.TypeLink, link: "playbook.py"},
			{name: "tty", typ: tar.TypeChar},
			{name: "disk", typ: tar.TypeBlock},
			{name: "pipe", typ: tar.TypeFifo},
			{name: "up", typ: tar.TypeSymlink, link: "../../etc/shadow"},
		}, Limits{}, want{paths: []string{"playbook.py"}, skipped: []Problem{
			{Path: "disk", Message: "skipped: block device"},
			{Path: "hard", Message: "skipped: hard link to playbook.py"},
			{Path: "pipe", Message: "skipped: named pipe (FIFO)"},
			{Path: "tty", Message: "skipped: character device"},
			{Path: "up", Message: "skipped: symbolic link to ../../etc/shadow"},
		}}},
		{".agent and Python caches are left out", []collectEnt{
			reg("playbook.py", "x = 1\n"),
			{name: ".agent/", typ: tar.TypeDir},
			reg(".agent/state.json", "{}"),
			reg(".agent/blob.bin", "\x00\x01"),
			{name: ".agent/link", typ: tar.TypeSymlink, link: "/etc/passwd"},
			reg("__pycache__/playbook.cpython-311.pyc", "\x00\x00"),
			reg("pkg/__pycache__/m.cpython-311.pyc", "\x00"),
			reg("old.pyc", "\x00"),
			reg("pkg/.agent/notes.md", "kept: only the top .agent is the agent's"),
		}, Limits{}, want{paths: []string{"pkg/.agent/notes.md", "playbook.py"},
			skipped: []Problem{{Path: ".agent/", Message: "skipped: the agent's state folder is not part of the playbook"}}}},
		{"../../x is refused", []collectEnt{reg("playbook.py", "x"), reg("../../x", "evil")}, Limits{},
			want{problems: []Problem{{Path: "../../x", Message: "the path leaves the playbook folder"}}}},
		{"inner .. is refused", []collectEnt{reg("a/../../x", "evil")}, Limits{},
			want{problems: []Problem{{Path: "a/../../x", Message: "leaves the playbook folder"}}}},
		{".. directory is refused", []collectEnt{{name: "../", typ: tar.TypeDir}}, Limits{},
			want{problems: []Problem{{Path: "../", Message: "leaves the playbook folder"}}}},
		{"absolute path is refused", []collectEnt{reg("/etc/cron.d/x", "evil")}, Limits{},
			want{problems: []Problem{{Path: "/etc/cron.d/x", Message: "the path is absolute"}}}},
		{"backslash is refused", []collectEnt{reg(`..\..\x`, "evil")}, Limits{},
			want{problems: []Problem{{Path: `..\..\x`, Message: "backslash"}}}},
		{"unclean path is refused", []collectEnt{reg("a//b.py", "x")}, Limits{},
			want{problems: []Problem{{Path: "a//b.py", Message: "not in clean form"}}}},
		{"control character is refused", []collectEnt{reg("a\nb.py", "x")}, Limits{},
			want{problems: []Problem{{Path: `"a\nb.py"`, Message: "control character"}}}},
		{"duplicate path is refused", []collectEnt{reg("playbook.py", "a"), reg("./playbook.py", "b")}, Limits{},
			want{problems: []Problem{{Path: "playbook.py", Message: "appears twice"}}}},
		{"file and folder of one name are refused", []collectEnt{reg("lib", "a"), reg("lib/x.py", "b")}, Limits{},
			want{problems: []Problem{{Path: "lib/x.py", Message: "its folder lib is also a file"}}}},
		{"binary file is refused, naming it", []collectEnt{reg("playbook.py", "x"), reg("logo.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")}, Limits{},
			want{problems: []Problem{{Path: "logo.png", Line: 3, Message: "not a text file"}}}},
		{"invalid UTF-8 is refused, naming it", []collectEnt{reg("notes.txt", "caf\xe9\nline two\n")}, Limits{},
			want{problems: []Problem{{Path: "notes.txt", Line: 1, Message: "not valid UTF-8 text"}}}},
		{"every problem is named", []collectEnt{reg("../../x", "a"), reg("/abs", "b"), reg("bin.dat", "\x00"), reg("ok.py", "ok")}, Limits{},
			want{problems: []Problem{
				{Path: "../../x", Message: "leaves"}, {Path: "/abs", Message: "absolute"}, {Path: "bin.dat", Line: 1, Message: "not a text file"}}}},
		{"a 6 MB file is refused", []collectEnt{reg("big.txt", strings.Repeat("a", 6_000_000))}, Limits{},
			want{problems: []Problem{{Path: "big.txt", Message: "the file is 5.7 MiB; a file may be at most 1 MiB"}}}},
		{"a header claiming 1 TB is refused", []collectEnt{reg("playbook.py", "x"), {name: "huge.txt", size: 1 << 40}}, Limits{},
			want{problems: []Problem{{Path: "huge.txt", Message: "the file is 1048576 MiB; a file may be at most 1 MiB"}}}},
		{"more than 5 MiB in all is refused", []collectEnt{reg("1", mb), reg("2", mb), reg("3", mb), reg("4", mb), reg("5", mb), reg("6", mb)}, Limits{},
			want{problems: []Problem{{Message: "the folder's files add up to more than 5 MiB; the limit is 5 MiB"}}}},
		{"too many files is refused", func() (es []collectEnt) {
			for i := range 5 {
				es = append(es, reg(fmt.Sprintf("f%d.py", i), "x"))
			}
			return es
		}(), Limits{MaxFiles: 4},
			want{problems: []Problem{{Message: "the folder has more than 4 files; the limit is 4 files"}}}},
		{"too many entries is refused", func() (es []collectEnt) {
			for i := range 3000 {
				es = append(es, collectEnt{name: fmt.Sprintf("d%d/", i), typ: tar.TypeDir})
			}
			return es
		}(), Limits{},
			want{problems: []Problem{{Message: "the folder has more than 2,000 entries"}}}},
		{"a huge .agent folder is refused", []collectEnt{reg("playbook.py", "x"), reg(".agent/log", strings.Repeat("x", 2000))}, Limits{MaxSkippedBytes: 1000},
			want{problems: []Problem{{Message: "the left-out folders (.agent/, __pycache__/) hold more than 1000 bytes"}}}},
		{"problems are capped", func() (es []collectEnt) {
			for i := range 50 {
				es = append(es, reg(fmt.Sprintf("../x%02d", i), "x"))
			}
			return es
		}(), Limits{},
			want{problems: func() (ps []Problem) {
				for i := range collectMaxProblems {
					ps = append(ps, Problem{Path: fmt.Sprintf("../x%02d", i), Message: "leaves"})
				}
				return append(ps, Problem{Message: "stopped after 20 problems"})
			}()}},
		{"truncated stream", []collectEnt{reg("playbook.py", "x"), {name: "cut.py", size: 100}}, Limits{}, want{bad: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Collect(bytes.NewReader(collectTar(t, tt.ents...)), tt.lim)
			checkResult(t, b, err, tt.lim, tt.want.paths, tt.want.skipped, tt.want.problems, tt.want.bad)
		})
	}
}

func checkResult(t *testing.T, b *Bundle, err error, lim Limits, paths []string, skipped, problems []Problem, bad bool) {
	t.Helper()
	var ce *CollectError
	switch {
	case bad:
		if !errors.Is(err, ErrBadArchive) || b != nil {
			t.Fatalf("got %v, %v; want ErrBadArchive", b, err)
		}
	case problems != nil:
		if !errors.As(err, &ce) || b != nil {
			t.Fatalf("got %v, %v; want a CollectError", b, err)
		}
		if len(ce.Problems) != len(problems) {
			t.Fatalf("problems %+v; want %+v", ce.Problems, problems)
		}
		for i, p := range problems {
			g := ce.Problems[i]
			if g.Path != p.Path || g.Line != p.Line || !strings.Contains(g.Message, p.Message) {
				t.Errorf("problem %d = %+v; want %+v", i, g, p)
			}
		}
	default:
		if err != nil {
			t.Fatal(err)
		}
		checkCollected(t, b, lim)
		if got := collectPaths(b); !slices.Equal(got, paths) {
			t.Errorf("paths %q; want %q", got, paths)
		}
		if !slices.Equal(b.Skipped, skipped) {
			t.Errorf("skipped %+v; want %+v", b.Skipped, skipped)
		}
	}
}

func TestCollectTestdata(t *testing.T) {
	b, err := Collect(bytes.NewReader(testdataTar(t, "phishing")), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	checkCollected(t, b, DefaultLimits)
	if got, want := collectPaths(b), []string{"README.md", "indicators.py", "manifest.json", "playbook.py"}; !slices.Equal(got, want) {
		t.Fatalf("paths %q; want %q", got, want)
	}
}

// TestCollectRealTar archives a real folder with GNU tar, as a workspace
// would be read: "./" names, a symlink to /etc/passwd, the agent's folder,
// Python caches.
func TestCollectRealTar(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar command")
	}
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("playbook.py", "def run(alert, ctx):\n    return {}\n")
	write("README.md", "# r\n")
	write(".agent/history.json", "[]")
	write("__pycache__/playbook.cpython-311.pyc", "\x00\x01")
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tarBin, "-C", dir, "-cf", "-", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Collect(bytes.NewReader(out), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	checkCollected(t, b, DefaultLimits)
	if got, want := collectPaths(b), []string{"README.md", "playbook.py"}; !slices.Equal(got, want) {
		t.Fatalf("paths %q; want %q", got, want)
	}
	want := []Problem{
		{Path: ".agent/", Message: "skipped: the agent's state folder is not part of the playbook"},
		{Path: "passwd", Message: "skipped: symbolic link to /etc/passwd"},
	}
	if !slices.Equal(b.Skipped, want) {
		t.Fatalf("skipped %+v; want %+v", b.Skipped, want)
	}
	for _, f := range b.Files {
		if bytes.Contains(f.Content, []byte("root:")) {
			t.Fatalf("%s holds /etc/passwd's content", f.Path)
		}
	}
}

// TestCollectStopsEarly: over-limit streams are refused without reading
// them through.
func TestCollectStopsEarly(t *testing.T) {
	var many []collectEnt
	for i := range 10_000 {
		many = append(many, reg(fmt.Sprintf("f%05d.py", i), "x = 1\n"))
	}
	tests := []struct {
		name    string
		stream  []byte
		maxRead int64
	}{
		// 201 entries of a header block and a data block, plus PAX
		// headers and the reader's buffering.
		{"10,000 files", collectTar(t, many...), 400 * 1024},
		{"6 MB file", collectTar(t, reg("big.txt", strings.Repeat("a", 6_000_000))), 8 * 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(tt.stream)}
			start := time.Now()
			_, err := Collect(r, DefaultLimits)
			var ce *CollectError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v; want a CollectError", err)
			}
			if r.n > tt.maxRead {
				t.Errorf("read %d of %d bytes; want at most %d", r.n, len(tt.stream), tt.maxRead)
			}
			t.Logf("refused in %v after reading %d of %d bytes: %v", time.Since(start), r.n, len(tt.stream), err)
		})
	}
}

func TestCollectGarbage(t *testing.T) {
	for name, s := range map[string][]byte{
		"random bytes": bytes.Repeat([]byte("garbage!"), 200),
		"short":        []byte("xyz"),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Collect(bytes.NewReader(s), DefaultLimits)
			if !errors.Is(err, ErrBadArchive) || b != nil {
				t.Fatalf("got %v, %v; want ErrBadArchive", b, err)
			}
		})
	}
}

func TestCollectErrorMessage(t *testing.T) {
	_, err := Collect(bytes.NewReader(collectTar(t, reg("../../x", "a"), reg("logo.png", "\x89PNG\x00"))), DefaultLimits)
	want := `playbook: the playbook folder cannot be saved (2 problems): ` +
		`../../x: the path leaves the playbook folder (it has a ".." component); ` +
		`logo.png:1: not a text file: it holds NUL bytes, as binary files do; only UTF-8 text files can be saved`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
	one := &CollectError{Problems: []Problem{{Message: "the folder has more than 200 files; the limit is 200 files"}}}
	if got, want := one.Error(), "playbook: the playbook folder cannot be saved: the folder has more than 200 files; the limit is 200 files"; got != want {
		t.Fatalf("error %q; want %q", got, want)
	}
}

func TestCleanEntryPath(t *testing.T) {
	tests := []struct {
		name  string
		dir   bool
		want  string
		wrong string
	}{
		{"playbook.py", false, "playbook.py", ""},
		{"./playbook.py", false, "playbook.py", ""},
		{"././a/b.py", false, "a/b.py", ""},
		{"./", true, "", ""},
		{".", true, "", ""},
		{"pkg/", true, "pkg", ""},
		{"pkg/", false, "", "not in clean form"},
		{".", false, "", "the folder itself"},
		{"", false, "", "without a name"},
		{"a\x00b", false, "", "NUL"},
		{"\xff.py", false, "", "not valid UTF-8"},
		{"a\\b", false, "", "backslash"},
		{"/etc/passwd", false, "", "absolute"},
		{"..", true, "", "leaves"},
		{"a/./b", false, "", "not in clean form"},
		{"a\x7fb", false, "", "control character"},
		{strings.Repeat("a", 2000), false, "", "longer than 1024 bytes"},
		{"café/naïve.py", false, "café/naïve.py", ""},
	}
	for _, tt := range tests {
		got, bad := cleanEntryPath(tt.name, tt.dir)
		if got != tt.want || (tt.wrong == "") != (bad == "") || !strings.Contains(bad, tt.wrong) {
			t.Errorf("cleanEntryPath(%q, %v) = %q, %q; want %q, %q", tt.name, tt.dir, got, bad, tt.want, tt.wrong)
		}
	}
}

// TestCollectTiming measures Collect of a full folder: 200 files.
func TestCollectTiming(t *testing.T) {
	stream := collect200(t)
	start := time.Now()
	b, err := Collect(bytes.NewReader(stream), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Collect of %d files (%d bytes): %v", len(b.Files), len(stream), time.Since(start))
}

func collect200(t testing.TB) []byte {
	var es []collectEnt
	line := strings.Repeat("# a line of a helper module\n", 800) // 22 KB a file
	for i := range 200 {
		es = append(es, reg(fmt.Sprintf("pkg%d/mod%03d.py", i%10, i), line))
	}
	return collectTar(t, es...)
}

func BenchmarkCollect200(b *testing.B) {
	stream := collect200(b)
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		if _, err := Collect(bytes.NewReader(stream), DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

// patchSize rewrites the size field of the first header of a stream
// (a ustar header: octal at offset 124) and its checksum.
func patchSize(stream []byte, size string) []byte {
	s := slices.Clone(stream)
	copy(s[124:136], fmt.Sprintf("%011s\x00", size))
	copy(s[148:156], "        ")
	var sum int64
	for _, c := range s[:512] {
		sum += int64(c)
	}
	copy(s[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return s
}

func FuzzCollect(f *testing.F) {
	ustar := func(ents ...collectEnt) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range ents {
			tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Size: int64(len(e.body)), Mode: 0o644, Format: tar.FormatUSTAR})
			io.WriteString(tw, e.body)
		}
		tw.Close()
		return buf.Bytes()
	}
	seeds := [][]byte{
		testdataTar(f, "phishing"),
		collectTar(f, reg("./playbook.py", "def run(alert, ctx):\n    return {}\n"), collectEnt{name: "passwd", typ: tar.TypeSymlink, link: "/etc/passwd"}),
		collectTar(f, reg("../../x", "evil")),
		collectTar(f, reg("/etc/x", "evil"), reg(`a\b`, "x")),
		collectTar(f, reg("a", "1"), reg("a", "2"), reg("a/b", "3")),
		collectTar(f, reg("bin", "\x00\xff"), reg("latin", "caf\xe9")),
		collectTar(f, reg(".agent/x", "y"), reg("__pycache__/m.pyc", "\x00"), collectEnt{name: "d/", typ: tar.TypeDir}),
		collectTar(f, collectEnt{name: "huge", size: 1 << 40}),
		patchSize(ustar(reg("huge.py", "x = 1\n")), "77777777777"),
		patchSize(ustar(reg("short.py", "x = 1\n")), "100"),
		ustar(reg("a.py", "x"), reg("b.py", strings.Repeat("y", 600))),
		ustar(reg("a.py", "x"))[:700], // truncated
		[]byte("not a tar stream at all"),
		bytes.Repeat([]byte{0xff}, 1024),
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	small := Limits{MaxFiles: 3, MaxTotal: 1000, MaxFile: 500, MaxEntries: 10, MaxSkippedBytes: 1000}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lim := range []Limits{small, DefaultLimits} {
			b, err := Collect(bytes.NewReader(data), lim)
			if err != nil {
				var ce *CollectError
				switch {
				case b != nil:
					t.Fatalf("a bundle with the error %v", err)
				case errors.As(err, &ce):
					if len(ce.Problems) == 0 || len(ce.Problems) > collectMaxProblems+1 {
						t.Fatalf("%d problems", len(ce.Problems))
					}
				case !errors.Is(err, ErrBadArchive):
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			checkCollected(t, b, lim)
		}
	})
}
