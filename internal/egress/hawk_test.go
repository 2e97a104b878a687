package egress

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/egress/egresstest"
	"github.com/playbookstudio/gateway/internal/integration"
)

// Vectors of the Hawk reference implementation (hueniverse/hawk): the
// README's protocol example (test/readme.js) and the client's
// "returns a valid authorization header" cases (test/client.js).
func TestHawkVectors(t *testing.T) {
	for _, c := range []struct {
		name                         string
		id, key, alg                 string
		ts                           int64
		nonce, method, rawURL, ext   string
		payload, contentType         string
		wantHash, wantHeader, wantNS string
	}{
		{name: "readme GET", id: "dh37fgj492je", key: "werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn", alg: "sha256",
			ts: 1353832234, nonce: "j4h3g2", method: "GET", rawURL: "http://example.com:8000/resource/1?b=1&a=2", ext: "some-app-ext-data",
			wantHeader: `Hawk id="dh37fgj492je", ts="1353832234", nonce="j4h3g2", ext="some-app-ext-data", mac="6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE="`,
			wantNS:     "hawk.1.header\n1353832234\nj4h3g2\nGET\n/resource/1?b=1&a=2\nexample.com\n8000\n\nsome-app-ext-data\n"},
		{name: "readme POST with payload", id: "dh37fgj492je", key: "werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn", alg: "sha256",
			ts: 1353832234, nonce: "j4h3g2", method: "POST", rawURL: "http://example.com:8000/resource/1?b=1&a=2", ext: "some-app-ext-data",
			payload: "Thank you for flying Hawk", contentType: "text/plain", wantHash: "Yi9LfIIFRtBEPt74PVmbTF/xVAwPn7ub15ePICfgnuY=",
			wantHeader: `Hawk id="dh37fgj492je", ts="1353832234", nonce="j4h3g2", hash="Yi9LfIIFRtBEPt74PVmbTF/xVAwPn7ub15ePICfgnuY=", ext="some-app-ext-data", mac="aSe1DERmZuRl3pI36/9BdZmnErTw3sNzOOAUlfeKjVw="`},
		{name: "client sha1", id: "123456", key: "2983d45yun89q", alg: "sha1",
			ts: 1353809207, nonce: "Ygvqdz", method: "POST", rawURL: "http://example.net/somewhere/over/the/rainbow", ext: "Bazinga!",
			payload: "something to write about", wantHash: "bsvY3IfUllw6V5rvk4tStEvpBhE=",
			wantHeader: `Hawk id="123456", ts="1353809207", nonce="Ygvqdz", hash="bsvY3IfUllw6V5rvk4tStEvpBhE=", ext="Bazinga!", mac="qbf1ZPG/r/e06F4ht+T77LXi5vw="`},
		{name: "client sha256", id: "123456", key: "2983d45yun89q", alg: "sha256",
			ts: 1353809207, nonce: "Ygvqdz", method: "POST", rawURL: "https://example.net/somewhere/over/the/rainbow", ext: "Bazinga!",
			payload: "something to write about", contentType: "text/plain", wantHash: "2QfCt3GuY9HQnHWyWD3wX68ZOKbynqlfYmuO2ZBRqtY=",
			wantHeader: `Hawk id="123456", ts="1353809207", nonce="Ygvqdz", hash="2QfCt3GuY9HQnHWyWD3wX68ZOKbynqlfYmuO2ZBRqtY=", ext="Bazinga!", mac="q1CwFoSHzPZSkbIvl0oYlD+91rBUEvFk763nMjMndj8="`},
		{name: "client no ext", id: "123456", key: "2983d45yun89q", alg: "sha256",
			ts: 1353809207, nonce: "Ygvqdz", method: "POST", rawURL: "https://example.net/somewhere/over/the/rainbow",
			payload: "something to write about", contentType: "text/plain", wantHash: "2QfCt3GuY9HQnHWyWD3wX68ZOKbynqlfYmuO2ZBRqtY=",
			wantHeader: `Hawk id="123456", ts="1353809207", nonce="Ygvqdz", hash="2QfCt3GuY9HQnHWyWD3wX68ZOKbynqlfYmuO2ZBRqtY=", mac="HTgtd0jPI6E4izx8e4OHdO36q00xFCU0FolNq3RiCYs="`},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, _ := url.Parse(c.rawURL)
			a, err := hawkFor(c.id, c.key, c.alg, c.method, u, c.contentType, []byte(c.payload), time.Unix(c.ts, 0))
			if err != nil {
				t.Fatal(err)
			}
			a.Nonce, a.Ext = c.nonce, c.ext
			if a.Hash != c.wantHash {
				t.Errorf("payload hash %q, want %q", a.Hash, c.wantHash)
			}
			if c.wantNS != "" && a.normalized() != c.wantNS {
				t.Errorf("normalized %q, want %q", a.normalized(), c.wantNS)
			}
			h, err := a.header()
			if err != nil || h != c.wantHeader {
				t.Errorf("header\n got  %s\n want %s (%v)", h, c.wantHeader, err)
			}
			// The test verifier, written apart from the signer, accepts
			// the reference header too (and refuses it replayed), so it
			// checks what a Hawk server would.
			v := egresstest.NewHawk(map[string]egresstest.HawkCredential{c.id: {Key: c.key, Algorithm: c.alg}}, func() time.Time { return time.Unix(c.ts, 0) })
			r := httptest.NewRequest(c.method, c.rawURL, strings.NewReader(c.payload))
			r.Header.Set("Authorization", c.wantHeader)
			if c.contentType != "" {
				r.Header.Set("Content-Type", c.contentType)
			}
			if err := v.Verify(r, []byte(c.payload)); err != nil {
				t.Errorf("the verifier refuses the reference header: %v", err)
			}
			if err := v.Verify(r, []byte(c.payload)); err == nil || err.Error() != "nonce replayed" {
				t.Errorf("the verifier took a replayed nonce: %v", err)
			}
		})
	}
}

func TestHawkEgress(t *testing.T) {
	srv := egresstest.Serve(t, egresstest.NewHawk(map[string]egresstest.HawkCredential{
		"app-256": {Key: "hawk-key-256-secret", Algorithm: "sha256"},
		"app-1":   {Key: "hawk-key-1-secret", Algorithm: "sha1"},
	}, nil))
	e := newEgress(t, Config{},
		profile("h256", srv.URL+"/api", integration.Hawk, integration.Config{ID: "app-256", Algorithm: "sha256"}, integration.Secrets{Key: "hawk-key-256-secret"}),
		profile("h1", srv.URL+"/api", integration.Hawk, integration.Config{ID: "app-1", Algorithm: "sha1"}, integration.Secrets{Key: "hawk-key-1-secret"}),
		profile("h-wrong", srv.URL+"/api", integration.Hawk, integration.Config{ID: "app-256", Algorithm: "sha256"}, integration.Secrets{Key: "not-the-key"}),
	)
	for _, name := range []string{"h256", "h1"} {
		resp := do(t, e, Request{Profile: name, Method: "GET", Path: "/items", Query: url.Values{"b": {"1"}, "a": {"2"}}})
		if resp.Status != 200 {
			t.Errorf("%s GET: %d %s", name, resp.Status, resp.Body)
		}
		resp = do(t, e, Request{Profile: name, Method: "POST", Path: "/items", Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, Body: []byte(`{"x":1}`)})
		if resp.Status != 200 || string(resp.Body) != `ok {"x":1}` {
			t.Errorf("%s POST: %d %s", name, resp.Status, resp.Body)
		}
	}
	resp := do(t, e, Request{Profile: "h-wrong", Method: "GET", Path: "/items"})
	if resp.Status != 401 || !contains(resp.Header.Get("WWW-Authenticate"), "bad mac") {
		t.Errorf("wrong key: %d %v", resp.Status, resp.Header)
	}
}
