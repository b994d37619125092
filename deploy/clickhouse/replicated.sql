-- supportstream on a replicated, sharded ClickHouse cluster: the replicated/distributed variant of
-- sinks/migrations/0001_core_tables.sql (same tables, same columns, same keys; checked textually by
-- tests/deploy/test_replicated_sql.py). deploy/SCALING.md explains when and how to use it.
--
-- Layout: every core table becomes
--   supportstream.<table>_local  ReplicatedReplacingMergeTree on every node (one copy per replica,
--                                {shard}/{replica} macros from the server's config), and
--   supportstream.<table>        a Distributed table over the `_local` ones, under the name the
--                                writer and the analysts use.
-- Sharding keys keep every key of a ReplacingMergeTree on one shard, so FINAL (applied per shard)
-- still collapses duplicates: tickets, sla_metrics and events by ticket_id (an event's ticket never
-- changes, so a redelivered event lands on the same shard), dead_letters by dead_letter_id.
-- replicated_deduplication_window plays the role non_replicated_deduplication_window plays on a
-- single node (insert tokens, sinks/writer.py); the writer must insert with
-- distributed_foreground_insert = 1 so the token reaches the shard and failures reach the writer.
--
-- Apply once, on any node:  clickhouse-client --multiquery < deploy/clickhouse/replicated.sql
-- then run `supportstream migrate` against EVERY node (SUPPORTSTREAM_CLICKHOUSE_URL per node):
-- 0001 finds the tables there (CREATE ... IF NOT EXISTS does nothing) and 0002/0003 create the
-- views, which read supportstream.<table>, i.e. the Distributed tables, on that node.
-- Readers' profile (users.xml / SQL RBAC): distributed_product_mode = 'global', so the views that
-- join a Distributed table with a subquery over another one (customer_health) run the subquery
-- once and ship it to the shards instead of being refused (the default is 'deny').
-- Not verified against a real cluster in CI (no multi-node ClickHouse there); the statements use
-- only documented engines and macros, and the tables match the single-node schema column by column.

CREATE DATABASE IF NOT EXISTS supportstream ON CLUSTER '{cluster}';

-- Every domain event, one row each. `data` is the event's own fields as JSON text (sorted keys).
-- The typed convenience columns are filled by the server from `data` (DEFAULT), so any producer
-- gets them and the writer sends only what the contract names.
CREATE TABLE IF NOT EXISTS supportstream.events_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/supportstream/{table}', '{replica}')
PARTITION BY toYYYYMM(at)
-- An event's type and instant are functions of its id (ids are deterministic), so keying on
-- all three still collapses a replayed event into one row, and (event_type, at) serves the
-- usual "this kind of event in this period" scans.
ORDER BY (event_type, at, event_id)
SETTINGS replicated_deduplication_window = 10000;

-- Current state of every ticket: one snapshot per change, the highest `version` wins.
CREATE TABLE IF NOT EXISTS supportstream.tickets_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/supportstream/{table}', '{replica}', version)
ORDER BY ticket_id
SETTINGS replicated_deduplication_window = 10000;

-- Current state of every SLA cycle (CONTRACT §3): one row per (ticket, metric, cycle) after FINAL.
CREATE TABLE IF NOT EXISTS supportstream.sla_metrics_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/supportstream/{table}', '{replica}', version)
ORDER BY (ticket_id, metric, cycle)
SETTINGS replicated_deduplication_window = 10000;

-- Records that could not be understood, with the reason. `record` is already PII-masked.
-- `dead_letter_id` is a hash of the dead letter's content and position (`ref`), so a replay
-- produces the same ids.
CREATE TABLE IF NOT EXISTS supportstream.dead_letters_local ON CLUSTER '{cluster}'
(
    dead_letter_id String,
    at             DateTime64(3, 'UTC'),
    source         LowCardinality(String),
    reason         String,
    record         String CODEC(ZSTD(3)),
    ref            String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/supportstream/{table}', '{replica}')
ORDER BY dead_letter_id
SETTINGS replicated_deduplication_window = 10000;

-- Incidents (CONTRACT §7, migration 0005): filled by the materialized view that 0005 creates on
-- every node over supportstream.events (the Distributed table the writer inserts into, so the
-- view runs where the insert arrives and writes through supportstream.incidents to the shards).
CREATE TABLE IF NOT EXISTS supportstream.incidents_local ON CLUSTER '{cluster}'
(
    incident_id String,
    category    LowCardinality(String),
    opened_at   DateTime64(3, 'UTC'),
    closed_at   Nullable(DateTime64(3, 'UTC')),
    tickets     UInt32,
    customers   UInt32,
    baseline    Float64,
    version     UInt64,
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/supportstream/{table}', '{replica}', version)
ORDER BY incident_id
SETTINGS replicated_deduplication_window = 10000;

-- The ticket columns 0005 adds (promises and incidents, CONTRACT §4/§7): on the `_local` tables
-- here; `supportstream migrate` adds them to the Distributed `tickets` of each node. Re-apply this
-- file before migrating when upgrading a cluster (every statement is idempotent).
ALTER TABLE supportstream.tickets_local ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS promised_by Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS promise_estimate_seconds Nullable(Float64),
    ADD COLUMN IF NOT EXISTS promise_basis LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS promise_outcome LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS incident_id String DEFAULT '';

-- The ticket column 0004 adds (language, CONTRACT §4/§7), the same way.
ALTER TABLE supportstream.tickets_local ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS language LowCardinality(String) DEFAULT 'und';

-- Distributed tables under the names the writer and the views use.

CREATE TABLE IF NOT EXISTS supportstream.events ON CLUSTER '{cluster}'
AS supportstream.events_local
ENGINE = Distributed('{cluster}', supportstream, events_local, sipHash64(ticket_id));

CREATE TABLE IF NOT EXISTS supportstream.tickets ON CLUSTER '{cluster}'
AS supportstream.tickets_local
ENGINE = Distributed('{cluster}', supportstream, tickets_local, sipHash64(ticket_id));

CREATE TABLE IF NOT EXISTS supportstream.sla_metrics ON CLUSTER '{cluster}'
AS supportstream.sla_metrics_local
ENGINE = Distributed('{cluster}', supportstream, sla_metrics_local, sipHash64(ticket_id));

CREATE TABLE IF NOT EXISTS supportstream.dead_letters ON CLUSTER '{cluster}'
AS supportstream.dead_letters_local
ENGINE = Distributed('{cluster}', supportstream, dead_letters_local, sipHash64(dead_letter_id));

CREATE TABLE IF NOT EXISTS supportstream.incidents ON CLUSTER '{cluster}'
AS supportstream.incidents_local
ENGINE = Distributed('{cluster}', supportstream, incidents_local, sipHash64(incident_id));
