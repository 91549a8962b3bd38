-- Portal login (PostgreSQL): a role and an optional password per user, and the sessions
-- of logged-in users. Same tables and keys as sql/sqlite/0004_portal_auth.sql.

ALTER TABLE users ADD COLUMN role text NOT NULL DEFAULT 'user'
    CHECK (role IN ('user', 'tenant_admin'));
-- argon2id PHC string; NULL: the user cannot log in
ALTER TABLE users ADD COLUMN password_hash text;

CREATE TABLE user_sessions (
    -- hex SHA-256 of the session id in the cookie: a leaked table grants no session
    id_hash       text PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    user_id       uuid NOT NULL,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    -- absolute end; the idle timeout counts from last_seen_at
    expires_at    timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX user_sessions_user_idx ON user_sessions (tenant_id, user_id);
CREATE INDEX user_sessions_expires_idx ON user_sessions (expires_at);
CREATE INDEX user_sessions_last_seen_idx ON user_sessions (last_seen_at);

-- a user's call history: calls where the user is caller or callee, newest first
CREATE INDEX call_records_caller_idx ON call_records (tenant_id, caller_user_id, started_at DESC);
CREATE INDEX call_records_callee_idx ON call_records (tenant_id, callee_user_id, started_at DESC);
