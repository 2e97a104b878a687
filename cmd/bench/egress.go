package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/playbookstudio/gateway/internal/egress"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
)

// benchEgress: the cost of the egress on an API-key call, as the p50 of
// the call through Egress.Do minus the p50 of the same GET made with a
// plain http.Client, to the same local server in the same run, the two
// ways taking turns so the machine's noise falls on both.
func benchEgress(ctx context.Context, calls int, out *output) error {
	progress("egress: api_key GET through the egress and directly, %d calls each", calls)
	const key = "bench-api-key-0123456789"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != key {
			http.Error(w, "bad key", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(`{"data":{"id":"1","attributes":{"reputation":0}}}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/api/v3"

	_, loopback, _ := net.ParseCIDR("127.0.0.1/32")
	e, err := egress.New(egress.Config{AllowCIDRs: []*net.IPNet{loopback}, Timeout: 10 * time.Second},
		benchOpener{integration.Opened{
			Profile: integration.Profile{ID: "p1", Tenant: "bench", Name: "vt", BaseURL: base, AuthMethod: integration.APIKey,
				Config: integration.Config{In: "header", Name: "X-API-Key"}},
			Secrets: integration.Secrets{APIKey: key},
		}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer e.Close()
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
	defer direct.CloseIdleConnections()

	viaEgress := func() error {
		resp, err := e.Do(ctx, egress.Request{Tenant: "bench", Profile: "vt", Method: "GET", Path: "/files/abc"})
		if err != nil {
			return err
		}
		if resp.Status != 200 {
			return fmt.Errorf("egress call: status %d", resp.Status)
		}
		return nil
	}
	straight := func() error {
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/files/abc", nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-API-Key", key)
		resp, err := direct.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("direct call: status %d", resp.StatusCode)
		}
		return nil
	}
	const warm = 200
	var lat [2][]time.Duration
	for i := 0; i < calls+warm && ctx.Err() == nil; i++ {
		// Alternate which way goes first.
		order := [2]int{0, 1}
		if i%2 == 1 {
			order = [2]int{1, 0}
		}
		for _, w := range order {
			f := viaEgress
			if w == 1 {
				f = straight
			}
			start := time.Now()
			if err := f(); err != nil {
				return err
			}
			if i >= warm {
				lat[w] = append(lat[w], time.Since(start))
			}
		}
	}
	if len(lat[0]) == 0 || len(lat[1]) == 0 {
		return fmt.Errorf("no egress call measured")
	}
	pe, pd := percentile(lat[0], 50), percentile(lat[1], 50)
	progress("  egress p50 %v, direct p50 %v", pe, pd)
	out.line("egress_direct_p50_us", us(pd), "µs")
	out.line("egress_overhead_p50_us", us(pe-pd), "µs")
	return nil
}

// benchOpener is the in-memory profile store of the bench.
type benchOpener struct{ p integration.Opened }

func (b benchOpener) Open(_ context.Context, tenant, name string) (integration.Opened, error) {
	if tenant != b.p.Tenant || name != b.p.Name {
		return integration.Opened{}, fault.New(fault.NotFound, "integration_not_found", "no profile "+name)
	}
	return b.p, nil
}
