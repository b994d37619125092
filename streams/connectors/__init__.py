"""Channel connectors: the edge where contacts enter the pipeline (docs/CONNECTORS.md).

``http`` receives webhooks (Telegram, WhatsApp, VK) and the project's own sources (chat widget,
feedback form, telephony, agents' desk, surveys, CRM); ``imap`` reads a mailbox. Both wrap what
they receive in the raw envelope (``envelope``), checked with the project's parsers, and hand it
to the ``publisher``, which answers only once the broker acknowledged. ``auth`` checks the
channels' signatures and tokens. The wall clock is allowed here (this is the edge) and injected
for tests.
"""
