package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestRecoverPanics(t *testing.T) {
	logs := &logBuffer{}
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(newLogger(logs))
	e.Use(requestIDs(nil), recoverPanics(newLogger(logs)))
	e.GET("/boom", func(echo.Context) error { panic("secret detail 42") })
	e.GET("/abort", func(echo.Context) error { panic(http.ErrAbortHandler) })
	e.GET("/fine", ok)

	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/boom", nil))
	wantError(t, w, http.StatusInternalServerError, "internal")
	if strings.Contains(w.Body.String(), "secret detail") {
		t.Errorf("the panic value reached the client: %q", w.Body.String())
	}
	l := logs.find(t, "panic in handler", map[string]any{"request_id": w.Header().Get(echo.HeaderXRequestID)})
	if l["panic"] != "secret detail 42" || !strings.Contains(l["stack"].(string), "recover_test.go") || l["level"] != "ERROR" {
		t.Errorf("panic log = %v", l)
	}

	// The server keeps serving.
	w = httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/fine", nil))
	if w.Code != http.StatusOK {
		t.Errorf("after a panic: status %d", w.Code)
	}

	// http.ErrAbortHandler goes on up to net/http.
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", r)
			}
		}()
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/abort", nil))
	}()
}
