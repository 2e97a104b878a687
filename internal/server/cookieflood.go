package server

import (
	"net"
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
// cookies). Deletions cover Path=/ and the request path's first levels (a
// cookie's path cannot be read from the Cookie header); the request itself
// is served as usual. Behind a proxy whose header buffer is smaller than a
// flood (nginx's default 8 KiB), the request never gets here: README,
// "Cookies on plain http", says what to raise.
func shedForeignCookies(portalHost string, secure bool, ours func(name string) bool) echo.MiddlewareFunc {
	domains := parentDomains(portalHost)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			lines := r.Header.Values("Cookie")
			size := 0
			for _, v := range lines {
				size += len(v)
			}
			if size <= cookieFloodBytes {
				return next(c)
			}
			paths := pathPrefixes(r.URL.Path)
			seen := map[string]bool{}
			h := c.Response().Header()
			for _, line := range lines {
				for _, part := range strings.Split(line, ";") {
					// The names as the browser sent them: http.Request's
					// parser skips names and values it finds invalid
					// ("a(b", quotes), which browsers store all the same.
					name, _, _ := strings.Cut(part, "=")
					name = strings.TrimSpace(name)
					if name == "" || !printable(name) || ours(name) || seen[name] || len(seen) == maxShedCookies {
						continue
					}
					seen[name] = true
					for _, d := range domains {
						for _, p := range paths {
							h.Add("Set-Cookie", deletion(name, d, p, secure))
						}
					}
				}
			}
			return next(c)
		}
	}
}

// deletion is a Set-Cookie line that removes the cookie name set for
// domain ("" for host-only) and path. Secure where the portal is a secure
// origin: a browser lets only such a line touch a Secure cookie.
func deletion(name, domain, path string, secure bool) string {
	b := strings.Builder{}
	b.WriteString(name + "=; Path=" + path)
	if domain != "" {
		b.WriteString("; Domain=" + domain)
	}
	b.WriteString("; Max-Age=0")
	if secure {
		b.WriteString("; Secure")
	}
	return b.String()
}

// pathPrefixes are the cookie paths that reach path: "/" and, for a
// request to /api/me, "/api" and "/api/me" too (a flood set there would
// reach only those routes), at most three deep.
func pathPrefixes(path string) []string {
	out := []string{"/"}
	p := ""
	for i, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if seg == "" || i == 3 || !printable(seg) {
			break
		}
		p += "/" + seg
		out = append(out, p)
	}
	return out
}

// printable is true for visible ASCII without the characters that would
// break a Set-Cookie line.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ';' || c == ',' {
			return false
		}
	}
	return true
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
