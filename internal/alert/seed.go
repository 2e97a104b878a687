package alert

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Seed is a source the local defaults create.
type Seed struct {
	Name   string
	Groups []string
}

// EnsureDefaults creates, the first time this store sees tenant, the
// seeded sources, and a key for the first one written to keyFile (0600),
// so a newcomer can post an alert at once. It runs once per store and
// tenant: a source or key an admin deleted later stays deleted. It
// returns whether it wrote keyFile.
func (s *Service) EnsureDefaults(ctx context.Context, tenant string, seeds []Seed, keyFile string) (bool, error) {
	if len(seeds) == 0 {
		return false, nil
	}
	first, err := s.store.FirstTime(ctx, "seeded:"+tenant)
	if err != nil || !first {
		return false, err
	}
	by := Actor{Tenant: tenant, Name: "system"}
	var main Source
	for i, sd := range seeds {
		src, err := s.CreateSource(ctx, by, sd.Name, sd.Groups)
		if errors.Is(err, ErrSourceNameTaken) {
			src, err = s.store.GetSourceByName(ctx, tenant, sd.Name)
		}
		if err != nil {
			return false, err
		}
		if i == 0 {
			main = src
		}
	}
	if keyFile == "" {
		return false, nil
	}
	k, err := s.CreateKey(ctx, by, main.ID)
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, fmt.Errorf("alert: the default source's key file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return false, err
	}
	if _, err := f.WriteString(k.Key + "\n"); err != nil {
		f.Close()
		return false, err
	}
	return true, f.Close()
}
