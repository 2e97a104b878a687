// Package storetest is the suite every integration.Store passes (SQLite
// today, Postgres later): the same calls, the same answers.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/integration"
)

// Run runs the suite; open returns a new, empty store.
func Run(t *testing.T, open func(t *testing.T) integration.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s integration.Store)
	}{
		{"CreateGet", testCreateGet},
		{"NamesUniquePerTenant", testNamesUnique},
		{"Limit", testLimit},
		{"LimitUnderConcurrency", testLimitConcurrent},
		{"Update", testUpdate},
		{"Delete", testDelete},
		{"ListByTenant", testList},
		{"StaleKeysAndSwap", testStaleKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.fn(t, s)
		})
	}
}

var at = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)

// id is a fresh random UUID.
func id() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Rec is a record of tenant named name, for tests.
func Rec(tenant, name string) integration.Record {
	return integration.Record{
		Profile: integration.Profile{
			ID: id(), Tenant: tenant, Name: name, Description: "d of " + name, BaseURL: "https://api.example.com/v1",
			AuthMethod: integration.APIKey, Config: integration.Config{In: "header", Name: "X-API-Key"},
			SecretsSet: []string{"apiKey"}, CreatedAt: at, CreatedBy: "Alice", UpdatedAt: at, UpdatedBy: "Alice",
		},
		Sealed: integration.Sealed{KeyID: "k1", WrappedKey: []byte("wrapped-" + name), Secrets: []byte("sealed-" + name)},
	}
}

func mustCreate(t *testing.T, s integration.Store, r integration.Record) {
	t.Helper()
	if err := s.Create(context.Background(), r, 100); err != nil {
		t.Fatalf("create %q: %v", r.Name, err)
	}
}

func testCreateGet(t *testing.T, s integration.Store) {
	ctx := context.Background()
	r := Rec("t1", "VirusTotal")
	r.AuthMethod = integration.OAuth2ClientCredentials
	r.Config = integration.Config{TokenURL: "https://login.example.com/token", ClientID: "c", Scopes: []string{"a", "b"}}
	r.SecretsSet = []string{"clientSecret"}
	mustCreate(t, s, r)
	got, err := s.Get(ctx, "t1", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("get = %+v\nwant %+v", got, r)
	}
	byName, err := s.GetByName(ctx, "t1", "virustotal")
	if err != nil || byName.ID != r.ID {
		t.Errorf("get by name, other case = %+v, %v", byName.ID, err)
	}
	if _, err := s.Get(ctx, "t2", r.ID); !errors.Is(err, integration.ErrNotFound) {
		t.Errorf("get from another tenant: %v, want ErrNotFound", err)
	}
	if _, err := s.GetByName(ctx, "t2", "VirusTotal"); !errors.Is(err, integration.ErrNotFound) {
		t.Errorf("get by name from another tenant: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "t1", id()); !errors.Is(err, integration.ErrNotFound) {
		t.Errorf("get unknown: %v, want ErrNotFound", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func testNamesUnique(t *testing.T, s integration.Store) {
	ctx := context.Background()
	mustCreate(t, s, Rec("t1", "Graph"))
	if err := s.Create(ctx, Rec("t1", "GRAPH"), 100); !errors.Is(err, integration.ErrNameTaken) {
		t.Errorf("same name, other case: %v, want ErrNameTaken", err)
	}
	mustCreate(t, s, Rec("t2", "Graph"))
}

func testLimit(t *testing.T, s integration.Store) {
	ctx := context.Background()
	for i := range 3 {
		if err := s.Create(ctx, Rec("t1", fmt.Sprint("p", i)), 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(ctx, Rec("t1", "p3"), 3); !errors.Is(err, integration.ErrLimit) {
		t.Errorf("past the limit: %v, want ErrLimit", err)
	}
	if err := s.Create(ctx, Rec("t2", "p3"), 3); err != nil {
		t.Errorf("another tenant under its limit: %v", err)
	}
}

// Creates racing at the limit: exactly the limit's worth succeed.
func testLimitConcurrent(t *testing.T, s integration.Store) {
	ctx := context.Background()
	const limit, tries = 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, tries)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Create(ctx, Rec("t1", fmt.Sprint("c", i)), limit)
		}()
	}
	wg.Wait()
	close(errs)
	ok, limited := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, integration.ErrLimit):
			limited++
		default:
			t.Errorf("create: %v", err)
		}
	}
	if ok != limit || limited != tries-limit {
		t.Errorf("%d created, %d refused; want %d and %d", ok, limited, limit, tries-limit)
	}
}

func testUpdate(t *testing.T, s integration.Store) {
	ctx := context.Background()
	a, b := Rec("t1", "A"), Rec("t1", "B")
	mustCreate(t, s, a)
	mustCreate(t, s, b)
	a.Name, a.Description = "A2", "new"
	a.Config = integration.Config{In: "query", Name: "key"}
	a.Sealed = integration.Sealed{KeyID: "k2", WrappedKey: []byte("w2"), Secrets: []byte("s2")}
	a.UpdatedAt, a.UpdatedBy = at.Add(time.Hour), "Bob"
	if err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "t1", a.ID)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Errorf("after update = %+v, %v\nwant %+v", got, err, a)
	}
	if _, err := s.GetByName(ctx, "t1", "a2"); err != nil {
		t.Errorf("by new name: %v", err)
	}
	if _, err := s.GetByName(ctx, "t1", "A"); !errors.Is(err, integration.ErrNotFound) {
		t.Errorf("by old name: %v, want ErrNotFound", err)
	}
	a.Name = "b"
	if err := s.Update(ctx, a); !errors.Is(err, integration.ErrNameTaken) {
		t.Errorf("rename onto another's name: %v, want ErrNameTaken", err)
	}
	ghost := Rec("t1", "ghost")
	if err := s.Update(ctx, ghost); !errors.Is(err, integration.ErrNotFound) {
		t.Errorf("update unknown: %v, want ErrNotFound", err)
	}
	other := a
	other.Tenant, other.Name = "t2", "A3"
	if err := s.Update(ctx, other); !errors.Is(err, integration.ErrNotFound) {
		t.Errorf("update from another tenant: %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s integration.Store) {
	ctx := context.Background()
	r := Rec("t1", "gone")
	mustCreate(t, s, r)
	if err := s.Delete(ctx, "t2", r.ID); !errors.Is(err, integration.ErrNotFound) {
		t.Errorf("delete from another tenant: %v", err)
	}
	if err := s.Delete(ctx, "t1", r.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "t1", r.ID); !errors.Is(err, integration.ErrNotFound) {
		t.Errorf("delete again: %v", err)
	}
	// The name is free again.
	mustCreate(t, s, Rec("t1", "gone"))
}

func testList(t *testing.T, s integration.Store) {
	ctx := context.Background()
	for _, n := range []string{"b", "C", "a"} {
		mustCreate(t, s, Rec("t1", n))
	}
	mustCreate(t, s, Rec("t2", "other"))
	list, err := s.List(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list {
		names = append(names, r.Name)
	}
	if !reflect.DeepEqual(names, []string{"a", "b", "C"}) {
		t.Errorf("list = %v, want a b C", names)
	}
	empty, err := s.List(ctx, "t3")
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("empty tenant's list = %#v, %v; want an empty, non-nil list", empty, err)
	}
}

func testStaleKeys(t *testing.T, s integration.Store) {
	ctx := context.Background()
	var recs []integration.Record
	for i, tenant := range []string{"t2", "t1", "t1", "t3"} {
		r := Rec(tenant, fmt.Sprint("k", i))
		if i == 3 {
			r.Sealed.KeyID = "new"
		}
		mustCreate(t, s, r)
		recs = append(recs, r)
	}
	// Paged by (tenant, id) across tenants, skipping current ones.
	var seen []string
	afterT, afterID := "", ""
	for {
		rows, err := s.StaleKeys(ctx, "new", afterT, afterID, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		for _, k := range rows {
			seen = append(seen, k.Tenant+"/"+k.ID)
			afterT, afterID = k.Tenant, k.ID
			if k.KeyID != "k1" || k.Method != integration.APIKey || len(k.WrappedKey) == 0 {
				t.Errorf("stale row = %+v", k)
			}
		}
	}
	want := []string{"t1/" + min(recs[1].ID, recs[2].ID), "t1/" + max(recs[1].ID, recs[2].ID), "t2/" + recs[0].ID}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("stale keys = %v, want %v", seen, want)
	}
	rows, _ := s.StaleKeys(ctx, "new", "", "", 10)
	k := rows[0]
	ok, err := s.SwapKey(ctx, k, "new", []byte("rewrapped"))
	if err != nil || !ok {
		t.Fatalf("swap = %v, %v", ok, err)
	}
	// The same swap again: the row changed, nothing happens.
	if ok, err := s.SwapKey(ctx, k, "new", []byte("other")); err != nil || ok {
		t.Errorf("second swap = %v, %v; want false", ok, err)
	}
	got, _ := s.Get(ctx, k.Tenant, k.ID)
	if got.Sealed.KeyID != "new" || string(got.Sealed.WrappedKey) != "rewrapped" || string(got.Sealed.Secrets) == "" {
		t.Errorf("after swap = %+v", got.Sealed)
	}
	// A row re-sealed since it was read is left alone.
	k2 := rows[1]
	r, _ := s.Get(ctx, k2.Tenant, k2.ID)
	r.Sealed = integration.Sealed{KeyID: "k1", WrappedKey: []byte("fresh"), Secrets: []byte("fresh")}
	if err := s.Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SwapKey(ctx, k2, "new", []byte("x")); err != nil || ok {
		t.Errorf("swap of a row re-sealed meanwhile = %v, %v; want false", ok, err)
	}
}
