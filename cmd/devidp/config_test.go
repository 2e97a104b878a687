package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c config)
	}{
		{"defaults", nil, nil, func(t *testing.T, c config) {
			want := config{
				addr: "127.0.0.1:8081", issuer: "http://localhost:8081", clientID: "playbook-studio", clientSecret: "dev-secret",
				redirectURIs: []string{"http://playbooks.localhost:8080/auth/callback"}, postLogoutRedirectURIs: []string{"http://playbooks.localhost:8080/"},
			}
			if !equalConfig(c, want) {
				t.Errorf("got %+v, want %+v", c, want)
			}
		}},
		{"environment", nil, map[string]string{
			"DEVIDP_ADDR": "0.0.0.0:9000", "DEVIDP_ISSUER": "https://idp.test", "DEVIDP_USERS": "/tmp/u.json",
			"DEVIDP_CLIENT_ID": "c", "DEVIDP_CLIENT_SECRET": "s",
			"DEVIDP_REDIRECT_URIS":             "http://a.test/cb, http://b.test/cb",
			"DEVIDP_POST_LOGOUT_REDIRECT_URIS": "http://a.test/",
		}, func(t *testing.T, c config) {
			want := config{
				addr: "0.0.0.0:9000", issuer: "https://idp.test", usersPath: "/tmp/u.json", clientID: "c", clientSecret: "s",
				redirectURIs: []string{"http://a.test/cb", "http://b.test/cb"}, postLogoutRedirectURIs: []string{"http://a.test/"},
			}
			if !equalConfig(c, want) {
				t.Errorf("got %+v, want %+v", c, want)
			}
		}},
		{"flag wins over environment", []string{"-client-id", "from-flag", "-redirect-uris", "http://flag.test/cb"},
			map[string]string{"DEVIDP_CLIENT_ID": "from-env", "DEVIDP_REDIRECT_URIS": "http://env.test/cb"},
			func(t *testing.T, c config) {
				if c.clientID != "from-flag" || !slices.Equal(c.redirectURIs, []string{"http://flag.test/cb"}) {
					t.Errorf("got %+v", c)
				}
			}},
		{"empty post-logout list is allowed", []string{"-post-logout-redirect-uris", ""}, nil, func(t *testing.T, c config) {
			if len(c.postLogoutRedirectURIs) != 0 {
				t.Errorf("got %v", c.postLogoutRedirectURIs)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, envMap(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func equalConfig(a, b config) bool {
	return a.addr == b.addr && a.issuer == b.issuer && a.usersPath == b.usersPath && a.clientID == b.clientID &&
		a.clientSecret == b.clientSecret && slices.Equal(a.redirectURIs, b.redirectURIs) &&
		slices.Equal(a.postLogoutRedirectURIs, b.postLogoutRedirectURIs)
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"issuer not a URL", []string{"-issuer", "::nope"}, nil, "-issuer (DEVIDP_ISSUER)"},
		{"issuer relative", []string{"-issuer", "localhost:8081"}, nil, "-issuer (DEVIDP_ISSUER)"},
		{"issuer with path", []string{"-issuer", "http://localhost:8081/idp"}, nil, "-issuer (DEVIDP_ISSUER)"},
		{"issuer trailing slash", []string{"-issuer", "http://localhost:8081/"}, nil, "without path, trailing slash"},
		{"issuer bad scheme", nil, map[string]string{"DEVIDP_ISSUER": "ftp://localhost"}, "-issuer (DEVIDP_ISSUER)"},
		{"addr", []string{"-addr", "localhost"}, nil, "-addr (DEVIDP_ADDR)"},
		{"empty client id", []string{"-client-id", " "}, nil, "-client-id (DEVIDP_CLIENT_ID)"},
		{"empty client secret", []string{"-client-secret", ""}, nil, "-client-secret (DEVIDP_CLIENT_SECRET)"},
		{"no redirect URIs", []string{"-redirect-uris", " , "}, nil, "-redirect-uris (DEVIDP_REDIRECT_URIS): at least one"},
		{"relative redirect URI", []string{"-redirect-uris", "/auth/callback"}, nil, "-redirect-uris (DEVIDP_REDIRECT_URIS)"},
		{"redirect URI with fragment", []string{"-redirect-uris", "http://a.test/cb#x"}, nil, "fragment"},
		{"bad post-logout URI", []string{"-post-logout-redirect-uris", "javascript:alert(1)"}, nil, "-post-logout-redirect-uris (DEVIDP_POST_LOGOUT_REDIRECT_URIS)"},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
		{"positional argument", []string{"extra"}, nil, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, envMap(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadUsers(t *testing.T) {
	alice := `{"username":"alice","password":"pw","sub":"s1","email":"a@example.com","name":"A","roles":["r"],"tenant":"t"}`
	tests := []struct {
		name    string
		content string // "-" means the file does not exist
		wantErr string
	}{
		{"valid without roles", `{"users":[{"username":"u","password":"p","sub":"s","email":"u@example.com","name":"U","tenant":"t"}]}`, ""},
		{"missing file", "-", "no such file"},
		{"not JSON", `{`, "invalid JSON"},
		{"trailing data", `{"users":[` + alice + `]} {}`, "trailing data"},
		{"unknown field", `{"users":[{"username":"u","pass":"p"}]}`, "unknown field"},
		{"empty users", `{"users":[]}`, "no users defined"},
		{"no users key", `{}`, "no users defined"},
		{"duplicate username", `{"users":[` + alice + `,` + strings.Replace(alice, `"s1"`, `"s2"`, 1) + `]}`, `users[1] ("alice"): duplicate username`},
		{"duplicate sub", `{"users":[` + alice + `,` + strings.Replace(alice, `"alice"`, `"bob"`, 1) + `]}`, `duplicate sub "s1"`},
		{"empty username", `{"users":[` + strings.Replace(alice, `"alice"`, `""`, 1) + `]}`, "username must be non-empty"},
		{"empty password", `{"users":[` + strings.Replace(alice, `"pw"`, `""`, 1) + `]}`, "password must not be empty"},
		{"empty sub", `{"users":[` + strings.Replace(alice, `"s1"`, `""`, 1) + `]}`, "sub must not be empty"},
		{"bad email", `{"users":[` + strings.Replace(alice, `"a@example.com"`, `"alice"`, 1) + `]}`, "not a valid address"},
		{"empty tenant", `{"users":[` + strings.Replace(alice, `"tenant":"t"`, `"tenant":""`, 1) + `]}`, "tenant must not be empty"},
		{"empty role", `{"users":[` + strings.Replace(alice, `["r"]`, `["r",""]`, 1) + `]}`, "roles must not contain empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users.json")
			if tc.content != "-" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := loadUsers(path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if u, ok := s.authenticate("u", "p"); !ok || u.Roles == nil {
					t.Errorf("authenticate = %+v, %v; want user with non-nil roles", u, ok)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "-users (DEVIDP_USERS)") {
				t.Fatalf("got error %v, want it to name -users and contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestEmbeddedUsers(t *testing.T) {
	s, err := loadUsers("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		username, password string
		ok                 bool
	}{
		{"alice", "alice", true},
		{"bob", "bob", true},
		{"alice", "Alice", false},
		{"bob", "alice", false},
		{"carol", "carol", false},
		{"", "", false},
	} {
		if _, ok := s.authenticate(tc.username, tc.password); ok != tc.ok {
			t.Errorf("authenticate(%q, %q) = %v, want %v", tc.username, tc.password, ok, tc.ok)
		}
	}
	if u, _ := s.bySubject("5f0c8e2a-3b1d-4c6e-9a7f-1d2e3f4a5b6c"); u == nil || u.Username != "alice" ||
		!slices.Equal(u.Roles, []string{"author", "automation", "admin"}) || u.Tenant != "default" {
		t.Errorf("alice = %+v", u)
	}
}

func TestRunFailsFastOnBadConfig(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"bad issuer", []string{"-issuer", "not a url"}, nil, "-issuer (DEVIDP_ISSUER)"},
		{"missing users file", nil, map[string]string{"DEVIDP_USERS": filepath.Join(t.TempDir(), "missing.json")}, "-users (DEVIDP_USERS)"},
		{"address in use", []string{"-addr", busy.Addr().String()}, nil, "-addr (DEVIDP_ADDR)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, envMap(tc.env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"-h"}, envMap(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-addr", "-issuer", "-users", "-client-id", "-client-secret", "-redirect-uris", "-post-logout-redirect-uris"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("usage lacks %s", flag)
		}
	}
}
