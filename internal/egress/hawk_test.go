package egress

import (
	"crypto/hmac"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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
		})
	}
}

// verifyHawk checks a request as a Hawk server does (hawk's
// server.authenticate): parse the header, recompute the MAC from the
// request as received, check the payload hash against the body, the
// clock skew, and a nonce used once.
func verifyHawk(r *http.Request, body []byte, keys map[string][2]string, seen map[string]bool) error {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Hawk ")
	if !ok {
		return fmt.Errorf("no Hawk header")
	}
	attrs := map[string]string{}
	for _, part := range strings.Split(v, ", ") {
		k, val, _ := strings.Cut(part, "=")
		uq, err := strconv.Unquote(val)
		if err != nil {
			return fmt.Errorf("bad attribute %q", part)
		}
		attrs[k] = uq
	}
	cred, ok := keys[attrs["id"]]
	if !ok {
		return fmt.Errorf("unknown id")
	}
	ts, _ := strconv.ParseInt(attrs["ts"], 10, 64)
	if d := time.Since(time.Unix(ts, 0)); d > time.Minute || d < -time.Minute {
		return fmt.Errorf("stale timestamp")
	}
	if seen[attrs["nonce"]] {
		return fmt.Errorf("nonce replayed")
	}
	seen[attrs["nonce"]] = true
	host, port, _ := strings.Cut(r.Host, ":")
	a := hawkArtifacts{ID: attrs["id"], Key: cred[0], Algorithm: cred[1], TS: ts, Nonce: attrs["nonce"], Method: r.Method,
		Resource: r.URL.RequestURI(), Host: host, Port: port, Hash: attrs["hash"], Ext: attrs["ext"]}
	mac, err := a.mac()
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(mac), []byte(attrs["mac"])) {
		return fmt.Errorf("bad mac")
	}
	if len(body) > 0 {
		want, _ := hawkPayloadHash(cred[1], r.Header.Get("Content-Type"), body)
		if attrs["hash"] != want {
			return fmt.Errorf("bad payload hash")
		}
	}
	return nil
}

func TestHawkEgress(t *testing.T) {
	seen := map[string]bool{}
	keys := map[string][2]string{"app-256": {"hawk-key-256-secret", "sha256"}, "app-1": {"hawk-key-1-secret", "sha1"}}
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifyHawk(r, body, keys, seen); err != nil {
			w.Header().Set("WWW-Authenticate", `Hawk error="`+err.Error()+`"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "ok %s", body)
	})
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
