-- 0002: an active playbook runs one chosen version (active_version), not
-- whatever was saved last. A save adds a version without changing it;
-- activation sets it. Playbooks active before this migration carry on
-- running what they ran: their latest version at migration time.

ALTER TABLE playbooks ADD COLUMN active_version INTEGER
    CHECK (active_version IS NULL OR active_version >= 1);

UPDATE playbooks SET active_version = current_version WHERE status = 'active';
