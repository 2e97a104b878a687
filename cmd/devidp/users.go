package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// defaultUsersJSON is the users file used when -users / DEVIDP_USERS is not set.
//
//go:embed users.json
var defaultUsersJSON []byte

// user is one entry of the users file.
type user struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Sub      string   `json:"sub"`
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
	Tenant   string   `json:"tenant"`
	// Groups fill the groups claim (OIDC_GROUPS_CLAIM): which alert
	// sources a user may target in rules.
	Groups []string `json:"groups,omitempty"`
}

type usersFile struct {
	Users []user `json:"users"`
}

// userStore is immutable after construction and therefore safe for concurrent use.
type userStore struct {
	byUsername map[string]*user
	bySub      map[string]*user
}

// parseUsers decodes and validates a users file. source names the setting
// (and file) in error messages.
func parseUsers(data []byte, source string) (*userStore, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f usersFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", source, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: invalid JSON: trailing data after the top-level object", source)
	}
	if len(f.Users) == 0 {
		return nil, fmt.Errorf("%s: no users defined (need at least one entry in \"users\")", source)
	}
	s := &userStore{
		byUsername: make(map[string]*user, len(f.Users)),
		bySub:      make(map[string]*user, len(f.Users)),
	}
	for i := range f.Users {
		u := &f.Users[i]
		where := fmt.Sprintf("%s: users[%d]", source, i)
		if u.Username != "" {
			where += fmt.Sprintf(" (%q)", u.Username)
		}
		if err := validateUser(u); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if _, dup := s.byUsername[u.Username]; dup {
			return nil, fmt.Errorf("%s: duplicate username %q", where, u.Username)
		}
		if _, dup := s.bySub[u.Sub]; dup {
			return nil, fmt.Errorf("%s: duplicate sub %q", where, u.Sub)
		}
		if u.Roles == nil {
			u.Roles = []string{} // always a JSON array in tokens
		}
		if u.Groups == nil {
			u.Groups = []string{}
		}
		s.byUsername[u.Username] = u
		s.bySub[u.Sub] = u
	}
	return s, nil
}

func validateUser(u *user) error {
	switch {
	case strings.TrimSpace(u.Username) == "" || u.Username != strings.TrimSpace(u.Username):
		return errors.New("username must be non-empty without surrounding spaces")
	case u.Password == "":
		return errors.New("password must not be empty")
	case strings.TrimSpace(u.Sub) == "":
		return errors.New("sub must not be empty")
	case strings.TrimSpace(u.Name) == "":
		return errors.New("name must not be empty")
	case strings.TrimSpace(u.Tenant) == "":
		return errors.New("tenant must not be empty")
	}
	if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
		return fmt.Errorf("email %q is not a valid address", u.Email)
	}
	for _, r := range u.Roles {
		if strings.TrimSpace(r) == "" {
			return errors.New("roles must not contain empty strings")
		}
	}
	return nil
}

// authenticate returns the user if username and password match. The
// password comparison is constant time and an unknown username costs the
// same comparison, so timing does not reveal which usernames exist.
func (s *userStore) authenticate(username, password string) (*user, bool) {
	u, found := s.byUsername[username]
	want := "\x00no-such-user"
	if found {
		want = u.Password
	}
	// Hash both sides so ConstantTimeCompare sees equal lengths.
	got, exp := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(want))
	match := subtle.ConstantTimeCompare(got[:], exp[:]) == 1
	if !found || !match {
		return nil, false
	}
	return u, true
}

func (s *userStore) bySubject(sub string) (*user, bool) {
	u, ok := s.bySub[sub]
	return u, ok
}
