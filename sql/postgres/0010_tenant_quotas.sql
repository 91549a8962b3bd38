-- Per-tenant quotas set by the platform operator (issue 10): each NULL column means
-- the platform default ([quotas] in the configuration).
CREATE TABLE tenant_quotas (
    tenant_id          uuid PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contacts           BIGINT,
    contacts_per_user  BIGINT,
    devices            BIGINT,
    subscriptions      BIGINT
);
