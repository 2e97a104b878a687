-- 0001: playbooks, their versions and the versions' files.
-- Times are RFC 3339 UTC with nine fraction digits (they sort as text).

CREATE TABLE playbooks (
    id              TEXT    NOT NULL PRIMARY KEY,  -- UUID
    tenant          TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    name_key        TEXT    NOT NULL,              -- lower-cased name
    description     TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL DEFAULT 'disabled' CHECK (status IN ('disabled', 'active')),
    current_version INTEGER NOT NULL CHECK (current_version >= 1),
    created_at      TEXT    NOT NULL,
    created_by      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    updated_by      TEXT    NOT NULL
);

CREATE UNIQUE INDEX playbooks_tenant_name ON playbooks (tenant, name_key);

CREATE TABLE versions (
    playbook_id   TEXT    NOT NULL REFERENCES playbooks (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL CHECK (number >= 1),
    saved_at      TEXT    NOT NULL,
    saved_by      TEXT    NOT NULL,
    fence         INTEGER NOT NULL,
    lines         INTEGER NOT NULL,
    report        TEXT    NOT NULL,                -- Report as JSON
    documentation TEXT    NOT NULL DEFAULT '',
    flow_diagram  TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (playbook_id, number)
);

CREATE TABLE files (
    playbook_id TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    sha256      TEXT    NOT NULL,                  -- hex
    size        INTEGER NOT NULL,
    content     BLOB    NOT NULL,
    PRIMARY KEY (playbook_id, version, path),
    FOREIGN KEY (playbook_id, version) REFERENCES versions (playbook_id, number) ON DELETE CASCADE
);
