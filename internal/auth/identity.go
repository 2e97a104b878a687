package auth

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Identity is who a signed-in user is, as the rest of the gateway sees it.
type Identity struct {
	ID     string   `json:"id"` // the provider's sub
	Email  string   `json:"email"`
	Name   string   `json:"name"`
	Tenant string   `json:"tenant"`
	Roles  []string `json:"roles"`
	// Groups are the provider's group names (GroupsClaim), for sources
	// restricted to groups.
	Groups []string `json:"groups,omitempty"`
}

// HasRole reports whether the identity holds role.
func (id Identity) HasRole(role string) bool { return slices.Contains(id.Roles, role) }

// ClaimMapping says how to read an Identity from ID token claims.
type ClaimMapping struct {
	TenantClaim   string // claim path; empty: everyone is in DefaultTenant
	DefaultTenant string
	RolesClaim    string              // claim path, dots reach into objects
	RoleMap       map[string][]string // provider role → product roles
	DefaultRoles  []string
	GroupsClaim   string // claim path of the user's groups; empty: none
}

// ErrNoRoles is returned when a user signs in but holds none of the
// product's roles: they are told so instead of seeing an empty portal.
var ErrNoRoles = errors.New("your account holds none of Playbook Studio's roles (author, automation, admin); ask your administrator to assign one")

var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// roleOrder is the order roles are listed in, whatever the provider sent.
var roleOrder = []string{"author", "automation", "admin"}

// IdentityFromClaims maps verified ID token claims to an Identity.
func (m ClaimMapping) IdentityFromClaims(claims map[string]any) (Identity, error) {
	sub, _ := claims["sub"].(string)
	if sub == "" || len(sub) > 255 {
		return Identity{}, errors.New("the ID token has no usable sub claim")
	}
	id := Identity{ID: sub}
	id.Email, _ = claims["email"].(string)
	id.Name = firstString(claims, "name", "preferred_username", "email")
	if id.Name == "" {
		id.Name = sub
	}

	id.Tenant = m.DefaultTenant
	if m.TenantClaim != "" {
		v, _ := lookup(claims, m.TenantClaim).(string)
		if !tenantPattern.MatchString(v) {
			return Identity{}, fmt.Errorf("the ID token's tenant claim %q is missing or not a valid tenant id", m.TenantClaim)
		}
		id.Tenant = v
	}

	granted := map[string]bool{}
	for _, r := range m.DefaultRoles {
		granted[r] = true
	}
	if m.RolesClaim != "" {
		for _, pr := range stringList(lookup(claims, m.RolesClaim)) {
			for _, r := range m.RoleMap[pr] {
				granted[r] = true
			}
		}
	}
	for _, r := range roleOrder {
		if granted[r] {
			id.Roles = append(id.Roles, r)
		}
	}
	if len(id.Roles) == 0 {
		return Identity{}, ErrNoRoles
	}
	if m.GroupsClaim != "" {
		for _, g := range stringList(lookup(claims, m.GroupsClaim)) {
			if g != "" && len(g) <= 256 && len(id.Groups) < 200 && !slices.Contains(id.Groups, g) {
				id.Groups = append(id.Groups, g)
			}
		}
	}
	return id, nil
}

// lookup follows a dotted path through nested objects, e.g.
// realm_access.roles. A claim whose own name holds dots is tried first.
func lookup(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}

func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func firstString(claims map[string]any, names ...string) string {
	for _, n := range names {
		if s, ok := claims[n].(string); ok && strings.TrimSpace(s) != "" {
			return strings.TrimSpace(s)
		}
	}
	return ""
}
