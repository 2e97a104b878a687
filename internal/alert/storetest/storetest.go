// Package storetest is the conformance suite every alert.Store passes:
// the SQLite one now, Postgres later.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/alert"
	"github.com/playbookstudio/gateway/internal/fault"
)

// Run runs the suite; open returns a new, empty store.
func Run(t *testing.T, open func(t *testing.T) alert.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 123456789, time.UTC)

	mkAlert := func(tenant, id, incident string, upd time.Time) alert.Alert {
		return alert.Alert{Tenant: tenant, ID: id, SourceID: "src-1", SourceName: "default", IncidentID: incident,
			Title: "t " + id, Severity: "high", Status: "new", CreatedAt: t0, SourceUpdatedAt: upd,
			ReceivedAt: t0, UpdatedAt: t0, JSON: json.RawMessage(`{"id":"` + id + `","v":"` + upd.Format(time.RFC3339Nano) + `"}`)}
	}
	act := func(kind string) alert.Activity {
		return alert.Activity{At: t0, Kind: kind, Actor: "a", Detail: kind}
	}
	puts := func(as ...alert.Alert) []alert.Put {
		out := make([]alert.Put, 0, len(as))
		for _, a := range as {
			out = append(out, alert.Put{Alert: a, OnCreate: act("created"), OnUpdate: act("updated")})
		}
		return out
	}
	// put stores one alert, as a post of one.
	put := func(t *testing.T, s alert.Store, a alert.Alert) (alert.Outcome, error) {
		t.Helper()
		out, err := s.PutAlerts(ctx, puts(a))
		if err != nil {
			return 0, err
		}
		if len(out) != 1 {
			t.Fatalf("one put answered %d outcomes", len(out))
		}
		return out[0], nil
	}

	t.Run("sources", func(t *testing.T) {
		s := open(t)
		src := alert.Source{ID: "s1", Tenant: "t1", Name: "Sentinel EU", Groups: []string{"soc-eu"}, CreatedAt: t0, CreatedBy: "alice"}
		if err := s.CreateSource(ctx, src); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSource(ctx, alert.Source{ID: "s2", Tenant: "t1", Name: "sentinel eu", CreatedAt: t0}); !errors.Is(err, alert.ErrSourceNameTaken) {
			t.Errorf("same name: %v, want ErrSourceNameTaken", err)
		}
		if err := s.CreateSource(ctx, alert.Source{ID: "s3", Tenant: "t2", Name: "Sentinel EU", CreatedAt: t0}); err != nil {
			t.Errorf("same name in another tenant: %v", err)
		}
		got, err := s.GetSource(ctx, "t1", "s1")
		if err != nil || got.Name != src.Name || len(got.Groups) != 1 || !got.CreatedAt.Equal(t0) {
			t.Errorf("get = %+v, %v", got, err)
		}
		if _, err := s.GetSource(ctx, "t2", "s1"); !errors.Is(err, alert.ErrSourceNotFound) {
			t.Errorf("another tenant's source: %v", err)
		}
		if got, err := s.GetSourceByName(ctx, "t1", "SENTINEL eu"); err != nil || got.ID != "s1" {
			t.Errorf("by name = %+v, %v", got, err)
		}
		list, err := s.ListSources(ctx, "t1")
		if err != nil || len(list) != 1 {
			t.Errorf("list = %+v, %v", list, err)
		}
		k := alert.Key{ID: "k1", Tenant: "t1", SourceID: "s1", Hash: []byte{1, 2, 3}, CreatedAt: t0, CreatedBy: "alice"}
		if err := s.AddKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := s.AddKey(ctx, alert.Key{ID: "k2", Tenant: "t2", SourceID: "s1", Hash: []byte{1}, CreatedAt: t0}); !errors.Is(err, alert.ErrSourceNotFound) {
			t.Errorf("key for another tenant's source: %v", err)
		}
		if got, err := s.GetKey(ctx, "k1"); err != nil || got.Tenant != "t1" || string(got.Hash) != string(k.Hash) {
			t.Errorf("get key = %+v, %v", got, err)
		}
		if keys, err := s.ListKeys(ctx, "t1", "s1"); err != nil || len(keys) != 1 {
			t.Errorf("keys = %+v, %v", keys, err)
		}
		if err := s.DeleteKey(ctx, "t2", "s1", "k1"); !errors.Is(err, alert.ErrKeyNotFound) {
			t.Errorf("delete another tenant's key: %v", err)
		}
		if err := s.DeleteSource(ctx, "t1", "s1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetKey(ctx, "k1"); !errors.Is(err, alert.ErrKeyNotFound) {
			t.Errorf("key of a deleted source: %v", err)
		}
		if err := s.DeleteSource(ctx, "t1", "s1"); !errors.Is(err, alert.ErrSourceNotFound) {
			t.Errorf("delete again: %v", err)
		}
	})

	t.Run("put: created, newer wins, older and equal unchanged", func(t *testing.T) {
		s := open(t)
		a := mkAlert("t1", "a1", "inc1", t0)
		out, err := put(t, s, a)
		if err != nil || out != alert.Created {
			t.Fatalf("first put = %v, %v", out, err)
		}
		for _, upd := range []time.Time{t0, t0.Add(-time.Second), {}} {
			b := mkAlert("t1", "a1", "inc1", upd)
			if out, err := put(t, s, b); err != nil || out != alert.Unchanged {
				t.Errorf("put with lastUpdate %v = %v, %v; want unchanged", upd, out, err)
			}
			if got, err := s.GetAlert(ctx, "t1", "a1"); err != nil || string(got.JSON) != string(a.JSON) {
				t.Errorf("after a put with lastUpdate %v: %s, %v", upd, got.JSON, err)
			}
		}
		c := mkAlert("t1", "a1", "inc2", t0.Add(time.Nanosecond))
		c.ReceivedAt = t0.Add(time.Hour)
		if out, err := put(t, s, c); err != nil || out != alert.Updated {
			t.Errorf("newer put = %v, %v", out, err)
		}
		got, err := s.GetAlert(ctx, "t1", "a1")
		if err != nil || string(got.JSON) != string(c.JSON) || got.IncidentID != "inc2" || !got.ReceivedAt.Equal(t0) || !got.SourceUpdatedAt.Equal(c.SourceUpdatedAt) {
			t.Errorf("after newer put: %+v, %v", got, err)
		}
		rows, err := s.Activity(ctx, "t1", []string{"a1"})
		if err != nil || len(rows) != 2 || rows[0].Kind != "created" || rows[1].Kind != "updated" {
			t.Errorf("activity = %+v, %v", rows, err)
		}
		if _, err := s.GetAlert(ctx, "t2", "a1"); !errors.Is(err, alert.ErrAlertNotFound) {
			t.Errorf("another tenant's alert: %v", err)
		}
		if rows, _ := s.Activity(ctx, "t2", []string{"a1"}); len(rows) != 0 {
			t.Errorf("another tenant's activity: %+v", rows)
		}
		// The same id in another tenant is another alert.
		if out, err := put(t, s, mkAlert("t2", "a1", "", t0)); err != nil || out != alert.Created {
			t.Errorf("same id, other tenant = %v, %v", out, err)
		}
	})

	t.Run("put: a post is stored in order, whole or not at all", func(t *testing.T) {
		s := open(t)
		out, err := s.PutAlerts(ctx, puts(mkAlert("t1", "a1", "", t0), mkAlert("t1", "a1", "", t0.Add(time.Second)), mkAlert("t1", "a2", "", t0)))
		if err != nil || fmt.Sprint(out) != fmt.Sprint([]alert.Outcome{alert.Created, alert.Updated, alert.Created}) {
			t.Fatalf("batch = %v, %v; want created, updated, created", out, err)
		}
		if got, _ := s.GetAlert(ctx, "t1", "a1"); !got.SourceUpdatedAt.Equal(t0.Add(time.Second)) {
			t.Errorf("the batch's second a1 did not apply: %+v", got.SourceUpdatedAt)
		}
	})

	t.Run("put: only the alert's own source updates it", func(t *testing.T) {
		s := open(t)
		if _, err := put(t, s, mkAlert("t1", "a1", "inc1", t0)); err != nil {
			t.Fatal(err)
		}
		before, _ := s.GetAlert(ctx, "t1", "a1")
		other := func(id string, upd time.Time) alert.Alert {
			a := mkAlert("t1", id, "inc-x", upd)
			a.SourceID, a.SourceName, a.Title = "src-2", "other", "hijacked"
			return a
		}
		for _, c := range []struct {
			name  string
			batch []alert.Alert
			index int
		}{
			{"newer", []alert.Alert{other("a1", t0.Add(time.Hour))}, 0},
			{"same time", []alert.Alert{other("a1", t0)}, 0},
			{"no lastUpdate", []alert.Alert{other("a1", time.Time{})}, 0},
			// The new alert before the refused one is not stored either.
			{"after a new alert", []alert.Alert{other("a9", t0), other("a1", t0.Add(time.Hour))}, 1},
		} {
			t.Run(c.name, func(t *testing.T) {
				out, err := s.PutAlerts(ctx, puts(c.batch...))
				f, ok := fault.As(err)
				if !ok || f.Kind != fault.Conflict || f.Code != alert.CodeAlertOtherSource || f.Details["id"] != "a1" || f.Details["index"] != c.index {
					t.Fatalf("put from another source = %v, %v; want %s for a1 at %d", out, err, alert.CodeAlertOtherSource, c.index)
				}
				got, err := s.GetAlert(ctx, "t1", "a1")
				if err != nil || got.SourceID != "src-1" || got.Title != before.Title || string(got.JSON) != string(before.JSON) ||
					!got.SourceUpdatedAt.Equal(t0) || got.IncidentID != "inc1" {
					t.Errorf("after the refusal: %+v, %v", got, err)
				}
				if _, err := s.GetAlert(ctx, "t1", "a9"); !errors.Is(err, alert.ErrAlertNotFound) {
					t.Errorf("part of a refused post was stored: %v", err)
				}
				if rows, _ := s.Activity(ctx, "t1", []string{"a1", "a9"}); len(rows) != 1 {
					t.Errorf("activity after the refusal = %+v", rows)
				}
			})
		}
		// The own source still updates it; another tenant's same id is its own.
		if out, err := put(t, s, mkAlert("t1", "a1", "inc1", t0.Add(time.Hour))); err != nil || out != alert.Updated {
			t.Errorf("own source's update = %v, %v", out, err)
		}
		if out, err := put(t, s, other("a1", t0)); err == nil {
			t.Errorf("another source after an update = %v", out)
		}
		o := other("a1", t0)
		o.Tenant = "t2"
		if out, err := put(t, s, o); err != nil || out != alert.Created {
			t.Errorf("same id, other tenant's source = %v, %v", out, err)
		}
	})

	t.Run("list filters and incidents", func(t *testing.T) {
		s := open(t)
		for i, id := range []string{"a1", "a2", "a3"} {
			a := mkAlert("t1", id, "inc1", t0)
			a.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
			a.UpdatedAt = a.CreatedAt
			if id == "a3" {
				a.IncidentID, a.Severity, a.Status, a.SourceID = "inc2", "low", "resolved", "src-2"
			}
			if _, err := put(t, s, a); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(f alert.Filter) []string {
			list, err := s.ListAlerts(ctx, "t1", f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, a := range list {
				out = append(out, a.ID)
			}
			return out
		}
		for _, c := range []struct {
			f    alert.Filter
			want string
		}{
			{alert.Filter{}, "[a3 a2 a1]"},
			{alert.Filter{Limit: 1}, "[a3]"},
			{alert.Filter{Status: "resolved"}, "[a3]"},
			{alert.Filter{Severity: "high"}, "[a2 a1]"},
			{alert.Filter{SourceID: "src-2"}, "[a3]"},
			{alert.Filter{IncidentID: "inc1"}, "[a2 a1]"},
		} {
			if got := fmtList(ids(c.f)); got != c.want {
				t.Errorf("list %+v = %s, want %s", c.f, got, c.want)
			}
		}
		inc, err := s.Incidents(ctx, "t1", 10)
		if err != nil || len(inc) != 2 {
			t.Fatalf("incidents = %+v, %v", inc, err)
		}
		if inc[0].ID != "inc2" || inc[0].Status != "resolved" || inc[0].Severity != "low" || inc[1].AlertCount != 2 || inc[1].Severity != "high" || inc[1].Status != "new" || len(inc[1].Sources) != 1 {
			t.Errorf("incidents = %+v", inc)
		}
		if inc, _ := s.Incidents(ctx, "t2", 10); len(inc) != 0 {
			t.Errorf("another tenant's incidents: %+v", inc)
		}
	})

	t.Run("modify and runs", func(t *testing.T) {
		s := open(t)
		if _, err := put(t, s, mkAlert("t1", "a1", "", t0)); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if _, err := s.ModifyAlert(ctx, "t1", "a1", func(a *alert.Alert) ([]alert.Activity, error) {
			a.Status = "resolved"
			return nil, boom
		}); !errors.Is(err, boom) {
			t.Errorf("fn's error: %v", err)
		}
		if got, _ := s.GetAlert(ctx, "t1", "a1"); got.Status != "new" {
			t.Errorf("a failed modify wrote: %+v", got)
		}
		if _, err := s.ModifyAlert(ctx, "t2", "a1", func(*alert.Alert) ([]alert.Activity, error) { return nil, nil }); !errors.Is(err, alert.ErrAlertNotFound) {
			t.Errorf("modify another tenant's: %v", err)
		}
		got, err := s.ModifyAlert(ctx, "t1", "a1", func(a *alert.Alert) ([]alert.Activity, error) {
			a.Status, a.JSON = "resolved", json.RawMessage(`{"id":"a1","status":"resolved"}`)
			return []alert.Activity{{At: t0.Add(time.Second), Kind: "updated", Actor: "bob", Detail: "status → resolved"}}, nil
		})
		if err != nil || got.Status != "resolved" {
			t.Fatalf("modify = %+v, %v", got, err)
		}
		if got, _ := s.GetAlert(ctx, "t1", "a1"); got.Status != "resolved" || string(got.JSON) != `{"id":"a1","status":"resolved"}` {
			t.Errorf("after modify: %+v", got)
		}
		d := int64(1500)
		run := func(status string) alert.Activity {
			return alert.Activity{At: t0.Add(2 * time.Second), Kind: "run", Actor: "rule r", Detail: status, RunID: "run-1",
				Run: &alert.RunActivity{RunID: "run-1", Status: status, PlaybookID: "p", PlaybookVersion: 3, DurationMS: &d}}
		}
		if err := s.PutRunActivity(ctx, "t1", "a1", run("queued")); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRunActivity(ctx, "t1", "a1", run("succeeded")); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRunActivity(ctx, "t2", "a1", run("queued")); !errors.Is(err, alert.ErrAlertNotFound) {
			t.Errorf("run row on another tenant's alert: %v", err)
		}
		rows, err := s.Activity(ctx, "t1", []string{"a1"})
		if err != nil || len(rows) != 3 {
			t.Fatalf("activity = %+v, %v", rows, err)
		}
		last := rows[2]
		if last.Kind != "run" || last.RunID != "run-1" || last.Detail != "succeeded" || last.Run == nil || last.Run.Status != "succeeded" || *last.Run.DurationMS != 1500 {
			t.Errorf("run row = %+v", last)
		}
		for i := 1; i < len(rows); i++ {
			if rows[i].At.Before(rows[i-1].At) {
				t.Errorf("activity not oldest first: %+v", rows)
			}
		}
	})

	t.Run("first time", func(t *testing.T) {
		s := open(t)
		if ok, err := s.FirstTime(ctx, "x"); !ok || err != nil {
			t.Errorf("first = %v, %v", ok, err)
		}
		if ok, err := s.FirstTime(ctx, "x"); ok || err != nil {
			t.Errorf("second = %v, %v", ok, err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Error(err)
		}
	})
}

func fmtList(s []string) string {
	b, _ := json.Marshal(s)
	out := string(b)
	out = "[" + out[1:len(out)-1] + "]"
	r := []rune{}
	for _, c := range out {
		if c == '"' {
			continue
		}
		if c == ',' {
			c = ' '
		}
		r = append(r, c)
	}
	return string(r)
}
