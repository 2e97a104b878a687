package egress

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/playbookstudio/gateway/internal/integration"
)

type sigv4Suite struct {
	Source       string `json:"source"`
	SessionToken string `json:"sessionToken"`
	Vectors      []struct {
		Name, Method, Path, Query, Body, Authorization string
		Headers                                        map[string]string
		Token                                          bool
	} `json:"vectors"`
}

const (
	suiteAKID   = "AKIDEXAMPLE"
	suiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

var suiteTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)

func loadSuite(t *testing.T) sigv4Suite {
	raw, err := os.ReadFile("testdata/sigv4-suite.json")
	if err != nil {
		t.Fatal(err)
	}
	var s sigv4Suite
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// The SDK's signer, as the egress calls it, reproduces the suite's
// Authorization values exactly. The suite's requests carry no
// Content-Length among the signed headers, and the SDK signs one whenever
// ContentLength > 0, so the vectors are signed with the body given only
// as its hash (which is all the signature covers of it); the egress's
// real requests do sign their Content-Length, which the verifier below
// checks like any signed header.
func TestSigV4SuiteThroughSDK(t *testing.T) {
	s := loadSuite(t)
	for _, v := range s.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			u := "https://example.amazonaws.com" + v.Path
			if v.Query != "" {
				u += "?" + v.Query
			}
			req, err := http.NewRequest(v.Method, u, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, val := range v.Headers {
				req.Header.Set(k, val)
			}
			creds := aws.Credentials{AccessKeyID: suiteAKID, SecretAccessKey: suiteSecret}
			if v.Token {
				creds.SessionToken = s.SessionToken
			}
			sum := sha256.Sum256([]byte(v.Body))
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "service", "us-east-1", suiteTime); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get("Authorization"); got != v.Authorization {
				t.Errorf("Authorization\n got  %s\n want %s", got, v.Authorization)
			}
			if v.Token && req.Header.Get("X-Amz-Security-Token") != s.SessionToken {
				t.Errorf("X-Amz-Security-Token = %q", req.Header.Get("X-Amz-Security-Token"))
			}
			// The test verifier agrees with the suite too, so it checks
			// what AWS would check.
			body := []byte(v.Body)
			if err := verifySigV4(req, body, map[string]string{suiteAKID: suiteSecret}, suiteTime); err != nil {
				t.Errorf("verifier: %v", err)
			}
		})
	}
}

// verifySigV4 checks a request's signature as an AWS service does: from
// the request as received, with the payload hash computed from the body.
func verifySigV4(r *http.Request, body []byte, keys map[string]string, now time.Time) error {
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

// Through the egress, against a local verifier: right credentials (with
// a session token and a body) pass, a wrong secret gets AWS's 403.
func TestSigV4Egress(t *testing.T) {
	const secret = "local-secret-access-key/123"
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifySigV4(r, body, map[string]string{"AKIDLOCAL": secret}, time.Now()); err != nil {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"message":"SignatureDoesNotMatch: %s"}`, err)
			return
		}
		if r.Header.Get("X-Amz-Security-Token") != "session-token-xyz" {
			http.Error(w, "no session token", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "ok %s", body)
	})
	cfg := integration.Config{Region: "eu-west-1", Service: "iam", AccessKeyID: "AKIDLOCAL"}
	e := newEgress(t, Config{},
		profile("aws", srv.URL, integration.AWSSigV4, cfg, integration.Secrets{SecretAccessKey: secret, SessionToken: "session-token-xyz"}),
		profile("aws-wrong", srv.URL, integration.AWSSigV4, cfg, integration.Secrets{SecretAccessKey: "wrong-secret-key", SessionToken: "session-token-xyz"}),
	)
	resp := do(t, e, Request{Profile: "aws", Method: "POST", Path: "/a b/x", Query: url.Values{"Action": {"ListUsers"}, "Version": {"2010-05-08"}},
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte("Action=ListUsers")})
	if resp.Status != 200 || string(resp.Body) != "ok Action=ListUsers" {
		t.Fatalf("signed call: %d %s", resp.Status, resp.Body)
	}
	resp = do(t, e, Request{Profile: "aws", Method: "GET", Path: "/"})
	if resp.Status != 200 {
		t.Fatalf("signed GET: %d %s", resp.Status, resp.Body)
	}
	resp = do(t, e, Request{Profile: "aws-wrong", Method: "GET", Path: "/"})
	if resp.Status != 403 || !contains(string(resp.Body), "SignatureDoesNotMatch") {
		t.Fatalf("wrong secret: %d %s", resp.Status, resp.Body)
	}
}
