-- A ledger true at every moment (issue 10): a session move stands exactly while its
-- cross-sector booking stands. A released booking (the session amended, cancelled or
-- gone unfilled, or the clinician cancelling) reverses its move, which is kept with
-- when and why; a later refill of the session records a new move. So a session may
-- have any number of reversed moves but at most one live one.
ALTER TABLE moves
    ADD COLUMN reversed_at  timestamptz,
    ADD COLUMN reversed_why text,
    -- False until `move.reversed` is in the outbox: the repair below can't write the
    -- event itself (it doesn't know the topic), the service's sweep publishes it.
    ADD COLUMN reversal_published boolean NOT NULL DEFAULT true;
ALTER TABLE moves DROP CONSTRAINT moves_session_id_key;
CREATE UNIQUE INDEX moves_live_per_session ON moves (session_id)
    WHERE reversed_at IS NULL AND session_id IS NOT NULL;
CREATE INDEX moves_unpublished_reversals ON moves (region) WHERE NOT reversal_published;

-- Repair: every live session move whose booking no longer stands is reversed now.
UPDATE moves m SET reversed_at = now(), reversed_why = 'repaired', reversal_published = false
WHERE m.kind = 'session' AND m.reversed_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM bookings b
                  WHERE b.session_id = m.session_id AND b.clinician_id = m.clinician_id);

-- Hours offered count towards the sector the clinician belonged to when the window
-- began: a transfer rehomes their windows for planning but leaves the hours they had
-- offered with the sector they offered them from (the transfer itself is the charge).
-- NULL: the window's home_sector.
ALTER TABLE availability ADD COLUMN offered_sector text;
