package playbook

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits bound what Collect accepts from a workspace. A zero field takes
// its DefaultLimits value.
type Limits struct {
	// MaxFiles is the number of regular files collected (skipped entries
	// and directories do not count).
	MaxFiles int
	// MaxTotal is the size in bytes of all collected files together.
	MaxTotal int64
	// MaxFile is the size in bytes of one collected file.
	MaxFile int64
	// MaxEntries bounds every entry of the stream, directories, links and
	// silently skipped files (.agent/, __pycache__/) included, so that a
	// stream of a million empty directories is refused as well.
	MaxEntries int
	// MaxSkippedBytes bounds the content of silently skipped files
	// (.agent/, __pycache__/, *.pyc) that Collect reads past and discards.
	MaxSkippedBytes int64
}

// DefaultLimits are the product's limits for a playbook folder: 200 files,
// 5 MiB (5,242,880 bytes) in all, 1 MiB (1,048,576 bytes) a file. Treat it
// as read-only.
var DefaultLimits = Limits{
	MaxFiles:        200,
	MaxTotal:        5 << 20,
	MaxFile:         1 << 20,
	MaxEntries:      2000,
	MaxSkippedBytes: 64 << 20,
}

func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultLimits.MaxTotal
	}
	if l.MaxFile <= 0 {
		l.MaxFile = DefaultLimits.MaxFile
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultLimits.MaxEntries
	}
	if l.MaxSkippedBytes <= 0 {
		l.MaxSkippedBytes = DefaultLimits.MaxSkippedBytes
	}
	return l
}

// CollectError refuses a playbook folder: it names every problem found (up
// to a cap). Each Problem's Message reads after its Path, as in
// "../../x: the path leaves the playbook folder"; a Problem about the whole
// folder (a limit) has no Path.
type CollectError struct {
	Problems []Problem
}

func (e *CollectError) Error() string {
	var b strings.Builder
	b.WriteString("playbook: the playbook folder cannot be saved")
	if n := len(e.Problems); n > 1 {
		fmt.Fprintf(&b, " (%d problems)", n)
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(problemString(p))
	}
	return b.String()
}

// problemString formats a problem as "path:line: message".
func problemString(p Problem) string {
	switch {
	case p.Path == "":
		return p.Message
	case p.Line > 0:
		return p.Path + ":" + strconv.Itoa(p.Line) + ": " + p.Message
	default:
		return p.Path + ": " + p.Message
	}
}

// ErrBadArchive is wrapped by Collect's error when the stream is not a
// readable tar archive (truncated, garbage): a failure to read the
// workspace rather than a problem of the playbook.
var ErrBadArchive = errors.New("playbook: the workspace archive is not a valid tar stream")

const (
	// collectMaxProblems caps the problems a CollectError names.
	collectMaxProblems = 20
	// collectMaxPath bounds an entry's path, in bytes.
	collectMaxPath = 1024
	// agentFolder is the agent extension's state folder in a workspace.
	agentFolder = ".agent"
)

// Collect reads a playbook folder as an untrusted tar stream whose entries
// are relative to the folder ("playbook.py" or "./playbook.py").
//
// It keeps regular files that are UTF-8 text, sorted by path. Symbolic and
// hard links, devices and FIFOs are left out and listed in Bundle.Skipped
// (a link's target is never read: Collect touches nothing but the stream).
// The agent's state folder .agent/ is left out and listed once in Skipped;
// __pycache__/ folders and *.pyc files are left out silently. Directories
// are accepted and not recorded.
//
// Unsafe or ambiguous paths (absolute, "..", backslashes, NUL or control
// characters, duplicates, a file that is also a folder) and files that are
// not UTF-8 text are refused with a *CollectError naming every one of
// them. Crossing a limit refuses at once, without reading further: the
// memory used is bounded by the limits, whatever the headers claim. A
// stream that is not a readable tar archive returns an error wrapping
// ErrBadArchive.
func Collect(r io.Reader, lim Limits) (*Bundle, error) {
	c := &collector{
		lim:   lim.withDefaults(),
		files: map[string]bool{},
		dirs:  map[string]bool{},
	}
	if err := c.run(tar.NewReader(r)); err != nil {
		return nil, err
	}
	if len(c.problems) > 0 {
		return nil, &CollectError{Problems: c.problems}
	}
	sort.Slice(c.bundle.Files, func(i, j int) bool { return c.bundle.Files[i].Path < c.bundle.Files[j].Path })
	sort.SliceStable(c.bundle.Skipped, func(i, j int) bool { return c.bundle.Skipped[i].Path < c.bundle.Skipped[j].Path })
	return &c.bundle, nil
}

type collector struct {
	lim      Limits
	bundle   Bundle
	problems []Problem
	files    map[string]bool // collected file paths
	dirs     map[string]bool // directories, listed or implied by a file's path
	entries  int
	total    int64 // bytes collected
	skipped  int64 // bytes of silently skipped files
	agent    bool  // .agent/ noted in Skipped
}

// errStop ends the reading once the collector has refused the folder.
var errStop = errors.New("stop")

func (c *collector) run(tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadArchive, err)
		}
		if err := c.entry(tr, hdr); err == errStop {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// problem records a refusal; it returns errStop when the cap is reached.
func (c *collector) problem(p Problem) error {
	c.problems = append(c.problems, p)
	if len(c.problems) >= collectMaxProblems {
		c.problems = append(c.problems, Problem{Message: fmt.Sprintf(
			"stopped after %d problems; fix these and save again", collectMaxProblems)})
		return errStop
	}
	return nil
}

// refuse records a crossed limit and stops.
func (c *collector) refuse(p Problem) error {
	c.problems = append(c.problems, p)
	return errStop
}

func (c *collector) entry(tr *tar.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // metadata of the whole archive (git archive writes one)
	}
	c.entries++
	if c.entries > c.lim.MaxEntries {
		return c.refuse(Problem{Message: fmt.Sprintf(
			"the folder has more than %s entries (files, folders and links together); the limit is %s",
			formatCount(c.lim.MaxEntries), formatCount(c.lim.MaxEntries))})
	}
	isDir := hdr.Typeflag == tar.TypeDir
	p, bad := cleanEntryPath(hdr.Name, isDir)
	if bad != "" {
		return c.problem(Problem{Path: displayPath(hdr.Name), Message: bad})
	}
	if p == "" {
		return nil // the folder itself ("./")
	}
	if silentlySkipped(p) {
		if strings.SplitN(p, "/", 2)[0] == agentFolder && !c.agent {
			c.agent = true
			c.bundle.Skipped = append(c.bundle.Skipped, Problem{Path: agentFolder + "/",
				Message: "skipped: the agent's state folder is not part of the playbook"})
		}
		if isRegular(hdr.Typeflag) {
			// tar.Reader discards the content on the next call to Next;
			// refuse before reading past more than the limit.
			c.skipped += max(hdr.Size, 0)
			if c.skipped > c.lim.MaxSkippedBytes {
				return c.refuse(Problem{Message: fmt.Sprintf(
					"the left-out folders (.agent/, __pycache__/) hold more than %s; the limit is %s",
					formatBytes(c.lim.MaxSkippedBytes), formatBytes(c.lim.MaxSkippedBytes))})
			}
		}
		return nil
	}
	switch {
	case isDir:
		if c.files[p] {
			return c.problem(Problem{Path: p, Message: "the path is both a file and a folder"})
		}
		c.dirs[p] = true
		return nil
	case isRegular(hdr.Typeflag):
		return c.file(tr, hdr, p)
	}
	msg := "skipped: "
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		msg += "symbolic link to " + displayPath(hdr.Linkname)
	case tar.TypeLink:
		msg += "hard link to " + displayPath(hdr.Linkname)
	case tar.TypeChar:
		msg += "character device"
	case tar.TypeBlock:
		msg += "block device"
	case tar.TypeFifo:
		msg += "named pipe (FIFO)"
	default:
		msg += fmt.Sprintf("unsupported entry type %q", string(rune(hdr.Typeflag)))
	}
	c.bundle.Skipped = append(c.bundle.Skipped, Problem{Path: p, Message: msg})
	return nil
}

func isRegular(t byte) bool {
	// archive/tar turns the old '\x00' type into TypeReg; a GNU sparse file
	// reads as its expanded content (whose zeros make it binary).
	return t == tar.TypeReg || t == tar.TypeGNUSparse
}

func (c *collector) file(tr *tar.Reader, hdr *tar.Header, p string) error {
	if len(c.bundle.Files) >= c.lim.MaxFiles {
		return c.refuse(Problem{Message: fmt.Sprintf(
			"the folder has more than %s files; the limit is %s files",
			formatCount(c.lim.MaxFiles), formatCount(c.lim.MaxFiles))})
	}
	if hdr.Size < 0 {
		return fmt.Errorf("%w: %s has a negative size", ErrBadArchive, displayPath(p))
	}
	if hdr.Size > c.lim.MaxFile {
		return c.refuse(Problem{Path: p, Message: fmt.Sprintf(
			"the file is %s; a file may be at most %s", formatBytes(hdr.Size), formatBytes(c.lim.MaxFile))})
	}
	if c.total+hdr.Size > c.lim.MaxTotal {
		return c.refuse(Problem{Message: fmt.Sprintf(
			"the folder's files add up to more than %s; the limit is %s",
			formatBytes(c.lim.MaxTotal), formatBytes(c.lim.MaxTotal))})
	}
	// hdr.Size is bounded by the limits above; the LimitReader guarantees
	// no more is read whatever the reader does.
	data := make([]byte, hdr.Size)
	if _, err := io.ReadFull(io.LimitReader(tr, hdr.Size), data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: reading %s: %w", ErrBadArchive, displayPath(p), err)
	}
	c.total += hdr.Size

	switch {
	case c.files[p]:
		return c.problem(Problem{Path: p, Message: "the path appears twice in the archive"})
	case c.dirs[p]:
		return c.problem(Problem{Path: p, Message: "the path is both a file and a folder"})
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if c.files[d] {
			return c.problem(Problem{Path: p, Message: fmt.Sprintf("its folder %s is also a file", d)})
		}
	}
	c.files[p] = true
	for d := path.Dir(p); d != "." && !c.dirs[d]; d = path.Dir(d) {
		c.dirs[d] = true
	}
	if msg, line := textProblem(data); msg != "" {
		return c.problem(Problem{Path: p, Line: line, Message: msg})
	}
	c.bundle.Files = append(c.bundle.Files, File{Path: p, Content: data})
	return nil
}

// textProblem says why data is not UTF-8 text, with the line of the first
// offending byte; "" when it is text.
func textProblem(data []byte) (string, int) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return "not a text file: it holds NUL bytes, as binary files do; only UTF-8 text files can be saved",
			lineAt(data, i)
	}
	for i := 0; i < len(data); {
		if data[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return "not valid UTF-8 text; only UTF-8 text files can be saved", lineAt(data, i)
		}
		i += n
	}
	return "", 0
}

func lineAt(data []byte, off int) int {
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

// cleanEntryPath checks an entry's name and returns it without a leading
// "./" (and, for a directory, without its trailing "/"); "" for the folder
// itself. bad says why the name is refused.
func cleanEntryPath(name string, isDir bool) (p, bad string) {
	switch {
	case name == "":
		return "", "the archive has an entry without a name"
	case len(name) > collectMaxPath:
		return "", fmt.Sprintf("the path is longer than %d bytes", collectMaxPath)
	case strings.IndexByte(name, 0) >= 0:
		return "", "the path contains a NUL byte"
	case !utf8.ValidString(name):
		return "", "the path is not valid UTF-8"
	case strings.ContainsRune(name, '\\'):
		return "", "the path contains a backslash; paths use forward slashes"
	case strings.HasPrefix(name, "/"):
		return "", "the path is absolute; entries must be relative to the playbook folder"
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", "the path contains a control character"
		}
	}
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if isDir {
		name = strings.TrimSuffix(name, "/")
	}
	if name == "" || name == "." {
		if isDir {
			return "", ""
		}
		return "", "the path names the folder itself, not a file"
	}
	parts := strings.Split(name, "/")
	for _, s := range parts {
		if s == ".." {
			return "", `the path leaves the playbook folder (it has a ".." component)`
		}
	}
	for _, s := range parts {
		if s == "" || s == "." {
			return "", `the path is not in clean form (it has an empty or "." component)`
		}
	}
	return name, ""
}

// silentlySkipped is true for the agent's state folder and Python's caches.
func silentlySkipped(p string) bool {
	parts := strings.Split(p, "/")
	if parts[0] == agentFolder {
		return true
	}
	for _, s := range parts {
		if s == "__pycache__" {
			return true
		}
	}
	return strings.HasSuffix(p, ".pyc")
}

// displayPath makes an untrusted name safe to show: quoted when it holds
// anything unprintable, shortened when long.
func displayPath(s string) string {
	const maxShown = 200
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return strconv.QuoteToGraphic(s)
	}
	return s
}

// formatCount writes n with thousands separators: 5,000.
func formatCount(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + formatCount(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// formatBytes writes a size for people: 1 MiB, 6.2 MiB, 512 bytes.
func formatBytes(n int64) string {
	const kib, mib = 1 << 10, 1 << 20
	switch {
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%d KiB", n/kib)
	case n >= kib:
		return fmt.Sprintf("%.1f KiB", float64(n)/kib)
	}
	return fmt.Sprintf("%d bytes", n)
}
