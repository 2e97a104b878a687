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

// Caps of what one run records.
const (
	maxLogLines    = 1000
	maxLogLine     = 4000
	maxCalls       = 1000
	maxActions     = 1000
	maxResultBytes = 64 << 10
	maxErrorBytes  = 16 << 10
	// maxMessage bounds one line of the ctx protocol (a request body, an
	// answer relayed back): above EGRESS_MAX_RESPONSE_BYTES' default.
	maxMessage = 16 << 20
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

	mu        sync.Mutex
	log       []LogLine
	logDrop   int
	calls     []Call
	callDrop  int
	actions   []Action
	actDrop   int
	entered   *time.Time
	result    json.RawMessage
	finished  bool // the runtime reported a result or a failure
	failure   string
	traceback string
	enteredCh chan struct{}
}

func (s *session) now() time.Time { return s.svc.now() }

// snapshot copies what the run recorded into r.
func (s *session) snapshot(r *Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Log = append([]LogLine{}, s.log...)
	if s.logDrop > 0 {
		r.Log = append(r.Log, LogLine{At: s.now(), Message: fmt.Sprintf("(%d more log lines were dropped: a run keeps %d)", s.logDrop, maxLogLines)})
	}
	r.Calls = append([]Call{}, s.calls...)
	r.Actions = append([]Action{}, s.actions...)
	if s.callDrop > 0 || s.actDrop > 0 {
		r.Log = append(r.Log, LogLine{At: s.now(), Message: fmt.Sprintf("(%d integration calls and %d actions were not recorded: a run keeps %d of each)", s.callDrop, s.actDrop, maxCalls)})
	}
	r.EnteredAt = s.entered
}

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
	s.log = append(s.log, LogLine{At: s.now(), Message: msg})
}

func (s *session) addCall(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) >= maxCalls {
		s.callDrop++
		return
	}
	s.calls = append(s.calls, c)
}

func (s *session) addAction(a Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.actions) >= maxActions {
		s.actDrop++
		return
	}
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

// serve accepts the runtime's connections until ctx ends.
func (s *session) serve(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for _, c := range conns {
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
		conns = append(conns, c)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			s.serveConn(ctx, c)
		}()
	}
	wg.Wait()
}

type message struct {
	ID          int64             `json:"id"`
	Op          string            `json:"op"`
	Name        string            `json:"name"`
	Message     string            `json:"message"`
	Integration string            `json:"integration"`
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	Params      map[string]any    `json:"params"`
	Headers     map[string]string `json:"headers"`
	JSON        json.RawMessage   `json:"json"`
	Timeout     float64           `json:"timeout"`
	Type        string            `json:"type"`
	Text        string            `json:"text"`
	Owner       string            `json:"owner"`
	Status      string            `json:"status"`
	Channel     string            `json:"channel"`
	UPN         string            `json:"upn"`
	Result      json.RawMessage   `json:"result"`
	Error       string            `json:"error"`
	Traceback   string            `json:"traceback"`
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
		line, err := readLine(br, maxMessage)
		if err != nil {
			if errors.Is(err, errTooLong) {
				s.addLog(fmt.Sprintf("runtime: a ctx message passed %d MiB and was refused; the connection was closed", maxMessage>>20))
			}
			return
		}
		var m message
		var answer map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			answer = map[string]any{"error": actionErr("the runtime sent a malformed message")}
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

var errTooLong = errors.New("line too long")

func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > limit {
			return nil, errTooLong
		}
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
		return map[string]any{"alert": s.alert, "dryRun": s.run.DryRun}, nil
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
		s.mu.Lock()
		s.finished, s.result = true, m.Result
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
// records it (never headers, bodies or the query).
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
	query := url.Values{}
	for k, v := range m.Params {
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
	for k, v := range m.Headers {
		header.Set(k, v)
	}
	var body []byte
	if len(m.JSON) > 0 && string(m.JSON) != "null" {
		body = m.JSON
		if header.Get("Content-Type") == "" {
			header.Set("Content-Type", "application/json")
		}
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
