package server

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"regexp"

	"github.com/labstack/echo/v4"
)

const ctxRequestID = "request_id"

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestIDs gives every request an id, echoed in X-Request-Id and in
// every log line about it. An incoming id is kept only from a trusted
// proxy (a direct peer inside TRUSTED_PROXIES), so clients cannot forge
// lines into someone else's trail.
func requestIDs(trustedProxies []*net.IPNet) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := ""
			if peerIn(c.Request().RemoteAddr, trustedProxies) {
				if in := c.Request().Header.Get(echo.HeaderXRequestID); requestIDPattern.MatchString(in) {
					id = in
				}
			}
			if id == "" {
				var b [12]byte
				_, _ = rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			c.Set(ctxRequestID, id)
			c.Response().Header().Set(echo.HeaderXRequestID, id)
			return next(c)
		}
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// peerIn reports whether the socket peer remoteAddr ("ip:port") lies in
// one of nets. It never looks at forwarding headers.
func peerIn(remoteAddr string, nets []*net.IPNet) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
