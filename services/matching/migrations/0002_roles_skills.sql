-- Sessions need a role (which several professions may fill) and skills.
ALTER TABLE sessions RENAME COLUMN profession TO role;
ALTER TABLE sessions ADD COLUMN skills text[] NOT NULL DEFAULT '{}';
ALTER TABLE availability ADD COLUMN skills text[] NOT NULL DEFAULT '{}';
