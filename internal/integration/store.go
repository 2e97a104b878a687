package integration

import "context"

// Record is a profile as a store keeps it: the profile (without InUseBy)
// and its sealed secrets.
type Record struct {
	Profile
	Sealed Sealed
}

// KeyRow is one wrapped data key, for rotation.
type KeyRow struct {
	Tenant, ID string
	Method     Method
	KeyID      string
	WrappedKey []byte
}

// Store keeps profiles. The SQLite implementation is the embedded default;
// the interface is shaped so Postgres can fill it, and storetest is the
// suite both must pass.
type Store interface {
	// Create inserts a new profile: ErrNameTaken when the tenant has one
	// of that name (case-insensitively), ErrLimit when it has limit
	// profiles already (checked in the same transaction).
	Create(ctx context.Context, r Record, limit int) error
	Get(ctx context.Context, tenant, id string) (Record, error)
	// GetByName finds a profile by name, case-insensitively.
	GetByName(ctx context.Context, tenant, name string) (Record, error)
	// List returns the tenant's profiles by name.
	List(ctx context.Context, tenant string) ([]Record, error)
	// Update writes the name, description, config, secretsSet, sealed
	// secrets and updatedAt/By of an existing profile; its id, tenant,
	// base URL, method and creation never change.
	Update(ctx context.Context, r Record) error
	Delete(ctx context.Context, tenant, id string) error
	// StaleKeys lists up to limit wrapped data keys not under keyID, of
	// every tenant, ordered by (tenant, id) after the (tenant, id) cursor.
	StaleKeys(ctx context.Context, keyID, afterTenant, afterID string, limit int) ([]KeyRow, error)
	// SwapKey replaces a wrapped data key only if it is still the one
	// read (fromKeyID, fromWrapped): a credential update in between wins.
	SwapKey(ctx context.Context, from KeyRow, toKeyID string, toWrapped []byte) (bool, error)
	Ping(ctx context.Context) error
	Close() error
}
