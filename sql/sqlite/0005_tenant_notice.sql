-- A notice from the tenant admin, shown on every user's portal home page.
ALTER TABLE tenant_settings ADD COLUMN notice TEXT;
