-- The digest algorithms a device is challenged with (JSON array of "MD5" / "SHA-256",
-- preferred first); empty: the platform's list. Same column as on PostgreSQL.
ALTER TABLE devices ADD COLUMN digest_algorithms TEXT NOT NULL DEFAULT '[]';
