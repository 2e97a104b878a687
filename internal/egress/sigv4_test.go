package egress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/playbookstudio/gateway/internal/egress/egresstest"
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
			if err := egresstest.VerifySigV4(req, body, map[string]string{suiteAKID: suiteSecret}, suiteTime); err != nil {
				t.Errorf("verifier: %v", err)
			}
		})
	}
}

// Through the egress, against a local verifier: right credentials (with
// a session token and a body) pass, a wrong secret gets AWS's 403.
func TestSigV4Egress(t *testing.T) {
	const secret = "local-secret-access-key/123"
	srv := egresstest.Serve(t, egresstest.NewSigV4("AKIDLOCAL", secret, "session-token-xyz"))
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
