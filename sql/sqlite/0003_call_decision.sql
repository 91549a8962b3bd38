-- Why each call was routed as it was: the feature server's reasons, in order (JSON array
-- of strings). Written with the call record; shown by the portal.
ALTER TABLE call_records ADD COLUMN decision TEXT NOT NULL DEFAULT '[]';
