-- Agents and quality (CONTRACT §7): the ticket columns the QA sample reads. The views
-- (agent_daily, qa_sample, qa_reviews, qa_agent_weekly) have days and weeks in the reporting
-- time zone and the sample size from the rules, so they are written from
-- sinks/agent_views.sql by sinks.migrate.apply_reporting_views, like the daily views.
--
-- most_active_agent: the agent with the most public replies on the ticket (a tie: the one who
--   replied last), kept by the desk with every snapshot;
-- sample_key: h(ticket_id), the keyed hash of CONTRACT §1 (SQL does not know the PII key), the
--   order in which unflagged tickets enter the sample.
ALTER TABLE supportstream.tickets
    ADD COLUMN IF NOT EXISTS most_active_agent String DEFAULT '';

ALTER TABLE supportstream.tickets
    ADD COLUMN IF NOT EXISTS sample_key String DEFAULT '';
