package server

import (
	"net"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// cookieFloodBytes is the Cookie header size past which the portal sheds
// cookies it did not issue. The gateway's own cookies take a few hundred
// bytes; 16 KiB leaves room for whatever else a company's parent domain
// legitimately sets, and is where front proxies (nginx's 8 KiB buffers)
// start refusing requests.
const cookieFloodBytes = 16 << 10

// maxShedCookies bounds the Set-Cookie lines one answer carries.
const maxShedCookies = 200

// shedForeignCookies answers a portal request whose Cookie header is
// over-long with deletions of every cookie the gateway did not issue, for
// the portal host and each parent domain. An IDE host serving a
// workspace's page can set cookies for the parent domain; flooding it
// would otherwise make every portal request too large for a proxy in front
// (the gateway itself accepts 1 MiB of headers and reads only its own
// cookies). Deletions can only match cookies set with Path=/, the path a
// flood uses to reach every route; the request itself is served as usual.
func shedForeignCookies(portalHost string, ours func(name string) bool) echo.MiddlewareFunc {
	domains := parentDomains(portalHost)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			size := 0
			for _, v := range r.Header.Values("Cookie") {
				size += len(v)
			}
			if size <= cookieFloodBytes {
				return next(c)
			}
			seen := map[string]bool{}
			h := c.Response().Header()
			for _, ck := range r.Cookies() {
				if ours(ck.Name) || seen[ck.Name] || len(seen) == maxShedCookies {
					continue
				}
				seen[ck.Name] = true
				for _, d := range domains {
					gone := &http.Cookie{Name: ck.Name, Value: "", Path: "/", Domain: d, MaxAge: -1}
					if v := gone.String(); v != "" {
						h.Add("Set-Cookie", v)
					}
				}
			}
			return next(c)
		}
	}
}

// parentDomains lists "" (host-only) and every domain of at least two
// labels that host belongs to: portal.example.com gives "",
// portal.example.com and example.com. A browser ignores a deletion for a
// domain it would not have accepted (a public suffix), so the list need
// not know them.
func parentDomains(host string) []string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	out := []string{""}
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return out
	}
	labels := strings.Split(strings.ToLower(host), ".")
	for i := 0; i+2 <= len(labels); i++ {
		out = append(out, strings.Join(labels[i:], "."))
	}
	return out
}
