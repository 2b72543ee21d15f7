-- A clinician who declined (or gave up) a session as it stood may be offered it again
-- once the organisation moves it: they never said no to the new time. So an offer is
-- unique per session, clinician and time, among offers still in play.
DROP INDEX offers_once_per_pair;
CREATE UNIQUE INDEX offers_once_per_pair ON offers (session_id, clinician_id, starts_at, ends_at)
    WHERE status <> 'withdrawn';
