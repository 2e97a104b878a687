package alert_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

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
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := alert.Parse(body)
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
			var m map[string]any
			if err := json.Unmarshal(a.JSON, &m); err != nil || m["id"] != a.ID {
				t.Fatalf("stored JSON %s: %v", a.JSON, err)
			}
		}
	})
}
