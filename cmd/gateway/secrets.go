package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/config"
	"github.com/playbookstudio/gateway/internal/integration"
	"github.com/playbookstudio/gateway/internal/playbook"
)

const secretsUsage = `usage:
  gateway secrets rotate [flags]   re-wrap every integration data key under SECRETS_KEY
                                   (configure the old key as SECRETS_KEY_PREVIOUS while it runs;
                                   idempotent: run it again after an interruption)
  gateway secrets new-key          print a fresh master key (hex) for SECRETS_KEY or a key file
The flags and environment are the gateway's (DATA_DIR, SECRETS_KEY, …).`

// keySource is where cfg says the master keys are.
func keySource(cfg *config.Config) integration.KeySource {
	return integration.KeySource{Key: cfg.SecretsKey, KeyFile: cfg.SecretsKeyFile,
		Previous: cfg.SecretsKeyPrevious, PreviousFile: cfg.SecretsKeyPreviousFile, DataDir: cfg.DataDir}
}

// newIntegrations opens the profile store (DATA_DIR/integrations.db) and
// the master keys, and builds the service; usage answers which active
// playbooks name a profile.
func newIntegrations(cfg *config.Config, al audit.Log, log *slog.Logger, usage integration.Usage) (*integration.Service, io.Closer, error) {
	keys, created, err := integration.LoadKeyring(keySource(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("integration secrets' master key: %w", err)
	}
	if created {
		log.Warn("created a master key for integration secrets; back it up with the data directory, or set SECRETS_KEY",
			"file", filepath.Join(cfg.DataDir, integration.KeyFileName), "keyId", keys.CurrentID())
	}
	store, err := integration.NewSQLite(filepath.Join(cfg.DataDir, "integrations.db"))
	if err != nil {
		return nil, nil, fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}
	svc, err := integration.NewService(integration.ServiceConfig{Store: store, Keys: keys, Audit: al, Log: log,
		Limit: cfg.IntegrationLimit, Usage: usage})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return svc, store, nil
}

// playbookUsage answers, for a tenant, which active playbooks name each
// profile: the `integrations` of the manifest.json of each one's ACTIVE
// version (what runs), not of its latest save.
func playbookUsage(store playbook.Store) integration.Usage {
	return func(ctx context.Context, tenant string) (map[string][]string, error) {
		list, err := store.List(ctx, tenant)
		if err != nil {
			return nil, err
		}
		out := map[string][]string{}
		for _, p := range list {
			if p.ActiveVersion == nil {
				continue
			}
			_, files, err := store.ActiveVersion(ctx, tenant, p.ID)
			if errors.Is(err, playbook.ErrNotActive) || errors.Is(err, playbook.ErrNotFound) {
				continue // deactivated or deleted since the list
			}
			if err != nil {
				return nil, err
			}
			for _, name := range manifestIntegrations(files) {
				key := strings.ToLower(name)
				if len(out[key]) == 0 || out[key][len(out[key])-1] != p.Name {
					out[key] = append(out[key], p.Name)
				}
			}
		}
		return out, nil
	}
}

// manifestIntegrations reads manifest.json's integrations; a manifest
// that does not parse names none (validation refused it at save anyway).
func manifestIntegrations(files []playbook.File) []string {
	for _, f := range files {
		if f.Path != playbook.ManifestFile {
			continue
		}
		var m struct {
			Integrations []string `json:"integrations"`
		}
		if json.Unmarshal(f.Content, &m) != nil {
			return nil
		}
		return m.Integrations
	}
	return nil
}

// runSecrets is `gateway secrets …`.
func runSecrets(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, secretsUsage)
		return errors.New("secrets: name a command: rotate or new-key")
	}
	switch args[0] {
	case "new-key":
		fmt.Fprintln(stdout, integration.NewKeyText())
		return nil
	case "rotate":
	default:
		fmt.Fprintln(stderr, secretsUsage)
		return fmt.Errorf("secrets: unknown command %q", args[0])
	}
	cfg, err := config.Load(args[1:], getenv, stderr)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	keys, _, err := integration.LoadKeyring(keySource(cfg))
	if err != nil {
		return fmt.Errorf("integration secrets' master key: %w", err)
	}
	store, err := integration.NewSQLite(filepath.Join(cfg.DataDir, "integrations.db"))
	if err != nil {
		return fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}
	defer store.Close()
	al, err := audit.NewMemory(log, nil)
	if err != nil {
		return err
	}
	svc, err := integration.NewService(integration.ServiceConfig{Store: store, Keys: keys, Audit: al, Log: log, Limit: cfg.IntegrationLimit})
	if err != nil {
		return err
	}
	res, err := svc.Rewrap(ctx)
	fmt.Fprintf(stdout, "re-wrapped %d data keys under master key %s; %d changed meanwhile (already current); %d failed\n",
		res.Rewrapped, keys.CurrentID(), res.Skipped, res.Failed)
	if err != nil {
		return fmt.Errorf("secrets rotate stopped (run it again to resume): %w", err)
	}
	if res.Failed > 0 {
		return fmt.Errorf("secrets rotate: %d data keys are under a master key that is not configured; set it as SECRETS_KEY_PREVIOUS and run again", res.Failed)
	}
	return nil
}
