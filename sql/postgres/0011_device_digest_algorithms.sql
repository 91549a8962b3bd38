-- The digest algorithms a device is challenged with ("MD5" / "SHA-256", preferred
-- first); empty: the platform's list. Same column as on SQLite.
ALTER TABLE devices ADD COLUMN digest_algorithms text[] NOT NULL DEFAULT '{}';
