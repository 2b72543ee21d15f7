-- A withdrawn offer (the session changed) may be followed by a new offer of the same
-- session to the same clinician, so uniqueness covers only offers still in play.
ALTER TABLE offers DROP CONSTRAINT offers_session_id_clinician_id_key;
CREATE UNIQUE INDEX offers_once_per_pair ON offers (session_id, clinician_id)
    WHERE status <> 'withdrawn';
