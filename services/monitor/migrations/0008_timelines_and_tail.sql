-- Issue 12: each session's timeline beside its figures, and a live tail of more kinds
-- of event than the activity list had.

-- When the session is, when it was posted and when its standing booking was made
-- (services/monitor/domain.py, `Timeline`): periods, trends, time to fill and the
-- at-risk list read these by index instead of the facts' JSON.
ALTER TABLE session_facts
    ADD COLUMN starts_at timestamptz,
    ADD COLUMN ends_at   timestamptz,
    ADD COLUMN posted_at timestamptz,
    ADD COLUMN filled_at timestamptz,
    -- Minutes from posted_at to filled_at (Timeline.minutes_to_fill): the percentiles
    -- are taken of the domain's own figure.
    ADD COLUMN fill_minutes double precision;

-- Sessions kept before this migration: the same timeline worked out here from their
-- facts. Start and end: vacancies' latest word that is not a closing one (ordered as
-- domain._said_order orders them), else its first closing word. Posted: the post's
-- time. Filled: of a session counted filled, its latest fill that no clinician gave up;
-- the domain's rule also drops fills an amendment released, but a session counted
-- filled has at most one fill after its last release, and it is the latest (a fill of
-- an old offer is booked before matching reads the amendment, so before any new offer).
UPDATE session_facts AS f SET
    (starts_at, ends_at) = (
        SELECT (e->>'starts_at')::timestamptz, (e->>'ends_at')::timestamptz
        FROM jsonb_array_elements(f.facts->'stated') AS e,
             LATERAL (SELECT e->>'said' IN ('cancelled', 'unfilled') AS closing,
                             (e->>'at')::timestamptz AS at,
                             CASE e->>'said' WHEN 'posted' THEN 0 WHEN 'amended' THEN 1
                                 WHEN 'unfilled' THEN 2 ELSE 3 END AS rank,
                             (e->>'event_id')::uuid AS id) AS k
        ORDER BY k.closing,
                 CASE WHEN NOT k.closing THEN k.at END DESC,
                 CASE WHEN NOT k.closing THEN k.rank END DESC,
                 CASE WHEN NOT k.closing THEN k.id END DESC,
                 k.at, k.rank, k.id
        LIMIT 1),
    posted_at = (
        SELECT min((e->>'at')::timestamptz)
        FROM jsonb_array_elements(f.facts->'stated') AS e WHERE e->>'said' = 'posted'),
    filled_at = CASE WHEN f.filled > 0 THEN (
        SELECT max((e->>'at')::timestamptz)
        FROM jsonb_array_elements(f.facts->'filled') AS e
        WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(f.facts->'given_up') AS g
                          WHERE g->>'offer_id' = e->>'offer_id')) END
WHERE f.facts ? 'stated' OR f.facts ? 'filled';
-- Two services' clocks: a fill "before" its post is skew, no wait at all (as the domain).
UPDATE session_facts SET fill_minutes =
    greatest(0, extract(epoch FROM filled_at - posted_at) / 60)::float8
WHERE filled_at IS NOT NULL AND posted_at IS NOT NULL;

CREATE INDEX session_facts_starts ON session_facts (region, starts_at);

-- The live tail: besides posted, offered and filled (the activity list's stages), the
-- other lifecycle events, moves and drain alerts, each with a line of detail. `stage`
-- stays for the activity list (/api/recent), null for the other kinds.
ALTER TABLE recent_events
    ALTER COLUMN stage DROP NOT NULL,
    ADD COLUMN event_type text,
    ADD COLUMN to_sector  text,
    ADD COLUMN detail     text;
UPDATE recent_events SET event_type = 'session.' || stage;
ALTER TABLE recent_events ALTER COLUMN event_type SET NOT NULL;
CREATE INDEX recent_events_region_newest ON recent_events (region, occurred_at DESC);
