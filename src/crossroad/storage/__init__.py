"""Persistent stores: SQLAlchemy Core schemas on SQLite (default) or PostgreSQL, migrated."""
