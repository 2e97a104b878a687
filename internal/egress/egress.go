// Package egress is every outbound call of a playbook (and of the
// portal's Test connection): it looks the integration profile up by name,
// joins the path under the profile's base URL without letting it leave,
// refuses private, loopback and link-local addresses (checked on the
// address actually dialled) unless EGRESS_ALLOW_CIDRS covers them, adds the
// profile's authentication, caps time and response size, follows no
// redirect, and redacts every secret value from what it returns.
//
// This file is the contract; the implementation lives beside it.
package egress

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/playbookstudio/gateway/internal/integration"
)

// Opener unseals a tenant's profile by name (integration.Profiles.Open).
type Opener interface {
	Open(ctx context.Context, tenant, name string) (integration.Opened, error)
}

// Request is one call through a profile.
type Request struct {
	Tenant  string
	Profile string // the profile's name, as a manifest names it
	Method  string
	// Path is joined under the profile's base URL; it may carry a query.
	// Absolute URLs, "//host", ".." (also percent-encoded) are refused
	// (invalid_path).
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// Response is what came back, with every secret value of the profile
// redacted from its headers and body.
type Response struct {
	Status    int
	Header    http.Header
	Body      []byte
	Truncated bool // the body passed the size cap and was cut
	Duration  time.Duration
}

// Doer is what callers (the server's Test connection, the runner) need.
type Doer interface {
	Do(ctx context.Context, r Request) (*Response, error)
}
