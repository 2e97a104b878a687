package egress

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// addrClass names why an address is not public, or "" when it is.
type addrClass string

const (
	classPublic      addrClass = ""
	classLoopback    addrClass = "loopback"
	classPrivate     addrClass = "private (RFC 1918, fc00::/7)"
	classLinkLocal   addrClass = "link-local (169.254.0.0/16, fe80::/10; cloud metadata lives here)"
	classUnspecified addrClass = "unspecified (0.0.0.0/8, ::)"
	classMulticast   addrClass = "multicast"
	classCGNAT       addrClass = "shared address space (100.64.0.0/10, carrier-grade NAT)"
	classReserved    addrClass = "reserved (240.0.0.0/4, broadcast, documentation or benchmarking)"
)

var (
	cgnat = netip.MustParsePrefix("100.64.0.0/10")
	// Prefixes not routed on the internet that the netip predicates do not
	// cover: reaching one means reaching something internal.
	reserved = []netip.Prefix{
		netip.MustParsePrefix("240.0.0.0/4"), // includes 255.255.255.255
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
		// Local-use NAT64 (RFC 8215), 6to4 (an IPv4 address inside) and
		// the deprecated site-local range: none is a public destination.
		netip.MustParsePrefix("64:ff9b:1::/48"),
		netip.MustParsePrefix("2002::/16"),
		netip.MustParsePrefix("fec0::/10"),
	}
	// NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits: a
	// network with a NAT64 gateway reaches 10.0.0.1 as 64:ff9b::a00:1.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

// classify says which non-public class ip belongs to, or classPublic. It
// looks through IPv4-mapped (::ffff:10.0.0.1) and NAT64 forms, which reach
// the IPv4 address they carry.
func classify(ip netip.Addr) addrClass {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case !ip.IsValid():
		return classReserved
	case ip.IsLoopback():
		return classLoopback
	case ip.IsUnspecified() || (ip.Is4() && ip.As4()[0] == 0):
		return classUnspecified
	case ip.IsPrivate():
		return classPrivate
	case ip.IsLinkLocalUnicast():
		return classLinkLocal
	case ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast():
		return classMulticast
	case cgnat.Contains(ip):
		return classCGNAT
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return classReserved
		}
	}
	return classPublic
}

// policy decides which addresses may be dialled.
type policy struct {
	allow []netip.Prefix
}

func newPolicy(cidrs []*net.IPNet) (policy, error) {
	var p policy
	for _, n := range cidrs {
		if n == nil {
			continue
		}
		addr, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			return p, fmt.Errorf("EGRESS_ALLOW_CIDRS: bad network %v", n)
		}
		ones, _ := n.Mask.Size()
		if addr.Is4In6() && ones >= 96 {
			addr, ones = addr.Unmap(), ones-96
		} else if addr.Is4In6() {
			addr = addr.Unmap()
		}
		p.allow = append(p.allow, netip.PrefixFrom(addr, ones).Masked())
	}
	return p, nil
}

// RefusedError is an address the policy refused to dial; Do turns it into
// an egress_refused fault.
type RefusedError struct {
	Addr  netip.Addr
	Class addrClass
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: it is a %s address; add it to EGRESS_ALLOW_CIDRS to allow integration calls to it", e.Addr, e.Class)
}

// check refuses ip unless it is public or EGRESS_ALLOW_CIDRS covers it.
func (p policy) check(ip netip.Addr) error {
	ip = ip.WithZone("")
	c := classify(ip)
	if c == classPublic {
		return nil
	}
	for _, n := range p.allow {
		if n.Contains(ip) || (ip.Is4In6() && n.Contains(ip.Unmap())) {
			return nil
		}
	}
	return &RefusedError{Addr: ip, Class: c}
}

// control is the dialer's Control: it runs after the name is resolved and
// before connect(2), on the very address being dialled, so a name that
// resolves to a public address for a check and to a private one for the
// connection (DNS rebinding) is still refused.
func (p policy) control(hook func(string)) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if hook != nil {
			hook(address)
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("egress: dialling %q: not an IP address: %w", address, err)
		}
		return p.check(ap.Addr())
	}
}
