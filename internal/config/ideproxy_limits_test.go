package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestIDEProxyLimits(t *testing.T) {
	c := mustLoad(t, nil, nil)
	if c.IDEMaxWebSockets != 64 || c.IDEMaxRequests != 256 || c.IDEWebSocketIdleTimeout != time.Hour || c.IDEBackendIdleTimeout != 90*time.Second {
		t.Errorf("defaults: %d WebSockets, %d requests, idle %s and %s", c.IDEMaxWebSockets, c.IDEMaxRequests, c.IDEWebSocketIdleTimeout, c.IDEBackendIdleTimeout)
	}
	c = mustLoad(t, nil, map[string]string{"IDE_MAX_WEBSOCKETS_PER_SESSION": "8", "IDE_MAX_REQUESTS_PER_SESSION": "32",
		"IDE_WEBSOCKET_IDLE_TIMEOUT": "10m", "IDE_BACKEND_IDLE_TIMEOUT": "5s"})
	if c.IDEMaxWebSockets != 8 || c.IDEMaxRequests != 32 || c.IDEWebSocketIdleTimeout != 10*time.Minute || c.IDEBackendIdleTimeout != 5*time.Second {
		t.Errorf("set: %d WebSockets, %d requests, idle %s and %s", c.IDEMaxWebSockets, c.IDEMaxRequests, c.IDEWebSocketIdleTimeout, c.IDEBackendIdleTimeout)
	}
	for env, v := range map[string]string{
		"IDE_MAX_WEBSOCKETS_PER_SESSION": "0",
		"IDE_MAX_REQUESTS_PER_SESSION":   "many",
		"IDE_WEBSOCKET_IDLE_TIMEOUT":     "10s", // under VS Code's keep-alive margin
		"IDE_BACKEND_IDLE_TIMEOUT":       "0s",
	} {
		_, err := Load(nil, envOf(map[string]string{env: v}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%s: %v, want an error naming the setting", env, v, err)
		}
	}
}
