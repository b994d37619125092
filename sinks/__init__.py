"""ClickHouse: the backend port and its adapters (embedded chdb, native server), the schema
migrations, and the projection writer that turns processor output into table rows.

``open_backend(url)`` picks the adapter; ``migrate(backend)`` brings the schema up to date;
``ProjectionWriter(backend)`` writes. See ``sinks/README.md`` for the design.
"""

from sinks.backend import Backend, QueryError, SinkError, open_backend

__all__ = ["Backend", "QueryError", "SinkError", "open_backend"]
