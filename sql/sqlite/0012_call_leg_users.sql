-- The user whose phone (or external phone) each leg rang: a call that reached a user
-- by a transfer or a forward is in that user's history. Older legs have none.
ALTER TABLE call_legs ADD COLUMN user_id TEXT REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX call_legs_user_idx ON call_legs (user_id, call_id);
