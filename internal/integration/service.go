package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/fault"
)

// ServiceConfig is what the Service works with.
type ServiceConfig struct {
	Store Store
	Keys  *Keyring
	Audit audit.Log
	Log   *slog.Logger
	// Limit is INTEGRATION_LIMIT: profiles per tenant.
	Limit int
	// InUse answers which active playbooks name a profile; nil: none do.
	InUse InUse
	// Usage, when set, answers for every profile of a tenant at once: the
	// list uses it instead of one InUse call per profile.
	Usage Usage
	Now   func() time.Time
}

// Usage maps each profile name a tenant's active playbooks name
// (lower-cased) to those playbooks' names.
type Usage func(ctx context.Context, tenant string) (map[string][]string, error)

// InUseFrom answers InUse from a Usage.
func InUseFrom(u Usage) InUse {
	return func(ctx context.Context, tenant, name string) ([]string, error) {
		m, err := u(ctx, tenant)
		if err != nil {
			return nil, err
		}
		return m[strings.ToLower(name)], nil
	}
}

// Service implements Profiles over a Store, sealing secrets with the
// keyring and auditing every change.
type Service struct {
	store Store
	keys  *Keyring
	audit audit.Log
	log   *slog.Logger
	limit int
	inUse InUse
	usage Usage
	now   func() time.Time
}

var _ Profiles = (*Service)(nil)

// NewService checks cfg.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Audit == nil || cfg.Log == nil {
		return nil, errors.New("integration: store, keys, audit and log are required")
	}
	if cfg.Limit < 1 {
		return nil, fmt.Errorf("integration: limit must be at least 1, got %d", cfg.Limit)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{store: cfg.Store, keys: cfg.Keys, audit: cfg.Audit, log: cfg.Log, limit: cfg.Limit,
		inUse: cfg.InUse, usage: cfg.Usage, now: cfg.Now}
	if s.inUse == nil && s.usage != nil {
		s.inUse = InUseFrom(s.usage)
	}
	return s, nil
}

// unavailable hides a store's failure behind a refusal that names no
// detail; the cause goes to the log only.
func unavailable(err error) error {
	if _, ok := fault.As(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fault.Wrap(fault.Unavailable, "unavailable", "Integration profiles cannot be read or written right now. Try again in a moment.", err)
}

func (s *Service) usedBy(ctx context.Context, tenant, name string) ([]string, error) {
	if s.inUse == nil {
		return []string{}, nil
	}
	pbs, err := s.inUse(ctx, tenant, name)
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, "unavailable", "Which playbooks use this profile cannot be checked right now. Try again in a moment.", err)
	}
	if pbs == nil {
		pbs = []string{}
	}
	return pbs, nil
}

func public(r Record) Profile {
	p := r.Profile
	if p.SecretsSet == nil {
		p.SecretsSet = []string{}
	}
	p.InUseBy = []string{}
	return p
}

// List returns the tenant's profiles with the playbooks using each.
func (s *Service) List(ctx context.Context, tenant string) ([]Profile, error) {
	recs, err := s.store.List(ctx, tenant)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]Profile, 0, len(recs))
	var usage map[string][]string
	if s.usage != nil && len(recs) > 0 {
		if usage, err = s.usage(ctx, tenant); err != nil {
			return nil, fault.Wrap(fault.Unavailable, "unavailable", "Which playbooks use the profiles cannot be checked right now. Try again in a moment.", err)
		}
	}
	for _, r := range recs {
		p := public(r)
		switch {
		case s.usage != nil:
			if u := usage[strings.ToLower(p.Name)]; u != nil {
				p.InUseBy = u
			}
		default:
			if p.InUseBy, err = s.usedBy(ctx, tenant, p.Name); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Get returns one profile with the playbooks using it.
func (s *Service) Get(ctx context.Context, tenant, id string) (Profile, error) {
	r, err := s.store.Get(ctx, tenant, id)
	if err != nil {
		return Profile{}, unavailable(err)
	}
	p := public(r)
	if p.InUseBy, err = s.usedBy(ctx, tenant, p.Name); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// newID is a random (version 4) UUID.
func newID() string { return uuid.NewString() }

func actorLabel(a Actor) string {
	if a.UserName != "" {
		return a.UserName
	}
	return a.UserID
}

func (s *Service) record(ctx context.Context, by Actor, action string, p Profile, detail map[string]string) {
	detail["name"] = p.Name
	detail["method"] = string(p.AuthMethod)
	e := audit.Event{Tenant: by.Tenant, Actor: by.UserName + " (" + by.UserID + ")", Action: action, Target: p.ID, Detail: detail}
	if err := s.audit.Record(ctx, e); err != nil {
		s.log.Warn("audit record failed", "action", action, "target", p.ID, "err", err)
	}
}

func (s *Service) limitError() error {
	return fault.New(fault.Conflict, "integration_limit",
		"Your organisation has reached its limit of "+strconv.Itoa(s.limit)+" integration profiles (INTEGRATION_LIMIT). Delete one you no longer use first.")
}

// Create validates, seals and stores a new profile.
func (s *Service) Create(ctx context.Context, by Actor, in CreateRequest) (Profile, error) {
	normalizeCreate(&in)
	if err := ValidateCreate(in); err != nil {
		return Profile{}, err
	}
	now := stamp(s.now())
	r := Record{Profile: Profile{
		ID: newID(), Tenant: by.Tenant, Name: in.Name, Description: in.Description, BaseURL: in.BaseURL,
		AuthMethod: in.AuthMethod, Config: in.Config, SecretsSet: secretsSet(in.Secrets),
		CreatedAt: now, CreatedBy: actorLabel(by), UpdatedAt: now, UpdatedBy: actorLabel(by),
	}}
	sealed, err := s.keys.Seal(r.Tenant, r.ID, r.AuthMethod, in.Secrets)
	if err != nil {
		return Profile{}, unavailable(err)
	}
	r.Sealed = sealed
	if err := s.store.Create(ctx, r, s.limit); err != nil {
		if errors.Is(err, ErrLimit) {
			return Profile{}, s.limitError()
		}
		return Profile{}, unavailable(err)
	}
	p := public(r)
	s.record(ctx, by, "integration.create", p, map[string]string{
		"baseUrl": p.BaseURL, "secretsSet": strings.Join(p.SecretsSet, ","),
	})
	return p, nil
}

func inUseError(p Profile, pbs []string, doing string) error {
	return &fault.Error{Kind: fault.Conflict, Code: "integration_in_use",
		Message: "The profile " + strconv.Quote(p.Name) + " is used by the active playbook(s) " + strings.Join(pbs, ", ") +
			"; " + doing + " it would break them. Deactivate them, or remove it from their manifests, first.",
		Details: map[string]any{"playbooks": pbs}}
}

// Update renames, re-describes, or replaces the credentials of a profile.
// A rename of a profile active playbooks name is refused: their manifests
// would no longer find it.
func (s *Service) Update(ctx context.Context, by Actor, id string, in UpdateRequest) (Profile, error) {
	r, err := s.store.Get(ctx, by.Tenant, id)
	if err != nil {
		return Profile{}, unavailable(err)
	}
	before := r.Profile
	changed := []string{}
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if err := ValidateName(name); err != nil {
			return Profile{}, err
		}
		if name != r.Name {
			if !strings.EqualFold(name, r.Name) {
				pbs, err := s.usedBy(ctx, by.Tenant, r.Name)
				if err != nil {
					return Profile{}, err
				}
				if len(pbs) > 0 {
					return Profile{}, inUseError(r.Profile, pbs, "renaming")
				}
			}
			r.Name = name
			changed = append(changed, "name")
		}
	}
	if in.Description != nil {
		if err := ValidateDescription(*in.Description); err != nil {
			return Profile{}, err
		}
		if *in.Description != r.Description {
			r.Description = *in.Description
			changed = append(changed, "description")
		}
	}
	if in.Credentials != nil {
		c := in.Credentials.Config
		normalizeConfig(&c)
		if err := ValidateCredentials(r.AuthMethod, c, in.Credentials.Secrets); err != nil {
			return Profile{}, err
		}
		// A fresh data key with every rotation: nothing of the old
		// credentials' encryption survives.
		sealed, err := s.keys.Seal(r.Tenant, r.ID, r.AuthMethod, in.Credentials.Secrets)
		if err != nil {
			return Profile{}, unavailable(err)
		}
		r.Config, r.Sealed, r.SecretsSet = c, sealed, secretsSet(in.Credentials.Secrets)
	}
	if len(changed) == 0 && in.Credentials == nil {
		p := public(r)
		p.InUseBy, err = s.usedBy(ctx, by.Tenant, p.Name)
		return p, err
	}
	r.UpdatedAt, r.UpdatedBy = stamp(s.now()), actorLabel(by)
	if err := s.store.Update(ctx, r); err != nil {
		return Profile{}, unavailable(err)
	}
	p := public(r)
	if len(changed) > 0 {
		d := map[string]string{"changed": strings.Join(changed, ",")}
		if before.Name != p.Name {
			d["previousName"] = before.Name
		}
		s.record(ctx, by, "integration.update", p, d)
	}
	if in.Credentials != nil {
		s.record(ctx, by, "integration.rotate", p, map[string]string{"secretsSet": strings.Join(p.SecretsSet, ",")})
	}
	if p.InUseBy, err = s.usedBy(ctx, by.Tenant, p.Name); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// Delete removes a profile no active playbook names.
func (s *Service) Delete(ctx context.Context, by Actor, id string) error {
	r, err := s.store.Get(ctx, by.Tenant, id)
	if err != nil {
		return unavailable(err)
	}
	pbs, err := s.usedBy(ctx, by.Tenant, r.Name)
	if err != nil {
		return err
	}
	if len(pbs) > 0 {
		return inUseError(r.Profile, pbs, "deleting")
	}
	if err := s.store.Delete(ctx, by.Tenant, id); err != nil {
		return unavailable(err)
	}
	s.record(ctx, by, "integration.delete", public(r), map[string]string{})
	return nil
}

// Open returns a profile with its secrets, for the egress alone.
func (s *Service) Open(ctx context.Context, tenant, name string) (Opened, error) {
	r, err := s.store.GetByName(ctx, tenant, name)
	if err != nil {
		return Opened{}, unavailable(err)
	}
	sec, err := s.keys.Open(r.Tenant, r.ID, r.AuthMethod, r.Sealed)
	if err != nil {
		return Opened{}, fault.Wrap(fault.Unavailable, "integration_sealed",
			"The integration profile "+strconv.Quote(r.Name)+"'s secrets cannot be opened with the configured master key.", err)
	}
	return Opened{Profile: public(r), Secrets: sec}, nil
}

// RewrapResult counts what Rewrap did.
type RewrapResult struct {
	Rewrapped int // now under the current key
	Skipped   int // changed meanwhile (already re-sealed under the current key)
	Failed    int // under a key the keyring lacks, or not opening
}

// Rewrap re-wraps every data key not under the current master key, of
// every tenant. It is idempotent and resumable: keys already current are
// not touched, and each swap is one row's compare-and-set, so a run that
// stops half-way leaves every profile readable with both keys configured.
func (s *Service) Rewrap(ctx context.Context) (RewrapResult, error) {
	var res RewrapResult
	cur := s.keys.CurrentID()
	afterTenant, afterID := "", ""
	for {
		rows, err := s.store.StaleKeys(ctx, cur, afterTenant, afterID, 200)
		if err != nil {
			return res, err
		}
		if len(rows) == 0 {
			return res, nil
		}
		for _, k := range rows {
			afterTenant, afterID = k.Tenant, k.ID
			id, wrapped, err := s.keys.Rewrap(k.Tenant, k.ID, k.Method, k.KeyID, k.WrappedKey)
			if err != nil {
				res.Failed++
				s.log.Error("integration: a data key could not be re-wrapped", "tenant", k.Tenant, "profile", k.ID, "keyId", k.KeyID, "err", err)
				continue
			}
			ok, err := s.store.SwapKey(ctx, k, id, wrapped)
			if err != nil {
				return res, err
			}
			if ok {
				res.Rewrapped++
			} else {
				res.Skipped++
			}
		}
	}
}
