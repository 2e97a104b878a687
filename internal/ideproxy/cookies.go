package ideproxy

import (
	"net/http"
	"net/textproto"
	"strings"
)

// The IDE hosts share a site with the portal, and a workspace serves
// arbitrary pages on its host (code-server's /proxy/{port}/ and
// /absproxy/{port}/). Such a page can set cookies for the parent domain,
// which the browser then sends to the portal and to every IDE host. The
// rules here keep a workspace's cookies on its own host and away from the
// gateway's names, and let the gateway ignore cookies it did not issue.

// CookieBase is the IDE cookie's name before config.CookieName prefixes it
// (__Host-pbs_ide wherever the browser accepts the prefix).
const CookieBase = "pbs_ide"

// maxCookieTries bounds how many cookies of the IDE cookie's name one
// request may make the gateway look up: a page on a sibling host can plant
// several of that name for the parent domain, ahead of ours.
const maxCookieTries = 8

// ideCookies appends to dst the values of the cookies named name, in the
// order r.CookiesNamed finds them (well-formed ones, unquoted), at most
// maxCookieTries of them. It allocates nothing while dst has room.
func ideCookies(h http.Header, name string, dst []string) []string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			n, val, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(n) != name {
				continue
			}
			if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			if !validCookieValue(val) {
				continue
			}
			if dst = append(dst, val); len(dst) == maxCookieTries {
				return dst
			}
		}
	}
	return dst
}

// validCookieValue is net/http's rule for cookie values (RFC 6265, with
// spaces and commas allowed).
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// gatewayCookie says whether a cookie name is one of the gateway's:
// pbs_*, with or without a __Host- or __Secure- prefix. Browsers match the
// prefixes without regard to case, and so does this, and the name itself
// too: stripping a workspace's PBS_X costs nothing.
func gatewayCookie(name string) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	name = strings.TrimPrefix(name, "__host-")
	name = strings.TrimPrefix(name, "__secure-")
	return strings.HasPrefix(name, "pbs_")
}

// keepCookie says whether one trimmed "name=value" pair of a Cookie header
// may reach the workspace: the gateway's own cookies may not.
func keepCookie(part string) bool {
	name, _, _ := strings.Cut(part, "=")
	return strings.TrimSpace(name) != "" && !gatewayCookie(name)
}

// scrubSetCookies keeps a workspace's cookies on its own host: it drops
// every Set-Cookie of a gateway name (a workspace must not replace or
// shadow the IDE cookie) and removes the Domain attribute from the rest
// (a cookie for the parent domain would reach the portal and the other
// sessions' hosts).
func scrubSetCookies(h http.Header) {
	lines, ok := h["Set-Cookie"]
	if !ok {
		return
	}
	keep := lines[:0:0]
	for _, line := range lines {
		if line, ok := hostOnlyCookie(line); ok {
			keep = append(keep, line)
		}
	}
	if len(keep) == 0 {
		delete(h, "Set-Cookie")
		return
	}
	h["Set-Cookie"] = keep
}

// hostOnlyCookie is one Set-Cookie line without its Domain attributes;
// false for a cookie of a gateway name. A line without "=" in its first
// part names no cookie: browsers take it all as the value of a cookie
// with an empty name, which they send as the bare text, so that text is
// checked as a name too.
func hostOnlyCookie(line string) (string, bool) {
	first, attrs, _ := strings.Cut(line, ";")
	name, _, _ := strings.Cut(first, "=")
	if gatewayCookie(name) {
		return "", false
	}
	if !strings.Contains(strings.ToLower(attrs), "domain") {
		return line, true
	}
	var b strings.Builder
	b.WriteString(first)
	for attrs != "" {
		var a string
		a, attrs, _ = strings.Cut(attrs, ";")
		key, _, _ := strings.Cut(a, "=")
		if strings.EqualFold(strings.TrimSpace(key), "domain") {
			continue
		}
		b.WriteByte(';')
		b.WriteString(a)
	}
	return b.String(), true
}

// portProxySandbox is the policy for pages under code-server's port
// proxies: they run in an opaque origin, so they cannot read or write
// the IDE host's cookies or storage (document.cookie throws), nor reach
// the workbench's origin, yet keep scripts, forms, popups, dialogs and
// downloads.
const portProxySandbox = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"

// portProxyPath says whether a request path serves content of the
// workspace's rather than the workbench's: code-server's port proxy
// (/proxy/{port}/…, /absproxy/{port}/…) and its file server
// (/vscode-remote-resource?path=…, which serves any file of the workspace,
// an .html one included, with its type), under any base path: any segment
// so named, in any case (code-server's router ignores case), after
// percent-decoding. The workbench and its webviews load from other paths
// (/stable-…/static/…, /_static/…); what they fetch from
// /vscode-remote-resource are images, fonts and scripts, which a sandbox
// policy does not touch (it applies to documents only).
func portProxyPath(path string) bool {
	for path != "" {
		var seg string
		seg, path, _ = strings.Cut(path, "/")
		if strings.EqualFold(seg, "proxy") || strings.EqualFold(seg, "absproxy") || strings.EqualFold(seg, "vscode-remote-resource") {
			return true
		}
	}
	return false
}

// workspaceHeaders applies the rules above to a workspace's response
// head to a request for path.
func workspaceHeaders(h http.Header, path string) {
	scrubSetCookies(h)
	if portProxyPath(path) {
		// Added beside any policy of the workspace's (every policy a
		// response carries is enforced), so a workspace cannot lift it.
		h.Add("Content-Security-Policy", portProxySandbox)
	}
}
