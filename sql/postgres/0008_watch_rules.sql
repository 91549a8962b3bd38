-- The subscriber table (PostgreSQL): who may watch a user (busy lamps, presence, the
-- portal's status lights). A user without a row may be watched by anyone of the
-- tenant; a row restricts the user to the listed watchers (an empty list: nobody).
-- Same table and keys as sql/sqlite/0008_watch_rules.sql.

CREATE TABLE watch_rules (
    tenant_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    -- the user ids allowed to watch (users of the same tenant)
    watcher_ids  text[] NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
