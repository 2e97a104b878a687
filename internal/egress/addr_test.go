package egress

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
)

// The classifier alone: nothing is dialled.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want addrClass
	}{
		{"10.0.0.1", classPrivate},
		{"172.16.0.1", classPrivate},
		{"172.31.255.255", classPrivate},
		{"192.168.1.1", classPrivate},
		{"169.254.169.254", classLinkLocal},
		{"fe80::1", classLinkLocal},
		{"fd00::1", classPrivate},
		{"fc00::1", classPrivate},
		{"::1", classLoopback},
		{"127.0.0.1", classLoopback},
		{"127.0.0.2", classLoopback},
		{"::ffff:10.0.0.1", classPrivate},
		{"::ffff:127.0.0.1", classLoopback},
		{"::ffff:169.254.169.254", classLinkLocal},
		{"64:ff9b::a00:1", classPrivate},
		{"64:ff9b:1::a00:1", classReserved},
		{"2002:a00:1::1", classReserved},
		{"fec0::1", classReserved},
		{"100.64.0.1", classCGNAT},
		{"100.127.255.254", classCGNAT},
		{"0.0.0.0", classUnspecified},
		{"0.1.2.3", classUnspecified},
		{"::", classUnspecified},
		{"224.0.0.1", classMulticast},
		{"ff02::1", classMulticast},
		{"255.255.255.255", classReserved},
		{"8.8.8.8", classPublic},
		{"2606:4700:4700::1111", classPublic},
		{"100.128.0.1", classPublic},
		{"172.32.0.1", classPublic},
	} {
		if got := classify(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("classify(%s) = %q, want %q", c.ip, got, c.want)
		}
	}
}

func TestPolicyAllowCIDRs(t *testing.T) {
	_, n, _ := net.ParseCIDR("127.0.0.1/32")
	_, m, _ := net.ParseCIDR("10.20.0.0/16")
	p, err := newPolicy([]*net.IPNet{n, m})
	if err != nil {
		t.Fatal(err)
	}
	for ip, ok := range map[string]bool{"127.0.0.1": true, "::ffff:127.0.0.1": true, "127.0.0.2": false, "10.20.3.4": true,
		"10.21.0.1": false, "169.254.169.254": false, "8.8.8.8": true} {
		err := p.check(netip.MustParseAddr(ip))
		if (err == nil) != ok {
			t.Errorf("check(%s) = %v, want allowed=%v", ip, err, ok)
		}
	}
}

// With EGRESS_ALLOW_CIDRS=127.0.0.1/32, a profile on 127.0.0.2 is refused
// before any connection: the listener there never accepts one, and the
// dial hook saw the address the policy refused.
func TestRefusedBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 here: %v", err)
	}
	var accepts atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			_ = c.Close()
		}
	}()
	defer func() { _ = ln.Close(); wg.Wait() }()

	var dialled []string
	var mu sync.Mutex
	cfg := Config{AllowCIDRs: cidrs(t, "127.0.0.1/32"), dialHook: func(a string) { mu.Lock(); dialled = append(dialled, a); mu.Unlock() }}
	e := newEgress(t, cfg, profile("p", "http://"+ln.Addr().String()+"/api", integration.Bearer, integration.Config{}, integration.Secrets{Token: "tok"}))
	_, err = e.Do(context.Background(), Request{Tenant: "t1", Profile: "p", Method: http.MethodGet, Path: "/x"})
	f, ok := fault.As(err)
	if !ok || f.Code != "egress_refused" || f.Kind != fault.Forbidden {
		t.Fatalf("Do = %v, want an egress_refused Forbidden fault", err)
	}
	for _, want := range []string{"127.0.0.2", "loopback", "EGRESS_ALLOW_CIDRS"} {
		if !contains(f.Message, want) {
			t.Errorf("message %q does not name %q", f.Message, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialled) != 1 || dialled[0] != ln.Addr().String() {
		t.Errorf("dial hook saw %v, want exactly %s", dialled, ln.Addr())
	}
	// A connection that was made would be accepted by now (the dial
	// returned); close the listener and let the accept loop finish first.
	_ = ln.Close()
	wg.Wait()
	if n := accepts.Load(); n != 0 {
		t.Errorf("the listener on 127.0.0.2 accepted %d connections, want 0", n)
	}
}
