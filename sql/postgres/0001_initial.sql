-- tsps schema for PostgreSQL. Same tables and keys as sql/sqlite/0001_initial.sql.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    domain      text NOT NULL UNIQUE,
    name        text NOT NULL,
    time_zone   text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    extension     text NOT NULL,
    display_name  text NOT NULL,
    portal_login  text,
    created_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, extension),
    UNIQUE (tenant_id, portal_login),
    -- target of the composite keys below: a child row names its user and that user's tenant
    UNIQUE (tenant_id, id)
);

CREATE TABLE devices (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    user_id       uuid NOT NULL,
    sip_username  text NOT NULL,
    ha1_md5       text NOT NULL,
    ha1_sha256    text NOT NULL,
    created_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, sip_username),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX devices_user_idx ON devices (user_id);

CREATE TABLE dids (
    number      text PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX dids_tenant_idx ON dids (tenant_id);
CREATE INDEX dids_user_idx ON dids (tenant_id, user_id);

CREATE TABLE trunks (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL,
    peer_host        text NOT NULL,
    peer_port        integer NOT NULL CHECK (peer_port BETWEEN 1 AND 65535),
    transport        text NOT NULL CHECK (transport IN ('udp', 'tcp')),
    username         text,
    password         text,
    -- addresses or CIDR blocks
    inbound_sources  text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE bindings (
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    device_id   uuid NOT NULL,
    contact     text NOT NULL,
    received    text NOT NULL,
    expires_at  timestamptz NOT NULL,
    call_id     text NOT NULL,
    cseq        bigint NOT NULL CHECK (cseq >= 0),
    PRIMARY KEY (tenant_id, device_id, contact),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX bindings_expires_idx ON bindings (expires_at);

CREATE TABLE call_records (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    direction       text NOT NULL,
    caller          text NOT NULL,
    callee          text NOT NULL,
    -- CDRs outlive the users they mention
    caller_user_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    callee_user_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    started_at      timestamptz NOT NULL,
    answered_at     timestamptz,
    ended_at        timestamptz NOT NULL,
    outcome         text NOT NULL,
    hangup_by       text
);
CREATE INDEX call_records_tenant_started_idx ON call_records (tenant_id, started_at DESC);

CREATE TABLE call_legs (
    call_id      uuid NOT NULL REFERENCES call_records (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    role         text NOT NULL,
    target       text NOT NULL,
    started_at   timestamptz NOT NULL,
    answered_at  timestamptz,
    ended_at     timestamptz,
    status_code  integer CHECK (status_code BETWEEN 100 AND 699),
    PRIMARY KEY (call_id, id)
);
