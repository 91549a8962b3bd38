-- The subscriber table (SQLite): who may watch a user (busy lamps, presence, the
-- portal's status lights). A user without a row may be watched by anyone of the
-- tenant; a row restricts the user to the listed watchers (an empty list: nobody).
-- Same table and keys as sql/postgres/0008_watch_rules.sql.

CREATE TABLE watch_rules (
    tenant_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    -- JSON array of the user ids allowed to watch (users of the same tenant)
    watcher_ids  TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
