-- The fair claim counts each tenant's running runs and finds each
-- tenant's oldest queued one.
CREATE INDEX runs_tenant_status ON runs (status, tenant, queued_at, id);
