"""Events: the data contract, the event store (SQLite or PostgreSQL), file import and the lake export."""
