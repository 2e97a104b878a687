package integration

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/playbookstudio/gateway/internal/fault"
)

// Limits on what a profile holds.
const (
	MaxNameLen        = 100
	MaxDescriptionLen = 2000
	MaxURLLen         = 2048
	MaxFieldLen       = 256   // a config value
	MaxScopes         = 50    // oauth2 scopes
	MaxSecretLen      = 16384 // a secret value (JWTs can be long)
)

// Refusals, with the API's codes.
var (
	ErrNotFound  = fault.New(fault.NotFound, "integration_not_found", "There is no such integration profile.")
	ErrNameTaken = fault.New(fault.Conflict, "integration_name_taken", "An integration profile of that name exists already. Pick another name.")
	// ErrLimit is what a store answers; the service adds the number.
	ErrLimit = fault.New(fault.Conflict, "integration_limit", "Your organisation has reached its integration profile limit.")
)

// invalid is a 400 invalid_integration naming field.
func invalid(field, message string) error {
	return &fault.Error{Kind: fault.Invalid, Code: "invalid_integration", Message: message,
		Details: map[string]any{"field": field}}
}

// ValidMethod reports whether m is one of the six.
func ValidMethod(m Method) bool { return slices.Contains(Methods(), m) }

// ValidateName checks a profile's name (trimmed by the caller).
func ValidateName(name string) error {
	n := utf8.RuneCountInString(name)
	switch {
	case !utf8.ValidString(name):
		return invalid("name", "name must be UTF-8 text.")
	case n == 0:
		return invalid("name", "name is required.")
	case n > MaxNameLen:
		return invalid("name", "name must be at most 100 characters.")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return invalid("name", "name must not contain control characters.")
	}
	return nil
}

// ValidateDescription checks a profile's description.
func ValidateDescription(d string) error {
	if !utf8.ValidString(d) {
		return invalid("description", "description must be UTF-8 text.")
	}
	if utf8.RuneCountInString(d) > MaxDescriptionLen {
		return invalid("description", "description must be at most 2000 characters.")
	}
	return nil
}

// ValidateBaseURL checks a base URL: absolute http(s), a host, no user
// name or password (credentials belong in the secrets), no query and no
// fragment (the egress joins paths under it); a path is allowed.
func ValidateBaseURL(raw string) error {
	const f = "baseUrl"
	if raw == "" {
		return invalid(f, "baseUrl is required: the API's address, e.g. https://graph.microsoft.com/v1.0.")
	}
	if len(raw) > MaxURLLen {
		return invalid(f, "baseUrl must be at most 2048 characters.")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Opaque != "":
		return invalid(f, "baseUrl must be an absolute http or https URL.")
	case u.Scheme != "http" && u.Scheme != "https":
		return invalid(f, "baseUrl must use http or https.")
	case u.Host == "" || u.Hostname() == "":
		return invalid(f, "baseUrl must name a host.")
	case u.User != nil:
		return invalid(f, "baseUrl must not hold a user name or password: put credentials in the profile's secrets.")
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "?"):
		return invalid(f, "baseUrl must not have a query (?…): calls add their own.")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return invalid(f, "baseUrl must not have a fragment (#…).")
	case strings.ContainsAny(raw, " \t\r\n"):
		return invalid(f, "baseUrl must not contain spaces.")
	}
	return nil
}

// tokenURL checks oauth2's tokenUrl: absolute http(s), no user info, no
// fragment.
func validateTokenURL(raw string) error {
	const f = "config.tokenUrl"
	u, err := url.Parse(raw)
	switch {
	case len(raw) > MaxURLLen:
		return invalid(f, "config.tokenUrl must be at most 2048 characters.")
	case err != nil || !u.IsAbs() || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		return invalid(f, "config.tokenUrl must be an absolute http or https URL.")
	case u.User != nil:
		return invalid(f, "config.tokenUrl must not hold a user name or password.")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return invalid(f, "config.tokenUrl must not have a fragment (#…).")
	}
	return nil
}

// field is one config or secret value by its API name.
type field struct {
	name  string
	value string
}

func configFields(c Config) []field {
	return []field{
		{"tokenUrl", c.TokenURL}, {"clientId", c.ClientID}, {"scopes", strings.Join(c.Scopes, " ")}, {"audience", c.Audience},
		{"in", c.In}, {"name", c.Name},
		{"region", c.Region}, {"service", c.Service}, {"accessKeyId", c.AccessKeyID},
		{"username", c.Username},
		{"id", c.ID}, {"algorithm", c.Algorithm},
	}
}

func secretFields(s Secrets) []field {
	return []field{
		{"clientSecret", s.ClientSecret}, {"apiKey", s.APIKey},
		{"secretAccessKey", s.SecretAccessKey}, {"sessionToken", s.SessionToken},
		{"password", s.Password}, {"token", s.Token}, {"key", s.Key},
	}
}

// spec is what a method takes: required and optional config and secrets.
type spec struct {
	config, optConfig   []string
	secrets, optSecrets []string
}

var specs = map[Method]spec{
	OAuth2ClientCredentials: {config: []string{"tokenUrl", "clientId", "scopes"}, optConfig: []string{"audience"}, secrets: []string{"clientSecret"}},
	APIKey:                  {config: []string{"in", "name"}, secrets: []string{"apiKey"}},
	AWSSigV4:                {config: []string{"region", "service", "accessKeyId"}, secrets: []string{"secretAccessKey"}, optSecrets: []string{"sessionToken"}},
	Basic:                   {config: []string{"username"}, secrets: []string{"password"}},
	Bearer:                  {secrets: []string{"token"}},
	Hawk:                    {config: []string{"id", "algorithm"}, secrets: []string{"key"}},
}

// SecretNames lists the secrets a method takes, required first.
func SecretNames(m Method) []string {
	s := specs[m]
	return append(slices.Clone(s.secrets), s.optSecrets...)
}

// secretsSet lists the names of the secrets that are set, in the
// method's order.
func secretsSet(s Secrets) []string {
	out := []string{}
	for _, f := range secretFields(s) {
		if f.value != "" {
			out = append(out, f.name)
		}
	}
	return out
}

var (
	// tchar of RFC 9110: what a header name is made of.
	headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
	// a query parameter name the egress sets as it is, no escaping needed.
	paramName = regexp.MustCompile(`^[A-Za-z0-9._~\-\[\]]{1,100}$`)
	awsName   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	accessKey = regexp.MustCompile(`^[A-Za-z0-9]{1,128}$`)
)

// headers the transport owns: an API key there would break the request
// or smuggle another.
var reservedHeaders = []string{"host", "content-length", "transfer-encoding", "connection", "te", "trailer", "upgrade", "keep-alive", "proxy-connection", "expect"}

// ValidateCredentials checks a method's config and secrets: each field the
// method needs is set, none of another method's is, and each value has its
// shape.
func ValidateCredentials(m Method, c Config, s Secrets) error {
	sp, ok := specs[m]
	if !ok {
		return invalid("authMethod", "authMethod must be one of oauth2_client_credentials, api_key, aws_sigv4, basic, bearer, hawk.")
	}
	for _, f := range configFields(c) {
		name := "config." + f.name
		switch {
		case slices.Contains(sp.config, f.name):
			if strings.TrimSpace(f.value) == "" {
				return invalid(name, name+" is required for "+string(m)+".")
			}
		case slices.Contains(sp.optConfig, f.name):
		default:
			if f.value != "" || (f.name == "scopes" && len(c.Scopes) > 0) {
				return invalid(name, name+" is not a setting of "+string(m)+".")
			}
			continue
		}
		if len(f.value) > MaxFieldLen && f.name != "scopes" {
			return invalid(name, name+" must be at most 256 characters.")
		}
		if strings.IndexFunc(f.value, unicode.IsControl) >= 0 {
			return invalid(name, name+" must not contain control characters.")
		}
	}
	for _, f := range secretFields(s) {
		name := "secrets." + f.name
		switch {
		case slices.Contains(sp.secrets, f.name):
			if f.value == "" {
				return invalid(name, name+" is required for "+string(m)+".")
			}
		case slices.Contains(sp.optSecrets, f.name):
		default:
			if f.value != "" {
				return invalid(name, name+" is not a secret of "+string(m)+".")
			}
			continue
		}
		// Never quote the value: messages reach the API and the logs.
		if len(f.value) > MaxSecretLen {
			return invalid(name, name+" must be at most 16384 bytes.")
		}
		if !utf8.ValidString(f.value) || strings.IndexFunc(f.value, unicode.IsControl) >= 0 {
			return invalid(name, name+" must be text without control characters or line breaks.")
		}
	}
	switch m {
	case OAuth2ClientCredentials:
		if err := validateTokenURL(c.TokenURL); err != nil {
			return err
		}
		if len(c.Scopes) > MaxScopes {
			return invalid("config.scopes", "config.scopes may list at most 50 scopes.")
		}
		for _, sc := range c.Scopes {
			if sc == "" || strings.ContainsFunc(sc, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == '\\' }) || len(sc) > MaxFieldLen {
				return invalid("config.scopes", "each of config.scopes must be one non-empty scope without spaces.")
			}
		}
	case APIKey:
		switch c.In {
		case "header":
			if !headerName.MatchString(c.Name) {
				return invalid("config.name", "config.name must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~), e.g. X-API-Key.")
			}
			if slices.Contains(reservedHeaders, strings.ToLower(c.Name)) {
				return invalid("config.name", "config.name names a header the HTTP transport sets itself; pick the API's key header.")
			}
		case "query":
			if !paramName.MatchString(c.Name) {
				return invalid("config.name", "config.name must be a query parameter name of letters, digits and ._~-[] (at most 100), e.g. apikey.")
			}
		default:
			return invalid("config.in", `config.in must be "header" or "query".`)
		}
	case AWSSigV4:
		if !awsName.MatchString(c.Region) {
			return invalid("config.region", "config.region must be an AWS region name such as us-east-1.")
		}
		if !awsName.MatchString(c.Service) {
			return invalid("config.service", "config.service must be an AWS service name such as iam or execute-api.")
		}
		if !accessKey.MatchString(c.AccessKeyID) {
			return invalid("config.accessKeyId", "config.accessKeyId must be letters and digits, like AKIAIOSFODNN7EXAMPLE.")
		}
	case Basic:
		if strings.Contains(c.Username, ":") {
			return invalid("config.username", "config.username must not contain a colon (Basic authentication cannot carry one).")
		}
	case Hawk:
		if c.Algorithm != "sha256" && c.Algorithm != "sha1" {
			return invalid("config.algorithm", `config.algorithm must be "sha256" or "sha1".`)
		}
		if strings.ContainsAny(c.ID, `"\`) {
			return invalid("config.id", `config.id must not contain " or \.`)
		}
	}
	return nil
}

// normalize trims what a person may have padded, before validation.
func normalizeCreate(in *CreateRequest) {
	in.Name = strings.TrimSpace(in.Name)
	in.BaseURL = strings.TrimSpace(in.BaseURL)
	normalizeConfig(&in.Config)
}

func normalizeConfig(c *Config) {
	for _, p := range []*string{&c.TokenURL, &c.ClientID, &c.Audience, &c.In, &c.Name, &c.Region, &c.Service, &c.AccessKeyID, &c.ID, &c.Algorithm} {
		*p = strings.TrimSpace(*p)
	}
	if len(c.Scopes) == 0 {
		c.Scopes = nil
	}
}

// ValidateCreate checks a whole new profile, the first problem first.
func ValidateCreate(in CreateRequest) error {
	if err := ValidateName(in.Name); err != nil {
		return err
	}
	if err := ValidateDescription(in.Description); err != nil {
		return err
	}
	if err := ValidateBaseURL(in.BaseURL); err != nil {
		return err
	}
	if in.AuthMethod == "" {
		return invalid("authMethod", "authMethod is required: one of oauth2_client_credentials, api_key, aws_sigv4, basic, bearer, hawk.")
	}
	return ValidateCredentials(in.AuthMethod, in.Config, in.Secrets)
}
