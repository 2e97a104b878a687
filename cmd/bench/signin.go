package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/playbookstudio/gateway/internal/workspace"
)

// loopbackDial sends every *.localhost name to 127.0.0.1 on the same
// port, as browsers resolve it; other addresses must be loopback already.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	h := strings.ToLower(host)
	switch {
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		host = "127.0.0.1"
	case net.ParseIP(h) != nil && net.ParseIP(h).IsLoopback():
	default:
		return nil, fmt.Errorf("bench: refusing to dial %s (loopback only)", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(host, port))
}

func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: loopbackDial, DisableCompression: true}}
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// ideSession is a signed-in user's edit session, entered: what a browser
// holds once the IDE is open.
type ideSession struct {
	id      string
	host    string // <id>.ide.playbooks.localhost:PORT
	origin  string // http://<host>
	cookie  string // __Host-pbs_ide=… (pbs_ide=… on plain-http hosts)
	key     string // the workspace key
	project string // the session's playbook folder (local runtime)
	// api calls the portal's API as the signed-in user (cookie, CSRF).
	api func(method, path string, in, out any) (int, error)
}

// openIDE signs in at the gateway through the dev provider, starts an
// edit session, waits for its workspace and trades the ticket for the IDE
// cookie.
func openIDE(ctx context.Context, g *gatewayProc, idp *devIDP, user, pass string) (*ideSession, error) {
	b := newBrowser()
	defer b.CloseIdleConnections()
	do := func(method, u string, body io.Reader, hdr map[string]string, follow bool) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		c := b
		if !follow {
			c = &http.Client{Jar: b.Jar, Transport: b.Transport, Timeout: b.Timeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return resp, raw, err
	}
	resp, body, err := do(http.MethodGet, g.public+"/playbooks", nil, nil, true)
	if err != nil {
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login" {
		return nil, fmt.Errorf("sign-in: GET /playbooks ended at %d %s", resp.StatusCode, resp.Request.URL)
	}
	form := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	form.Set("username", user)
	form.Set("password", pass)
	resp, _, err = do(http.MethodPost, idp.issuer+"/login", strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": idp.issuer}, true)
	if err != nil {
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != g.public+"/playbooks" {
		return nil, fmt.Errorf("sign-in: after the login form: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	var csrf string
	api := func(method, path string, in, out any) (int, error) {
		var r io.Reader
		if in != nil {
			raw, _ := json.Marshal(in)
			r = strings.NewReader(string(raw))
		}
		resp, raw, err := do(method, g.public+path, r, map[string]string{"Accept": "application/json",
			"Content-Type": "application/json", "Origin": g.public, "X-CSRF-Token": csrf}, false)
		if err != nil {
			return 0, err
		}
		if out != nil && len(raw) > 0 {
			if err := json.Unmarshal(raw, out); err != nil {
				return resp.StatusCode, fmt.Errorf("%s %s: %w in %.200q", method, path, err, raw)
			}
		}
		return resp.StatusCode, nil
	}
	var me struct {
		ID, Tenant, CSRFToken string
	}
	if code, err := api(http.MethodGet, "/api/me", nil, &me); err != nil || code != http.StatusOK || me.CSRFToken == "" {
		return nil, fmt.Errorf("/api/me: %d %v", code, err)
	}
	csrf = me.CSRFToken
	var s struct {
		ID     string `json:"id"`
		IDEURL string `json:"ideUrl"`
		State  string `json:"state"`
		Error  *struct{ Code, Message string }
	}
	if code, err := api(http.MethodPost, "/api/edit-sessions", map[string]any{"name": "Bench " + user, "takeover": true}, &s); err != nil || code != http.StatusCreated {
		return nil, fmt.Errorf("start an edit session: %d %v %+v", code, err, s.Error)
	}
	ide, err := url.Parse(s.IDEURL)
	if err != nil {
		return nil, err
	}
	is := &ideSession{id: s.ID, host: ide.Host, origin: "http://" + ide.Host, key: workspace.KeyFor(me.Tenant, me.ID), api: api}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct{ State string }
		if _, err := api(http.MethodGet, "/api/edit-sessions/"+s.ID, nil, &st); err != nil {
			return nil, err
		}
		if st.State == "ready" {
			break
		}
		if st.State == "failed" || time.Now().After(deadline) {
			return nil, fmt.Errorf("workspace state %q", st.State)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	// Enter: the ticket for the host-only IDE cookie.
	resp, body, err = do(http.MethodGet, s.IDEURL, nil, nil, false)
	if err != nil {
		return nil, fmt.Errorf("enter: %w", err)
	}
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("enter: %d %.200s", resp.StatusCode, body)
	}
	for _, ck := range resp.Cookies() {
		// __Host-pbs_ide on *.localhost and https IDE hosts.
		if ck.Name == "pbs_ide" || ck.Name == "__Host-pbs_ide" {
			is.cookie = ck.Name + "=" + ck.Value
		}
	}
	if is.cookie == "" {
		return nil, errors.New("enter set no IDE cookie")
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc != nil {
		is.project = loc.Query().Get("folder")
	}
	return is, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
