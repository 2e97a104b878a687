package egresstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// SigV4 is an AWS service's check of Signature Version 4 for one access
// key: a bad signature is a 403 SignatureDoesNotMatch, and so is a
// session token other than the one the key was issued with.
type SigV4 struct {
	keys         map[string]string
	sessionToken string
}

// NewSigV4 accepts requests signed with accessKeyID and secret, carrying
// sessionToken in X-Amz-Security-Token ("" for none).
func NewSigV4(accessKeyID, secret, sessionToken string) *SigV4 {
	return &SigV4{keys: map[string]string{accessKeyID: secret}, sessionToken: sessionToken}
}

func (s *SigV4) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := VerifySigV4(r, body, s.keys, time.Now()); err != nil {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"message":"SignatureDoesNotMatch: %s"}`, err)
		return
	}
	if r.Header.Get("X-Amz-Security-Token") != s.sessionToken {
		http.Error(w, "wrong or missing session token", http.StatusForbidden)
		return
	}
	fmt.Fprintf(w, "ok %s", body)
}

// VerifySigV4 checks a request's signature as an AWS service does: from
// the request as received, with the payload hash computed from body, the
// secret looked up by access key id in keys, and X-Amz-Date within 15
// minutes of now.
func VerifySigV4(r *http.Request, body []byte, keys map[string]string, now time.Time) error {
	authz := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(authz, "AWS4-HMAC-SHA256 ")
	if !ok {
		return fmt.Errorf("not a SigV4 Authorization: %q", authz)
	}
	f := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		f[k] = v
	}
	cred := strings.Split(f["Credential"], "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return fmt.Errorf("bad credential scope %q", f["Credential"])
	}
	secret, ok := keys[cred[0]]
	if !ok {
		return fmt.Errorf("unknown access key %q", cred[0])
	}
	amzDate := r.Header.Get("X-Amz-Date")
	ts, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || ts.Sub(now).Abs() > 15*time.Minute || amzDate[:8] != cred[1] {
		return fmt.Errorf("bad or stale X-Amz-Date %q", amzDate)
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payload {
		return fmt.Errorf("X-Amz-Content-Sha256 %s does not match the body", h)
	}
	signed := strings.Split(f["SignedHeaders"], ";")
	if !sort.StringsAreSorted(signed) {
		return fmt.Errorf("SignedHeaders not sorted")
	}
	var ch strings.Builder
	hasHost := false
	for _, h := range signed {
		var vals []string
		switch h {
		case "host":
			hasHost = true
			vals = []string{r.Host}
			if r.Host == "" {
				vals = []string{r.URL.Host}
			}
		case "content-length":
			vals = []string{fmt.Sprint(r.ContentLength)}
		default:
			vals = r.Header.Values(h)
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		ch.WriteString(h + ":" + strings.Join(vals, ",") + "\n")
	}
	if !hasHost {
		return fmt.Errorf("host is not signed")
	}
	if r.Header.Get("X-Amz-Security-Token") != "" && !strings.Contains(f["SignedHeaders"], "x-amz-security-token") {
		return fmt.Errorf("the session token is not signed")
	}
	// Non-S3 services: each path segment URI-encoded again.
	segs := strings.Split(r.URL.EscapedPath(), "/")
	for i, s := range segs {
		segs[i] = awsEscape(s)
	}
	path := strings.Join(segs, "/")
	if path == "" {
		path = "/"
	}
	q := r.URL.Query()
	var qs []string
	for k, vs := range q {
		for _, v := range vs {
			qs = append(qs, awsEscape(k)+"="+awsEscape(v))
		}
	}
	sort.Strings(qs)
	creq := strings.Join([]string{r.Method, path, strings.Join(qs, "&"), ch.String(), f["SignedHeaders"], payload}, "\n")
	ch2 := sha256.Sum256([]byte(creq))
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + strings.Join(cred[1:], "/") + "\n" + hex.EncodeToString(ch2[:])
	key := hmacSHA256([]byte("AWS4"+secret), cred[1])
	for _, s := range cred[2:] {
		key = hmacSHA256(key, s)
	}
	want := hex.EncodeToString(hmacSHA256(key, sts))
	if !hmac.Equal([]byte(want), []byte(f["Signature"])) {
		return fmt.Errorf("signature mismatch")
	}
	return nil
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// awsEscape is SigV4's URI encoding: everything but unreserved characters.
func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
