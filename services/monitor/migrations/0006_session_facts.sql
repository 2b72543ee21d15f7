-- Issue 12: the session figures follow every lifecycle event, in any order.
--
-- Each session keeps everything read about it (its facts, as JSON) and the figures
-- those facts give (services/monitor/domain.py); the counters per region and sector
-- are the sum of the sessions' figures, changed in the same transaction as they are.
CREATE TABLE session_facts (
    session_id     uuid PRIMARY KEY,
    facts          jsonb NOT NULL DEFAULT '{}',
    -- Where the session counts, and what it adds there; null region while nothing
    -- read says where it is (a booking given up, read before anything else).
    region         text,
    sector         text,
    posted         integer NOT NULL DEFAULT 0,
    offered        integer NOT NULL DEFAULT 0,
    filled         integer NOT NULL DEFAULT 0,
    cancelled      integer NOT NULL DEFAULT 0,
    unfilled       integer NOT NULL DEFAULT 0,
    late_cancelled integer NOT NULL DEFAULT 0,
    late_given_up  integer NOT NULL DEFAULT 0,
    CHECK ((region IS NULL) = (sector IS NULL))
);

ALTER TABLE sector_counts
    ADD COLUMN cancelled      integer NOT NULL DEFAULT 0,
    ADD COLUMN unfilled       integer NOT NULL DEFAULT 0,
    ADD COLUMN late_cancelled integer NOT NULL DEFAULT 0,
    ADD COLUMN late_given_up  integer NOT NULL DEFAULT 0;

-- The old counters only went up, and the events behind them were not kept, so they
-- can't be put right here: they start again from nothing, and `fairshare monitor
-- rebuild` replays the topics into them. The activity list and the drain ledger
-- were right and stay.
TRUNCATE sector_counts;
DELETE FROM inbox WHERE event_type IN ('session.posted', 'session.amended',
    'session.cancelled', 'session.unfilled', 'session.offered', 'session.filled',
    'booking.cancelled');

-- Which stages each session has reached, as `fairshare check` reads them: now read
-- off the sessions' figures (filled means filled now).
DROP TABLE session_stages;
CREATE VIEW session_stages AS
    SELECT session_id, 'posted'::text AS stage FROM session_facts WHERE posted > 0
    UNION ALL SELECT session_id, 'offered' FROM session_facts WHERE offered > 0
    UNION ALL SELECT session_id, 'filled' FROM session_facts WHERE filled > 0;

-- Replaced by the facts: a fill's undoing is worked out from them in any order.
DROP TABLE standing_fills, undone_fills, closed_sessions;

-- The latest `sector.drain_cleared` of each sector, kept even when it is read before
-- the alert it ends (a replay after a broker loss), so that alert is not shown standing.
CREATE TABLE drain_clears (
    region     text NOT NULL,
    sector     text NOT NULL,
    cleared_at timestamptz NOT NULL,
    PRIMARY KEY (region, sector)
);
INSERT INTO drain_clears (region, sector, cleared_at)
    SELECT region, sector, cleared_at FROM drain_alerts WHERE cleared_at IS NOT NULL;
