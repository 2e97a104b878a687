package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/egress"
)

// countingEgress answers every call 204 and counts them; with block set,
// a call waits for a token on block (or its context) and says on entered
// that it is in the egress.
type countingEgress struct {
	mu      sync.Mutex
	n       int
	entered chan struct{}
	block   chan struct{}
}

func (e *countingEgress) Do(ctx context.Context, r egress.Request) (*egress.Response, error) {
	e.mu.Lock()
	e.n++
	e.mu.Unlock()
	if e.block != nil {
		select {
		case e.entered <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case <-e.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &egress.Response{Status: 204}, nil
}

func (e *countingEgress) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// testSession is a run's session without a sandbox: the tests below play
// the runtime (or a playbook writing to the socket itself).
func testSession(t *testing.T, out egress.Doer) (*session, *fakeAlerts) {
	t.Helper()
	alerts := &fakeAlerts{alerts: map[string]AlertInfo{}}
	svc := &Service{log: slog.New(slog.DiscardHandler), egress: out, alerts: alerts, now: time.Now}
	return newSession(svc, Run{ID: "r1", Tenant: tenant, AlertID: "a1", PlaybookID: "pb"}, time.Now()), alerts
}

// serveSession serves s on a unix socket until the test ends.
func serveSession(t *testing.T, s *session) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctx.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

// ctxConn is a connection to a session's socket.
type ctxConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialCtx(t *testing.T, path string) *ctxConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &ctxConn{c: c, br: bufio.NewReader(c)}
}

// answer reads one answer; the deadline only keeps a broken server from
// hanging the test.
func (cc *ctxConn) answer() (map[string]any, error) {
	_ = cc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := cc.br.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var a map[string]any
	if err := json.Unmarshal(line, &a); err != nil {
		return nil, err
	}
	return a, nil
}

func (cc *ctxConn) call(t *testing.T, msg map[string]any) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(msg)
	if _, err := cc.c.Write(append(raw, '\n')); err != nil {
		t.Fatal(err)
	}
	a, err := cc.answer()
	if err != nil {
		t.Fatalf("%v: no answer: %v", msg["op"], err)
	}
	return a
}

// errMessage is an answer's error message ("" when it succeeded).
func errMessage(a map[string]any) string {
	e, _ := a["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// closedByPeer tells whether the connection was closed by the other side.
func (cc *ctxConn) closedByPeer() bool {
	_, err := cc.answer()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func gatewayNotes(r Run) []string {
	var out []string
	for _, l := range r.Log {
		if l.By == ByGateway {
			out = append(out, l.Message)
		}
	}
	return out
}

// TestConnectionCap: a run holds at most maxConns connections at once; one
// more is told why and closed, and a connection closed frees its place.
func TestConnectionCap(t *testing.T) {
	s, _ := testSession(t, &countingEgress{})
	path := serveSession(t, s)
	var open []*ctxConn
	for i := range maxConns {
		cc := dialCtx(t, path)
		if a := cc.call(t, map[string]any{"id": 1, "op": "hello"}); errMessage(a) != "" {
			t.Fatalf("connection %d: %v", i, a)
		}
		open = append(open, cc)
	}
	extra := dialCtx(t, path)
	a, err := extra.answer()
	if err != nil || !strings.Contains(errMessage(a), "at most 4 connections") {
		t.Fatalf("a connection past the cap should be told why: %v %v", a, err)
	}
	if !extra.closedByPeer() {
		t.Fatal("a connection past the cap should be closed")
	}
	open[0].c.Close()
	// The server frees the place when it reads the close: try until it
	// has (the deadline only keeps a broken server from hanging the test).
	for deadline := time.Now().Add(30 * time.Second); ; {
		cc := dialCtx(t, path)
		raw, _ := json.Marshal(map[string]any{"id": 1, "op": "hello"})
		_, _ = cc.c.Write(append(raw, '\n'))
		if a, err := cc.answer(); err == nil && errMessage(a) == "" {
			break
		}
		cc.c.Close()
		if time.Now().After(deadline) {
			t.Fatal("a closed connection's place was never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var r Run
	s.snapshot(&r)
	if notes := gatewayNotes(r); len(notes) == 0 || !strings.Contains(strings.Join(notes, "|"), "connections to the gateway were refused") {
		t.Fatalf("the refusal should be noted by the gateway: %q", notes)
	}
}

// TestMessageLimits: each operation has its own limit, the line read is
// bounded by the longest, and a line past that closes the connection
// before the gateway holds more of it.
func TestMessageLimits(t *testing.T) {
	out := &countingEgress{}
	s, _ := testSession(t, out)
	path := serveSession(t, s)
	cc := dialCtx(t, path)

	a := cc.call(t, map[string]any{"id": 1, "op": "log", "message": strings.Repeat("x", maxLogMessage)})
	if m := errMessage(a); !strings.Contains(m, "log message is") {
		t.Fatalf("a log message over %d bytes should be refused: %v", maxLogMessage, a)
	}
	if a["id"] != float64(1) {
		t.Fatalf("the refusal should answer the message's id: %v", a)
	}
	a = cc.call(t, map[string]any{"id": 2, "op": "log", "message": strings.Repeat("y", 5000)})
	if errMessage(a) != "" {
		t.Fatalf("a long log line under the limit is cut, not refused: %v", a)
	}
	body, _ := json.Marshal(map[string]string{"a": strings.Repeat("b", maxRequestBody)})
	a = cc.call(t, map[string]any{"id": 3, "op": "request", "integration": "Svc", "method": "POST", "path": "/x", "json": json.RawMessage(body)})
	if m := errMessage(a); !strings.Contains(m, "request body is") || a["error"].(map[string]any)["type"] != "IntegrationError" {
		t.Fatalf("a request body over %d bytes should be refused as an IntegrationError: %v", maxRequestBody, a)
	}
	params := map[string]any{}
	for i := range maxRequestRest / 8 {
		params[strconv.Itoa(i)] = []string{""}
	}
	a = cc.call(t, map[string]any{"id": 3, "op": "request", "integration": "Svc", "method": "GET", "path": "/x", "params": params})
	if m := errMessage(a); !strings.Contains(m, "path, query and headers are") {
		t.Fatalf("a query over %d bytes should be refused before it is decoded: %v", maxRequestRest, a)
	}
	a = cc.call(t, map[string]any{"id": 4, "op": "action", "type": "comment_on_alert", "text": strings.Repeat("c", maxOther)})
	if m := errMessage(a); !strings.Contains(m, "action message is") {
		t.Fatalf("an action over %d bytes should be refused: %v", maxOther, a)
	}
	if out.count() != 0 {
		t.Fatalf("a refused request reached the egress (%d calls)", out.count())
	}
	if a := cc.call(t, map[string]any{"id": 5, "op": "hello"}); errMessage(a) != "" {
		t.Fatalf("refusals keep the connection: %v", a)
	}

	// Past the longest limit, without a newline: the gateway stops
	// reading and closes (before, it waited for 16 MiB).
	long := dialCtx(t, path)
	go func() { _, _ = long.c.Write([]byte(`{"op":"log","message":"` + strings.Repeat("z", 2*maxLine))) }()
	if !long.closedByPeer() {
		t.Fatal("a line past the longest limit should close its connection")
	}
	var r Run
	s.snapshot(&r)
	if len(r.Log) == 0 || r.Log[0].By != ByPlaybook || !strings.HasSuffix(r.Log[0].Message, "…") || len(r.Log[0].Message) != maxLogLine+len("…") {
		t.Fatalf("the long log line should be cut and the playbook's: %+v", r.Log)
	}
	if notes := gatewayNotes(r); !strings.Contains(strings.Join(notes, "|"), "ctx messages over") {
		t.Fatalf("the closed connection should be noted by the gateway: %q", notes)
	}
}

func TestReadLineLimit(t *testing.T) {
	for _, c := range []struct {
		in      string
		limit   int
		want    string
		wantErr error
	}{
		{"abc\n", 4, "abc\n", nil},
		{"abcd\n", 4, "", errTooLong},
		{"abc", 4, "abc", nil},
		{"", 4, "", io.EOF},
	} {
		got, err := readLine(bufio.NewReaderSize(strings.NewReader(c.in), 16), c.limit)
		if string(got) != c.want || !errors.Is(err, c.wantErr) {
			t.Errorf("readLine(%q, %d) = %q, %v; want %q, %v", c.in, c.limit, got, err, c.want, c.wantErr)
		}
	}
	// A long line is refused having held at most the limit: bufio's
	// 16-byte chunks of a 1000-byte line stop at the limit's chunk.
	r := &countingReader{r: strings.NewReader(strings.Repeat("x", 1000) + "\n")}
	if _, err := readLine(bufio.NewReaderSize(r, 16), 64); !errors.Is(err, errTooLong) || r.n > 64+16 {
		t.Fatalf("read %d bytes of a refused line (err %v)", r.n, err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestInFlightCap: at most maxInFlight integration calls of a run are in
// the egress at once; one more waits for a slot, or for the run's end.
func TestInFlightCap(t *testing.T) {
	out := &countingEgress{entered: make(chan struct{}), block: make(chan struct{})}
	s, _ := testSession(t, out)
	req := func(ctx context.Context) *callError {
		_, cerr := s.handle(ctx, &message{Op: "request", Integration: "Svc", Method: "GET", Path: "/x"})
		return cerr
	}
	var wg sync.WaitGroup
	for range maxInFlight {
		wg.Add(1)
		go func() { defer wg.Done(); _ = req(context.Background()) }()
	}
	for range maxInFlight {
		<-out.entered
	}
	// The slots are full: a call whose run ends while it waits is never
	// sent.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if cerr := req(ended); cerr == nil || !strings.Contains(cerr.Message, "run ended before the call was sent") {
		t.Fatalf("a call waiting past the run's end: %v", cerr)
	}
	if n := out.count(); n != maxInFlight {
		t.Fatalf("%d calls reached the egress; at most %d at once", n, maxInFlight)
	}
	// One more waits, and goes when a slot is free.
	wg.Add(1)
	go func() { defer wg.Done(); _ = req(context.Background()) }()
	out.block <- struct{}{}
	<-out.entered
	close(out.block)
	wg.Wait()
	if n := out.count(); n != maxInFlight+1 {
		t.Fatalf("%d calls reached the egress, want %d", n, maxInFlight+1)
	}
}

// TestCapsRefuse: past maxCalls and maxActions, calls and actions are
// refused (not made unrecorded), and an action is refused whole when its
// calls do not fit.
func TestCapsRefuse(t *testing.T) {
	out := &countingEgress{}
	s, alerts := testSession(t, out)
	ctx := context.Background()
	req := &message{Op: "request", Integration: "Svc", Method: "GET", Path: "/x"}
	for i := range maxCalls - 1 {
		if _, cerr := s.handle(ctx, req); cerr != nil {
			t.Fatalf("call %d: %v", i, cerr)
		}
	}
	cerr := s.action(ctx, &message{Type: "block_user", UPN: "eve@example.com"})
	if cerr == nil || !strings.Contains(cerr.Message, "at most 1000 integration calls") || !strings.Contains(cerr.Message, "block_user (2 integration calls) was not applied") {
		t.Fatalf("block_user without room for its two calls: %v", cerr)
	}
	if out.count() != maxCalls-1 {
		t.Fatalf("block_user refused made calls: %d", out.count())
	}
	if cerr := s.action(ctx, &message{Type: "disable_user", UPN: "eve@example.com"}); cerr != nil {
		t.Fatalf("disable_user with room for its call: %v", cerr)
	}
	_, cerr = s.handle(ctx, req)
	if cerr == nil || cerr.Type != "IntegrationError" || !strings.Contains(cerr.Message, "a run may make at most 1000 integration calls") {
		t.Fatalf("the call past the cap: %v", cerr)
	}
	if out.count() != maxCalls {
		t.Fatalf("%d calls reached the egress, want %d", out.count(), maxCalls)
	}
	comment := &message{Type: "comment_on_alert", Text: "seen"}
	for i := range maxActions - 1 { // disable_user was one
		if cerr := s.action(ctx, comment); cerr != nil {
			t.Fatalf("action %d: %v", i, cerr)
		}
	}
	cerr = s.action(ctx, comment)
	if cerr == nil || cerr.Type != "ActionError" || !strings.Contains(cerr.Message, "a run may take at most 1000 actions") {
		t.Fatalf("the action past the cap: %v", cerr)
	}
	alerts.mu.Lock()
	applied := len(alerts.acts)
	alerts.mu.Unlock()
	if applied != maxActions-1 {
		t.Fatalf("%d comments were applied, want %d", applied, maxActions-1)
	}
	var r Run
	s.snapshot(&r)
	if len(r.Calls) != maxCalls || len(r.Actions) != maxActions {
		t.Fatalf("recorded %d calls and %d actions", len(r.Calls), len(r.Actions))
	}
	notes := strings.Join(gatewayNotes(r), "|")
	if !strings.Contains(notes, "(1 integration calls were refused") || !strings.Contains(notes, "(2 actions were refused") {
		t.Fatalf("gateway notes %q", notes)
	}
}

// TestLogLineAuthors: the playbook's lines say so, the gateway's notes
// too, so that a playbook's imitation of a note is told apart.
func TestLogLineAuthors(t *testing.T) {
	s, _ := testSession(t, &countingEgress{})
	for range maxLogLines + 3 {
		s.addLog("(3 more log lines were dropped: a run keeps 1000)")
	}
	var r Run
	s.snapshot(&r)
	if len(r.Log) != maxLogLines+1 {
		t.Fatalf("%d lines", len(r.Log))
	}
	for _, l := range r.Log[:maxLogLines] {
		if l.By != ByPlaybook {
			t.Fatalf("a playbook's line: %+v", l)
		}
	}
	if last := r.Log[maxLogLines]; last.By != ByGateway || last.Message != "(3 more log lines were dropped: a run keeps 1000)" {
		t.Fatalf("the gateway's note: %+v", last)
	}
	raw, _ := json.Marshal(r.Log[0])
	if !strings.Contains(string(raw), `"by":"playbook"`) {
		t.Fatalf("a line's JSON should say who wrote it: %s", raw)
	}
}

// TestOldLogLinesDecode: runs recorded before lines said who wrote them
// still read, with by empty.
func TestOldLogLinesDecode(t *testing.T) {
	st, err := openStore(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	r := Run{ID: "00000000-0000-4000-8000-000000000009", Tenant: tenant, Trigger: TriggerManual, AlertID: "a1", PlaybookID: "pb",
		PlaybookVersion: 1, Status: StatusQueued, QueuedAt: time.Now(), Log: []LogLine{}, Calls: []Call{}, Actions: []Action{}}
	if err := st.insert(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := st.db.W.ExecContext(ctx, `UPDATE runs SET log = ? WHERE id = ?`, `[{"at":"2024-05-01T10:00:00Z","message":"old line"}]`, r.ID); err != nil {
		t.Fatal(err)
	}
	got, err := st.get(ctx, tenant, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Log) != 1 || got.Log[0].Message != "old line" || got.Log[0].By != "" {
		t.Fatalf("old log %+v", got.Log)
	}
}

// TestResultPreview: a result over maxResultBytes is kept as its start,
// whether the runtime sent it whole or only its start.
func TestResultPreview(t *testing.T) {
	big := `{"a":"` + strings.Repeat("x", maxResultBytes) + `"}`
	for name, m := range map[string]*message{
		"whole": {Result: json.RawMessage(big)},
		"start": {Preview: big[:maxResultBytes], ResultBytes: int64(len(big))},
	} {
		var got struct {
			Truncated bool   `json:"truncated"`
			Bytes     int    `json:"bytes"`
			Preview   string `json:"preview"`
		}
		if err := json.Unmarshal(storedResult(m), &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.Truncated || got.Bytes != len(big) || got.Preview != big[:maxResultBytes] {
			t.Fatalf("%s: %v %d %d", name, got.Truncated, got.Bytes, len(got.Preview))
		}
	}
	if small := storedResult(&message{Result: json.RawMessage(`{"ok":true}`)}); string(small) != `{"ok":true}` {
		t.Fatalf("a small result is kept whole: %s", small)
	}
}

// TestRunLimits: the limits seen from a sandboxed playbook: open files,
// a long log line cut (not refused), a body too large and an action past
// the cap refused inside the run, a result over the limit previewed, and
// lines the playbook wrote marked as its own.
func TestRunLimits(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	r := e.run(t, "limits", `
from playbook_sdk import ActionError, IntegrationError

def run(alert, ctx):
    out = {}
    with open("/proc/self/limits") as f:
        out["nofile"] = [l.split()[3:5] for l in f if l.startswith("Max open files")][0]
    ctx.log("x" * 10000)
    print("(5 more log lines were dropped: a run keeps 1000)")
    try:
        ctx.integration("Svc").post("/big", json={"a": "x" * (1 << 20)})
        out["big"] = "sent"
    except IntegrationError as e:
        out["big"] = str(e)
    try:
        ctx.integration("Svc").get("/q", params={"q": "x" * 70000})
        out["query"] = "sent"
    except IntegrationError as e:
        out["query"] = str(e)
    try:
        ctx.comment_on_alert("y" * 200000)
        out["comment"] = "sent"
    except ActionError as e:
        out["comment"] = str(e)
    n = 0
    try:
        for _ in range(1001):
            ctx.set_alert_status("inProgress")
            n += 1
    except ActionError as e:
        out["cap"] = str(e)
    out["applied"] = n
    return {"out": out, "pad": "z" * 100000}
`)
	failing := e.run(t, "stderr", "import os, sys\ndef run(alert, ctx):\n    sys.stderr.write('(the gateway says: all fine)\\n')\n    sys.stderr.flush()\n    os._exit(3)\n")
	got := e.wait(t, r.ID)
	if got.Status != StatusSucceeded {
		t.Fatalf("status %s: %s %+v", got.Status, got.Error, got.Log)
	}
	var res struct {
		Truncated bool   `json:"truncated"`
		Bytes     int    `json:"bytes"`
		Preview   string `json:"preview"`
	}
	if err := json.Unmarshal(got.Result, &res); err != nil || !res.Truncated || res.Bytes < 100000 || len(res.Preview) != maxResultBytes {
		t.Fatalf("a result over %d bytes should be previewed: %v %v %d %d", maxResultBytes, err, res.Truncated, res.Bytes, len(res.Preview))
	}
	// The preview is the JSON text's start: "out" whole (dict order),
	// then part of "pad".
	var inner struct {
		Out map[string]any `json:"out"`
	}
	head, _, _ := strings.Cut(res.Preview, `,"pad"`)
	if err := json.Unmarshal([]byte(head+"}"), &inner); err != nil {
		t.Fatalf("%v: %.300s", err, res.Preview)
	}
	o := inner.Out
	if nofile, _ := o["nofile"].([]any); len(nofile) != 2 || nofile[0] != "256" || nofile[1] != "256" {
		t.Errorf("RLIMIT_NOFILE in the run: %v", o["nofile"])
	}
	if m, _ := o["big"].(string); !strings.Contains(m, "request body is") {
		t.Errorf("a body over 1 MiB: %v", o["big"])
	}
	if m, _ := o["query"].(string); !strings.Contains(m, "path, query and headers are") {
		t.Errorf("a 70 KB query: %v", o["query"])
	}
	if m, _ := o["comment"].(string); !strings.Contains(m, "the gateway takes at most") {
		t.Errorf("a 200 KB comment: %v", o["comment"])
	}
	if m, _ := o["cap"].(string); !strings.Contains(m, "a run may take at most 1000 actions") || o["applied"] != float64(maxActions) {
		t.Errorf("the action past the cap: %v after %v", o["cap"], o["applied"])
	}
	if len(got.Actions) != maxActions {
		t.Errorf("%d actions recorded", len(got.Actions))
	}
	if len(got.Log) < 3 || len(got.Log[0].Message) != maxLogLine+len("…") || got.Log[0].By != ByPlaybook {
		t.Fatalf("log %.500v", got.Log)
	}
	if got.Log[1].Message != "(5 more log lines were dropped: a run keeps 1000)" || got.Log[1].By != ByPlaybook {
		t.Errorf("the playbook's imitation of a note: %+v", got.Log[1])
	}
	if notes := gatewayNotes(got); len(notes) != 1 || !strings.Contains(notes[0], "(1 actions were refused") {
		t.Errorf("gateway notes %q", notes)
	}
	f := e.wait(t, failing.ID)
	var stderr []LogLine
	for _, l := range f.Log {
		if strings.Contains(l.Message, "the gateway says") {
			stderr = append(stderr, l)
		}
	}
	if len(stderr) != 1 || stderr[0].By != ByPlaybook {
		t.Errorf("what the runtime wrote to stderr is the playbook's: %+v", f.Log)
	}
}
