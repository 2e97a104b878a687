CREATE TABLE integration_profiles (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	name TEXT NOT NULL,
	name_key TEXT NOT NULL,
	description TEXT NOT NULL,
	base_url TEXT NOT NULL,
	auth_method TEXT NOT NULL,
	config TEXT NOT NULL,
	secrets_set TEXT NOT NULL,
	key_id TEXT NOT NULL,
	wrapped_key BLOB NOT NULL,
	sealed_secrets BLOB NOT NULL,
	created_at TEXT NOT NULL,
	created_by TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	updated_by TEXT NOT NULL
);
CREATE UNIQUE INDEX integration_profiles_name ON integration_profiles (tenant, name_key);
CREATE INDEX integration_profiles_key ON integration_profiles (key_id);
