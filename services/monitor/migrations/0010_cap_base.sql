-- Issue 12: each sector's cap in hours, where the monitor can know its base. The hours a
-- sector offered over matching's window (what its cap is a percentage of) are matching's
-- own figure, published only inside `sector.drain_alert` and `sector.drain_cleared`:
-- the latest of either is kept per sector, with when matching counted it.
CREATE TABLE drain_cap_bases (
    region        text NOT NULL,
    sector        text NOT NULL,
    event_id      uuid NOT NULL,
    offered_hours double precision NOT NULL,
    window_days   integer NOT NULL,
    counted_at    timestamptz NOT NULL,
    PRIMARY KEY (region, sector)
);
-- Alerts kept before this migration carry their base: the latest alert of each sector
-- (a clearing's base was not kept; `fairshare monitor rebuild` reads them again).
INSERT INTO drain_cap_bases (region, sector, event_id, offered_hours, window_days, counted_at)
    SELECT region, sector, event_id, offered_hours, window_days, raised_at FROM drain_alerts
    ON CONFLICT DO NOTHING;
