-- Per-tenant quotas set by the platform operator (issue 10): each NULL column means
-- the platform default ([quotas] in the configuration).
CREATE TABLE tenant_quotas (
    tenant_id          TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contacts           INTEGER,
    contacts_per_user  INTEGER,
    devices            INTEGER,
    subscriptions      INTEGER
);
