-- CONTRACT §4 / §7 "Languages": every ticket's `language`, the ISO 639-1 code of the opening
-- contact among the rules' `languages`, or 'und' when its text does not tell. Decided once, at
-- opening, like the rest of the classification. Rows written before this migration read 'und'.
-- Waiting for an agent (§7) needs no column: `ticket.waiting_started` / `ticket.waiting_stopped`
-- events say when a ticket waited (docs/ANALYTICS.md "Time to assign").
ALTER TABLE supportstream.tickets ADD COLUMN IF NOT EXISTS language LowCardinality(String) DEFAULT 'und';
