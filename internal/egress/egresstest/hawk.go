package egresstest

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Hawk's sha1 algorithm is an HMAC, chosen by the service
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HawkCredential is what a Hawk server knows of a client id.
type HawkCredential struct {
	Key       string
	Algorithm string // "sha256" or "sha1"
}

// Hawk is a Hawk server (hueniverse/hawk's server.authenticate, header
// scheme, protocol version 1, payload validation on): it parses the
// header, recomputes the MAC from the request as received, checks the
// payload hash against the body, the clock skew (60 seconds) and that no
// nonce is used twice. A refusal is a 401 whose WWW-Authenticate names
// the check that failed.
type Hawk struct {
	creds map[string]HawkCredential
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]bool // id and nonce
}

// NewHawk checks requests against creds, by client id. now is the
// server's clock (nil: time.Now).
func NewHawk(creds map[string]HawkCredential, now func() time.Time) *Hawk {
	if now == nil {
		now = time.Now
	}
	return &Hawk{creds: creds, now: now, seen: map[string]bool{}}
}

func (h *Hawk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := h.Verify(r, body); err != nil {
		w.Header().Set("WWW-Authenticate", `Hawk error="`+err.Error()+`"`)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(w, "ok %s", body)
}

// hawkAttribute is one attribute of the header as hawk's parser reads it:
// a word, and a quoted value without quotes or backslashes.
var hawkAttribute = regexp.MustCompile(`^(\w+)="([^"\\]*)"\s*(?:,\s*|$)`)

// Verify authenticates r, whose body was read into body.
func (h *Hawk) Verify(r *http.Request, body []byte) error {
	rest, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Hawk ")
	if !ok {
		return errors.New("no Hawk header")
	}
	attrs := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		m := hawkAttribute.FindStringSubmatch(rest)
		if m == nil {
			return errors.New("bad header syntax")
		}
		switch m[1] {
		case "id", "ts", "nonce", "hash", "ext", "mac", "app", "dlg":
		default:
			return fmt.Errorf("unknown attribute %s", m[1])
		}
		if _, dup := attrs[m[1]]; dup {
			return fmt.Errorf("duplicate attribute %s", m[1])
		}
		attrs[m[1]] = m[2]
		rest = rest[len(m[0]):]
	}
	for _, k := range []string{"id", "ts", "nonce", "mac"} {
		if attrs[k] == "" {
			return fmt.Errorf("missing %s", k)
		}
	}
	cred, ok := h.creds[attrs["id"]]
	if !ok {
		return errors.New("unknown id")
	}
	newHash, err := hawkHash(cred.Algorithm)
	if err != nil {
		return err
	}

	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "80"
		if r.TLS != nil {
			port = "443"
		}
	}
	// The string the MAC covers (hawk's crypto.generateNormalizedString).
	var ns strings.Builder
	for _, s := range []string{"hawk.1.header", attrs["ts"], attrs["nonce"], strings.ToUpper(r.Method), r.URL.RequestURI(),
		strings.ToLower(host), port, attrs["hash"], strings.ReplaceAll(strings.ReplaceAll(attrs["ext"], `\`, `\\`), "\n", `\n`)} {
		ns.WriteString(s + "\n")
	}
	if attrs["app"] != "" {
		ns.WriteString(attrs["app"] + "\n" + attrs["dlg"] + "\n")
	}
	mac := hmac.New(newHash, []byte(cred.Key))
	mac.Write([]byte(ns.String()))
	if !hmac.Equal([]byte(base64.StdEncoding.EncodeToString(mac.Sum(nil))), []byte(attrs["mac"])) {
		return errors.New("bad mac")
	}

	// The payload: the hash is required with a body, and must match it.
	if len(body) > 0 || attrs["hash"] != "" {
		if attrs["hash"] == "" {
			return errors.New("missing required payload hash")
		}
		// The content type without its parameters (hawk's
		// utils.parseContentType).
		mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
		p := newHash()
		fmt.Fprintf(p, "hawk.1.payload\n%s\n%s\n", strings.ToLower(strings.TrimSpace(mt)), body)
		if !hmac.Equal([]byte(base64.StdEncoding.EncodeToString(p.Sum(nil))), []byte(attrs["hash"])) {
			return errors.New("bad payload hash")
		}
	}

	ts, err := strconv.ParseInt(attrs["ts"], 10, 64)
	if err != nil {
		return errors.New("bad ts")
	}
	if d := h.now().Sub(time.Unix(ts, 0)); d > time.Minute || d < -time.Minute {
		return errors.New("stale timestamp")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[attrs["id"]+"\n"+attrs["nonce"]] {
		return errors.New("nonce replayed")
	}
	h.seen[attrs["id"]+"\n"+attrs["nonce"]] = true
	return nil
}

func hawkHash(alg string) (func() hash.Hash, error) {
	switch alg {
	case "sha256":
		return sha256.New, nil
	case "sha1":
		return sha1.New, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q", alg)
}
