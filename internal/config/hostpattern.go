package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// HostPattern is the IDE host pattern taken from IDE_URL_TEMPLATE: an
// absolute URL whose host holds exactly one {session} placeholder as a
// whole DNS label, e.g. http://{session}.ide.localhost:8080.
type HostPattern struct {
	Scheme string
	prefix string // host text before {session}, e.g. "" or "ide-"
	suffix string // host text after {session}, e.g. ".ide.localhost:8080"
}

const placeholder = "{session}"

// sessionLabel is what a session id may look like inside a host name: the
// characters of a UUID, and nothing a browser would treat specially.
var sessionLabel = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ParseHostPattern validates an IDE URL template.
func ParseHostPattern(template string) (HostPattern, error) {
	if strings.Count(template, placeholder) != 1 {
		return HostPattern{}, fmt.Errorf("must hold %s exactly once, got %q", placeholder, template)
	}
	probe := strings.Replace(template, placeholder, "session", 1)
	u, err := url.Parse(probe)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return HostPattern{}, fmt.Errorf("want an absolute http(s) URL, got %q", template)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return HostPattern{}, fmt.Errorf("%s must sit in the host, with no path or query, got %q", placeholder, template)
	}
	// With a host present the template reads scheme://…, whatever the
	// scheme's case; what follows must be the host alone. url.Parse keeps a
	// lone "?" or a "#fragment" out of Path and RawQuery, so look for them
	// here, or they would end up in every IDE host name.
	rest := strings.TrimSuffix(template[len(u.Scheme)+len("://"):], "/")
	if strings.ContainsAny(rest, "/?#@\\") {
		return HostPattern{}, fmt.Errorf("%s must sit in the host, with no path, query or fragment, got %q", placeholder, template)
	}
	prefix, suffix, _ := strings.Cut(rest, placeholder)
	if strings.Contains(prefix, ".") || !strings.HasPrefix(suffix, ".") {
		return HostPattern{}, fmt.Errorf("%s must be part of the first label of the host, followed by a domain, got %q", placeholder, template)
	}
	return HostPattern{Scheme: u.Scheme, prefix: strings.ToLower(prefix), suffix: stripDefaultPort(u.Scheme, strings.ToLower(suffix))}, nil
}

// Session returns the session id named by host and whether host is an IDE
// host at all.
func (p HostPattern) Session(host string) (string, bool) {
	host = strings.ToLower(host)
	if p.suffix == "" || !strings.HasPrefix(host, p.prefix) || !strings.HasSuffix(host, p.suffix) {
		return "", false
	}
	id := host[len(p.prefix) : len(host)-len(p.suffix)]
	if !sessionLabel.MatchString(id) {
		return "", false
	}
	return id, true
}

// Matches reports whether host is an IDE host.
func (p HostPattern) Matches(host string) bool {
	_, ok := p.Session(host)
	return ok
}

// URL is the IDE origin for one session, e.g. http://abc.ide.localhost:8080.
func (p HostPattern) URL(session string) string {
	return p.Scheme + "://" + p.prefix + session + p.suffix
}

// Suffix is the part of every IDE host after the session label, e.g.
// ".ide.localhost:8080".
func (p HostPattern) Suffix() string { return p.suffix }
