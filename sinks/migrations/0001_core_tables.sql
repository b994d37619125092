-- The tables the projection writer fills (CONTRACT §4). Database `supportstream`, every instant
-- DateTime64(3, 'UTC').
--
-- Idempotence under at-least-once delivery (see sinks/writer.py for the whole argument):
--   * every table is a ReplacingMergeTree keyed by the row's identity, so a redelivered row is
--     one row after FINAL / a merge (tickets and sla_metrics keep the highest `version`);
--   * non_replicated_deduplication_window makes the table remember the insert tokens of its
--     last N inserts, so re-sending a batch the writer already sent (same token) writes nothing
--     and `count()` without FINAL does not move. On a Replicated engine the
--     replicated_deduplication_window plays the same role.

CREATE DATABASE IF NOT EXISTS supportstream;

-- Every domain event, one row each. `data` is the event's own fields as JSON text (sorted keys).
-- The typed convenience columns are filled by the server from `data` (DEFAULT), so any producer
-- gets them and the writer sends only what the contract names.
CREATE TABLE IF NOT EXISTS supportstream.events
(
    event_id        String,
    event_type      LowCardinality(String),
    at              DateTime64(3, 'UTC'),
    ticket_id       String,
    conversation_id String,
    customer_id     String,
    data            String CODEC(ZSTD(3)),
    channel         LowCardinality(String) DEFAULT JSONExtractString(data, 'channel'),
    agent_id        String DEFAULT JSONExtractString(data, 'agent_id'),
    metric          LowCardinality(String) DEFAULT JSONExtractString(data, 'metric')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
-- An event's type and instant are functions of its id (ids are deterministic), so keying on
-- all three still collapses a replayed event into one row, and (event_type, at) serves the
-- usual "this kind of event in this period" scans.
ORDER BY (event_type, at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Current state of every ticket: one snapshot per change, the highest `version` wins.
CREATE TABLE IF NOT EXISTS supportstream.tickets
(
    ticket_id         String,
    conversation_id   String,
    customer_id       String,
    channel           LowCardinality(String),
    category          LowCardinality(String),
    kind              LowCardinality(String),
    priority          LowCardinality(String),
    queue             LowCardinality(String),
    agent_id          String,                -- '' if none
    status            LowCardinality(String),
    sla_policy        LowCardinality(String),  -- '' if none
    opened_at         DateTime64(3, 'UTC'),
    solved_at         Nullable(DateTime64(3, 'UTC')),
    reopen_count      UInt32,
    handoff_count     UInt32,
    inbound_count     UInt32,
    agent_reply_count UInt32,
    csat              Nullable(UInt8),       -- last score
    nps               Nullable(UInt8),       -- last score
    tier              LowCardinality(String),  -- the customer's tier when the ticket opened
    opened_day        Date,                  -- day of opened_at in the rules' reporting_timezone
    first_reply_at    Nullable(DateTime64(3, 'UTC')),
    updated_at        DateTime64(3, 'UTC'),
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY ticket_id
SETTINGS non_replicated_deduplication_window = 10000;

-- Current state of every SLA cycle (CONTRACT §3): one row per (ticket, metric, cycle) after FINAL.
CREATE TABLE IF NOT EXISTS supportstream.sla_metrics
(
    ticket_id        String,
    metric           LowCardinality(String),  -- first_response | next_response | resolution
    cycle            UInt32,
    policy           LowCardinality(String),
    status           LowCardinality(String),  -- active | paused | met | breached | cancelled
    started_at       DateTime64(3, 'UTC'),
    due_at           DateTime64(3, 'UTC'),
    warned_at        Nullable(DateTime64(3, 'UTC')),
    breached_at      Nullable(DateTime64(3, 'UTC')),
    fulfilled_at     Nullable(DateTime64(3, 'UTC')),
    business_seconds Nullable(Float64),
    target_seconds   Float64,
    updated_at       DateTime64(3, 'UTC'),
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (ticket_id, metric, cycle)
SETTINGS non_replicated_deduplication_window = 10000;

-- Records that could not be understood, with the reason. `record` is already PII-masked.
-- `dead_letter_id` is a hash of the dead letter's content and position (`ref`), so a replay
-- produces the same ids.
CREATE TABLE IF NOT EXISTS supportstream.dead_letters
(
    dead_letter_id String,
    at             DateTime64(3, 'UTC'),
    source         LowCardinality(String),
    reason         String,
    record         String CODEC(ZSTD(3)),
    ref            String
)
ENGINE = ReplacingMergeTree
ORDER BY dead_letter_id
SETTINGS non_replicated_deduplication_window = 10000;
