CREATE TABLE runs (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	trigger TEXT NOT NULL,
	rule_id TEXT NOT NULL,
	alert_id TEXT NOT NULL,
	incident_id TEXT NOT NULL,
	playbook_id TEXT NOT NULL,
	playbook_version INTEGER NOT NULL,
	status TEXT NOT NULL,
	queued_at TEXT NOT NULL,
	started_at TEXT,
	entered_at TEXT,
	ended_at TEXT,
	duration_ms INTEGER,
	result TEXT,
	error TEXT NOT NULL DEFAULT '',
	log TEXT NOT NULL DEFAULT '[]',
	calls TEXT NOT NULL DEFAULT '[]',
	actions TEXT NOT NULL DEFAULT '[]',
	started_by TEXT NOT NULL,
	dry_run INTEGER NOT NULL,
	-- The claim: which runner process holds the run, and its last sign of
	-- life. Another process may reap a run whose heartbeat is stale.
	owner TEXT NOT NULL DEFAULT '',
	heartbeat_at TEXT,
	cancel_requested INTEGER NOT NULL DEFAULT 0,
	-- The sandbox's PID 1 on the owner's host and its start time, so that
	-- a restarted runner can end what its dead predecessor left running.
	init_pid INTEGER NOT NULL DEFAULT 0,
	init_start INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_queue ON runs (status, queued_at, id);
CREATE INDEX runs_alert ON runs (tenant, alert_id, queued_at);
CREATE INDEX runs_playbook ON runs (tenant, playbook_id, queued_at);
CREATE INDEX runs_tenant ON runs (tenant, queued_at);
