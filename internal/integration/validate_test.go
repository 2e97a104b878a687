package integration_test

import (
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/integration"
)

func valid(m integration.Method) integration.CreateRequest {
	r := integration.CreateRequest{Name: "p", BaseURL: "https://api.example.com/v2", AuthMethod: m}
	switch m {
	case integration.OAuth2ClientCredentials:
		r.Config = integration.Config{TokenURL: "https://login.example.com/token", ClientID: "c", Scopes: []string{"read"}}
		r.Secrets = integration.Secrets{ClientSecret: "s"}
	case integration.APIKey:
		r.Config = integration.Config{In: "query", Name: "apikey"}
		r.Secrets = integration.Secrets{APIKey: "s"}
	case integration.AWSSigV4:
		r.Config = integration.Config{Region: "eu-west-1", Service: "execute-api", AccessKeyID: "AKIAIOSFODNN7EXAMPLE"}
		r.Secrets = integration.Secrets{SecretAccessKey: "s"}
	case integration.Basic:
		r.Config = integration.Config{Username: "u"}
		r.Secrets = integration.Secrets{Password: "s"}
	case integration.Bearer:
		r.Secrets = integration.Secrets{Token: "s"}
	case integration.Hawk:
		r.Config = integration.Config{ID: "id", Algorithm: "sha1"}
		r.Secrets = integration.Secrets{Key: "s"}
	}
	return r
}

func TestValidateCreate(t *testing.T) {
	for _, m := range integration.Methods() {
		if err := integration.ValidateCreate(valid(m)); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	aws := valid(integration.AWSSigV4)
	aws.Secrets.SessionToken = "st"
	if err := integration.ValidateCreate(aws); err != nil {
		t.Errorf("aws with session token: %v", err)
	}
	for _, tc := range []struct {
		name  string
		m     integration.Method
		edit  func(*integration.CreateRequest)
		field string
	}{
		{"name 101", integration.Bearer, func(r *integration.CreateRequest) { r.Name = strings.Repeat("é", 101) }, "name"},
		{"name control", integration.Bearer, func(r *integration.CreateRequest) { r.Name = "a\x00b" }, "name"},
		{"base path ok, query not", integration.Bearer, func(r *integration.CreateRequest) { r.BaseURL = "https://a.example.com/x?" }, "baseUrl"},
		{"base no host", integration.Bearer, func(r *integration.CreateRequest) { r.BaseURL = "https:///x" }, "baseUrl"},
		{"base javascript", integration.Bearer, func(r *integration.CreateRequest) { r.BaseURL = "javascript:alert(1)" }, "baseUrl"},
		{"bearer with config", integration.Bearer, func(r *integration.CreateRequest) { r.Config.Region = "x" }, "config.region"},
		{"hawk md5", integration.Hawk, func(r *integration.CreateRequest) { r.Config.Algorithm = "md5" }, "config.algorithm"},
		{"hawk no key", integration.Hawk, func(r *integration.CreateRequest) { r.Secrets.Key = "" }, "secrets.key"},
		{"oauth relative token url", integration.OAuth2ClientCredentials, func(r *integration.CreateRequest) { r.Config.TokenURL = "/token" }, "config.tokenUrl"},
		{"oauth ftp token url", integration.OAuth2ClientCredentials, func(r *integration.CreateRequest) { r.Config.TokenURL = "ftp://a.example.com/t" }, "config.tokenUrl"},
		{"oauth no scopes", integration.OAuth2ClientCredentials, func(r *integration.CreateRequest) { r.Config.Scopes = nil }, "config.scopes"},
		{"oauth scope with space", integration.OAuth2ClientCredentials, func(r *integration.CreateRequest) { r.Config.Scopes = []string{"a b"} }, "config.scopes"},
		{"api key header Host", integration.APIKey, func(r *integration.CreateRequest) { r.Config.In, r.Config.Name = "header", "Host" }, "config.name"},
		{"api key header colon", integration.APIKey, func(r *integration.CreateRequest) { r.Config.In, r.Config.Name = "header", "X:Key" }, "config.name"},
		{"api key param &", integration.APIKey, func(r *integration.CreateRequest) { r.Config.Name = "a&b" }, "config.name"},
		{"aws bad region", integration.AWSSigV4, func(r *integration.CreateRequest) { r.Config.Region = "US East" }, "config.region"},
		{"aws no secret", integration.AWSSigV4, func(r *integration.CreateRequest) { r.Secrets.SecretAccessKey = "" }, "secrets.secretAccessKey"},
		{"basic colon", integration.Basic, func(r *integration.CreateRequest) { r.Config.Username = "a:b" }, "config.username"},
		{"basic token", integration.Basic, func(r *integration.CreateRequest) { r.Secrets.Token = "t" }, "secrets.token"},
		{"secret newline", integration.Bearer, func(r *integration.CreateRequest) { r.Secrets.Token = "a\r\nX-Evil: 1" }, "secrets.token"},
		{"no method", integration.Bearer, func(r *integration.CreateRequest) { r.AuthMethod = "" }, "authMethod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := valid(tc.m)
			tc.edit(&r)
			err := integration.ValidateCreate(r)
			f, ok := fault.As(err)
			if !ok || f.Code != "invalid_integration" || f.Kind != fault.Invalid {
				t.Fatalf("err = %v, want invalid_integration", err)
			}
			if f.Details["field"] != tc.field || !strings.Contains(f.Message, tc.field) {
				t.Errorf("field %v, message %q; want %s", f.Details["field"], f.Message, tc.field)
			}
		})
	}
}
