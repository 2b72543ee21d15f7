-- Why matching refused an acceptance, shown to the clinician.
ALTER TABLE offers ADD COLUMN refusal text;
