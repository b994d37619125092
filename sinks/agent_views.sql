-- Agents and quality (CONTRACT §7). Like sinks/reporting_views.sql, a template: days and weeks
-- are in the rules' `reporting_timezone` and the sample size is the rules'
-- `qa.sample_per_agent_week`, both constants of the view, written in by
-- `sinks.migrate.apply_reporting_views`. Every fact is attributed to the agent who acted, as the
-- desk recorded it on the event (processors/desk.py); docs/ANALYTICS.md explains every column.

-- Per reporting day of the action and agent. Each source row is one fact of one agent; the
-- outer query sums them. Rows without an agent (a call answered by nobody named, a survey on a
-- ticket nobody replied to) belong to no agent and are left out.
CREATE {or_replace} VIEW {if_not_exists} supportstream.agent_daily AS
WITH breached_first AS
(
    SELECT ticket_id
    FROM supportstream.sla_metrics FINAL
    WHERE metric = 'first_response' AND cycle = 1
      AND (status = 'breached' OR breached_at IS NOT NULL)
)
SELECT
    toDate(at, '{reporting_timezone}') AS day,
    actor AS agent_id,
    sum(reply) AS public_replies,
    sum(first) AS first_responses,
    sum(first AND ticket_id IN breached_first) AS first_responses_breached,
    sum(solve) AS solved,
    sum(reopen) AS reopened,
    sum(handoff) AS handoffs_out,
    sum(kind = 'csat') AS csat_responses,
    sum(kind = 'csat' AND score BETWEEN 4 AND 5) AS csat_positive,
    sum(kind = 'csat' AND score BETWEEN 1 AND 2) AS csat_negative,
    sum(kind = 'nps') AS nps_responses,
    sum(kind = 'nps' AND score BETWEEN 9 AND 10) AS nps_promoters,
    sum(kind = 'nps' AND score BETWEEN 0 AND 6) AS nps_detractors
FROM
(
    SELECT
        at,
        ticket_id,
        multiIf(
            event_type = 'ticket.solved', JSONExtractString(data, 'by'),
            event_type = 'ticket.reopened', JSONExtractString(data, 'solved_by'),
            event_type = 'ticket.assigned', JSONExtractString(data, 'previous_agent_id'),
            agent_id
        ) AS actor,
        toUInt64(event_type = 'agent.replied') AS reply,
        toUInt64(event_type = 'agent.replied' AND JSONExtractBool(data, 'first')) AS first,
        toUInt64(event_type = 'ticket.solved') AS solve,
        toUInt64(event_type = 'ticket.reopened') AS reopen,
        toUInt64(event_type = 'ticket.assigned') AS handoff,
        if(event_type = 'survey.answered', JSONExtractString(data, 'kind'), '') AS kind,
        JSONExtractInt(data, 'score') AS score
    FROM supportstream.events FINAL
    WHERE (event_type = 'agent.replied' AND JSONExtractBool(data, 'public'))
       OR event_type IN ('ticket.solved', 'ticket.reopened', 'survey.answered')
       OR (event_type = 'ticket.assigned' AND JSONExtractBool(data, 'handoff'))
)
WHERE actor != ''
GROUP BY day, actor;

-- The week's review sample: per ISO week (Monday, reporting time zone) of `solved_at` and per
-- most active agent, every solved ticket with a flag, and the {qa_sample_per_agent_week}
-- unflagged ones with the smallest h(ticket_id) (`sample_key`). Tickets nobody replied to
-- publicly have no most active agent and are not sampled.
CREATE {or_replace} VIEW {if_not_exists} supportstream.qa_sample AS
WITH breached AS
(
    SELECT DISTINCT ticket_id
    FROM supportstream.sla_metrics FINAL
    WHERE status = 'breached' OR breached_at IS NOT NULL
)
SELECT week, agent_id, ticket_id, reason, solved_at, sample_key
FROM
(
    SELECT
        week, agent_id, ticket_id, reason, solved_at, sample_key,
        row_number() OVER (
            PARTITION BY week, agent_id, reason = 'random' ORDER BY sample_key, ticket_id
        ) AS rank
    FROM
    (
        SELECT
            toMonday(assumeNotNull(solved_at), '{reporting_timezone}') AS week,
            most_active_agent AS agent_id,
            ticket_id,
            multiIf(
                reopen_count > 0, 'reopened',
                ticket_id IN breached, 'breached',
                handoff_count >= 2, 'handoffs',
                csat IS NOT NULL AND csat <= 2, 'low_csat',
                'random'
            ) AS reason,
            assumeNotNull(solved_at) AS solved_at,
            sample_key
        FROM supportstream.tickets FINAL
        WHERE status = 'solved' AND solved_at IS NOT NULL AND most_active_agent != ''
    )
)
WHERE reason != 'random' OR rank <= {qa_sample_per_agent_week};

-- One row per (ticket, reviewer): the latest review (by `at`, then input order within an
-- instant) replaces the earlier ones. `agent_id` is the ticket's most active agent when
-- reviewed; `quality` NULL when every criterion was N/A.
CREATE {or_replace} VIEW {if_not_exists} supportstream.qa_reviews AS
SELECT
    ticket_id,
    JSONExtractString(data, 'reviewer_id') AS reviewer_id,
    agent_id,
    at,
    JSONExtract(data, 'quality', 'Nullable(Float64)') AS quality,
    JSONExtractBool(data, 'critical_failed') AS critical_failed,
    JSONExtractString(data, 'scores') AS scores,
    JSONExtractString(data, 'comment') AS comment,
    event_id
FROM supportstream.events FINAL
WHERE event_type = 'qa.reviewed'
ORDER BY ticket_id, reviewer_id, at DESC, JSONExtractInt(data, 'sequence') DESC
LIMIT 1 BY ticket_id, reviewer_id;

-- Per ISO week of the review (Monday, reporting time zone) and reviewed agent.
CREATE {or_replace} VIEW {if_not_exists} supportstream.qa_agent_weekly AS
SELECT
    toMonday(at, '{reporting_timezone}') AS week,
    agent_id,
    count() AS reviews,
    avg(quality) AS quality,
    countIf(critical_failed) AS critical_failed
FROM supportstream.qa_reviews
GROUP BY week, agent_id;
