-- Remote answer: the device answers a ringing call when tsps tells it to (NOTIFY
-- Event: talk).
ALTER TABLE devices ADD COLUMN remote_answer INTEGER NOT NULL DEFAULT 0;

-- A user's external phones (mobiles used as devices, rung through the tenant's trunk).
-- The id shares the device id space: the API takes it wherever a device id goes.
CREATE TABLE external_phones (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    -- E.164 with leading '+', normalised by the tenant's dialing rules
    number      TEXT NOT NULL,
    label       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    UNIQUE (tenant_id, user_id, number),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX external_phones_user_idx ON external_phones (user_id);
