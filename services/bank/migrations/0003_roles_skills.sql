ALTER TABLE offers RENAME COLUMN profession TO role;
ALTER TABLE clinicians ADD COLUMN skills text[] NOT NULL DEFAULT '{}';
