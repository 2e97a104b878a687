package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
)

// Caps of what one run records, and of what it may do: past maxCalls and
// maxActions an integration call or an action is refused (never made
// unrecorded); past maxLogLines log lines are dropped and counted.
const (
	maxLogLines    = 1000
	maxLogLine     = 4000
	maxCalls       = 1000
	maxActions     = 1000
	maxResultBytes = 64 << 10
	maxErrorBytes  = 16 << 10
)

// What one run may make the gateway hold at once. A run is untrusted
// code: without these, many connections each sending a long line, or many
// calls started together, make the gateway allocate without bound.
const (
	// maxConns is how many connections to the ctx socket a run may hold
	// at once (the runtime uses one); more are refused and closed.
	maxConns = 4
	// maxInFlight is how many integration calls of a run go through the
	// egress at once; more wait for a free slot (while the run lasts).
	maxInFlight = 4
	// maxRequestBody is the largest JSON body of a playbook's integration
	// call (the egress allows up to EGRESS_MAX_RESPONSE_BYTES; a playbook,
	// less: this much is held per connection).
	maxRequestBody = 1 << 20
	// maxRequestRest is the most of a request's line besides its body:
	// the path, the query and the headers (decoded only once checked).
	maxRequestRest = 64 << 10
	// maxLine is the longest line the gateway reads (the longest
	// operation's, request's); a longer one is refused before more of it
	// is held, and its connection closed.
	maxLine = maxRequestBody + maxRequestRest
	// maxLogMessage is a log request's limit: the runtime cuts a message
	// to just over maxLogLine bytes (the gateway keeps that many) and JSON
	// writes a byte as at most six ("\u0001").
	maxLogMessage = 32 << 10
	// maxOutcome is result's and fail's: the runtime sends a result over
	// maxResultBytes as its first maxResultBytes (a preview), and an error
	// and a traceback cut to maxErrorBytes each.
	maxOutcome = 256 << 10
	// maxOther is every other operation's (an alert comment is at most 16
	// KiB, escaped up to six times).
	maxOther = 128 << 10
)

// opLimit is the longest line of op, newline included (request's are
// checkSize's: its body and the rest apart).
func opLimit(op string) int {
	switch op {
	case "log":
		return maxLogMessage
	case "result", "fail":
		return maxOutcome
	}
	return maxOther
}

// limits are what the hello answer tells the runtime, so that it checks
// them before sending and a playbook gets an exception, not a refusal it
// cannot read.
func limits() map[string]any {
	return map[string]any{
		"ops":         map[string]int{"log": maxLogMessage, "result": maxOutcome, "fail": maxOutcome},
		"other":       maxOther,
		"requestBody": maxRequestBody,
		"requestRest": maxRequestRest,
		"logLine":     maxLogLine,
		"result":      maxResultBytes,
		"error":       maxErrorBytes,
	}
}

// Who wrote a log line: the playbook (ctx.log, print, what the runtime
// wrote to stdout or stderr, a notification's text) or the gateway (its
// notes about the run, which a playbook must not be able to pass for).
const (
	ByPlaybook = "playbook"
	ByGateway  = "gateway"
)

// GraphProfile is the profile block_user and disable_user act through.
const GraphProfile = "Microsoft Graph"

var methodRE = regexp.MustCompile(`^[A-Z]{1,16}$`)

// session is the gateway's side of one run's ctx: it serves the socket,
// records calls, actions and the log, and keeps the outcome.
type session struct {
	svc     *Service
	run     Run // ID, Tenant, AlertID, PlaybookID, DryRun: fixed
	alert   json.RawMessage
	started time.Time
	// slots holds a token per integration call in the egress (maxInFlight).
	slots chan struct{}

	mu        sync.Mutex
	log       []LogLine
	logDrop   int
	calls     []Call
	callsUsed int // calls recorded or about to be (reserved)
	callsRef  int // calls refused past maxCalls
	actions   []Action
	actsUsed  int
	actsRef   int
	connsRef  int // connections refused past maxConns
	longRef   int // lines refused past maxLine (their connection closed)
	entered   *time.Time
	result    json.RawMessage
	finished  bool // the runtime reported a result or a failure
	failure   string
	traceback string
	enteredCh chan struct{}
}

func newSession(svc *Service, r Run, started time.Time) *session {
	return &session{svc: svc, run: r, started: started, slots: make(chan struct{}, maxInFlight), enteredCh: make(chan struct{})}
}

func (s *session) now() time.Time { return s.svc.now() }

// snapshot copies what the run recorded into r, with the gateway's notes
// about what it dropped or refused.
func (s *session) snapshot(r *Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Log = append([]LogLine{}, s.log...)
	note := func(format string, a ...any) {
		r.Log = append(r.Log, LogLine{At: s.now(), Message: fmt.Sprintf(format, a...), By: ByGateway})
	}
	if s.logDrop > 0 {
		note("(%d more log lines were dropped: a run keeps %d)", s.logDrop, maxLogLines)
	}
	if s.callsRef > 0 {
		note("(%d integration calls were refused: a run may make at most %d)", s.callsRef, maxCalls)
	}
	if s.actsRef > 0 {
		note("(%d actions were refused: a run may take at most %d)", s.actsRef, maxActions)
	}
	if s.connsRef > 0 {
		note("(%d connections to the gateway were refused: a run may hold %d at once)", s.connsRef, maxConns)
	}
	if s.longRef > 0 {
		note("(%d ctx messages over %d KiB were refused and their connections closed)", s.longRef, maxLine>>10)
	}
	r.Calls = append([]Call{}, s.calls...)
	r.Actions = append([]Action{}, s.actions...)
	r.EnteredAt = s.entered
}

// addLog records a line the playbook wrote.
func (s *session) addLog(msg string) {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) > maxLogLine {
		msg = cutUTF8(msg, maxLogLine) + "…"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.log) >= maxLogLines {
		s.logDrop++
		return
	}
	s.log = append(s.log, LogLine{At: s.now(), Message: msg, By: ByPlaybook})
}

// reserve takes room in the record for calls integration calls and
// actions actions, all or nothing, or says which cap the run has reached
// (and counts the refused call or action). Every call and action a run
// makes is thus recorded: past the caps they are refused, not made
// unaudited.
func (s *session) reserve(calls, actions int) (refused string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.actsUsed+actions > maxActions:
		refused = fmt.Sprintf("a run may take at most %d actions", maxActions)
	case s.callsUsed+calls > maxCalls:
		refused = fmt.Sprintf("a run may make at most %d integration calls (it has made %d)", maxCalls, s.callsUsed)
	default:
		s.callsUsed += calls
		s.actsUsed += actions
		return ""
	}
	if actions > 0 {
		s.actsRef++
	} else {
		s.callsRef++
	}
	return refused
}

// addCall records a call reserve made room for.
func (s *session) addCall(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// addAction records an action reserve made room for.
func (s *session) addAction(a Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions = append(s.actions, a)
}

func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// serve accepts the runtime's connections until ctx ends, at most
// maxConns at once.
func (s *session) serve(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	closed := false
	go func() {
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		mu.Lock()
		switch {
		case closed:
			mu.Unlock()
			c.Close()
			continue
		case len(conns) >= maxConns:
			mu.Unlock()
			s.refuseConn(c)
			continue
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
	wg.Wait()
}

// refuseConn tells a connection past maxConns why, and closes it.
func (s *session) refuseConn(c net.Conn) {
	s.mu.Lock()
	s.connsRef++
	s.mu.Unlock()
	out, _ := json.Marshal(map[string]any{"error": actionErr("a run may hold at most %d connections to the gateway at once", maxConns)})
	// One short line fits the socket's buffer; the deadline only keeps a
	// peer that never reads from holding the accept loop.
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(append(out, '\n'))
	c.Close()
}

type message struct {
	ID          int64  `json:"id"`
	Op          string `json:"op"`
	Name        string `json:"name"`
	Message     string `json:"message"`
	Integration string `json:"integration"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	// Params (an object of strings or lists) and Headers (of strings)
	// are decoded by request once their size is checked: a short line of
	// JSON can decode to many times its size.
	Params  json.RawMessage `json:"params"`
	Headers json.RawMessage `json:"headers"`
	JSON    json.RawMessage `json:"json"`
	Timeout float64         `json:"timeout"`
	Type    string          `json:"type"`
	Text    string          `json:"text"`
	Owner   string          `json:"owner"`
	Status  string          `json:"status"`
	Channel string          `json:"channel"`
	UPN     string          `json:"upn"`
	Result  json.RawMessage `json:"result"`
	// Preview and ResultBytes stand for a result over maxResultBytes: its
	// first bytes (as JSON text) and its size.
	Preview     string `json:"preview"`
	ResultBytes int64  `json:"resultBytes"`
	Error       string `json:"error"`
	Traceback   string `json:"traceback"`
}

// callError is an error the playbook sees, as IntegrationError or
// ActionError.
type callError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (e *callError) Error() string { return e.Message }

func integrationErr(format string, a ...any) *callError {
	return &callError{Type: "IntegrationError", Message: fmt.Sprintf(format, a...)}
}

func actionErr(format string, a ...any) *callError {
	return &callError{Type: "ActionError", Message: fmt.Sprintf(format, a...)}
}

func (s *session) serveConn(ctx context.Context, c net.Conn) {
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriter(c)
	for {
		line, err := readLine(br, maxLine)
		if err != nil {
			if errors.Is(err, errTooLong) {
				// Neither its operation nor its id is known: the
				// connection cannot be answered, only closed.
				s.mu.Lock()
				s.longRef++
				s.mu.Unlock()
			}
			return
		}
		var m message
		var answer map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			answer = map[string]any{"error": actionErr("the runtime sent a malformed message")}
		} else if cerr := checkSize(&m, len(line)); cerr != nil {
			answer = map[string]any{"id": m.ID, "error": cerr}
		} else {
			ok, cerr := s.handle(ctx, &m)
			if cerr != nil {
				answer = map[string]any{"id": m.ID, "error": cerr}
			} else {
				if ok == nil {
					ok = map[string]any{}
				}
				answer = map[string]any{"id": m.ID, "ok": ok}
			}
		}
		out, err := json.Marshal(answer)
		if err != nil {
			out, _ = json.Marshal(map[string]any{"id": m.ID, "error": actionErr("the answer could not be encoded")})
		}
		out = append(out, '\n')
		if _, err := bw.Write(out); err != nil {
			return
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// checkSize refuses a message of n bytes over its operation's limits.
func checkSize(m *message, n int) *callError {
	if m.Op == "request" {
		if len(m.JSON) > maxRequestBody {
			return integrationErr("the request body is %d bytes; a playbook's integration call sends at most %d", len(m.JSON), maxRequestBody)
		}
		if rest := n - len(m.JSON); rest > maxRequestRest {
			return integrationErr("the request's path, query and headers are %d bytes; a playbook's integration call sends at most %d", rest, maxRequestRest)
		}
		return nil
	}
	limit := opLimit(m.Op)
	switch {
	case n <= limit:
		return nil
	case m.Op == "integration":
		return integrationErr("the %s message is %d bytes; the gateway takes at most %d", m.Op, n, limit)
	}
	return actionErr("the %s message is %d bytes; the gateway takes at most %d", m.Op, n, limit)
}

var errTooLong = errors.New("line too long")

// readLine reads one line of at most limit bytes, newline included; a
// longer one is refused before more than limit bytes of it are held.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > limit {
			return nil, errTooLong
		}
		buf = append(buf, chunk...)
		if err == nil {
			return buf, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				return buf, nil
			}
			return nil, err
		}
	}
}

func (s *session) handle(ctx context.Context, m *message) (map[string]any, *callError) {
	switch m.Op {
	case "hello":
		return map[string]any{"alert": s.alert, "dryRun": s.run.DryRun, "limits": limits()}, nil
	case "enter":
		t := s.now()
		s.mu.Lock()
		if s.entered == nil {
			s.entered = &t
			close(s.enteredCh)
		}
		s.mu.Unlock()
		return nil, nil
	case "log":
		s.addLog(m.Message)
		return nil, nil
	case "integration":
		return s.integration(ctx, m.Name)
	case "request":
		return s.request(ctx, m)
	case "action":
		return nil, s.action(ctx, m)
	case "result":
		res := storedResult(m)
		s.mu.Lock()
		s.finished, s.result = true, res
		s.mu.Unlock()
		return nil, nil
	case "fail":
		s.mu.Lock()
		s.finished, s.failure, s.traceback = true, m.Error, m.Traceback
		s.mu.Unlock()
		return nil, nil
	}
	return nil, actionErr("unknown ctx operation %q", m.Op)
}

// storedResult is the result as the run keeps it: one over
// maxResultBytes becomes {"truncated":true,"bytes":n,"preview":"…"}, its
// JSON text's start, whether the runtime sent it whole or only its start.
func storedResult(m *message) json.RawMessage {
	preview, n := string(m.Result), int64(len(m.Result))
	if m.ResultBytes > 0 && len(m.Result) == 0 {
		preview, n = m.Preview, m.ResultBytes
	} else if n <= maxResultBytes {
		return m.Result
	}
	p, _ := json.Marshal(cutUTF8(strings.ToValidUTF8(preview, "\uFFFD"), maxResultBytes))
	return json.RawMessage(fmt.Sprintf(`{"truncated":true,"bytes":%d,"preview":%s}`, n, p))
}

func (s *session) integration(ctx context.Context, name string) (map[string]any, *callError) {
	if strings.TrimSpace(name) == "" {
		return nil, integrationErr("ctx.integration needs a profile name")
	}
	if s.svc.profiles == nil {
		return map[string]any{"name": name, "baseUrl": ""}, nil
	}
	base, err := s.svc.profiles.BaseURL(ctx, s.run.Tenant, name)
	if err != nil {
		if f, ok := fault.As(err); ok && f.Kind == fault.NotFound {
			return nil, integrationErr("there is no integration profile named %q in this tenant", name)
		}
		return nil, integrationErr("the integration profile %q cannot be read right now", name)
	}
	return map[string]any{"name": name, "baseUrl": base}, nil
}

// call sends one request through the egress with the run's tenant and
// records it (never headers, bodies or the query). The caller has
// reserved its room in the record.
func (s *session) call(ctx context.Context, profile, method, path string, query url.Values, header http.Header, body []byte, timeout time.Duration) (*egress.Response, *callError) {
	rec := Call{At: s.now(), Integration: profile, Method: method, Path: pathOnly(path)}
	if s.run.DryRun && method != http.MethodGet && method != http.MethodHead {
		rec.Error = "dry run: not sent"
		s.addCall(rec)
		return &egress.Response{Status: 0}, nil
	}
	if timeout <= 0 || timeout > 10*time.Minute {
		timeout = 30 * time.Second
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		rec.Error = "the run ended before the call was sent"
		s.addCall(rec)
		return nil, integrationErr("%s", rec.Error)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	resp, err := s.svc.egress.Do(cctx, egress.Request{Tenant: s.run.Tenant, Profile: profile, Method: method, Path: path,
		Query: query, Header: header, Body: body})
	rec.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		msg := fmt.Sprintf("the call to %q failed", profile)
		if f, ok := fault.As(err); ok {
			msg = f.Message
		} else if errors.Is(err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("the call to %q took longer than %s", profile, timeout)
		}
		rec.Error = msg
		s.addCall(rec)
		return nil, integrationErr("%s", msg)
	}
	rec.Status = resp.Status
	s.addCall(rec)
	return resp, nil
}

// pathOnly drops a query from a recorded path.
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return cutUTF8(p, 2000)
}

func (s *session) request(ctx context.Context, m *message) (map[string]any, *callError) {
	method := strings.ToUpper(m.Method)
	if !methodRE.MatchString(method) {
		return nil, integrationErr("%q is not an HTTP method", m.Method)
	}
	if m.Integration == "" {
		return nil, integrationErr("a request needs an integration profile's name")
	}
	var params map[string]any
	var hdrs map[string]string
	if len(m.Params) > 0 && json.Unmarshal(m.Params, &params) != nil {
		return nil, integrationErr("params must be an object of strings or lists of strings")
	}
	if len(m.Headers) > 0 && json.Unmarshal(m.Headers, &hdrs) != nil {
		return nil, integrationErr("headers must be an object of strings")
	}
	query := url.Values{}
	for k, v := range params {
		switch v := v.(type) {
		case string:
			query.Add(k, v)
		case []any:
			for _, x := range v {
				query.Add(k, fmt.Sprint(x))
			}
		default:
			query.Add(k, fmt.Sprint(v))
		}
	}
	header := http.Header{}
	for k, v := range hdrs {
		header.Set(k, v)
	}
	var body []byte
	if len(m.JSON) > 0 && string(m.JSON) != "null" {
		body = m.JSON
		if header.Get("Content-Type") == "" {
			header.Set("Content-Type", "application/json")
		}
	}
	if why := s.reserve(1, 0); why != "" {
		return nil, integrationErr("%s; this one was not sent", why)
	}
	resp, cerr := s.call(ctx, m.Integration, method, m.Path, query, header, body, time.Duration(m.Timeout*float64(time.Second)))
	if cerr != nil {
		return nil, cerr
	}
	headers := map[string]string{}
	for k, v := range resp.Header {
		if len(v) > 0 {
			headers[k] = v[0]
		}
	}
	return map[string]any{"status": resp.Status, "headers": headers,
		"body": strings.ToValidUTF8(string(resp.Body), "\uFFFD"), "truncated": resp.Truncated}, nil
}

var alertStatuses = map[string]bool{"new": true, "inProgress": true, "resolved": true}

// graphCalls is how many integration calls an action makes.
var graphCalls = map[string]int{"block_user": 2, "disable_user": 1}

func (s *session) action(ctx context.Context, m *message) *callError {
	a := Action{At: s.now(), Type: m.Type}
	var apply func() error
	actor := fmt.Sprintf("playbook %s (run %s)", s.run.PlaybookID, s.run.ID)
	alertAct := func(kind, value string) func() error {
		return func() error {
			return s.svc.alerts.Act(ctx, s.run.Tenant, s.run.AlertID, AlertAction{Type: kind, Value: value, Actor: actor})
		}
	}
	switch m.Type {
	case "comment_on_alert":
		if strings.TrimSpace(m.Text) == "" {
			return actionErr("comment_on_alert needs a non-empty text")
		}
		a.Detail = cutUTF8(m.Text, 2000)
		apply = alertAct("comment", m.Text)
	case "assign_alert":
		if strings.TrimSpace(m.Owner) == "" {
			return actionErr("assign_alert needs an owner")
		}
		a.Detail = m.Owner
		apply = alertAct("assign", m.Owner)
	case "set_alert_status":
		if !alertStatuses[m.Status] {
			return actionErr("set_alert_status takes \"new\", \"inProgress\" or \"resolved\", not %q", m.Status)
		}
		a.Detail = m.Status
		apply = alertAct("status", m.Status)
	case "notify":
		if strings.TrimSpace(m.Channel) == "" {
			return actionErr("notify needs a channel")
		}
		// No notification service exists yet: the notification is the
		// action record (and the log line), which the incident shows.
		a.Detail = cutUTF8(m.Channel+": "+m.Message, 2000)
		apply = func() error { s.addLog("notify " + a.Detail); return nil }
	case "block_user", "disable_user":
		if strings.TrimSpace(m.UPN) == "" {
			return actionErr("%s needs a user principal name", m.Type)
		}
		a.Detail = m.UPN
		apply = func() error { return s.graphUser(ctx, m.Type, m.UPN) }
	default:
		return actionErr("unknown action %q", m.Type)
	}
	// An action and every call it makes are reserved together: a user
	// change is never left half done for want of room.
	calls := graphCalls[m.Type]
	if s.run.DryRun {
		calls = 0
	}
	if why := s.reserve(calls, 1); why != "" {
		if calls > 0 {
			return actionErr("%s; %s (%d integration calls) was not applied", why, m.Type, calls)
		}
		return actionErr("%s; %s was not applied", why, m.Type)
	}
	if s.run.DryRun {
		a.Detail += " (dry run: not applied)"
		s.addAction(a)
		return nil
	}
	err := apply()
	if err != nil {
		var ce *callError
		switch {
		case errors.As(err, &ce):
			a.Error = ce.Message
		default:
			if f, ok := fault.As(err); ok {
				a.Error = f.Message
			} else {
				a.Error = m.Type + " failed"
				s.svc.log.Warn("runner: action failed", "run", s.run.ID, "action", m.Type, "err", err)
			}
		}
		s.addAction(a)
		return actionErr("%s", a.Error)
	}
	s.addAction(a)
	return nil
}

// graphUser blocks (sign-ins off, sessions revoked) or disables a user
// through the Microsoft Graph profile (base URL https://graph.microsoft.com).
func (s *session) graphUser(ctx context.Context, kind, upn string) error {
	p := "/v1.0/users/" + url.PathEscape(upn)
	h := http.Header{"Content-Type": {"application/json"}}
	resp, cerr := s.call(ctx, GraphProfile, http.MethodPatch, p, nil, h, []byte(`{"accountEnabled":false}`), 30*time.Second)
	if cerr != nil {
		return cerr
	}
	if resp.Status < 200 || resp.Status > 299 {
		return actionErr("Microsoft Graph answered %d disabling %s", resp.Status, upn)
	}
	if kind == "block_user" {
		resp, cerr = s.call(ctx, GraphProfile, http.MethodPost, p+"/revokeSignInSessions", nil, nil, nil, 30*time.Second)
		if cerr != nil {
			return cerr
		}
		if resp.Status < 200 || resp.Status > 299 {
			return actionErr("Microsoft Graph answered %d revoking %s's sessions", resp.Status, upn)
		}
	}
	return nil
}
