-- CONTRACT §7 "Honest promises" and "Incidents" (docs/PROMISES.md, docs/INCIDENTS.md,
-- docs/ANALYTICS.md). The view promises_daily has days in the reporting time zone, so it is in
-- sinks/reporting_views.sql.

-- The ticket's first-response promise and the incident it belongs to (CONTRACT §4).
ALTER TABLE supportstream.tickets
    ADD COLUMN IF NOT EXISTS promised_by Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS promise_estimate_seconds Nullable(Float64),
    ADD COLUMN IF NOT EXISTS promise_basis LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS promise_outcome LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS incident_id String DEFAULT '';

-- One row per incident after FINAL: the highest `version` of the incident wins.
CREATE TABLE IF NOT EXISTS supportstream.incidents
(
    incident_id String,                         -- `{category}#{k}`
    category    LowCardinality(String),
    opened_at   DateTime64(3, 'UTC'),
    closed_at   Nullable(DateTime64(3, 'UTC')), -- NULL while open
    tickets     UInt32,                         -- tickets carrying the incident id
    customers   UInt32,                         -- distinct customers among them
    baseline    Float64,                        -- b at opening (tickets per window)
    version     UInt64,
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY incident_id
SETTINGS non_replicated_deduplication_window = 10000;

-- The incidents table is filled by the warehouse from the incident events as they are
-- inserted (each carries the incident after its change), so every producer of `events` (the
-- replay's writer, the production sink) fills it, and a redelivered event is one more row of
-- the same version, which FINAL collapses.
CREATE MATERIALIZED VIEW IF NOT EXISTS supportstream.incidents_from_events
TO supportstream.incidents
AS
SELECT
    JSONExtractString(data, 'incident_id') AS incident_id,
    JSONExtractString(data, 'category') AS category,
    fromUnixTimestamp64Milli(JSONExtractInt(data, 'opened_at'), 'UTC') AS opened_at,
    if(
        JSONExtract(data, 'closed_at', 'Nullable(Int64)') IS NULL,
        CAST(NULL, 'Nullable(DateTime64(3, \'UTC\'))'),
        fromUnixTimestamp64Milli(assumeNotNull(JSONExtract(data, 'closed_at', 'Nullable(Int64)')), 'UTC')
    ) AS closed_at,
    toUInt32(JSONExtractUInt(data, 'tickets')) AS tickets,
    toUInt32(JSONExtractUInt(data, 'customers')) AS customers,
    JSONExtractFloat(data, 'baseline') AS baseline,
    toUInt64(JSONExtractUInt(data, 'version')) AS version,
    at AS updated_at
FROM supportstream.events
WHERE event_type IN ('incident.opened', 'incident.joined', 'incident.closed');
