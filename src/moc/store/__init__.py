"""Persistence: SQLite (WAL) in the data directory. No business rules here."""
