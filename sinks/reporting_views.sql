-- The daily projections' views: their days are days in the rules' `reporting_timezone`
-- (CONTRACT §2), which SQL cannot look up at query time (ClickHouse needs a constant time zone).
-- `sinks.migrate.apply_reporting_views` creates them from this template: `migrate` with UTC
-- when they do not exist yet, `replay` / `demo` / `worker` with the rules' time zone.

-- SLA outcomes per reporting day the cycle started, policy and metric. A cycle that breached counts as
-- breached even if it was fulfilled or cancelled later (a breach stands, CONTRACT §3).
CREATE {or_replace} VIEW {if_not_exists} supportstream.sla_achievement AS
SELECT
    toDate(started_at, '{reporting_timezone}') AS day,
    policy,
    metric,
    countIf(status = 'met' AND breached_at IS NULL) AS met,
    countIf(status = 'breached' OR breached_at IS NOT NULL) AS breached,
    countIf(status IN ('active', 'paused') AND breached_at IS NULL) AS running,
    countIf(status = 'cancelled' AND breached_at IS NULL) AS cancelled,
    count() AS cycles,
    if(met + breached = 0, NULL, met / (met + breached)) AS achievement
FROM supportstream.sla_metrics FINAL
WHERE policy != ''
GROUP BY day, policy, metric;

-- Survey answers come from `survey.answered` events: data = {"kind": "csat"|"nps", "score": n}.
-- CSAT per reporting day of the answer: positive = scores 4..5 (of 1..5).
CREATE {or_replace} VIEW {if_not_exists} supportstream.csat_daily AS
SELECT
    toDate(at, '{reporting_timezone}') AS day,
    count() AS responses,
    countIf(score BETWEEN 4 AND 5) AS positive,
    countIf(score BETWEEN 1 AND 2) AS negative,
    positive / responses AS csat,
    avg(score) AS avg_score
FROM
(
    SELECT at, JSONExtractInt(data, 'score') AS score
    FROM supportstream.events FINAL
    WHERE event_type = 'survey.answered' AND JSONExtractString(data, 'kind') = 'csat'
)
GROUP BY day;

-- NPS per reporting day: promoters 9..10, passives 7..8, detractors 0..6;
-- nps = % promoters - % detractors, from -100 to 100.
CREATE {or_replace} VIEW {if_not_exists} supportstream.nps_daily AS
SELECT
    toDate(at, '{reporting_timezone}') AS day,
    count() AS responses,
    countIf(score BETWEEN 9 AND 10) AS promoters,
    countIf(score BETWEEN 7 AND 8) AS passives,
    countIf(score BETWEEN 0 AND 6) AS detractors,
    100 * (promoters - detractors) / responses AS nps
FROM
(
    SELECT at, JSONExtractInt(data, 'score') AS score
    FROM supportstream.events FINAL
    WHERE event_type = 'survey.answered' AND JSONExtractString(data, 'kind') = 'nps'
)
GROUP BY day;

-- Customer sentiment index per reporting quarter, from NPS answers: attract = scores 8..10,
-- detract = scores 0..3, csi = attract / detract (NULL when nobody detracted).
CREATE {or_replace} VIEW {if_not_exists} supportstream.csi_quarterly AS
SELECT
    toStartOfQuarter(toDate(at, '{reporting_timezone}')) AS quarter,
    count() AS responses,
    countIf(score BETWEEN 8 AND 10) AS attract,
    countIf(score BETWEEN 0 AND 3) AS detract,
    if(detract = 0, NULL, attract / detract) AS csi
FROM
(
    SELECT at, JSONExtractInt(data, 'score') AS score
    FROM supportstream.events FINAL
    WHERE event_type = 'survey.answered' AND JSONExtractString(data, 'kind') = 'nps'
)
GROUP BY quarter;

-- First-response promises (CONTRACT §7) per reporting day the ticket opened, channel and
-- policy: kept = first public reply at or before promised_by, broken = later or none by then,
-- pending = neither yet. The median is exact (the mean of the two middle values for an even
-- count).
CREATE {or_replace} VIEW {if_not_exists} supportstream.promises_daily AS
SELECT
    toDate(opened_at, '{reporting_timezone}') AS day,
    channel,
    sla_policy AS policy,
    count() AS promises,
    countIf(promise_outcome = 'kept') AS kept,
    countIf(promise_outcome = 'broken') AS broken,
    countIf(promise_outcome = '') AS pending,
    quantileExactInclusive(0.5)(promise_estimate_seconds) AS median_estimate_seconds,
    if(kept + broken = 0, NULL, kept / (kept + broken)) AS kept_share
FROM supportstream.tickets FINAL
WHERE promised_by IS NOT NULL
GROUP BY day, channel, policy;
