-- API tokens of integrations (CTI clients) (SQLite): scoped to a tenant and optionally
-- to some of its users. Same table and keys as sql/postgres/0007_api_tokens.sql.

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- hex SHA-256 of the secret: a leaked table grants nothing
    secret_hash  TEXT NOT NULL UNIQUE,
    -- JSON array of user ids; NULL: every user of the tenant
    user_ids     TEXT,
    created_at   TEXT NOT NULL,
    -- NULL: until revoked
    expires_at   TEXT,
    UNIQUE (tenant_id, name)
);
