package workspace

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ProbeHealth asks code-server's /healthz over dial. /healthz does not
// count as activity in code-server, so probing never keeps a workspace
// alive by itself.
func ProbeHealth(ctx context.Context, dial DialFunc) (Health, error) {
	conn, err := dial(ctx)
	if err != nil {
		return Health{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://workspace/healthz", nil)
	req.Close = true
	if err := req.Write(conn); err != nil {
		return Health{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return Health{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Health{}, fmt.Errorf("healthz answered %d", resp.StatusCode)
	}
	var raw struct {
		Status        string `json:"status"`
		LastHeartbeat int64  `json:"lastHeartbeat"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&raw); err != nil {
		return Health{}, fmt.Errorf("healthz: %w", err)
	}
	h := Health{Status: raw.Status}
	if raw.LastHeartbeat > 0 {
		h.LastHeartbeat = time.UnixMilli(raw.LastHeartbeat)
	}
	return h, nil
}
