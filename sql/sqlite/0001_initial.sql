-- tsps schema for the embedded SQLite default.
-- UUIDs are hyphenated lower-case TEXT; timestamps are RFC 3339 TEXT in UTC with a
-- fixed microsecond width ("2026-01-02T03:04:05.000006Z"), so text order is time order.
-- Foreign keys need PRAGMA foreign_keys = ON, which the store sets on every connection.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    domain      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    extension     TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    portal_login  TEXT,
    created_at    TEXT NOT NULL,
    UNIQUE (tenant_id, extension),
    UNIQUE (tenant_id, portal_login),
    -- target of the composite keys below: a child row names its user and that user's tenant
    UNIQUE (tenant_id, id)
);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    sip_username  TEXT NOT NULL,
    ha1_md5       TEXT NOT NULL,
    ha1_sha256    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    UNIQUE (tenant_id, sip_username),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX devices_user_idx ON devices (user_id);

CREATE TABLE dids (
    number      TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX dids_tenant_idx ON dids (tenant_id);
CREATE INDEX dids_user_idx ON dids (tenant_id, user_id);

CREATE TABLE trunks (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    peer_host        TEXT NOT NULL,
    peer_port        INTEGER NOT NULL CHECK (peer_port BETWEEN 1 AND 65535),
    transport        TEXT NOT NULL CHECK (transport IN ('udp', 'tcp')),
    username         TEXT,
    password         TEXT,
    -- JSON array of strings: addresses or CIDR blocks
    inbound_sources  TEXT NOT NULL DEFAULT '[]',
    created_at       TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE bindings (
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    contact     TEXT NOT NULL,
    received    TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    cseq        INTEGER NOT NULL CHECK (cseq >= 0),
    PRIMARY KEY (tenant_id, device_id, contact),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX bindings_expires_idx ON bindings (expires_at);

CREATE TABLE call_records (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    direction       TEXT NOT NULL,
    caller          TEXT NOT NULL,
    callee          TEXT NOT NULL,
    -- CDRs outlive the users they mention
    caller_user_id  TEXT REFERENCES users (id) ON DELETE SET NULL,
    callee_user_id  TEXT REFERENCES users (id) ON DELETE SET NULL,
    started_at      TEXT NOT NULL,
    answered_at     TEXT,
    ended_at        TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    hangup_by       TEXT
);
CREATE INDEX call_records_tenant_started_idx ON call_records (tenant_id, started_at DESC);

CREATE TABLE call_legs (
    call_id      TEXT NOT NULL REFERENCES call_records (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    role         TEXT NOT NULL,
    target       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    answered_at  TEXT,
    ended_at     TEXT,
    status_code  INTEGER CHECK (status_code BETWEEN 100 AND 699),
    PRIMARY KEY (call_id, id)
);
