package egress

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // Hawk's sha1 algorithm is an HMAC, chosen by the remote service
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// hawkArtifacts are the inputs of a Hawk request MAC (the header scheme of
// hueniverse/hawk, protocol version 1).
type hawkArtifacts struct {
	ID, Key, Algorithm string // credentials; Algorithm is sha256 or sha1
	TS                 int64
	Nonce              string
	Method             string
	Resource           string // path and query as sent
	Host               string
	Port               string
	Hash               string // the payload hash, "" for none
	Ext                string
}

func hawkHasher(alg string) (func() hash.Hash, error) {
	switch alg {
	case "sha256", "":
		return sha256.New, nil
	case "sha1":
		return sha1.New, nil
	}
	return nil, fmt.Errorf("unknown hawk algorithm %q (want sha256 or sha1)", alg)
}

// hawkPayloadHash is the base64 hash of "hawk.1.payload\n<mime>\n<payload>\n",
// the mime type being the content type without parameters, lowercased.
func hawkPayloadHash(alg, contentType string, payload []byte) (string, error) {
	h, err := hawkHasher(alg)
	if err != nil {
		return "", err
	}
	mime, _, _ := strings.Cut(contentType, ";")
	d := h()
	d.Write([]byte("hawk.1.payload\n" + strings.ToLower(strings.TrimSpace(mime)) + "\n"))
	d.Write(payload)
	d.Write([]byte("\n"))
	return base64.StdEncoding.EncodeToString(d.Sum(nil)), nil
}

// normalized is the string the MAC covers.
func (a hawkArtifacts) normalized() string {
	ext := strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(a.Ext)
	return "hawk.1.header\n" + strconv.FormatInt(a.TS, 10) + "\n" + a.Nonce + "\n" + strings.ToUpper(a.Method) + "\n" +
		a.Resource + "\n" + strings.ToLower(a.Host) + "\n" + a.Port + "\n" + a.Hash + "\n" + ext + "\n"
}

func (a hawkArtifacts) mac() (string, error) {
	h, err := hawkHasher(a.Algorithm)
	if err != nil {
		return "", err
	}
	m := hmac.New(h, []byte(a.Key))
	m.Write([]byte(a.normalized()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// header is the Authorization header value, its attributes in the order
// the reference client writes them.
func (a hawkArtifacts) header() (string, error) {
	mac, err := a.mac()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Hawk id="%s", ts="%d", nonce="%s"`, a.ID, a.TS, a.Nonce)
	if a.Hash != "" {
		fmt.Fprintf(&b, `, hash="%s"`, a.Hash)
	}
	if a.Ext != "" {
		fmt.Fprintf(&b, `, ext="%s"`, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a.Ext))
	}
	fmt.Fprintf(&b, `, mac="%s"`, mac)
	return b.String(), nil
}

// hawkFor builds the artifacts of a request to u. The payload is hashed
// whenever there is a body (servers that require payload validation
// refuse a request without the hash; those that do not ignore it).
func hawkFor(id, key, alg, method string, u *url.URL, contentType string, body []byte, now time.Time) (hawkArtifacts, error) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	resource := u.EscapedPath()
	if u.RawQuery != "" {
		resource += "?" + u.RawQuery
	}
	a := hawkArtifacts{ID: id, Key: key, Algorithm: alg, TS: now.Unix(), Nonce: hawkNonce(),
		Method: method, Resource: resource, Host: u.Hostname(), Port: port}
	if len(body) > 0 {
		h, err := hawkPayloadHash(alg, contentType, body)
		if err != nil {
			return a, err
		}
		a.Hash = h
	}
	return a, nil
}

func hawkNonce() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
