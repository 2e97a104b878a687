package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/alert"
	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/fault"
)

var ctx = context.Background()

// testNow is the services' clock: after every fixture's dates, so the
// tests do not depend on the day they run.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newService(t *testing.T) *alert.Service {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	al, err := audit.NewMemory(log, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := alert.New(alert.Config{Store: openSQLite(t, filepath.Join(t.TempDir(), "alerts.db")), Audit: al, Log: log,
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func fixtures(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("testdata/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

func mustSource(t *testing.T, svc *alert.Service, tenant, name string) alert.Source {
	t.Helper()
	src, err := svc.CreateSource(ctx, alert.Actor{Tenant: tenant, Name: "admin"}, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func edit(t *testing.T, raw []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIngestFixtures(t *testing.T) {
	svc := newService(t)
	src := mustSource(t, svc, "t1", "default")
	by := alert.Actor{Tenant: "t1", Name: "source default"}
	for name, raw := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			var want map[string]any
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			res, err := svc.Ingest(ctx, src, by, raw)
			if err != nil || len(res) != 1 || !res[0].Created || res[0].ID != want["id"] || res[0].Runs == nil {
				t.Fatalf("ingest = %+v, %v", res, err)
			}
			got, err := svc.Get(ctx, "t1", res[0].ID)
			if err != nil || got.IncidentID != want["incidentId"] || got.SourceID != src.ID || got.Severity != want["severity"] {
				t.Fatalf("get = %+v, %v", got, err)
			}
			var back map[string]any
			if err := json.Unmarshal(got.JSON, &back); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(back["evidence"]) != fmt.Sprint(want["evidence"]) || back["title"] != want["title"] {
				t.Errorf("stored alert differs from the posted one")
			}
		})
	}
	inc, err := svc.Incidents(ctx, "t1", 0)
	if err != nil || len(inc) != len(fixtures(t)) {
		t.Errorf("incidents = %+v, %v", inc, err)
	}
}

func TestIngestBatchAndIdempotency(t *testing.T) {
	svc := newService(t)
	src := mustSource(t, svc, "t1", "default")
	by := alert.Actor{Tenant: "t1", Name: "source default"}
	raw := fixtures(t)["phishing-high.json"]
	second := edit(t, raw, func(m map[string]any) { m["id"] = "second"; m["severity"] = "catastrophic" })
	batch := []byte(`{"value":[` + string(raw) + `,` + string(second) + `]}`)
	res, err := svc.Ingest(ctx, src, by, batch)
	if err != nil || len(res) != 2 || !res[0].Created || !res[1].Created {
		t.Fatalf("batch = %+v, %v", res, err)
	}
	// An unknown enum value is kept.
	if a, _ := svc.Get(ctx, "t1", "second"); a.Severity != "catastrophic" {
		t.Errorf("severity = %q, want the posted unknown value", a.Severity)
	}
	// The same post again: not created, not changed.
	res, err = svc.Ingest(ctx, src, by, raw)
	if err != nil || res[0].Created {
		t.Fatalf("repost = %+v, %v", res, err)
	}
	id := res[0].ID
	older := edit(t, raw, func(m map[string]any) { m["title"] = "older"; m["lastUpdateDateTime"] = "2026-11-20T09:00:00Z" })
	if _, err := svc.Ingest(ctx, src, by, older); err != nil {
		t.Fatal(err)
	}
	if a, _ := svc.Get(ctx, "t1", id); a.Title == "older" {
		t.Error("an older lastUpdateDateTime replaced the alert")
	}
	newer := edit(t, raw, func(m map[string]any) { m["title"] = "newer"; m["lastUpdateDateTime"] = "2026-11-20T10:00:00Z" })
	res, err = svc.Ingest(ctx, src, by, newer)
	if err != nil || res[0].Created {
		t.Fatalf("newer = %+v, %v", res, err)
	}
	if a, _ := svc.Get(ctx, "t1", id); a.Title != "newer" {
		t.Errorf("a newer lastUpdateDateTime did not win: %q", a.Title)
	}
	act, _ := svc.Activity(ctx, "t1", id)
	if len(act) != 2 || act[0].Kind != "created" || act[1].Kind != "updated" {
		t.Errorf("activity = %+v", act)
	}
	// Another tenant sees none of it.
	if _, err := svc.Get(ctx, "t2", id); !errors.Is(err, alert.ErrAlertNotFound) {
		t.Errorf("another tenant's get: %v", err)
	}
	if list, _ := svc.List(ctx, "t2", alert.Filter{}); len(list) != 0 {
		t.Errorf("another tenant's list: %d alerts", len(list))
	}
}

func TestParseRefusals(t *testing.T) {
	raw := fixtures(t)["phishing-high.json"]
	without := func(f string) string {
		return string(edit(t, raw, func(m map[string]any) { delete(m, f) }))
	}
	many := `{"value":[` + strings.TrimSuffix(strings.Repeat(string(raw)+",", alert.MaxBatch+1), ",") + `]}`
	big := string(edit(t, raw, func(m map[string]any) { m["description"] = strings.Repeat("x", alert.MaxBodyBytes) }))
	for _, c := range []struct {
		name, body string
		kind       fault.Kind
		code, in   string
	}{
		{"not JSON", "{", fault.Invalid, "bad_request", "one alert"},
		{"a list", "[]", fault.Invalid, "bad_request", "one alert"},
		{"empty batch", `{"value":[]}`, fault.Invalid, "invalid_alert", "no alert"},
		{"value not a list", `{"value":3}`, fault.Invalid, "bad_request", "list of alerts"},
		{"no id", without("id"), fault.Invalid, "invalid_alert", `Alert 0: the field "id" is required`},
		{"no title", without("title"), fault.Invalid, "invalid_alert", `"title" is required`},
		{"no severity", without("severity"), fault.Invalid, "invalid_alert", `"severity" is required`},
		{"no created", without("createdDateTime"), fault.Invalid, "invalid_alert", `"createdDateTime" is required`},
		{"bad created", string(edit(t, raw, func(m map[string]any) { m["createdDateTime"] = "yesterday" })), fault.Invalid, "invalid_alert", "RFC 3339"},
		{"id a number", string(edit(t, raw, func(m map[string]any) { m["id"] = 5 })), fault.Invalid, "invalid_alert", `"id" must be a string`},
		{"second of a batch", `{"value":[` + string(raw) + `,` + without("title") + `]}`, fault.Invalid, "invalid_alert", `Alert 1: the field "title"`},
		{"element not an object", `{"value":[` + string(raw) + `,"x"]}`, fault.Invalid, "invalid_alert", "Alert 1: is not a JSON object"},
		{"101 alerts", many, fault.TooLarge, "too_large", "at most 100"},
		{"over 1 MiB", big, fault.TooLarge, "too_large", "1 MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := alert.Parse([]byte(c.body), testNow)
			f, ok := fault.As(err)
			if !ok || f.Kind != c.kind || f.Code != c.code || !strings.Contains(f.Message, c.in) {
				t.Errorf("Parse = %v; want %v %s containing %q", err, c.kind, c.code, c.in)
			}
		})
	}
	// The field and index are details of the answer too.
	_, err := alert.Parse([]byte(`{"value":[`+string(raw)+`,`+without("severity")+`]}`), testNow)
	if f, _ := fault.As(err); f == nil || f.Details["index"] != 1 || f.Details["field"] != "severity" {
		t.Errorf("details = %+v", f)
	}
	// Exactly 100 is fine.
	ok := `{"value":[` + strings.TrimSuffix(strings.Repeat(string(raw)+",", alert.MaxBatch), ",") + `]}`
	if in, err := alert.Parse([]byte(ok), testNow); err != nil || len(in) != alert.MaxBatch {
		t.Errorf("100 alerts: %d, %v", len(in), err)
	}
}

func TestKeys(t *testing.T) {
	svc := newService(t)
	src := mustSource(t, svc, "t1", "default")
	admin := alert.Actor{Tenant: "t1", Name: "admin"}
	k, err := svc.CreateKey(ctx, admin, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := svc.Authenticate(ctx, k.Key)
	if err != nil || got.ID != src.ID || got.Tenant != "t1" {
		t.Fatalf("authenticate = %+v, %v", got, err)
	}
	keys, _ := svc.Keys(ctx, "t1", src.ID)
	if len(keys) != 1 || strings.Contains(fmt.Sprint(keys), k.Key) {
		t.Errorf("keys = %+v", keys)
	}
	wrong := k.Key[:len(k.Key)-2] + "xx"
	for _, bad := range []string{"", "nope", wrong, "pbsk_" + strings.Repeat("0", 32) + "_abc", k.Key + "x"} {
		if _, err := svc.Authenticate(ctx, bad); !errors.Is(err, alert.ErrBadKey) {
			t.Errorf("authenticate(%q) = %v, want ErrBadKey", bad, err)
		}
	}
	if _, err := svc.CreateKey(ctx, alert.Actor{Tenant: "t2"}, src.ID); !errors.Is(err, alert.ErrSourceNotFound) {
		t.Errorf("key for another tenant's source: %v", err)
	}
	if err := svc.DeleteKey(ctx, admin, src.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, k.Key); !errors.Is(err, alert.ErrBadKey) {
		t.Errorf("revoked key: %v", err)
	}
	k2, _ := svc.CreateKey(ctx, admin, src.ID)
	if err := svc.DeleteSource(ctx, admin, src.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, k2.Key); !errors.Is(err, alert.ErrBadKey) {
		t.Errorf("key of a deleted source: %v", err)
	}
}

func TestSourcesAccess(t *testing.T) {
	svc := newService(t)
	admin := alert.Actor{Tenant: "t1", Name: "admin"}
	if _, err := svc.CreateSource(ctx, admin, "eu", []string{"soc-eu", "soc-eu"}); err != nil {
		t.Fatal(err)
	}
	mustSource(t, svc, "t1", "open")
	if _, err := svc.CreateSource(ctx, admin, "EU", nil); fault.CodeOf(err) != "source_name_taken" {
		t.Errorf("taken name: %v", err)
	}
	if _, err := svc.CreateSource(ctx, admin, " ", nil); fault.CodeOf(err) != "invalid_source" {
		t.Errorf("blank name: %v", err)
	}
	list, err := svc.Sources(ctx, "t1", true, []string{"soc-us"})
	if err != nil || len(list) != 2 || list[0].Name != "eu" || list[0].Accessible || !list[1].Accessible || len(list[0].Groups) != 1 {
		t.Errorf("sources for soc-us = %+v, %v", list, err)
	}
	list, _ = svc.Sources(ctx, "t1", true, []string{"soc-eu"})
	if !list[0].Accessible {
		t.Error("soc-eu member cannot target the eu source")
	}
	list, _ = svc.Sources(ctx, "t1", false, []string{"soc-eu"})
	if list[0].Accessible || list[1].Accessible {
		t.Error("a user without automation may target a source")
	}
}

func TestUpdateCommentRun(t *testing.T) {
	svc := newService(t)
	src := mustSource(t, svc, "t1", "default")
	res, err := svc.Ingest(ctx, src, alert.Actor{Tenant: "t1", Name: "source default"}, fixtures(t)["phishing-high.json"])
	if err != nil {
		t.Fatal(err)
	}
	id := res[0].ID
	bob := alert.Actor{Tenant: "t1", ID: "sub-bob", Name: "Bob"}
	a, err := svc.Update(ctx, "t1", id, bob, alert.Update{Status: alert.Set("resolved"), AssignedTo: alert.Set("bob@example.com"), Classification: alert.Set("truePositive")})
	if err != nil || a.Status != "resolved" {
		t.Fatalf("update = %+v, %v", a, err)
	}
	var m map[string]any
	_ = json.Unmarshal(a.JSON, &m)
	if m["status"] != "resolved" || m["assignedTo"] != "bob@example.com" || m["classification"] != "truePositive" || m["resolvedDateTime"] == nil {
		t.Errorf("alert after update: %v", m)
	}
	if _, err := svc.Update(ctx, "t1", id, bob, alert.Update{AssignedTo: alert.Clear(), Status: alert.Set("inProgress")}); err != nil {
		t.Fatal(err)
	}
	a, _ = svc.Get(ctx, "t1", id)
	_ = json.Unmarshal(a.JSON, &m)
	if m["assignedTo"] != nil || m["resolvedDateTime"] != nil || a.Status != "inProgress" {
		t.Errorf("after clear: %v", m)
	}
	for _, c := range []struct {
		u     alert.Update
		field string
	}{
		{alert.Update{}, ""},
		{alert.Update{Status: alert.Set("closed")}, "status"},
		{alert.Update{Status: alert.Clear()}, "status"},
		{alert.Update{Determination: alert.Set("aliens")}, "determination"},
		{alert.Update{Classification: alert.Set("bad")}, "classification"},
		{alert.Update{AssignedTo: alert.Set(strings.Repeat("x", 300))}, "assignedTo"},
	} {
		_, err := svc.Update(ctx, "t1", id, bob, c.u)
		if f, ok := fault.As(err); !ok || f.Code != "invalid_alert_update" || (c.field != "" && (f.Details["field"] != c.field || !strings.Contains(f.Message, c.field))) {
			t.Errorf("update %+v = %v, want invalid_alert_update naming %q", c.u, err, c.field)
		}
	}
	if _, err := svc.Update(ctx, "t2", id, bob, alert.Update{Status: alert.Set("new")}); !errors.Is(err, alert.ErrAlertNotFound) {
		t.Errorf("another tenant's update: %v", err)
	}
	if err := svc.Comment(ctx, "t1", id, bob, "looked at it"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Comment(ctx, "t1", id, bob, "  "); fault.CodeOf(err) != "invalid_comment" {
		t.Errorf("empty comment: %v", err)
	}
	if err := svc.Comment(ctx, "t2", id, bob, "x"); !errors.Is(err, alert.ErrAlertNotFound) {
		t.Errorf("another tenant's comment: %v", err)
	}
	a, _ = svc.Get(ctx, "t1", id)
	if !strings.Contains(string(a.JSON), `"comment":"looked at it"`) {
		t.Errorf("comment not in the alert's comments: %s", a.JSON)
	}
	d := int64(2100)
	row := alert.RunActivity{RunID: "run-1", Actor: "rule Phish", RuleName: "Phish", PlaybookID: "pb", PlaybookName: "Isolate", PlaybookVersion: 3, Status: "queued"}
	if err := svc.RecordRun(ctx, "t1", id, row); err != nil {
		t.Fatal(err)
	}
	row.Status, row.DurationMS = "succeeded", &d
	if err := svc.RecordRun(ctx, "t1", id, row); err != nil {
		t.Fatal(err)
	}
	if err := svc.RecordRun(ctx, "t2", id, row); !errors.Is(err, alert.ErrAlertNotFound) {
		t.Errorf("run on another tenant's alert: %v", err)
	}
	act, _ := svc.Activity(ctx, "t1", id)
	kinds := []string{}
	for _, r := range act {
		kinds = append(kinds, r.Kind)
	}
	if fmt.Sprint(kinds) != "[created updated updated comment run]" {
		t.Fatalf("activity kinds = %v", kinds)
	}
	last := act[len(act)-1]
	if last.RunID != "run-1" || last.Detail != "run playbook Isolate v3 (rule Phish): succeeded in 2.1 s" || last.Run.Status != "succeeded" {
		t.Errorf("run row = %+v", last)
	}
	inc, err := svc.Incident(ctx, "t1", "28282")
	if err != nil || len(inc.Alerts) != 1 || len(inc.Activity) != len(act) {
		t.Errorf("incident = %+v, %v", inc, err)
	}
	if _, err := svc.Incident(ctx, "t2", "28282"); !errors.Is(err, alert.ErrIncidentNotFound) {
		t.Errorf("another tenant's incident: %v", err)
	}
}

func TestEnsureDefaults(t *testing.T) {
	svc := newService(t)
	file := filepath.Join(t.TempDir(), "default-source.key")
	seeds := []alert.Seed{{Name: "default"}, {Name: "sentinel-eu", Groups: []string{"soc-eu"}}}
	wrote, err := svc.EnsureDefaults(ctx, "default", seeds, file)
	if err != nil || !wrote {
		t.Fatalf("first = %v, %v", wrote, err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	key, _ := os.ReadFile(file)
	src, err := svc.Authenticate(ctx, strings.TrimSpace(string(key)))
	if err != nil || src.Name != "default" || len(src.Groups) != 0 {
		t.Errorf("the written key: %+v, %v", src, err)
	}
	if s, err := svc.SourceByName(ctx, "default", "sentinel-eu"); err != nil || s.Groups[0] != "soc-eu" {
		t.Errorf("sentinel-eu = %+v, %v", s, err)
	}
	// Once only: what an admin deletes later stays deleted.
	_ = svc.DeleteSource(ctx, alert.Actor{Tenant: "default"}, src.ID)
	if wrote, err := svc.EnsureDefaults(ctx, "default", seeds, file); wrote || err != nil {
		t.Errorf("second = %v, %v", wrote, err)
	}
	if _, err := svc.SourceByName(ctx, "default", "default"); !errors.Is(err, alert.ErrSourceNotFound) {
		t.Errorf("deleted default came back: %v", err)
	}
}

// An alert is updated only by its own source: another source's key, or an
// automation user posting for another source, can neither replace it nor
// slip a new alert in beside the refused one (a batch is all or nothing).
func TestIngestOtherSourceRefused(t *testing.T) {
	svc := newService(t)
	a := mustSource(t, svc, "t1", "sentinel-a")
	b := mustSource(t, svc, "t1", "sentinel-b")
	raw := fixtures(t)["phishing-high.json"]
	res, err := svc.Ingest(ctx, a, alert.Actor{Tenant: "t1", ID: a.ID, Name: "source sentinel-a"}, raw)
	if err != nil || !res[0].Created {
		t.Fatalf("ingest from a = %+v, %v", res, err)
	}
	id := res[0].ID
	orig, _ := svc.Get(ctx, "t1", id)
	hijack := edit(t, raw, func(m map[string]any) { m["title"] = "hijacked"; m["lastUpdateDateTime"] = "2026-11-30T00:00:00Z" })
	fresh := edit(t, raw, func(m map[string]any) { m["id"] = "fresh" })
	for _, c := range []struct {
		name  string
		by    alert.Actor
		body  []byte
		index int
	}{
		{"key of another source, newer", alert.Actor{Tenant: "t1", ID: b.ID, Name: "source sentinel-b"}, hijack, 0},
		{"key of another source, same time", alert.Actor{Tenant: "t1", ID: b.ID, Name: "source sentinel-b"}, raw, 0},
		{"automation user naming another source", alert.Actor{Tenant: "t1", ID: "sub-eve", Name: "Eve"}, hijack, 0},
		{"second of a batch", alert.Actor{Tenant: "t1", ID: b.ID, Name: "source sentinel-b"},
			[]byte(`{"value":[` + string(fresh) + `,` + string(hijack) + `]}`), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := svc.Ingest(ctx, b, c.by, c.body)
			f, ok := fault.As(err)
			if !ok || f.Kind != fault.Conflict || f.Code != "alert_other_source" || !strings.Contains(f.Message, id) ||
				!strings.Contains(f.Message, "another source") || f.Details["id"] != id || f.Details["index"] != c.index {
				t.Fatalf("ingest from b = %+v, %v; want a conflict alert_other_source naming %q at index %d", res, err, id, c.index)
			}
			got, err := svc.Get(ctx, "t1", id)
			if err != nil || got.Title != orig.Title || got.SourceID != a.ID || string(got.JSON) != string(orig.JSON) {
				t.Errorf("after the refusal: title %q, source %s, %v", got.Title, got.SourceID, err)
			}
			if act, _ := svc.Activity(ctx, "t1", id); len(act) != 1 {
				t.Errorf("activity after the refusal = %+v", act)
			}
			if _, err := svc.Get(ctx, "t1", "fresh"); !errors.Is(err, alert.ErrAlertNotFound) {
				t.Errorf("part of a refused batch was stored: %v", err)
			}
		})
	}
	// The alert's own source still updates it.
	res, err = svc.Ingest(ctx, a, alert.Actor{Tenant: "t1", ID: a.ID, Name: "source sentinel-a"}, hijack)
	if err != nil || res[0].Created {
		t.Fatalf("update from a = %+v, %v", res, err)
	}
	if got, _ := svc.Get(ctx, "t1", id); got.Title != "hijacked" || got.SourceID != a.ID {
		t.Errorf("own source's update: title %q, source %s", got.Title, got.SourceID)
	}
	// Another tenant's source with the same id makes its own alert.
	c := mustSource(t, svc, "t2", "sentinel-a")
	if res, err := svc.Ingest(ctx, c, alert.Actor{Tenant: "t2", ID: c.ID}, raw); err != nil || !res[0].Created {
		t.Errorf("same id in another tenant = %+v, %v", res, err)
	}
}

// A time far ahead of the clock would make every genuine later update look
// older and freeze the alert; one before 1970 is a sender's zero value.
// Both are refused, naming the alert and the field; a little clock skew is
// fine.
func TestIngestDateBounds(t *testing.T) {
	svc := newService(t)
	src := mustSource(t, svc, "t1", "default")
	by := alert.Actor{Tenant: "t1", Name: "source default"}
	raw := fixtures(t)["phishing-high.json"]
	res, err := svc.Ingest(ctx, src, by, raw)
	if err != nil {
		t.Fatal(err)
	}
	id := res[0].ID
	at := func(field, v string) []byte {
		return edit(t, raw, func(m map[string]any) { m["title"] = "changed"; m[field] = v })
	}
	for _, c := range []struct {
		name, field, value string
	}{
		{"lastUpdate year 9999", "lastUpdateDateTime", "9999-12-31T23:59:59Z"},
		// Year 10000 in UTC: stored, it could not be read back, and the
		// tenant's alert list would fail.
		{"lastUpdate past year 9999 in UTC", "lastUpdateDateTime", "9999-12-31T23:59:59-23:59"},
		{"lastUpdate past the skew", "lastUpdateDateTime", testNow.Add(61 * time.Minute).Format(time.RFC3339)},
		{"lastUpdate ahead by its offset", "lastUpdateDateTime", "2026-12-01T12:30:00-02:00"},
		{"created in the future", "createdDateTime", "2100-01-01T00:00:00Z"},
		{"created year 1", "createdDateTime", "0001-01-01T00:00:00Z"},
		{"created year 0", "createdDateTime", "0000-06-01T00:00:00Z"},
		{"lastUpdate before 1970", "lastUpdateDateTime", "1969-12-31T23:59:59Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := svc.Ingest(ctx, src, by, at(c.field, c.value))
			f, ok := fault.As(err)
			if !ok || f.Kind != fault.Invalid || f.Code != "invalid_alert" || f.Details["field"] != c.field || f.Details["id"] != id ||
				!strings.Contains(f.Message, c.field) || !strings.Contains(f.Message, id) {
				t.Fatalf("ingest = %v; want invalid_alert naming %s and %q", err, c.field, id)
			}
			if got, _ := svc.Get(ctx, "t1", id); got.Title == "changed" {
				t.Error("the refused post changed the alert")
			}
		})
	}
	// A refused date in a batch refuses all of it.
	fresh := edit(t, raw, func(m map[string]any) { m["id"] = "fresh" })
	batch := []byte(`{"value":[` + string(fresh) + `,` + string(at("lastUpdateDateTime", "3000-01-01T00:00:00Z")) + `]}`)
	if _, err := svc.Ingest(ctx, src, by, batch); fault.CodeOf(err) != "invalid_alert" {
		t.Errorf("batch = %v", err)
	} else if f, _ := fault.As(err); f.Details["index"] != 1 {
		t.Errorf("batch refusal details = %+v", f.Details)
	}
	if _, err := svc.Get(ctx, "t1", "fresh"); !errors.Is(err, alert.ErrAlertNotFound) {
		t.Errorf("part of a refused batch was stored: %v", err)
	}
	// Within the skew is taken, and a genuine later update still wins.
	soon := testNow.Add(59 * time.Minute)
	if res, err := svc.Ingest(ctx, src, by, at("lastUpdateDateTime", soon.Format(time.RFC3339))); err != nil || res[0].Created {
		t.Fatalf("within the skew = %+v, %v", res, err)
	}
	later := edit(t, raw, func(m map[string]any) {
		m["title"] = "later"
		m["lastUpdateDateTime"] = soon.Add(time.Second).Format(time.RFC3339)
	})
	if _, err := svc.Ingest(ctx, src, by, later); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Get(ctx, "t1", id); got.Title != "later" {
		t.Errorf("a later update did not win: %q", got.Title)
	}
}
