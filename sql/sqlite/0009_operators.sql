-- Platform operators (SQLite): accounts that log in to the portal as the operator,
-- outside every tenant, and their sessions. Same tables and keys as
-- sql/postgres/0009_operators.sql.

CREATE TABLE operators (
    -- lower case; unique on the platform
    login          TEXT PRIMARY KEY NOT NULL,
    -- argon2id PHC string
    password_hash  TEXT NOT NULL,
    created_at     TEXT NOT NULL
);

CREATE TABLE operator_sessions (
    -- hex SHA-256 of the session id in the cookie, as in user_sessions
    id_hash       TEXT PRIMARY KEY NOT NULL,
    login         TEXT NOT NULL REFERENCES operators (login) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    -- absolute end; the idle timeout counts from last_seen_at
    expires_at    TEXT NOT NULL
);
CREATE INDEX operator_sessions_login_idx ON operator_sessions (login);
CREATE INDEX operator_sessions_expires_idx ON operator_sessions (expires_at);
CREATE INDEX operator_sessions_last_seen_idx ON operator_sessions (last_seen_at);
