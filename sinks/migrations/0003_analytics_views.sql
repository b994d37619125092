-- Views for the questions analysts ask most (CONTRACT §4). All read current state with FINAL,
-- so they answer the same whatever was delivered twice. The views with days in the reporting
-- time zone (sla_achievement, csat_daily, nps_daily, csi_quarterly) are in
-- sinks/reporting_views.sql. docs/ANALYTICS.md explains every column.

-- Tickets a customer opened within 7 days (inclusive: gap <= 168 h) after another of their
-- tickets was solved. Every solve counts, not only a ticket's latest: the instants come from
-- `ticket.solved` events and from `tickets.solved_at`. When several solves qualify, the latest
-- one (the smallest gap) is reported.
CREATE OR REPLACE VIEW supportstream.repeat_contacts AS
WITH
    tk AS
    (
        SELECT ticket_id, customer_id, opened_at, solved_at
        FROM supportstream.tickets FINAL
        WHERE customer_id != ''
    ),
    solves AS
    (
        SELECT DISTINCT ticket_id, solved_at
        FROM
        (
            SELECT ticket_id, at AS solved_at
            FROM supportstream.events FINAL
            WHERE event_type = 'ticket.solved'
            UNION ALL
            SELECT ticket_id, assumeNotNull(solved_at) AS solved_at
            FROM tk
            WHERE solved_at IS NOT NULL
        )
    )
SELECT
    t.ticket_id AS ticket_id,
    t.customer_id AS customer_id,
    t.opened_at AS opened_at,
    argMax(p.ticket_id, s.solved_at) AS previous_ticket_id,
    max(s.solved_at) AS previous_solved_at,
    (toUnixTimestamp64Milli(t.opened_at) - toUnixTimestamp64Milli(max(s.solved_at))) / 3600000
        AS gap_hours
FROM tk AS t
INNER JOIN tk AS p ON p.customer_id = t.customer_id
INNER JOIN solves AS s ON s.ticket_id = p.ticket_id
WHERE p.ticket_id != t.ticket_id
  AND s.solved_at <= t.opened_at
  AND toUnixTimestamp64Milli(t.opened_at) - toUnixTimestamp64Milli(s.solved_at) <= 7 * 86400000
GROUP BY t.ticket_id, t.customer_id, t.opened_at;

-- Per customer health over the 30 days up to the latest event instant in the warehouse
-- (max(events.at)), not now(): a replay of past weeks then answers about those weeks, and the
-- answer does not drift while nothing new arrives. Window = (latest - 30 days, latest].
-- churn_risk is a weighted score clipped to [0, 1]; docs/ANALYTICS.md gives the reasons.
CREATE OR REPLACE VIEW supportstream.customer_health AS
WITH
    (SELECT max(at) FROM supportstream.events) AS latest_at,
    latest_at - toIntervalDay(30) AS since
SELECT
    c.customer_id AS customer_id,
    multiIf(p.has_profile AND p.profile_tier != '', p.profile_tier, t.last_tier != '', t.last_tier, 'prospect')
        AS tier,
    if(p.has_profile AND p.profile_status != '', p.profile_status, 'active') AS status,
    t.tickets_30d AS tickets_30d,
    t.complaints_30d AS complaints_30d,
    b.breaches_30d AS breaches_30d,
    r.repeat_contacts_30d AS repeat_contacts_30d,
    if(s.has_csat, toNullable(s.last_csat_raw), NULL) AS last_csat,
    if(s.has_nps, toNullable(s.last_nps_raw), NULL) AS last_nps,
    round(
        if(
            status = 'churned',
            1.0,
            greatest(0.0, least(1.0,
                0.15 * least(complaints_30d, 2)
                + 0.10 * least(breaches_30d, 3)
                + 0.10 * least(repeat_contacts_30d, 2)
                + 0.25 * (s.has_csat AND s.last_csat_raw <= 2)
                + 0.20 * (s.has_nps AND s.last_nps_raw <= 6)
                - 0.10 * (s.has_csat AND s.last_csat_raw >= 4)
                - 0.10 * (s.has_nps AND s.last_nps_raw >= 9)
            ))
        ),
        3
    ) AS churn_risk,
    latest_at AS as_of
FROM
(
    SELECT DISTINCT customer_id
    FROM
    (
        SELECT customer_id FROM supportstream.tickets FINAL
        UNION ALL
        SELECT customer_id FROM supportstream.events FINAL WHERE event_type = 'customer.upserted'
    )
    WHERE customer_id != ''
) AS c
LEFT JOIN
(
    SELECT
        customer_id,
        countIf(opened_at > since) AS tickets_30d,
        countIf(opened_at > since AND kind = 'complaint') AS complaints_30d,
        argMax(tier, opened_at) AS last_tier
    FROM supportstream.tickets FINAL
    GROUP BY customer_id
) AS t ON t.customer_id = c.customer_id
LEFT JOIN
(
    SELECT tk.customer_id AS customer_id, count() AS breaches_30d
    FROM supportstream.sla_metrics AS m FINAL
    INNER JOIN (SELECT ticket_id, customer_id FROM supportstream.tickets FINAL) AS tk
        ON tk.ticket_id = m.ticket_id
    WHERE m.breached_at IS NOT NULL AND m.breached_at > since
    GROUP BY customer_id
) AS b ON b.customer_id = c.customer_id
LEFT JOIN
(
    SELECT customer_id, count() AS repeat_contacts_30d
    FROM supportstream.repeat_contacts
    WHERE opened_at > since
    GROUP BY customer_id
) AS r ON r.customer_id = c.customer_id
LEFT JOIN
(
    SELECT
        customer_id,
        countIf(kind = 'csat') > 0 AS has_csat,
        argMaxIf(score, (at, event_id), kind = 'csat') AS last_csat_raw,
        countIf(kind = 'nps') > 0 AS has_nps,
        argMaxIf(score, (at, event_id), kind = 'nps') AS last_nps_raw
    FROM
    (
        SELECT
            customer_id, at, event_id,
            JSONExtractString(data, 'kind') AS kind,
            toUInt8(JSONExtractUInt(data, 'score')) AS score
        FROM supportstream.events FINAL
        WHERE event_type = 'survey.answered'
    )
    GROUP BY customer_id
) AS s ON s.customer_id = c.customer_id
LEFT JOIN
(
    SELECT
        customer_id,
        true AS has_profile,
        argMax(JSONExtractString(data, 'tier'), (at, event_id)) AS profile_tier,
        argMax(JSONExtractString(data, 'status'), (at, event_id)) AS profile_status
    FROM supportstream.events FINAL
    WHERE event_type = 'customer.upserted'
    GROUP BY customer_id
) AS p ON p.customer_id = c.customer_id
SETTINGS join_use_nulls = 0;
