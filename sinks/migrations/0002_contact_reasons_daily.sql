-- contact_reasons_daily: tickets opened per (day in the reporting time zone, category, channel,
-- tier). Analysts read it with `sum(tickets) ... GROUP BY` (CONTRACT §4).
--
-- Why a VIEW over `tickets FINAL` and not a SummingMergeTree fed by a materialized view:
--   * A SummingMergeTree adds every row it is given. Under at-least-once delivery a batch can be
--     delivered twice with *different* batch boundaries (a crash mid-run, a restart from an
--     older offset, a dedup window that has moved on): the insert token no longer matches, the
--     counts are added twice, and no merge can ever take them back out. Correct only if every
--     retry is byte-identical, which at-least-once does not promise.
--   * A materialized view fed from `tickets` would also count every snapshot of a ticket, not
--     the ticket; fed from `ticket.opened` events it has the double-add problem above.
--   * `tickets FINAL` holds exactly one row per ticket whatever was delivered how often, and
--     `opened_day`, `category`, `channel`, `tier` are decided when the ticket opens and never
--     change, so this view is exactly idempotent: replaying the same input any number of times
--     changes no sum. Its cost is a scan of the ticket table, small next to `events`.
--   * If that scan ever becomes too slow, the idempotent way to pre-aggregate is an
--     AggregatingMergeTree holding uniqExactState(ticket_id) per key (a set union is idempotent),
--     behind a view that keeps this name and these columns.
-- `opened_day` is computed by the processors in the rules' reporting_timezone, which SQL does
-- not know; that is why the day comes from the ticket row rather than from toDate(opened_at).
CREATE OR REPLACE VIEW supportstream.contact_reasons_daily AS
SELECT
    opened_day AS day,
    category,
    channel,
    tier,
    count() AS tickets
FROM supportstream.tickets FINAL
GROUP BY day, category, channel, tier;
