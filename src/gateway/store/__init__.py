"""Persistence: one schema, SQLite (embedded default) and PostgreSQL (several nodes)."""
