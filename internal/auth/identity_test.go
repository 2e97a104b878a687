package auth

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// claimsJSON parses claims the way the ID token verifier hands them over
// (numbers as float64, arrays as []any, objects as map[string]any).
func claimsJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("claims %s: %v", s, err)
	}
	return m
}

func TestIdentityFromClaims(t *testing.T) {
	socMap := ClaimMapping{
		DefaultTenant: "acme",
		RolesClaim:    "roles",
		RoleMap: map[string][]string{
			"SOC.Admin":  {"admin"},
			"SOC.Author": {"author"},
			"SOC.Bot":    {"automation"},
			"SOC.Lead":   {"admin", "author"},
			"SOC.Weird":  {"superuser"}, // not a product role: dropped
		},
	}
	for _, tc := range []struct {
		name    string
		mapping ClaimMapping
		claims  string
		want    Identity
		wantErr string // substring; "" means success
		noRoles bool
	}{
		{
			name:    "default tenant, roles as array, mapped",
			mapping: socMap,
			claims:  `{"sub":"u1","email":"ada@example.com","name":"Ada","roles":["SOC.Author","SOC.Admin","Other"]}`,
			want:    Identity{ID: "u1", Email: "ada@example.com", Name: "Ada", Tenant: "acme", Roles: []string{"author", "admin"}},
		},
		{
			name:    "roles as a single string",
			mapping: socMap,
			claims:  `{"sub":"u1","roles":"SOC.Bot"}`,
			want:    Identity{ID: "u1", Name: "u1", Tenant: "acme", Roles: []string{"automation"}},
		},
		{
			name:    "roles deduplicated and ordered author, automation, admin",
			mapping: socMap,
			claims:  `{"sub":"u1","roles":["SOC.Admin","SOC.Bot","SOC.Lead","SOC.Author","SOC.Admin"]}`,
			want:    Identity{ID: "u1", Name: "u1", Tenant: "acme", Roles: []string{"author", "automation", "admin"}},
		},
		{
			name:    "non-string role entries ignored",
			mapping: socMap,
			claims:  `{"sub":"u1","roles":[1,null,{"x":"SOC.Admin"},["SOC.Admin"],"SOC.Author"]}`,
			want:    Identity{ID: "u1", Name: "u1", Tenant: "acme", Roles: []string{"author"}},
		},
		{
			name:    "role claim of the wrong type grants nothing",
			mapping: socMap,
			claims:  `{"sub":"u1","roles":{"SOC.Admin":true}}`,
			noRoles: true,
		},
		{
			name:    "unmapped product role names are not taken at face value",
			mapping: socMap,
			claims:  `{"sub":"u1","roles":["admin","author"]}`,
			noRoles: true,
		},
		{
			name:    "mapped to a role outside the product",
			mapping: socMap,
			claims:  `{"sub":"u1","roles":["SOC.Weird"]}`,
			noRoles: true,
		},
		{
			name:    "role names are case sensitive",
			mapping: socMap,
			claims:  `{"sub":"u1","roles":["soc.admin"]}`,
			noRoles: true,
		},
		{
			name: "Keycloak realm_access.roles",
			mapping: ClaimMapping{
				DefaultTenant: "t",
				RolesClaim:    "realm_access.roles",
				RoleMap:       map[string][]string{"playbook-author": {"author"}, "playbook-admin": {"admin"}},
			},
			claims: `{"sub":"kc","realm_access":{"roles":["offline_access","playbook-admin","playbook-author"]}}`,
			want:   Identity{ID: "kc", Name: "kc", Tenant: "t", Roles: []string{"author", "admin"}},
		},
		{
			name: "nested path through a non-object",
			mapping: ClaimMapping{
				DefaultTenant: "t",
				RolesClaim:    "realm_access.roles",
				RoleMap:       map[string][]string{"a": {"author"}},
			},
			claims:  `{"sub":"kc","realm_access":"a"}`,
			noRoles: true,
		},
		{
			name: "claim name that itself holds dots",
			mapping: ClaimMapping{
				DefaultTenant: "t",
				RolesClaim:    "https://playbook.example/roles",
				RoleMap:       map[string][]string{"Author": {"author"}},
			},
			claims: `{"sub":"u","https://playbook.example/roles":["Author"]}`,
			want:   Identity{ID: "u", Name: "u", Tenant: "t", Roles: []string{"author"}},
		},
		{
			name: "dotted claim name wins over the nested path",
			mapping: ClaimMapping{
				DefaultTenant: "t",
				RolesClaim:    "app.roles",
				RoleMap:       map[string][]string{"flat": {"author"}, "nested": {"admin"}},
			},
			claims: `{"sub":"u","app.roles":["flat"],"app":{"roles":["nested"]}}`,
			want:   Identity{ID: "u", Name: "u", Tenant: "t", Roles: []string{"author"}},
		},
		{
			name:    "default roles only",
			mapping: ClaimMapping{DefaultTenant: "t", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","roles":["SOC.Admin"]}`,
			want:    Identity{ID: "u", Name: "u", Tenant: "t", Roles: []string{"author"}},
		},
		{
			name: "default roles merged with mapped roles",
			mapping: ClaimMapping{
				DefaultTenant: "t", RolesClaim: "roles", DefaultRoles: []string{"author", "author"},
				RoleMap: map[string][]string{"SOC.Admin": {"admin", "author"}},
			},
			claims: `{"sub":"u","roles":["SOC.Admin"]}`,
			want:   Identity{ID: "u", Name: "u", Tenant: "t", Roles: []string{"author", "admin"}},
		},
		{
			name:    "no roles claim, no default roles",
			mapping: socMap,
			claims:  `{"sub":"u"}`,
			noRoles: true,
		},
		{
			name:    "empty roles array",
			mapping: socMap,
			claims:  `{"sub":"u","roles":[]}`,
			noRoles: true,
		},
		{
			name:    "no roles claim configured",
			mapping: ClaimMapping{DefaultTenant: "t", RoleMap: map[string][]string{"x": {"admin"}}},
			claims:  `{"sub":"u","roles":["x"]}`,
			noRoles: true,
		},
		{
			name:    "tenant claim present",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultTenant: "ignored", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","tid":"contoso-01.eu_west"}`,
			want:    Identity{ID: "u", Name: "u", Tenant: "contoso-01.eu_west", Roles: []string{"author"}},
		},
		{
			name:    "nested tenant claim",
			mapping: ClaimMapping{TenantClaim: "org.id", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","org":{"id":"org42"}}`,
			want:    Identity{ID: "u", Name: "u", Tenant: "org42", Roles: []string{"author"}},
		},
		{
			name:    "tenant claim missing",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultTenant: "acme", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u"}`,
			wantErr: `tenant claim "tid"`,
		},
		{
			name:    "tenant claim empty",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","tid":""}`,
			wantErr: `tenant claim "tid"`,
		},
		{
			name:    "tenant claim not a string",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","tid":42}`,
			wantErr: `tenant claim "tid"`,
		},
		{
			name:    "tenant claim with a slash",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","tid":"../other"}`,
			wantErr: `tenant claim "tid"`,
		},
		{
			name:    "tenant claim starting with a dot",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","tid":".hidden"}`,
			wantErr: `tenant claim "tid"`,
		},
		{
			name:    "tenant claim with a newline",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","tid":"acme\n"}`,
			wantErr: `tenant claim "tid"`,
		},
		{
			name:    "tenant claim too long",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","tid":"` + strings.Repeat("a", 65) + `"}`,
			wantErr: `tenant claim "tid"`,
		},
		{
			name:    "tenant claim of 64 characters",
			mapping: ClaimMapping{TenantClaim: "tid", DefaultRoles: []string{"author"}},
			claims:  `{"sub":"u","tid":"` + strings.Repeat("a", 64) + `"}`,
			want:    Identity{ID: "u", Name: "u", Tenant: strings.Repeat("a", 64), Roles: []string{"author"}},
		},
		{
			name:    "tenant is checked before roles",
			mapping: ClaimMapping{TenantClaim: "tid"},
			claims:  `{"sub":"u"}`,
			wantErr: `tenant claim "tid"`,
		},
		{
			name:    "name from name",
			mapping: ClaimMapping{DefaultRoles: []string{"admin"}},
			claims:  `{"sub":"u","name":"  Ada Lovelace ","preferred_username":"ada","email":"ada@example.com"}`,
			want:    Identity{ID: "u", Name: "Ada Lovelace", Email: "ada@example.com", Roles: []string{"admin"}},
		},
		{
			name:    "name from preferred_username",
			mapping: ClaimMapping{DefaultRoles: []string{"admin"}},
			claims:  `{"sub":"u","name":"   ","preferred_username":"ada","email":"ada@example.com"}`,
			want:    Identity{ID: "u", Name: "ada", Email: "ada@example.com", Roles: []string{"admin"}},
		},
		{
			name:    "name from email",
			mapping: ClaimMapping{DefaultRoles: []string{"admin"}},
			claims:  `{"sub":"u","name":7,"email":"ada@example.com"}`,
			want:    Identity{ID: "u", Name: "ada@example.com", Email: "ada@example.com", Roles: []string{"admin"}},
		},
		{
			name:    "name from sub",
			mapping: ClaimMapping{DefaultRoles: []string{"admin"}},
			claims:  `{"sub":"u-123","email":42}`,
			want:    Identity{ID: "u-123", Name: "u-123", Roles: []string{"admin"}},
		},
		{
			name:    "missing sub",
			mapping: ClaimMapping{DefaultRoles: []string{"admin"}},
			claims:  `{"name":"Ada","email":"ada@example.com"}`,
			wantErr: "no usable sub",
		},
		{
			name:    "empty sub",
			mapping: ClaimMapping{DefaultRoles: []string{"admin"}},
			claims:  `{"sub":""}`,
			wantErr: "no usable sub",
		},
		{
			name:    "sub not a string",
			mapping: ClaimMapping{DefaultRoles: []string{"admin"}},
			claims:  `{"sub":12345}`,
			wantErr: "no usable sub",
		},
		{
			name:    "sub too long",
			mapping: ClaimMapping{DefaultRoles: []string{"admin"}},
			claims:  `{"sub":"` + strings.Repeat("s", 256) + `"}`,
			wantErr: "no usable sub",
		},
		{
			name:    "sub is checked before roles",
			mapping: ClaimMapping{},
			claims:  `{}`,
			wantErr: "no usable sub",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.mapping.IdentityFromClaims(claimsJSON(t, tc.claims))
			switch {
			case tc.noRoles:
				if !errors.Is(err, ErrNoRoles) {
					t.Fatalf("err = %v, want ErrNoRoles", err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				if errors.Is(err, ErrNoRoles) {
					t.Fatalf("err = %v, must not be ErrNoRoles", err)
				}
			default:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("identity = %+v\nwant       %+v", got, tc.want)
				}
			}
			if err != nil && !reflect.DeepEqual(got, Identity{}) {
				t.Fatalf("an error came with a partial identity %+v", got)
			}
		})
	}
}

func TestIdentityFromClaimsNilClaims(t *testing.T) {
	if _, err := (ClaimMapping{DefaultRoles: []string{"admin"}}).IdentityFromClaims(nil); err == nil {
		t.Fatal("nil claims accepted")
	}
}

func TestIdentityHasRole(t *testing.T) {
	id := Identity{Roles: []string{"author", "admin"}}
	for role, want := range map[string]bool{"author": true, "admin": true, "automation": false, "": false, "Admin": false} {
		if got := id.HasRole(role); got != want {
			t.Errorf("HasRole(%q) = %v, want %v", role, got, want)
		}
	}
	if (Identity{}).HasRole("author") {
		t.Error("empty identity holds author")
	}
}

func TestIdentityGroupsClaim(t *testing.T) {
	m := ClaimMapping{DefaultTenant: "default", RolesClaim: "roles", RoleMap: map[string][]string{"automation": {"automation"}}, GroupsClaim: "groups"}
	id, err := m.IdentityFromClaims(map[string]any{"sub": "s", "roles": []any{"automation"}, "groups": []any{"soc-eu", "soc-eu", "", 3, "soc-us"}})
	if err != nil || len(id.Groups) != 2 || id.Groups[0] != "soc-eu" || id.Groups[1] != "soc-us" {
		t.Errorf("groups = %v, %v", id.Groups, err)
	}
	m.GroupsClaim = ""
	if id, _ := m.IdentityFromClaims(map[string]any{"sub": "s", "roles": []any{"automation"}, "groups": []any{"soc-eu"}}); id.Groups != nil {
		t.Errorf("groups without a claim = %v", id.Groups)
	}
}
