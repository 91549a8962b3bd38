-- API tokens of integrations (CTI clients) (PostgreSQL): scoped to a tenant and
-- optionally to some of its users. Same table and keys as sql/sqlite/0007_api_tokens.sql.

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- hex SHA-256 of the secret: a leaked table grants nothing
    secret_hash  text NOT NULL UNIQUE,
    -- user ids; NULL: every user of the tenant
    user_ids     text[],
    created_at   timestamptz NOT NULL,
    -- NULL: until revoked
    expires_at   timestamptz,
    UNIQUE (tenant_id, name)
);
