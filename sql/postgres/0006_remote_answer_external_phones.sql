-- Remote answer: the device answers a ringing call when tsps tells it to (NOTIFY
-- Event: talk).
ALTER TABLE devices ADD COLUMN remote_answer boolean NOT NULL DEFAULT false;

-- A user's external phones (mobiles used as devices, rung through the tenant's trunk).
-- The id shares the device id space: the API takes it wherever a device id goes.
CREATE TABLE external_phones (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    -- E.164 with leading '+', normalised by the tenant's dialing rules
    number      text NOT NULL,
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, user_id, number),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX external_phones_user_idx ON external_phones (user_id);
