CREATE TABLE alert_sources (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	name TEXT NOT NULL,
	name_key TEXT NOT NULL,
	groups_json TEXT NOT NULL,
	created_at TEXT NOT NULL,
	created_by TEXT NOT NULL
);
CREATE UNIQUE INDEX alert_sources_name ON alert_sources (tenant, name_key);

CREATE TABLE alert_source_keys (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	source_id TEXT NOT NULL REFERENCES alert_sources (id) ON DELETE CASCADE,
	hash BLOB NOT NULL,
	created_at TEXT NOT NULL,
	created_by TEXT NOT NULL
);
CREATE INDEX alert_source_keys_source ON alert_source_keys (tenant, source_id);

-- Alerts outlive their source: source_name is what it was called.
CREATE TABLE alerts (
	tenant TEXT NOT NULL,
	id TEXT NOT NULL,
	source_id TEXT NOT NULL,
	source_name TEXT NOT NULL,
	incident_id TEXT NOT NULL,
	title TEXT NOT NULL,
	severity TEXT NOT NULL,
	severity_rank INTEGER NOT NULL,
	status TEXT NOT NULL,
	created_at TEXT NOT NULL,
	source_updated_at TEXT NOT NULL,
	received_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	body TEXT NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX alerts_created ON alerts (tenant, created_at);
CREATE INDEX alerts_incident ON alerts (tenant, incident_id);

CREATE TABLE alert_activity (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant TEXT NOT NULL,
	alert_id TEXT NOT NULL,
	at TEXT NOT NULL,
	kind TEXT NOT NULL,
	actor TEXT NOT NULL,
	detail TEXT NOT NULL,
	run_id TEXT NOT NULL,
	run_json TEXT NOT NULL,
	FOREIGN KEY (tenant, alert_id) REFERENCES alerts (tenant, id) ON DELETE CASCADE
);
CREATE INDEX alert_activity_alert ON alert_activity (tenant, alert_id, at);
CREATE UNIQUE INDEX alert_activity_run ON alert_activity (tenant, alert_id, run_id) WHERE run_id <> '';

-- seeded records that the local defaults were created once.
CREATE TABLE alert_meta (
	name TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
