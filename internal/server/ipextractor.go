package server

import (
	"net"

	"github.com/labstack/echo/v4"
)

// ipExtractor believes X-Forwarded-For only from the configured proxy
// ranges. Echo's XFF extractor trusts loopback and private networks by
// default, which would let any client on them pick its own address, so
// those defaults are switched off explicitly.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
