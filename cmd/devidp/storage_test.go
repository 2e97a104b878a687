package main

import (
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

func TestStorageExpiryAndSingleUseCodes(t *testing.T) {
	users, err := loadUsers("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newStorage(users, &client{id: testClientID, secret: testClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	newRequest := func() string {
		t.Helper()
		a, err := s.CreateAuthRequest(ctx, &oidc.AuthRequest{
			ClientID: testClientID, RedirectURI: testRedirectURI, ResponseType: oidc.ResponseTypeCode,
			Scopes: []string{"openid"}, CodeChallenge: "c", CodeChallengeMethod: oidc.CodeChallengeMethodS256,
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		return a.GetID()
	}

	// A completed request yields one code; a newer code replaces the older one.
	id := newRequest()
	if err := s.completeLogin(id, "5f0c8e2a-3b1d-4c6e-9a7f-1d2e3f4a5b6c"); err != nil {
		t.Fatal(err)
	}
	if err := s.completeLogin(id, "5f0c8e2a-3b1d-4c6e-9a7f-1d2e3f4a5b6c"); err == nil {
		t.Error("second completeLogin succeeded")
	}
	if err := s.SaveAuthCode(ctx, id, "code-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAuthCode(ctx, id, "code-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthRequestByCode(ctx, "code-1"); err == nil {
		t.Error("replaced code still valid")
	}
	a, err := s.AuthRequestByCode(ctx, "code-2")
	if err != nil || !a.Done() || a.GetSubject() == "" {
		t.Fatalf("AuthRequestByCode = %+v, %v", a, err)
	}
	if _, err := s.AuthRequestByCode(ctx, "code-2"); err == nil {
		t.Error("code usable twice")
	}

	// Requests (and their codes) expire after authRequestTTL.
	id = newRequest()
	if err := s.SaveAuthCode(ctx, id, "code-3"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(authRequestTTL + time.Second)
	if _, err := s.AuthRequestByID(ctx, id); err == nil {
		t.Error("expired auth request still found")
	}
	if _, err := s.AuthRequestByCode(ctx, "code-3"); err == nil {
		t.Error("code of expired auth request still valid")
	}
	if _, err := s.loginRequest(id); err == nil {
		t.Error("login page offered for expired auth request")
	}

	// Sweeping on create drops expired entries.
	stale := newRequest()
	now = now.Add(authRequestTTL + time.Second)
	newRequest()
	s.mu.Lock()
	_, found := s.authRequests[stale]
	n := len(s.authRequests)
	s.mu.Unlock()
	if found || n != 1 {
		t.Errorf("after sweep: stale found=%v, %d requests left", found, n)
	}
}
