package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/fault"
)

func TestEveryKindHasItsStatus(t *testing.T) {
	want := map[fault.Kind]int{
		fault.Invalid: 400, fault.Rejected: 422, fault.NotFound: 404, fault.Conflict: 409, fault.Gone: 410,
		fault.Busy: 429, fault.Unavailable: 503, fault.Forbidden: 403, fault.TooLarge: 413, fault.NotImplemented: 501,
	}
	for k := fault.Invalid; k <= fault.NotImplemented; k++ {
		if got := statusOf(k); got != want[k] {
			t.Errorf("%v: %d, want %d", k, got, want[k])
		}
	}
	if statusOf(0) != http.StatusInternalServerError {
		t.Error("the zero kind is not a 500")
	}
}

func TestRefusalAnswersInTheAPIShape(t *testing.T) {
	logs := &logBuffer{}
	f := fault.Wrap(fault.Busy, "too_many_spawns", "Too many at once.", errors.New("private: 4 of 4 slots")).
		With("problems", []string{"one"})
	f.RetryAfter = 1500 * time.Millisecond
	e := echo.New()
	r := httptest.NewRequest(http.MethodPost, "/api/edit-sessions", nil)
	w := httptest.NewRecorder()
	c := e.NewContext(r, w)
	err := refusal(c, fmt.Errorf("start: %w", f), nil)
	errorHandler(newLogger(logs))(err, c)
	wantError(t, w, http.StatusTooManyRequests, "too_many_spawns")
	if got := w.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (rounded up)", got)
	}
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if p, _ := body["problems"].([]any); len(p) != 1 || p[0] != "one" {
		t.Errorf("details not beside the error: %s", w.Body.String())
	}
	if strings.Contains(w.Body.String(), "private") {
		t.Error("the cause reached the client")
	}
	if l := logs.find(t, "request refused", nil); l["err"] != "private: 4 of 4 slots" {
		t.Errorf("the cause is not in the log: %v", l)
	}
}

func TestRefusalLeavesOtherErrorsToTheCaller(t *testing.T) {
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
	plain := errors.New("disk on fire")
	if got := refusal(c, plain, nil); got != plain {
		t.Errorf("without otherwise: %v", got)
	}
	sentinel := errors.New("mapped")
	if got := refusal(c, plain, func(error) error { return sentinel }); got != sentinel {
		t.Errorf("otherwise not used: %v", got)
	}
}
