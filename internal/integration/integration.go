// Package integration owns integration profiles: a name, a description, a
// base API URL, one authentication method with its (non-secret) config, and
// its secrets, sealed at rest under a per-profile data key that the master
// key wraps (envelope encryption). Secrets are write-only: nothing this
// package returns to the API carries one; only Open, for the egress, does.
//
// This file is the contract the rest of the gateway codes against (the
// server's routes, the egress, the runner); the store, the sealing and the
// service live beside it.
package integration

import (
	"context"
	"time"
)

// Method is an authentication method (shared/API.md, "Integration
// profiles").
type Method string

// The six methods.
const (
	OAuth2ClientCredentials Method = "oauth2_client_credentials"
	APIKey                  Method = "api_key"
	AWSSigV4                Method = "aws_sigv4"
	Basic                   Method = "basic"
	Bearer                  Method = "bearer"
	Hawk                    Method = "hawk"
)

// Methods lists every method, in the order forms show them.
func Methods() []Method {
	return []Method{OAuth2ClientCredentials, APIKey, AWSSigV4, Basic, Bearer, Hawk}
}

// Config is a profile's non-secret settings. Only the fields of the
// profile's method are set (validation refuses others), so its JSON shows
// exactly the API's `config` object for that method.
type Config struct {
	// oauth2_client_credentials
	TokenURL string   `json:"tokenUrl,omitempty"`
	ClientID string   `json:"clientId,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
	Audience string   `json:"audience,omitempty"`
	// api_key: In is "header" or "query"; Name the header or parameter.
	In   string `json:"in,omitempty"`
	Name string `json:"name,omitempty"`
	// aws_sigv4
	Region      string `json:"region,omitempty"`
	Service     string `json:"service,omitempty"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	// basic
	Username string `json:"username,omitempty"`
	// hawk: Algorithm is "sha256" or "sha1".
	ID        string `json:"id,omitempty"`
	Algorithm string `json:"algorithm,omitempty"`
}

// Secrets are a profile's secret values, by the API's field names. Only
// the fields of the profile's method are set.
type Secrets struct {
	ClientSecret    string `json:"clientSecret,omitempty"`    // oauth2_client_credentials
	APIKey          string `json:"apiKey,omitempty"`          // api_key
	SecretAccessKey string `json:"secretAccessKey,omitempty"` // aws_sigv4
	SessionToken    string `json:"sessionToken,omitempty"`    // aws_sigv4, optional
	Password        string `json:"password,omitempty"`        // basic
	Token           string `json:"token,omitempty"`           // bearer
	Key             string `json:"key,omitempty"`             // hawk
}

// Values lists the non-empty secret values, for redaction: the egress
// removes each from anything it returns.
func (s Secrets) Values() []string {
	var out []string
	for _, v := range []string{s.ClientSecret, s.APIKey, s.SecretAccessKey, s.SessionToken, s.Password, s.Token, s.Key} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Profile is a profile as the API shows it: never a secret, only the names
// of the secrets that are set.
type Profile struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"-"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	BaseURL     string    `json:"baseUrl"`
	AuthMethod  Method    `json:"authMethod"`
	Config      Config    `json:"config"`
	SecretsSet  []string  `json:"secretsSet"`
	CreatedAt   time.Time `json:"createdAt"`
	CreatedBy   string    `json:"createdBy"`
	UpdatedAt   time.Time `json:"updatedAt"`
	UpdatedBy   string    `json:"updatedBy"`
	// InUseBy names the active playbooks whose manifests name this
	// profile (filled by the service for the list and get).
	InUseBy []string `json:"inUseBy"`
}

// Opened is a profile with its secrets, for the egress alone.
type Opened struct {
	Profile
	Secrets Secrets
}

// Actor is who makes a change, for the audit and the updatedBy fields.
type Actor struct {
	Tenant, UserID, UserName string
}

// CreateRequest is POST /api/integration-profiles.
type CreateRequest struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	BaseURL     string  `json:"baseUrl"`
	AuthMethod  Method  `json:"authMethod"`
	Config      Config  `json:"config"`
	Secrets     Secrets `json:"secrets"`
}

// Credentials replace a profile's config and secrets whole (rotation).
type Credentials struct {
	Config  Config  `json:"config"`
	Secrets Secrets `json:"secrets"`
}

// UpdateRequest is PATCH /api/integration-profiles/{id}: nil leaves a field
// as it is. BaseURL and AuthMethod never change: the server refuses a body
// naming them (400 immutable_field) before it gets here.
type UpdateRequest struct {
	Name        *string      `json:"name"`
	Description *string      `json:"description"`
	Credentials *Credentials `json:"credentials"`
}

// Profiles is what the server's routes and the egress need. Refusals are
// internal/fault errors with the API's codes (invalid_integration naming
// the field, integration_name_taken, integration_limit, integration_in_use,
// integration_not_found).
type Profiles interface {
	List(ctx context.Context, tenant string) ([]Profile, error)
	Get(ctx context.Context, tenant, id string) (Profile, error)
	Create(ctx context.Context, by Actor, in CreateRequest) (Profile, error)
	Update(ctx context.Context, by Actor, id string, in UpdateRequest) (Profile, error)
	Delete(ctx context.Context, by Actor, id string) error
	// Open returns a profile of the tenant by name with its secrets
	// unsealed, for the egress only.
	Open(ctx context.Context, tenant, name string) (Opened, error)
}

// InUse tells which active playbooks of a tenant name a profile in their
// active version's manifest (`integrations`); the playbook records answer
// it (wired in cmd/gateway). Delete and rename of a profile in use are
// refused: the running playbook would lose its credentials.
type InUse func(ctx context.Context, tenant, profileName string) (playbooks []string, err error)
