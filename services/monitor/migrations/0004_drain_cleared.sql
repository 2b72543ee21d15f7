-- When matching said a sector's alert ended (`sector.drain_cleared`), if it has.
ALTER TABLE drain_alerts ADD COLUMN cleared_at timestamptz;
