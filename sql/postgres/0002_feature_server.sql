-- The personal feature server (PostgreSQL): per-user profile and presence, the tenant
-- tier's policy per user, the tenant's dialing rules, and contacts with their numbers.
-- Same tables and keys as sql/sqlite/0002_feature_server.sql.

CREATE TABLE user_profiles (
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    -- JSON of tsps_actors::feature::Profile; NULL: the default profile (only a
    -- presence was set), so a later change of the defaults reaches such users
    profile     text,
    presence    text NOT NULL DEFAULT 'available'
                CHECK (presence IN ('available', 'busy', 'away', 'in_meeting', 'do_not_disturb')),
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE user_policies (
    tenant_id     uuid NOT NULL,
    user_id       uuid NOT NULL,
    mode          text NOT NULL CHECK (mode IN ('accept', 'reject', 'external')),
    -- the user's own feature server, exactly when mode is external
    external_uri  text,
    updated_at    timestamptz NOT NULL,
    CHECK ((mode = 'external') = (external_uri IS NOT NULL)),
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE tenant_settings (
    tenant_id             uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    country_code          text NOT NULL,
    national_prefix       text NOT NULL,
    international_prefix  text NOT NULL,
    updated_at            timestamptz NOT NULL
);

CREATE TABLE contacts (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- NULL: shared with the whole tenant (a NULL key is not checked against users)
    owner_user_id  uuid,
    name           text NOT NULL,
    company        text,
    email          text,
    handling_code  text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    -- target of contact_numbers' composite key
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX contacts_owner_idx ON contacts (tenant_id, owner_user_id, name);

CREATE TABLE contact_numbers (
    contact_id   uuid NOT NULL,
    tenant_id    uuid NOT NULL,
    -- order as entered
    position     integer NOT NULL,
    number_e164  text NOT NULL,
    label        text,
    PRIMARY KEY (contact_id, number_e164),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
-- the call path looks callers up by number within a tenant
CREATE INDEX contact_numbers_number_idx ON contact_numbers (tenant_id, number_e164);
