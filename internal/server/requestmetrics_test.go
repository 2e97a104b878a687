package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/metrics"
)

// metricValue reads one counter or histogram sample count back from the
// registry, by name and labels; it returns -1 when there is no such series.
func metricValue(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range s.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if len(got) != len(labels) {
				continue
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if s.GetCounter() != nil {
				return s.GetCounter().GetValue()
			}
			if s.GetHistogram() != nil {
				return float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func TestRequestMetrics(t *testing.T) {
	m := metrics.New()
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(newLogger(&logBuffer{}))
	e.Use(requestMetrics(m))
	e.GET("/items/:id", ok)
	e.POST("/items/:id", func(c echo.Context) error {
		return apierror.New(http.StatusConflict, "conflict", "Taken.")
	})

	for _, p := range []string{"/items/1", "/items/2", "/items/3"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/items/9", nil))
	if w.Code != http.StatusConflict {
		t.Fatalf("status = %d", w.Code)
	}

	if v := metricValue(t, m, "gateway_http_requests_total", map[string]string{"route": "/items/:id", "method": "GET", "status": "200"}); v != 3 {
		t.Errorf("GET 200 count = %v, want 3 (grouped by route template)", v)
	}
	if v := metricValue(t, m, "gateway_http_requests_total", map[string]string{"route": "/items/:id", "method": "POST", "status": "409"}); v != 1 {
		t.Errorf("POST 409 count = %v, want 1 (the status the client got)", v)
	}
	if v := metricValue(t, m, "gateway_http_request_duration_seconds", map[string]string{"route": "/items/:id"}); v != 4 {
		t.Errorf("latency samples = %v, want 4", v)
	}
	// No series per id.
	if v := metricValue(t, m, "gateway_http_requests_total", map[string]string{"route": "/items/1", "method": "GET", "status": "200"}); v != -1 {
		t.Errorf("a series per path exists: %v", v)
	}
}
