-- Events now travel on one topic per producing service (its stream), so rows still
-- waiting to be published move from their type's topic to the producer's stream.
UPDATE outbox SET topic = left(topic, length(topic) - length(event_type)) || (
    CASE
        WHEN event_type LIKE 'session.posted' OR event_type LIKE 'session.amended'
          OR event_type LIKE 'session.cancelled' OR event_type LIKE 'session.unfilled'
            THEN 'vacancies'
        WHEN event_type IN ('availability.offered', 'availability.withdrawn', 'offer.accepted',
                            'offer.declined', 'clinician.transferred', 'booking.cancelled')
            THEN 'bank'
        ELSE 'matching'
    END) || '.events'
WHERE published_at IS NULL AND right(topic, length(event_type)) = event_type;

-- The next offset the broker should hand out on each partition this service wrote
-- to, as last acknowledged. A broker whose log ends before it has lost what we
-- published (Tansu keeps logs in memory): the relay then publishes the kept rows again.
CREATE TABLE outbox_marks (
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Published rows are kept for a while (to replay after a broker loss), then pruned.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX inbox_processed ON inbox (processed_at);
