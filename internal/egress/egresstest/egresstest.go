// Package egresstest holds test helpers: local stand-ins for the services
// integration profiles call, each checking credentials the way the real
// service does. Basic, Bearer and APIKey check a static credential; OAuth2
// is a token endpoint with a resource server that takes only the tokens it
// issued; SigV4 and Hawk verify signatures, recomputed from the request as
// received by code written from each specification rather than from the
// egress's signers, so a signer's mistake cannot pass by being repeated.
//
// The egress's tests and the server's Test connection tests import it; the
// gateway never does. A refusal says what was wrong, and an accepted call
// echoes the credential back in its answer, as httpbin does, so that tests
// see the egress redact it.
package egresstest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
)

// Server is a verifier listening on a loopback address until the test
// ends. It counts the connections it accepted: a test that the address
// policy refuses a call wants none.
type Server struct {
	*httptest.Server
	conns atomic.Int64
}

// Serve starts h on 127.0.0.1.
func Serve(t testing.TB, h http.Handler) *Server {
	t.Helper()
	return ServeOn(t, "127.0.0.1:0", h)
}

// ServeOn starts h on addr ("127.0.0.2:0", say), which must be a loopback
// address: tests never send traffic anywhere else.
func ServeOn(t testing.TB, addr string, h http.Handler) *Server {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		t.Fatalf("egresstest: %q is not a loopback address and port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("egresstest: listen on %s: %v", addr, err)
	}
	s := &Server{}
	s.Server = &httptest.Server{Listener: ln, Config: &http.Server{
		Handler: h,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// Connections is how many connections the server has accepted.
func (s *Server) Connections() int64 { return s.conns.Load() }

// echo answers an accepted call with the credential it carried, in a
// header and in the body.
func echo(w http.ResponseWriter, credential string) {
	w.Header().Set("X-Echo", credential)
	fmt.Fprintf(w, "ok %s", credential)
}

// Basic accepts HTTP Basic credentials user and password; anything else
// is a 401 with the challenge a real server sends.
func Basic(user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="egresstest"`)
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		echo(w, r.Header.Get("Authorization"))
	})
}

// Bearer accepts "Authorization: Bearer token"; anything else is a 401.
func Bearer(token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		echo(w, r.Header.Get("Authorization"))
	})
}

// APIKey accepts key in the header name (in "header") or the query
// parameter name (in "query"); anything else is a 403, as most key-checking
// APIs answer. An accepted call echoes the URL it was asked for, key
// included when it came in the query.
func APIKey(in, name, key string) http.Handler {
	if in != "header" && in != "query" {
		panic(fmt.Sprintf("egresstest: APIKey: in must be header or query, not %q", in))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(name)
		if in == "query" {
			got = r.URL.Query().Get(name)
		}
		if got != key {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":"invalid api key"}`)
			return
		}
		fmt.Fprintf(w, "you asked for %s", r.URL.String())
	})
}
