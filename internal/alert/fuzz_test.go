package alert_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/playbookstudio/gateway/internal/alert"
	"github.com/playbookstudio/gateway/internal/fault"
)

// FuzzParse feeds the alert parser untrusted bodies: it never panics,
// refuses only with faults, and what it accepts is a list of objects with
// the required fields, each re-encodable.
func FuzzParse(f *testing.F) {
	names, _ := filepath.Glob("testdata/*.json")
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add([]byte(`{"value":[` + string(b) + `]}`))
	}
	f.Add([]byte(`{"value":[{"id":"x","title":"t","severity":"s","createdDateTime":"2026-01-01T00:00:00Z","incidentId":123456789012345678901}]}`))
	f.Add([]byte(`{"id":"x","title":"t","severity":"s","createdDateTime":"0001-01-01T00:00:00Z","lastUpdateDateTime":"9999-12-31T23:59:59-23:59"}`))
	// After every seed's dates, so they parse.
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := alert.Parse(body, now)
		if err != nil {
			if _, ok := fault.As(err); !ok {
				t.Fatalf("refusal is not a fault: %v", err)
			}
			return
		}
		if len(in) == 0 || len(in) > alert.MaxBatch {
			t.Fatalf("%d alerts accepted", len(in))
		}
		for _, a := range in {
			if a.ID == "" || a.Title == "" || a.Severity == "" || a.CreatedAt.IsZero() || a.Status == "" {
				t.Fatalf("accepted without a required field: %+v", a)
			}
			// Accepted times are ones the store orders as text and a
			// later genuine update can pass.
			for _, at := range []time.Time{a.CreatedAt, a.LastUpdate} {
				if !at.IsZero() && (at.Year() < 1970 || at.After(now.Add(time.Hour)) || at.Location() != time.UTC) {
					t.Fatalf("accepted the time %v", at)
				}
			}
			var m map[string]any
			if err := json.Unmarshal(a.JSON, &m); err != nil || m["id"] != a.ID {
				t.Fatalf("stored JSON %s: %v", a.JSON, err)
			}
		}
	})
}
